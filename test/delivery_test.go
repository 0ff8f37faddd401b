package test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// TestQueueRoundRobin: each message of a queue goes to exactly one of its
// competing consumers, round robin.
func TestQueueRoundRobin(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const q, n, consumers = "/queue/rr", 30, 3
	var subs []*client.Subscription
	for range consumers {
		subs = append(subs, subscribe(t, b.dial(client.Options{}), q, "client-individual"))
	}
	p := b.dial(client.Options{})
	for i := range n {
		sendR(t, p, q, fmt.Sprintf("m%02d", i))
	}
	seen := map[string]int{}
	for i, s := range subs {
		got := recvBodies(t, s, n/consumers)
		if !slices.IsSorted(got) {
			t.Errorf("consumer %d got %v out of order", i, got)
		}
		for _, body := range got {
			seen[body]++
		}
		noMessage(t, s)
		t.Logf("consumer %d: %v", i, got)
	}
	for i := range n {
		if c := seen[fmt.Sprintf("m%02d", i)]; c != 1 {
			t.Errorf("m%02d delivered %d times, want once", i, c)
		}
	}
}

// TestQueuePrefetch: activemq.prefetchSize bounds a consumer's unacked
// messages; the rest wait for credit or for another consumer.
func TestQueuePrefetch(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const q = "/queue/prefetch"
	ca := b.dial(client.Options{})
	a := subscribe(t, ca, q, "client-individual", "activemq.prefetchSize", "2")
	p := b.dial(client.Options{})
	for i := range 6 {
		sendR(t, p, q, "m"+strconv.Itoa(i))
	}
	first := []*stomp.Frame{recv(t, a), recv(t, a)}
	noMessage(t, a) // two unacked: no credit left
	if err := ca.AckReceipt(ctxT(t), first[0], ""); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, a); string(m.Body) != "m2" {
		t.Fatalf("after one ACK got %q, want m2", m.Body)
	}
	noMessage(t, a)
	bsub := subscribe(t, b.dial(client.Options{}), q, "auto", "activemq.prefetchSize", "100")
	if got := join(recvBodies(t, bsub, 3)); got != "m3,m4,m5" {
		t.Errorf("second consumer got %s, want m3,m4,m5", got)
	}
	noMessage(t, bsub)
	noMessage(t, a)
}

// TestTopicSubscribers: every non-durable subscriber of a topic gets each
// message published while it is subscribed, and nothing from before.
func TestTopicSubscribers(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const topic = "/topic/news"
	p := b.dial(client.Options{})
	sendR(t, p, topic, "before-anyone") // nobody subscribed: gone
	s1 := subscribe(t, b.dial(client.Options{}), topic, "auto")
	c2 := b.dial(client.Options{})
	s2 := subscribe(t, c2, topic, "client-individual")
	s2b := subscribe(t, c2, topic, "auto") // a second subscription on one connection gets its own copy
	for i := range 5 {
		sendR(t, p, topic, "t"+strconv.Itoa(i))
	}
	want := "t0,t1,t2,t3,t4"
	for name, s := range map[string]*client.Subscription{"s1": s1, "s2": s2, "s2b": s2b} {
		if got := join(recvBodies(t, s, 5)); got != want {
			t.Errorf("%s got %s, want %s", name, got, want)
		}
	}
	late := subscribe(t, b.dial(client.Options{}), topic, "auto")
	sendR(t, p, topic, "t5")
	for name, s := range map[string]*client.Subscription{"s1": s1, "s2": s2, "s2b": s2b, "late": late} {
		if m := recv(t, s); string(m.Body) != "t5" {
			t.Errorf("%s got %q, want t5", name, m.Body)
		}
		noMessage(t, s)
	}
	// A persistent:false publish goes to subscribers too.
	sendR(t, p, topic, "np", "persistent", "false")
	if m := recv(t, late); string(m.Body) != "np" || m.Get("persistent") != "false" {
		t.Errorf("late got %q persistent=%q, want np persistent=false", m.Body, m.Get("persistent"))
	}
}

