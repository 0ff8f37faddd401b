package queue

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/raftmq/raftmq/fsm"
)

// pendingOf returns how many messages the engine holds for queue name:
// pending, parked or in flight.
func pendingOf(e *Engine, name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if q := e.queues[name]; q != nil {
		return q.pendingCount()
	}
	return 0
}

// TestWildcardQueueSubscription: a wildcard subscription to queues
// consumes from every matching queue, those made later included, with
// one prefetch window and one cumulative ack order across them; closing
// it gives its unacked messages back to their queues.
func TestWildcardQueueSubscription(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	sendH(t, p, "/queue/orders.eu", "eu1")
	sendH(t, p, "/queue/orders.eu", "eu2")
	sendH(t, p, "/queue/orders.us", "us1")
	sendH(t, p, "/queue/orders.us.paid", "paid1")
	sendH(t, p, "/queue/other.eu", "other1")

	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "w", Destination: "/queue/orders.*", Ack: AckClient, Prefetch: 2})
	out.wait(t, 1)
	settle()
	if n := out.count(); n != 2 {
		t.Fatalf("prefetch 2 across queues: %d deliveries", n)
	}
	first, second := out.wait(t, 0), out.wait(t, 1)
	for _, d := range []*Delivery{first, second} {
		if d.Subscription != "w" {
			t.Errorf("delivery of %s shows subscription %q", d.Msg.Body, d.Subscription)
		}
		if d.Destination != d.Msg.Destination || !slices.Contains([]string{"/queue/orders.eu", "/queue/orders.us"}, d.Destination) {
			t.Errorf("delivery of %s shows destination %q", d.Msg.Body, d.Destination)
		}
	}

	// A queue made after the SUBSCRIBE is consumed too.
	sendH(t, p, "/queue/orders.asia", "asia1")

	// One cumulative ACK of the second delivery acks the first as well,
	// whichever queue each came from, and frees the whole window.
	do(t, func(done func(error)) error { return c.Ack(AckRef{ID: second.AckID}, "", done) })
	out.wait(t, 3)
	settle()
	got := bodies(out)
	sorted := slices.Sorted(slices.Values(got))
	if want := []string{"asia1", "eu1", "eu2", "us1"}; !slices.Equal(sorted, want) {
		t.Errorf("got %q, want every message of orders.* (%q) once, no other", got, want)
	}
	if i, j := slices.Index(got, "eu1"), slices.Index(got, "eu2"); i > j {
		t.Errorf("orders.eu out of order: %q", got)
	}
	held := 0
	for _, q := range []string{"/queue/orders.eu", "/queue/orders.us", "/queue/orders.asia"} {
		held += pendingOf(e, q)
	}
	if held != 2 {
		t.Errorf("the queues hold %d messages, want the 2 in flight: the cumulative ack took 2", held)
	}

	// Closing gives the two unacked deliveries back to their queues,
	// flagged redelivered, and takes the subscription off every queue.
	unacked := []string{string(out.wait(t, 2).Msg.Body), string(out.wait(t, 3).Msg.Body)}
	written(out) // they reached the client
	c.Close()
	again, againOut := open(t, e, "")
	subscribe(t, again, SubscribeSpec{ID: "w2", Destination: "/queue/orders.*", Ack: AckAuto})
	againOut.wait(t, 1)
	settle()
	if got := bodies(againOut); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(unacked))) {
		t.Errorf("after close a new subscription got %q, want %q", got, unacked)
	}
	for i := range 2 {
		if d := againOut.wait(t, i); !d.Redelivered {
			t.Errorf("%s not flagged redelivered", d.Msg.Body)
		}
	}
	again.Close()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.wildQueues) != 0 {
		t.Errorf("%d wildcard queue subscriptions left", len(e.wildQueues))
	}
	for name, q := range e.queues {
		for _, s := range q.consumers {
			if s.parent != nil {
				t.Errorf("%s keeps a member of a closed wildcard subscription", name)
			}
		}
		if q.wildMembers != 0 {
			t.Errorf("%s counts %d wildcard members", name, q.wildMembers)
		}
	}
}

// TestWildcardQueueCredit: credit freed on one queue lets another queue
// of the wildcard deliver, as each kind of ending of a delivery frees it:
// an auto ack, a NACK and an ACK held in a transaction.
func TestWildcardQueueCredit(t *testing.T) {
	for _, tc := range []struct {
		name string
		ack  AckMode
		free func(t *testing.T, s *Session, d *Delivery)
	}{
		{"auto", AckAuto, func(t *testing.T, s *Session, d *Delivery) { d.Written() }},
		{"nack", AckClientIndividual, func(t *testing.T, s *Session, d *Delivery) {
			do(t, func(done func(error)) error { return s.Nack(AckRef{ID: d.AckID}, "", done) })
		}},
		{"ack in a transaction", AckClientIndividual, func(t *testing.T, s *Session, d *Delivery) {
			if err := s.Begin("tx"); err != nil {
				t.Fatal(err)
			}
			do(t, func(done func(error)) error { return s.Ack(AckRef{ID: d.AckID}, "tx", done) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newEngine(t, Config{})
			p, _ := open(t, e, "")
			c, out := open(t, e, "")
			subscribe(t, c, SubscribeSpec{ID: "w", Destination: "/queue/jobs.>", Ack: tc.ack, Prefetch: 1})
			sendH(t, p, "/queue/jobs.a", "a")
			first := out.wait(t, 0)
			sendH(t, p, "/queue/jobs.b", "b")
			settle()
			if n := out.count(); n != 1 {
				t.Fatalf("prefetch 1: %d deliveries before the first ended", n)
			}
			tc.free(t, c, first)
			// The waiting queue goes first, even before a NACKed
			// message of the queue that freed the credit.
			if d := out.wait(t, 1); string(d.Msg.Body) != "b" {
				t.Errorf("after freeing credit: %s, want jobs.b's message", d.Msg.Body)
			}
		})
	}
}

// TestWildcardQueueSharesWithConsumers: a wildcard member is one of its
// queue's consumers: it takes turns with a plain consumer, its selector
// and priority apply per queue, and it counts in the group's demand.
func TestWildcardQueueSharesWithConsumers(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	w, wOut := open(t, e, "")
	subscribe(t, w, SubscribeSpec{ID: "w", Destination: "/queue/work.>", Ack: AckAuto, Selector: "kind = 'x'"})
	c, cOut := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "c", Destination: "/queue/work.one", Ack: AckAuto})
	for _, b := range []string{"x1", "x2", "x3", "x4"} {
		sendH(t, p, "/queue/work.one", b, "kind", "x")
	}
	sendH(t, p, "/queue/work.one", "y1", "kind", "y")
	sendH(t, p, "/queue/work.two", "x5", "kind", "x")
	sendH(t, p, "/queue/work.two", "y2", "kind", "y")
	wOut.wait(t, 2)
	cOut.wait(t, 2)
	settle()
	if got := bodies(wOut); !slices.Equal(got, []string{"x1", "x3", "x5"}) && !slices.Equal(got, []string{"x2", "x4", "x5"}) {
		t.Errorf("wildcard consumer got %q: want its turns of work.one and work.two's x", got)
	}
	if got := bodies(cOut); len(got) != 3 || !slices.Contains(got, "y1") {
		t.Errorf("plain consumer got %q", got)
	}
	written(wOut)
	written(cOut)
	settle()
	if n := pendingOf(e, "/queue/work.two"); n != 1 {
		t.Errorf("work.two holds %d, want y2, which the selector refuses (w %q c %q)", n, bodies(wOut), bodies(cOut))
	}
	demand := map[string]int{}
	for _, d := range e.Demand() {
		demand[d.Destination] = d.Consumers
	}
	if demand["/queue/work.one"] != 2 || demand["/queue/work.two"] != 1 || demand["/queue/work.>"] != 0 {
		t.Errorf("demand %v: want the matching queues' consumers, no wildcard", demand)
	}
	var info *SubscriptionInfo
	for _, s := range e.Subscriptions() {
		if s.ID == "w" {
			info = &s
		}
	}
	if info == nil || info.Type != "queue" || info.Destination != "/queue/work.>" || info.Delivered != 3 {
		t.Errorf("subscription info %+v", info)
	}
}

// TestWildcardQueueRefusals: what a wildcard queue subscription cannot be,
// and that it needs no auto-creation.
func TestWildcardQueueRefusals(t *testing.T) {
	e, _ := newEngine(t, Config{ForbidAutoCreate: true})
	s, _ := open(t, e, "")
	for _, tc := range []struct {
		spec SubscribeSpec
		want error
	}{
		{SubscribeSpec{ID: "b", Destination: "/queue/a.>", Browser: true}, ErrWildcardBrowse},
		{SubscribeSpec{ID: "n", Destination: "/queue/a.>", Network: &NetworkSpec{Group: "g"}}, ErrWildcardNetwork},
		{SubscribeSpec{ID: "x", Destination: "/queue/a.>.b"}, ErrBadDestination},
	} {
		if err := s.Subscribe(tc.spec, func(error) {}); !errors.Is(err, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.spec, err, tc.want)
		}
	}
	subscribe(t, s, SubscribeSpec{ID: "w", Destination: "/queue/a.>"})
	e.mu.Lock()
	n := len(e.queues)
	e.mu.Unlock()
	if n != 0 {
		t.Errorf("a wildcard subscription made %d queues", n)
	}
}