// TestAckModes: auto (acked once written: nothing comes back after a
// reconnect), client (ACK is cumulative over its subscription) and
// client-individual (ACK covers one message); what is unacked at
// disconnect goes to another consumer with redelivered:true and
// delivery-count 2.
func TestAckModes(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	p := b.dial(client.Options{})

	t.Run("auto", func(t *testing.T) {
		const q = "/queue/ack-auto"
		c := b.dial(client.Options{})
		s := subscribe(t, c, q, "auto")
		for i := range 3 {
			sendR(t, p, q, "a"+strconv.Itoa(i))
		}
		if got := join(recvBodies(t, s, 3)); got != "a0,a1,a2" {
			t.Fatalf("got %s", got)
		}
		if err := c.Disconnect(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		noMessage(t, subscribe(t, b.dial(client.Options{}), q, "auto"))
	})

	t.Run("client", func(t *testing.T) {
		const q, other = "/queue/ack-client", "/queue/ack-client-other"
		c := b.dial(client.Options{})
		s := subscribe(t, c, q, "client")
		so := subscribe(t, c, other, "client")
		for i := range 5 {
			sendR(t, p, q, "c"+strconv.Itoa(i))
		}
		sendR(t, p, other, "o0")
		ms := []*stomp.Frame{}
		for range 5 {
			ms = append(ms, recv(t, s))
		}
		recv(t, so)
		// Cumulative: acking c2 acks c0 and c1 too, not o0 of the other
		// subscription.
		if err := c.AckReceipt(ctxT(t), ms[2], ""); err != nil {
			t.Fatal(err)
		}
		// Another consumer is already waiting when this one leaves.
		c2 := b.dial(client.Options{})
		s2 := subscribe(t, c2, q, "client-individual")
		so2 := subscribe(t, c2, other, "client-individual")
		noMessage(t, s2)
		c.Close()
		checkRedelivered(t, s2, "c3", "c4")
		checkRedelivered(t, so2, "o0")
	})

	t.Run("client-individual", func(t *testing.T) {
		const q = "/queue/ack-individual"
		c := b.dial(client.Options{})
		s := subscribe(t, c, q, "client-individual")
		for i := range 5 {
			sendR(t, p, q, "i"+strconv.Itoa(i))
		}
		var ms []*stomp.Frame
		for range 5 {
			ms = append(ms, recv(t, s))
		}
		for _, i := range []int{1, 3} {
			if err := c.AckReceipt(ctxT(t), ms[i], ""); err != nil {
				t.Fatal(err)
			}
		}
		s2 := subscribe(t, b.dial(client.Options{}), q, "client-individual")
		noMessage(t, s2)
		c.Close()
		checkRedelivered(t, s2, "i0", "i2", "i4")
	})
}

// checkRedelivered takes len(bodies) messages from s and checks they are
// bodies, in order, each flagged redelivered:true with delivery-count 2;
// then that nothing else comes.
func checkRedelivered(t *testing.T, s *client.Subscription, bodies ...string) {
	t.Helper()
	for _, want := range bodies {
		m := recv(t, s)
		if string(m.Body) != want || m.Get("redelivered") != "true" || m.Get("delivery-count") != "2" {
			t.Errorf("got %q redelivered=%q delivery-count=%q, want %s redelivered:true delivery-count:2",
				m.Body, m.Get("redelivered"), m.Get("delivery-count"), want)
		}
	}
	noMessage(t, s)
}

// TestNackRedeliveryDLQ: a NACKed message is redelivered with
// redelivered:true and a growing delivery-count, and after MaxDeliveries
// deliveries it is in /queue/DLQ.<name> with dlqDeliveryFailureCause and
// original-destination, its body and headers intact.
func TestNackRedeliveryDLQ(t *testing.T) {
	t.Parallel()
	const maxDeliveries = 3
	b := startBroker(t, func(c *node.Config) { c.Queue.MaxDeliveries = maxDeliveries })
	p := b.dial(client.Options{})

	t.Run("client", func(t *testing.T) {
		const q = "/queue/poison"
		c := b.dial(client.Options{})
		s := subscribe(t, c, q, "client-individual")
		sendR(t, p, q, "poison", "x-trace", "t-1")
		for n := 1; n <= maxDeliveries; n++ {
			m := recv(t, s)
			wantRedelivered := ""
			if n > 1 {
				wantRedelivered = "true"
			}
			if string(m.Body) != "poison" || m.Get("delivery-count") != strconv.Itoa(n) || m.Get("redelivered") != wantRedelivered {
				t.Fatalf("delivery %d: %q delivery-count=%q redelivered=%q", n, m.Body, m.Get("delivery-count"), m.Get("redelivered"))
			}
			if err := c.NackReceipt(ctxT(t), m, ""); err != nil {
				t.Fatal(err)
			}
		}
		noMessage(t, s)
		d := recv(t, subscribe(t, b.dial(client.Options{}), "/queue/DLQ.poison", "auto"))
		if string(d.Body) != "poison" || d.Get("x-trace") != "t-1" {
			t.Errorf("DLQ message %q x-trace=%q", d.Body, d.Get("x-trace"))
		}
		if got := d.Get("original-destination"); got != q {
			t.Errorf("original-destination %q, want %s", got, q)
		}
		cause := d.Get("dlqDeliveryFailureCause")
		if !strings.Contains(cause, "delivered 3 times") || !strings.Contains(cause, "NACK") {
			t.Errorf("dlqDeliveryFailureCause %q, want it to say delivered 3 times, NACKed", cause)
		}
	})

	// Clients that NACK each MESSAGE the moment they read it, several at
	// once: every delivery must still count, or a poison message comes
	// back without redelivered:true and loops past MaxDeliveries.
	t.Run("fast-nack", func(t *testing.T) {
		const consumers, n = 4, 250
		type result struct {
			q      string
			counts map[string]int
			wrong  []string
			err    error
		}
		results := make([]result, consumers)
		for i := range results {
			results[i].q = "/queue/poison-fast-" + strconv.Itoa(i)
			var bodies []string
			for j := range n {
				bodies = append(bodies, "f"+strconv.Itoa(j))
			}
			sendAll(t, p, results[i].q, bodies)
		}
		conns := make([]*rawConn, consumers)
		for i := range conns {
			conns[i], _ = rawConnect(t, b.addr, "1.2")
		}
		var wg sync.WaitGroup
		for i := range results {
			wg.Add(1)
			go func(r *result, c *rawConn) {
				defer wg.Done()
				r.counts = map[string]int{}
				if err := c.w.WriteFrame(frame(stomp.SUBSCRIBE, "", "id", "s", "destination", r.q, "ack", "client-individual")); err != nil {
					r.err = err
					return
				}
				for {
					if err := c.w.Flush(); err != nil {
						r.err = err
						return
					}
					// Read until the queue is quiet: every delivery, however many.
					c.nc.SetReadDeadline(time.Now().Add(time.Second))
					m, err := c.r.ReadFrame()
					if err != nil {
						return
					}
					if m.Command != stomp.MESSAGE {
						r.err = fmt.Errorf("got %s %v %q", m.Command, m.Headers, m.Body)
						return
					}
					body := string(m.Body)
					r.counts[body]++
					k := r.counts[body]
					if got := m.Get("delivery-count"); got != strconv.Itoa(k) {
						r.wrong = append(r.wrong, fmt.Sprintf("%s %s delivery %d: delivery-count %s", r.q, body, k, got))
					}
					if k > 1 && m.Get("redelivered") != "true" {
						r.wrong = append(r.wrong, fmt.Sprintf("%s %s delivery %d: no redelivered:true", r.q, body, k))
					}
					if err := c.w.WriteFrame(frame(stomp.NACK, "", "id", m.Get("ack"))); err != nil {
						r.err = err
						return
					}
				}
			}(&results[i], conns[i])
		}
		wg.Wait()
		var wrong []string
		total := 0
		for _, r := range results {
			if r.err != nil {
				t.Fatalf("%s: %v", r.q, r.err)
			}
			wrong = append(wrong, r.wrong...)
			for body, k := range r.counts {
				total += k
				if k != maxDeliveries {
					wrong = append(wrong, fmt.Sprintf("%s %s delivered %d times, want %d", r.q, body, k, maxDeliveries))
				}
			}
			if len(r.counts) != n {
				wrong = append(wrong, fmt.Sprintf("%s: %d distinct messages delivered, want %d", r.q, len(r.counts), n))
			}
		}
		for _, w := range wrong[:min(len(wrong), 10)] {
			t.Error(w)
		}
		if len(wrong) > 0 {
			t.Errorf("%d problems in %d deliveries (want %d)", len(wrong), total, consumers*n*maxDeliveries)
		}
		for _, r := range results {
			dlq := subscribe(t, b.dial(client.Options{}), "/queue/DLQ."+strings.TrimPrefix(r.q, "/queue/"), "auto")
			got := map[string]bool{}
			for range n {
				got[string(recv(t, dlq).Body)] = true
			}
			if len(got) != n {
				t.Errorf("DLQ of %s holds %d distinct messages, want %d", r.q, len(got), n)
			}
		}
	})
}

// TestTransactions: sends in a transaction are invisible until COMMIT;
// ABORT discards them and gives back the messages acked in it; an ACK in a
// committed transaction stays; an unknown transaction is an ERROR.
func TestTransactions(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const q = "/queue/tx"
	p := b.dial(client.Options{})
	cc := b.dial(client.Options{})
	s := subscribe(t, cc, q, "client-individual")
	ctx := ctxT(t)

	// COMMIT delivers the sends, in order.
	if err := p.Begin(ctx, "tx1"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sendR(t, p, q, "c"+strconv.Itoa(i), "transaction", "tx1")
	}
	noMessage(t, s)
	if err := p.Commit(ctx, "tx1"); err != nil {
		t.Fatal(err)
	}
	committed := []*stomp.Frame{recv(t, s), recv(t, s), recv(t, s)}
	for i, m := range committed {
		if string(m.Body) != "c"+strconv.Itoa(i) {
			t.Fatalf("committed message %d: %q", i, m.Body)
		}
	}

	// ABORT discards the sends.
	if err := p.Begin(ctx, "tx2"); err != nil {
		t.Fatal(err)
	}
	sendR(t, p, q, "aborted-1", "transaction", "tx2")
	sendR(t, p, q, "aborted-2", "transaction", "tx2")
	if err := p.Abort(ctx, "tx2"); err != nil {
		t.Fatal(err)
	}
	sendR(t, p, q, "plain")
	if m := recv(t, s); string(m.Body) != "plain" {
		t.Fatalf("after ABORT got %q, want plain (the aborted sends are gone)", m.Body)
	} else {
		committed = append(committed, m)
	}

	// ACK inside a transaction that is aborted: the message comes back.
	if err := cc.Begin(ctx, "tx3"); err != nil {
		t.Fatal(err)
	}
	if err := cc.Ack(committed[0], "tx3"); err != nil {
		t.Fatal(err)
	}
	if err := cc.Abort(ctx, "tx3"); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, s); string(m.Body) != "c0" || m.Get("redelivered") != "true" {
		t.Fatalf("after ABORT of the ACK got %q redelivered=%q, want c0 redelivered:true", m.Body, m.Get("redelivered"))
	} else {
		committed[0] = m
	}

	// ACK inside a committed transaction: the messages stay acked.
	if err := cc.Begin(ctx, "tx4"); err != nil {
		t.Fatal(err)
	}
	for _, m := range committed[:3] {
		if err := cc.Ack(m, "tx4"); err != nil {
			t.Fatal(err)
		}
	}
	if err := cc.Commit(ctx, "tx4"); err != nil {
		t.Fatal(err)
	}
	cc.Close() // "plain" is unacked: it alone comes back
	s2 := subscribe(t, b.dial(client.Options{}), q, "auto")
	if m := recv(t, s2); string(m.Body) != "plain" || m.Get("redelivered") != "true" {
		t.Errorf("after the commit got %q redelivered=%q, want only plain, redelivered", m.Body, m.Get("redelivered"))
	}
	noMessage(t, s2)

	// A connection that ends with a transaction open aborts it.
	dc := b.dial(client.Options{})
	if err := dc.Begin(ctx, "tx5"); err != nil {
		t.Fatal(err)
	}
	sendR(t, dc, q, "never", "transaction", "tx5")
	if err := dc.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	noMessage(t, s2)

	// Unknown transactions and a BEGIN twice.
	for _, tc := range []struct {
		name string
		f    *stomp.Frame
		msg  string
	}{
		{"send", frame(stomp.SEND, "x", "destination", q, "transaction", "nope", "receipt", "r1"), "no such transaction"},
		{"commit", frame(stomp.COMMIT, "", "transaction", "nope", "receipt", "r1"), "no such transaction"},
		{"abort", frame(stomp.ABORT, "", "transaction", "nope", "receipt", "r1"), "no such transaction"},
		{"no-header", frame(stomp.BEGIN, "", "receipt", "r1"), "BEGIN frame has no transaction"},
	} {
		c, _ := rawConnect(t, b.addr, "1.2")
		c.write(tc.f)
		c.expectError(tc.msg, "r1")
	}
	c, _ := rawConnect(t, b.addr, "1.2")
	c.write(frame(stomp.BEGIN, "", "transaction", "t", "receipt", "r0"))
	c.expectReceipt("r0")
	c.write(frame(stomp.BEGIN, "", "transaction", "t", "receipt", "r1"))
	c.expectError("transaction already begun", "r1")
	noMessage(t, s2)
}

// TestExpiry: a message whose expires time has passed is never delivered:
// it lands in the DLQ with dlqDeliveryFailureCause expired, whether it
// expired while waiting with no consumer or behind a consumer's prefetch.
func TestExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(c *node.Config) { c.Queue.ExpirySweep = 50 * time.Millisecond })
	const q = "/queue/exp"
	p := b.dial(client.Options{})
	now := time.Now().UnixMilli()
	later := strconv.FormatInt(now+3600_000, 10)
	sendR(t, p, q, "past", "expires", strconv.FormatInt(now-60_000, 10))
	sendR(t, p, q, "soon", "expires", strconv.FormatInt(now+200, 10))
	sendR(t, p, q, "later", "expires", later)
	sendR(t, p, q, "never-expires", "expires", "0")
	time.Sleep(time.Until(time.UnixMilli(now + 250))) // let "soon" expire

	c := b.dial(client.Options{})
	s := subscribe(t, c, q, "client-individual", "activemq.prefetchSize", "1")
	m := recv(t, s)
	if string(m.Body) != "later" || m.Get("expires") != later {
		t.Fatalf("got %q expires=%q, want later expires=%s", m.Body, m.Get("expires"), later)
	}
	// A message that expires while queued behind the consumer's prefetch.
	at := time.Now().Add(200 * time.Millisecond)
	sendR(t, p, q, "behind", "expires", strconv.FormatInt(at.UnixMilli(), 10))
	time.Sleep(time.Until(at.Add(50 * time.Millisecond)))
	if err := c.AckReceipt(ctxT(t), m, ""); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, s); string(m.Body) != "never-expires" {
		t.Fatalf("got %q, want never-expires", m.Body)
	}
	noMessage(t, s)

	dlq := subscribe(t, b.dial(client.Options{}), "/queue/DLQ.exp", "auto")
	var bodies []string
	for range 3 {
		d := recv(t, dlq)
		t.Logf("DLQ: %q", d.Body)
		bodies = append(bodies, string(d.Body))
		if d.Get("dlqDeliveryFailureCause") != "expired" || d.Get("original-destination") != q {
			t.Errorf("DLQ %q: dlqDeliveryFailureCause=%q original-destination=%q", d.Body, d.Get("dlqDeliveryFailureCause"), d.Get("original-destination"))
		}
	}
	slices.Sort(bodies)
	if got := join(bodies); got != "behind,past,soon" {
		t.Errorf("DLQ holds %s, want behind,past,soon", got)
	}
	noMessage(t, dlq)
}