// TestWildcardQueueTakesTurns: a long backlog in one queue does not keep
// a wildcard subscription from the others: freed credit goes round its
// queues.
func TestWildcardQueueTakesTurns(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	for range 50 {
		sendH(t, p, "/queue/feed.a", "a")
	}
	sendH(t, p, "/queue/feed.b", "b")
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "w", Destination: "/queue/feed.*", Ack: AckAuto, Prefetch: 1})
	for i := range 4 {
		out.wait(t, i).Written()
	}
	if got := bodies(out); !slices.Contains(got[:4], "b") {
		t.Errorf("first deliveries %q: feed.b waited behind feed.a's backlog", got)
	}
}

// BenchmarkWildcardQueueDrain measures a wildcard queue subscriber with
// prefetch 1 draining one queue while N-1 other matching queues are
// empty: each auto ack serves the subscription's line of waiting members
// (dispatchWild), which should cost the same whatever N. "plain" is the
// same drain by a subscription to the queue itself.
func BenchmarkWildcardQueueDrain(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchWildDrain(b, 1, "/queue/bench.q0") })
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("queues=%d", n), func(b *testing.B) { benchWildDrain(b, n, "/queue/bench.*") })
	}
}

func benchWildDrain(b *testing.B, queues int, dest string) {
	// Room for a member per queue.
	e, err := NewEngine(Config{MaxSubscriptions: 1 << 20}, nopLog{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	e.mu.Lock()
	for i := range queues {
		e.queue(fmt.Sprintf("/queue/bench.q%d", i))
	}
	e.mu.Unlock()
	out := &benchOut{}
	c, err := e.Open("", out)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Subscribe(SubscribeSpec{ID: "w", Destination: dest, Ack: AckAuto, Prefetch: 1}, func(error) {}); err != nil {
		b.Fatal(err)
	}
	p, err := e.Open("", &benchOut{})
	if err != nil {
		b.Fatal(err)
	}
	drainBatches(b, out, c, p, func() *fsm.Message {
		return &fsm.Message{Destination: "/queue/bench.q0", Body: make([]byte, 100), Priority: 4}
	})
}

// TestWildcardQueueLimit: each queue a wildcard consumes from counts
// against MaxSubscriptions. A SUBSCRIBE matching more queues than the
// connection has room for is refused; a queue made later that would take
// it past the limit ends the connection with the reason, rather than go
// unconsumed.
func TestWildcardQueueLimit(t *testing.T) {
	e, _ := newEngine(t, Config{MaxSubscriptions: 4})
	p, _ := open(t, e, "")
	for _, q := range []string{"/queue/x.a", "/queue/x.b", "/queue/x.c"} {
		sendH(t, p, q, "m")
	}
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "plain", Destination: "/queue/other"})
	err := c.Subscribe(SubscribeSpec{ID: "w", Destination: "/queue/x.*"}, func(error) {})
	if !errors.Is(err, ErrTooManySubs) || !strings.Contains(err.Error(), "matches 3 queues") {
		t.Fatalf("1 + 1 + 3 queues with room for 4: %v", err)
	}
	// Without the plain subscription it fits: 1 + 3.
	do(t, func(done func(error)) error { return c.Unsubscribe("plain", "", done) })
	subscribe(t, c, SubscribeSpec{ID: "w", Destination: "/queue/x.*"})
	out.wait(t, 2)
	// Another subscription would not fit.
	if err := c.Subscribe(SubscribeSpec{ID: "more", Destination: "/queue/other"}, func(error) {}); !errors.Is(err, ErrTooManySubs) {
		t.Errorf("a fifth consumer: %v", err)
	}
	// Nor does a fourth queue: the connection is ended with the reason.
	sendH(t, p, "/queue/x.d", "m")
	out.mu.Lock()
	reason := out.closed
	out.mu.Unlock()
	if !strings.Contains(reason, "/queue/x.*") || !strings.Contains(reason, "/queue/x.d") {
		t.Errorf("connection ended with %q, want the subscription and the queue named", reason)
	}
	c.Close()
	e.mu.Lock()
	defer e.mu.Unlock()
	if c.members != 0 || len(e.queues["/queue/x.d"].consumers) != 0 {
		t.Errorf("after close: %d members, x.d has %d consumers", c.members, len(e.queues["/queue/x.d"].consumers))
	}
}

// BenchmarkNewQueueWithWildcards measures making a queue that W wildcard
// subscriptions (each on its own connection) match: each gets a member,
// which should cost the same whatever the number already there.
func BenchmarkNewQueueWithWildcards(b *testing.B) {
	for _, w := range []int{10, 1000} {
		b.Run(fmt.Sprintf("subscriptions=%d", w), func(b *testing.B) {
			e, err := NewEngine(Config{MaxSubscriptions: 1 << 30}, nopLog{}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			for i := range w {
				s, err := e.Open("", &benchOut{writable: true})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Subscribe(SubscribeSpec{ID: fmt.Sprint(i), Destination: "/queue/>"}, func(error) {}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				e.mu.Lock()
				e.queue("/queue/new" + strconv.Itoa(i))
				e.mu.Unlock()
			}
		})
	}
}