// TestExpiryDropped: with DropExpired, expired messages are dropped, not
// dead-lettered.
func TestExpiryDropped(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(c *node.Config) {
		c.Queue.DropExpired = true
		c.Queue.ExpirySweep = 50 * time.Millisecond
	})
	const q = "/queue/exp-drop"
	p := b.dial(client.Options{})
	now := time.Now().UnixMilli()
	sendR(t, p, q, "past", "expires", strconv.FormatInt(now-1000, 10))
	sendR(t, p, q, "soon", "expires", strconv.FormatInt(now+100, 10))
	time.Sleep(time.Until(time.UnixMilli(now + 300))) // expired and swept
	sendR(t, p, q, "fresh")
	s := subscribe(t, b.dial(client.Options{}), q, "auto")
	if m := recv(t, s); string(m.Body) != "fresh" {
		t.Fatalf("got %q, want fresh", m.Body)
	}
	noMessage(t, s)
	noMessage(t, subscribe(t, b.dial(client.Options{}), "/queue/DLQ.exp-drop", "auto"))
}

// TestPriority: messages waiting for a consumer come out highest priority
// first, FIFO within a priority.
func TestPriority(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const q = "/queue/prio"
	p := b.dial(client.Options{})
	for _, m := range []struct{ body, prio string }{
		{"a0", "0"}, {"b9", "9"}, {"c4", "4"}, {"d9", "9"}, {"e4", "4"},
		{"f-default", ""}, {"g0", "0"}, {"h7", "7"},
	} {
		var h []string
		if m.prio != "" {
			h = []string{"priority", m.prio}
		}
		sendR(t, p, q, m.body, h...)
	}
	s := subscribe(t, b.dial(client.Options{}), q, "client-individual")
	var got, prios []string
	for range 8 {
		m := recv(t, s)
		got = append(got, string(m.Body))
		prios = append(prios, m.Get("priority"))
	}
	if want := "b9,d9,h7,c4,e4,f-default,a0,g0"; join(got) != want {
		t.Errorf("order %s, want %s", join(got), want)
	}
	if want := "9,9,7,4,4,4,0,0"; join(prios) != want {
		t.Errorf("priority headers %s, want %s", join(prios), want)
	}
	// An invalid priority is refused.
	c, _ := rawConnect(t, b.addr, "1.2")
	c.write(frame(stomp.SEND, "x", "destination", q, "priority", "10", "receipt", "rp"))
	c.expectError("invalid priority", "rp")
}

// TestPersistence: persistent:false messages are delivered (with
// persistent:false) but live in memory only, so a restart loses them, as
// documented; persistent ones survive a clean restart (flagged
// redelivered, as everything loaded from the store is).
func TestPersistence(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const q = "/queue/persist"
	p := b.dial(client.Options{})
	s := subscribe(t, b.dial(client.Options{}), q, "auto")
	sendR(t, p, q, "np-live", "persistent", "false")
	sendR(t, p, q, "p-live")
	m1, m2 := recv(t, s), recv(t, s)
	if string(m1.Body) != "np-live" || m1.Get("persistent") != "false" {
		t.Errorf("got %q persistent=%q, want np-live persistent=false", m1.Body, m1.Get("persistent"))
	}
	if string(m2.Body) != "p-live" || m2.Get("persistent") != "true" {
		t.Errorf("got %q persistent=%q, want p-live persistent=true", m2.Body, m2.Get("persistent"))
	}
	const q2 = "/queue/persist-restart"
	sendR(t, p, q2, "np-kept-in-memory", "persistent", "false")
	sendR(t, p, q2, "p-stored")
	sendR(t, p, q2, "np-2", "persistent", "FALSE")
	b.restart()
	s2 := subscribe(t, b.dial(client.Options{}), q2, "auto")
	m := recv(t, s2)
	if string(m.Body) != "p-stored" || m.Get("persistent") != "true" || m.Get("redelivered") != "true" {
		t.Errorf("after restart got %q persistent=%q redelivered=%q, want p-stored persistent=true redelivered=true",
			m.Body, m.Get("persistent"), m.Get("redelivered"))
	}
	noMessage(t, s2) // the non-persistent ones are lost, as documented
}
