package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// fast is a URL option tail for tests: addresses in order, short delays.
const fast = "randomize=false&initialReconnectDelay=5&maxReconnectDelay=50"

func failoverURL(opts string, addrs ...string) string {
	list := make([]string, len(addrs))
	for i, a := range addrs {
		list[i] = "tcp://" + a
	}
	u := "failover:(" + strings.Join(list, ",") + ")"
	if opts != "" {
		u += "?" + opts
	}
	return u
}

// swallowSends makes a fake server take SENDs without receipting them.
func swallowSends(fc *fakeConn, f *stomp.Frame) bool { return f.Command == stomp.SEND }

func TestErrorTextsMatchTheBroker(t *testing.T) {
	// The wire carries only the text; these must follow queue's errors.
	if !strings.Contains(queue.ErrClosed.Error(), notServingText) {
		t.Errorf("queue.ErrClosed %q does not contain %q", queue.ErrClosed, notServingText)
	}
	if queue.ErrDurableInUse.Error() != durableInUseText {
		t.Errorf("queue.ErrDurableInUse %q, want %q", queue.ErrDurableInUse, durableInUseText)
	}
}

func TestDialFirstServingAddress(t *testing.T) {
	a, b := newFake(t, ""), newFake(t, "")
	dead := freeAddr(t)
	var connects []string
	var mu sync.Mutex
	c := dialT(t, failoverURL(fast, dead, a.addr, b.addr), Options{OnConnect: func(addr string) {
		mu.Lock()
		connects = append(connects, addr)
		mu.Unlock()
	}})
	if got := c.Addr(); got != a.addr {
		t.Fatalf("Addr() = %q, want %q (the first address that serves)", got, a.addr)
	}
	if c.Reconnects() != 0 {
		t.Fatalf("Reconnects() = %d after Dial", c.Reconnects())
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(connects, []string{a.addr}) {
		t.Fatalf("OnConnect calls %v", connects)
	}
}

func TestRefusedAddressesSkippedAtOnce(t *testing.T) {
	a := newFake(t, "")
	// A reconnect delay far longer than the test: refused addresses must
	// not cost a pass and its wait.
	url := failoverURL("randomize=false&initialReconnectDelay=5000", freeAddr(t), freeAddr(t), a.addr)
	start := time.Now()
	c := dialT(t, url, Options{})
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Dial took %v past two refusing addresses", d)
	}
	if c.Addr() != a.addr {
		t.Fatalf("connected to %q", c.Addr())
	}
}

func TestStartupAttemptsAndBackOff(t *testing.T) {
	// A server that accepts and hangs up: every attempt fails, and the
	// accept times show the waits between passes.
	a := newFake(t, "")
	a.connected = func(*stomp.Frame) *stomp.Frame { return &stomp.Frame{Command: stomp.RECEIPT} }
	url := failoverURL("initialReconnectDelay=50&reconnectDelayExponent=2&maxReconnectDelay=150&startupMaxReconnectAttempts=5", a.addr)
	_, err := Dial(testCtx(t), url, Options{Logger: testLogger(t)})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Dial: %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "after 5 attempt(s)") {
		t.Errorf("error %q does not count the attempts", err)
	}
	a.mu.Lock()
	accepts := slices.Clone(a.accepts)
	a.mu.Unlock()
	if len(accepts) != 5 {
		t.Fatalf("%d attempts, want 5", len(accepts))
	}
	// Waits 50, 100, then capped at 150 twice. Timers never fire early;
	// the upper bound is loose, for slow machines.
	want := []time.Duration{50, 100, 150, 150}
	for i, w := range want {
		w *= time.Millisecond
		if gap := accepts[i+1].Sub(accepts[i]); gap < w || gap > w+time.Second {
			t.Errorf("wait before attempt %d: %v, want about %v", i+2, gap, w)
		}
	}
	checkGoroutines(t)
}

func TestStartupZeroAttemptsIsOnePass(t *testing.T) {
	url := failoverURL("startupMaxReconnectAttempts=0&initialReconnectDelay=10000", freeAddr(t), freeAddr(t))
	start := time.Now()
	_, err := Dial(testCtx(t), url, Options{Logger: testLogger(t)})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "after 1 attempt(s)") {
		t.Fatalf("Dial: %v, want ErrUnreachable after one pass", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("one pass took %v", d)
	}
	checkGoroutines(t)
}

func TestDialContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, failoverURL("initialReconnectDelay=20", freeAddr(t)), Options{Logger: testLogger(t)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial: %v, want the context's deadline", err)
	}
	checkGoroutines(t)
}

func TestHandshakeErrorEndsDial(t *testing.T) {
	a := newFake(t, "")
	a.connected = func(*stomp.Frame) *stomp.Frame {
		return &stomp.Frame{Command: stomp.ERROR, Headers: []stomp.Header{{Key: "message", Value: "supported protocol versions are 1.2"}}}
	}
	_, err := Dial(testCtx(t), failoverURL(fast, a.addr), Options{Logger: testLogger(t)})
	var se *client.ServerError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "supported protocol versions") {
		t.Fatalf("Dial: %v, want the broker's ERROR", err)
	}
	if n := a.numAccepts(); n != 1 {
		t.Fatalf("%d attempts; a refused CONNECT is not retried", n)
	}
	checkGoroutines(t)
}

func TestNotServingHandshakeMovesOn(t *testing.T) {
	a, b := newFake(t, ""), newFake(t, "")
	a.connected = func(*stomp.Frame) *stomp.Frame {
		return &stomp.Frame{Command: stomp.ERROR, Headers: []stomp.Header{{Key: "message", Value: "opening session: " + queue.ErrClosed.Error()}}}
	}
	c := dialT(t, failoverURL(fast, a.addr, b.addr), Options{})
	if c.Addr() != b.addr {
		t.Fatalf("connected to %q, want %q", c.Addr(), b.addr)
	}
}

func TestLearnsBrokersFromConnected(t *testing.T) {
	a, b := newFake(t, ""), newFake(t, "")
	a.brokers = "tcp://" + a.addr + ", nio://" + b.addr + ",tcp://" + b.addr
	c := dialT(t, "tcp://"+a.addr, Options{})
	a.stop()
	waitFor(t, "a connection to the announced broker", func() bool { return c.Addr() == b.addr })
	if c.Reconnects() != 1 {
		t.Fatalf("Reconnects() = %d", c.Reconnects())
	}
}

func TestUpdateURIsNotSupported(t *testing.T) {
	a, b := newFake(t, ""), newFake(t, "")
	a.brokers = "tcp://" + b.addr
	c := dialT(t, failoverURL("updateURIsSupported=false&maxReconnectAttempts=3&initialReconnectDelay=5", a.addr), Options{})
	a.stop()
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("the client did not give up")
	}
	if !errors.Is(c.Err(), ErrUnreachable) {
		t.Fatalf("Err() = %v, want ErrUnreachable", c.Err())
	}
	if n := b.numAccepts(); n != 0 {
		t.Fatalf("the client tried the announced broker %d times", n)
	}
}

func TestMaxReconnectAttemptsZero(t *testing.T) {
	a := newFake(t, "")
	a.setHandle(swallowSends)
	c := dialT(t, failoverURL("maxReconnectAttempts=0", a.addr), Options{})
	sub, err := c.Subscribe(testCtx(t), "/queue/q", "auto")
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.SendAsync("/queue/q", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	a.next(t, stomp.SEND)
	a.kill(nil)
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("the client did not end")
	}
	if !errors.Is(c.Err(), ErrUnreachable) {
		t.Fatalf("Err() = %v", c.Err())
	}
	if err := r.Wait(testCtx(t)); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("pending SEND: %v, want ErrUnreachable", err)
	}
	if _, ok := <-sub.C(); ok {
		t.Fatal("a message on a subscription of an ended client")
	}
	if !errors.Is(sub.Err(), ErrUnreachable) {
		t.Fatalf("sub.Err() = %v", sub.Err())
	}
	if err := c.Send(testCtx(t), "/queue/q", nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Send after the end: %v", err)
	}
	if n := a.numAccepts(); n != 1 {
		t.Fatalf("%d connections; maxReconnectAttempts=0 forbids reconnecting", n)
	}
}

func TestResendsUnreceiptedSends(t *testing.T) {
	a, b := newFake(t, ""), newFake(t, "")
	a.setHandle(swallowSends)
	var lost, connected []string
	var mu sync.Mutex
	c := dialT(t, failoverURL(fast, a.addr, b.addr), Options{
		OnConnect: func(addr string) { mu.Lock(); connected = append(connected, addr); mu.Unlock() },
		OnDisconnect: func(addr string, err error) {
			mu.Lock()
			lost = append(lost, addr)
			mu.Unlock()
		},
	})
	var rs []*Receipt
	for i := range 3 {
		r, err := c.SendAsync("/queue/q", []byte(fmt.Sprint("m", i)), stomp.Header{Key: "k", Value: "v"})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	var first []*stomp.Frame
	for range rs {
		first = append(first, a.next(t, stomp.SEND))
	}
	a.stop()
	for i, r := range rs {
		if err := r.Wait(testCtx(t)); err != nil {
			t.Fatalf("SEND %d: %v", i, err)
		}
	}
	for i := range rs {
		f := b.next(t, stomp.SEND)
		if string(f.Body) != fmt.Sprint("m", i) || f.Get("k") != "v" {
			t.Fatalf("resent SEND %d: %q %v", i, f.Body, f.Headers)
		}
		if id := f.Get(DedupeHeader); id == "" || id != first[i].Get(DedupeHeader) || id != rs[i].ID() {
			t.Fatalf("resent SEND %d has dedupe-id %q, first sent with %q", i, id, first[i].Get(DedupeHeader))
		}
		if f.Get("receipt") == "" {
			t.Fatalf("resent SEND %d asks for no receipt", i)
		}
	}
	// OnConnect runs once the session is restored, which may be after the
	// resent SENDs' receipts.
	waitFor(t, "OnConnect for b", func() bool { mu.Lock(); defer mu.Unlock(); return len(connected) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(lost, []string{a.addr}) || !slices.Equal(connected, []string{a.addr, b.addr}) {
		t.Fatalf("OnDisconnect %v, OnConnect %v", lost, connected)
	}
}

func TestDedupeIDs(t *testing.T) {
	a := newFake(t, "")
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	ctx := testCtx(t)
	if err := c.Send(ctx, "/queue/q", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/q", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/q", []byte("3"), stomp.Header{Key: DedupeHeader, Value: "mine"}); err != nil {
		t.Fatal(err)
	}
	ids := []string{a.next(t, stomp.SEND).Get(DedupeHeader), a.next(t, stomp.SEND).Get(DedupeHeader), a.next(t, stomp.SEND).Get(DedupeHeader)}
	if ids[0] == "" || ids[0] == ids[1] || ids[2] != "mine" {
		t.Fatalf("dedupe ids %q", ids)
	}
	// A second client picks another prefix.
	c2 := dialT(t, failoverURL(fast, a.addr), Options{})
	if err := c2.Send(ctx, "/queue/q", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if other := a.next(t, stomp.SEND).Get(DedupeHeader); other == ids[0] {
		t.Fatalf("two clients made the same dedupe id %q", other)
	}
}

func TestRefusedSendIsNotResent(t *testing.T) {
	a := newFake(t, "")
	var refuse sync.Once
	a.setHandle(func(fc *fakeConn, f *stomp.Frame) bool {
		switch {
		case f.Command != stomp.SEND:
			return false
		case string(f.Body) == "bad":
			refuse.Do(func() { fc.refuse(f, "invalid destination") })
			return true
		}
		return true // swallow the good one: it must be resent
	})
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	good, err := c.SendAsync("/queue/q", []byte("good"))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := c.SendAsync("/queue/q", []byte("bad"))
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Wait(testCtx(t))
	var se *client.ServerError
	if !errors.Is(err, ErrRefused) || !errors.As(err, &se) || se.Message() != "invalid destination" {
		t.Fatalf("refused SEND: %v, want ErrRefused with the ERROR", err)
	}
	a.setHandle(nil) // receipt everything from now on
	if err := good.Wait(testCtx(t)); err != nil {
		t.Fatalf("the other SEND: %v", err)
	}
	// good was sent twice, bad once.
	var bodies []string
	for range 3 {
		bodies = append(bodies, string(a.next(t, stomp.SEND).Body))
	}
	if !slices.Equal(bodies, []string{"good", "bad", "good"}) {
		t.Fatalf("SENDs received %q", bodies)
	}
	a.none(t, stomp.SEND, 200*time.Millisecond)
}

func TestResentAfterErrors(t *testing.T) {
	for _, tt := range []struct {
		name      string
		message   string
		receiptID bool
	}{
		{"not serving, naming the SEND", "group commit stopped: " + queue.ErrClosed.Error(), true},
		{"about no frame", "lost leadership", false},
		{"about another frame", "no such subscription", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newFake(t, "")
			var once sync.Once
			a.setHandle(func(fc *fakeConn, f *stomp.Frame) bool {
				if f.Command != stomp.SEND {
					return false
				}
				once.Do(func() {
					e := &stomp.Frame{Command: stomp.ERROR, Headers: []stomp.Header{{Key: "message", Value: tt.message}}}
					if tt.receiptID {
						e.Add("receipt-id", f.Get("receipt"))
					} else if tt.name == "about another frame" {
						e.Add("receipt-id", "r-something-else")
					}
					_ = fc.send(e)
					_ = fc.nc.Close()
				})
				return false
			})
			c := dialT(t, failoverURL(fast, a.addr), Options{})
			if err := c.Send(testCtx(t), "/queue/q", []byte("x")); err != nil {
				t.Fatalf("Send: %v", err)
			}
			// The receipt may come before the restore has finished.
			waitFor(t, "the reconnection", func() bool { return c.Reconnects() == 1 })
			f1, f2 := a.next(t, stomp.SEND), a.next(t, stomp.SEND)
			if f1.Get(DedupeHeader) != f2.Get(DedupeHeader) {
				t.Fatal("resent with another dedupe-id")
			}
		})
	}
}

func TestPoisonSendWithoutReceiptID(t *testing.T) {
	// A broker that cannot decode a SEND (too large) says so without
	// naming it. The client must find it and stop resending it, and still
	// deliver the others.
	a := newFake(t, "")
	a.setHandle(func(fc *fakeConn, f *stomp.Frame) bool {
		if f.Command == stomp.SEND && string(f.Body) == "huge" {
			_ = fc.send(&stomp.Frame{Command: stomp.ERROR, Headers: []stomp.Header{{Key: "message", Value: "frame too large: limit 4 bytes"}}})
			_ = fc.nc.Close()
			return true
		}
		return false
	})
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	var rs []*Receipt
	for _, body := range []string{"ok1", "huge", "ok2", "ok3"} {
		r, err := c.SendAsync("/queue/q", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	for i, r := range rs {
		err := r.Wait(testCtx(t))
		if i == 1 {
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "frame too large") {
				t.Fatalf("the poison SEND: %v, want ErrRefused", err)
			}
		} else if err != nil {
			t.Fatalf("SEND %d: %v", i, err)
		}
	}
	if n := c.Reconnects(); n > 5 {
		t.Fatalf("%d reconnections", n)
	}
	// The client works on.
	if err := c.Send(testCtx(t), "/queue/q", []byte("after")); err != nil {
		t.Fatal(err)
	}
}

func TestResubscribesWithSameHeaders(t *testing.T) {
	a := newFake(t, "")
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	ctx := testCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "client-individual",
		stomp.Header{Key: "activemq.prefetchSize", Value: "5"}, stomp.Header{Key: "x", Value: "y"})
	if err != nil {
		t.Fatal(err)
	}
	auto, err := c.Subscribe(ctx, "/topic/t", "", stomp.Header{Key: "id", Value: "mine"})
	if err != nil {
		t.Fatal(err)
	}
	if auto.ID() != "mine" || sub.ID() == "" || sub.Destination() != "/queue/q" {
		t.Fatalf("ids %q %q", sub.ID(), auto.ID())
	}
	first := []*stomp.Frame{a.next(t, stomp.SUBSCRIBE), a.next(t, stomp.SUBSCRIBE)}
	a.kill(nil)
	waitFor(t, "reconnection", func() bool { return c.Reconnects() == 1 && c.Addr() != "" })
	again := []*stomp.Frame{a.next(t, stomp.SUBSCRIBE), a.next(t, stomp.SUBSCRIBE)}
	for i := range first {
		for _, k := range []string{"id", "destination", "ack", "activemq.prefetchSize", "x"} {
			if first[i].Get(k) != again[i].Get(k) {
				t.Errorf("SUBSCRIBE %d header %s: %q, then %q", i, k, first[i].Get(k), again[i].Get(k))
			}
		}
	}
	if first[0].Get("ack") != "client-individual" || first[1].Get("ack") != "auto" || first[1].Get("id") != "mine" {
		t.Fatalf("SUBSCRIBE frames %v %v", first[0].Headers, first[1].Headers)
	}
	// The same channel carries messages from the new connection.
	if err := c.Send(ctx, "/queue/q", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, sub); string(m.Body) != "after" {
		t.Fatalf("got %q", m.Body)
	}
}

func TestStaleAck(t *testing.T) {
	a := newFake(t, "")
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	ctx := testCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "client-individual")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/q", []byte("m")); err != nil {
		t.Fatal(err)
	}
	old := receive(t, sub)
	a.kill(nil)
	waitFor(t, "reconnection", func() bool { return c.Reconnects() == 1 && c.Addr() != "" })
	for name, ack := range map[string]func() error{
		"Ack":         func() error { return c.Ack(old, "") },
		"Nack":        func() error { return c.Nack(old, "") },
		"AckReceipt":  func() error { return c.AckReceipt(ctx, old, "") },
		"NackReceipt": func() error { return c.NackReceipt(ctx, old, "") },
	} {
		if err := ack(); !errors.Is(err, ErrStaleMessage) {
			t.Errorf("%s of a message from the lost connection: %v, want ErrStaleMessage", name, err)
		}
	}
	a.none(t, stomp.ACK, 100*time.Millisecond)
	// A message from the new connection acks fine.
	if err := c.Send(ctx, "/queue/q", []byte("n")); err != nil {
		t.Fatal(err)
	}
	m := receive(t, sub)
	if err := c.AckReceipt(ctx, m, ""); err != nil {
		t.Fatal(err)
	}
	if f := a.next(t, stomp.ACK); f.Get("id") != m.Get("ack") {
		t.Fatalf("ACK %v for %v", f.Headers, m.Headers)
	}
}

func TestMessagesReceivedBeforeLossAreDelivered(t *testing.T) {
	// Auto-ack messages that arrived just before the connection went are
	// the broker's "delivered": they must reach the consumer, in order,
	// before those of the next connection.
	a := newFake(t, "")
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	ctx := testCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "auto")
	if err != nil {
		t.Fatal(err)
	}
	const n = 300 // more than the channels hold
	for i := range n {
		if err := c.Send(ctx, "/queue/q", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The fake writes each MESSAGE before the RECEIPT of its SEND: the
	// client has them all, unread.
	a.kill(nil)
	waitFor(t, "reconnection", func() bool { return c.Reconnects() == 1 && c.Addr() != "" })
	if err := c.Send(ctx, "/queue/q", []byte("new")); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if m := receive(t, sub); string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("message %d: %q", i, m.Body)
		}
	}
	if m := receive(t, sub); string(m.Body) != "new" {
		t.Fatalf("after the failover: %q", m.Body)
	}
}

func TestRefusedResubscriptionEndsIt(t *testing.T) {
	a := newFake(t, "")
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	ctx := testCtx(t)
	doomed, err := c.Subscribe(ctx, "/queue/doomed", "auto")
	if err != nil {
		t.Fatal(err)
	}
	kept, err := c.Subscribe(ctx, "/queue/kept", "auto")
	if err != nil {
		t.Fatal(err)
	}
	a.setHandle(func(fc *fakeConn, f *stomp.Frame) bool {
		if f.Command == stomp.SUBSCRIBE && f.Get("destination") == "/queue/doomed" {
			fc.refuse(f, "invalid destination")
			return true
		}
		return false
	})
	a.kill(nil)
	if _, ok := <-doomed.C(); ok {
		t.Fatal("message on the refused subscription")
	}
	if err := doomed.Err(); !errors.Is(err, ErrRefused) {
		t.Fatalf("doomed.Err() = %v, want ErrRefused", err)
	}
	if err := c.Send(ctx, "/queue/kept", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, kept); string(m.Body) != "k" {
		t.Fatalf("got %q", m.Body)
	}
	if err := doomed.Unsubscribe(ctx); err == nil {
		t.Fatal("Unsubscribe of an ended subscription succeeded")
	}
}

func TestSubscribeRefused(t *testing.T) {
	a := newFake(t, "")
	a.setHandle(func(fc *fakeConn, f *stomp.Frame) bool {
		if f.Command == stomp.SUBSCRIBE && f.Get("destination") == "/bad" {
			fc.refuse(f, "invalid destination")
			return true
		}
		return false
	})
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	ctx := testCtx(t)
	_, err := c.Subscribe(ctx, "/bad", "auto")
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("Subscribe: %v, want ErrRefused", err)
	}
	// Not retried on the next connection.
	waitFor(t, "reconnection", func() bool { return c.Addr() != "" })
	a.next(t, stomp.SUBSCRIBE)
	a.none(t, stomp.SUBSCRIBE, 200*time.Millisecond)
	if _, err := c.Subscribe(ctx, "/queue/q", "bogus"); err == nil {
		t.Fatal("invalid ack mode accepted")
	}
	if _, err := c.Subscribe(ctx, "/queue/q", "", stomp.Header{Key: "id", Value: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "/queue/r", "", stomp.Header{Key: "id", Value: "x"}); err == nil {
		t.Fatal("duplicate subscription id accepted")
	}
}

func TestUnsubscribe(t *testing.T) {
	a := newFake(t, "")
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	ctx := testCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "auto")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if f := a.next(t, stomp.UNSUBSCRIBE); f.Get("id") != sub.ID() {
		t.Fatalf("UNSUBSCRIBE %v", f.Headers)
	}
	if _, ok := <-sub.C(); ok {
		t.Fatal("message after Unsubscribe")
	}
	if sub.Err() != nil {
		t.Fatalf("Err() = %v after Unsubscribe", sub.Err())
	}
	// Not restored after a failover.
	a.kill(nil)
	waitFor(t, "reconnection", func() bool { return c.Reconnects() == 1 && c.Addr() != "" })
	a.none(t, stomp.SUBSCRIBE, 200*time.Millisecond)
}

func TestTransactionRolledBackOnFailover(t *testing.T) {
	a := newFake(t, "")
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	ctx := testCtx(t)
	if err := c.Begin(ctx, "tx1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Begin(ctx, "tx1"); err == nil {
		t.Fatal("the same transaction begun twice")
	}
	if err := c.Send(ctx, "/queue/q", []byte("in tx"), stomp.Header{Key: "transaction", Value: "tx1"}); err != nil {
		t.Fatal(err)
	}
	a.kill(nil)
	waitFor(t, "reconnection", func() bool { return c.Reconnects() == 1 && c.Addr() != "" })
	if err := c.Send(ctx, "/queue/q", []byte("late"), stomp.Header{Key: "transaction", Value: "tx1"}); !errors.Is(err, ErrTxRolledBack) {
		t.Fatalf("SEND in the lost transaction: %v, want ErrTxRolledBack", err)
	}
	if err := c.Commit(ctx, "tx1"); !errors.Is(err, ErrTxRolledBack) {
		t.Fatalf("Commit: %v, want ErrTxRolledBack", err)
	}
	if err := c.Commit(ctx, "tx1"); err == nil {
		t.Fatal("a second Commit succeeded")
	}
	// Nothing of the transaction was resent.
	var sends []string
	for range 1 {
		sends = append(sends, string(a.next(t, stomp.SEND).Body))
	}
	a.none(t, stomp.SEND, 200*time.Millisecond)
	if !slices.Equal(sends, []string{"in tx"}) {
		t.Fatalf("SENDs %q", sends)
	}
	// A new transaction works, and Abort after a loss is no error.
	if err := c.Begin(ctx, "tx2"); err != nil {
		t.Fatal(err)
	}
	a.kill(nil)
	waitFor(t, "reconnection", func() bool { return c.Reconnects() == 2 && c.Addr() != "" })
	if err := c.Abort(ctx, "tx2"); err != nil {
		t.Fatalf("Abort after the loss: %v", err)
	}
	if err := c.Send(ctx, "/queue/q", nil, stomp.Header{Key: "transaction", Value: "nope"}); err == nil {
		t.Fatal("SEND in a transaction never begun")
	}
}

func TestCommitInDoubt(t *testing.T) {
	a := newFake(t, "")
	a.setHandle(func(fc *fakeConn, f *stomp.Frame) bool {
		if f.Command == stomp.COMMIT {
			_ = fc.nc.Close() // no receipt: the outcome is unknown
			return true
		}
		return false
	})
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	ctx := testCtx(t)
	if err := c.Begin(ctx, "tx"); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, "tx"); !errors.Is(err, ErrTxInDoubt) {
		t.Fatalf("Commit: %v, want ErrTxInDoubt", err)
	}
}

func TestTransactionalAck(t *testing.T) {
	a := newFake(t, "")
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	ctx := testCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "client-individual")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/q", []byte("m")); err != nil {
		t.Fatal(err)
	}
	m := receive(t, sub)
	if err := c.Begin(ctx, "tx"); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(m, "tx"); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, "tx"); err != nil {
		t.Fatal(err)
	}
	if f := a.next(t, stomp.ACK); f.Get("transaction") != "tx" {
		t.Fatalf("ACK %v", f.Headers)
	}
	// A message from before a failover cannot join a transaction begun
	// after it.
	a.kill(nil)
	waitFor(t, "reconnection", func() bool { return c.Reconnects() == 1 && c.Addr() != "" })
	if err := c.Begin(ctx, "tx2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Ack(m, "tx2"); !errors.Is(err, ErrStaleMessage) {
		t.Fatalf("Ack in tx2: %v, want ErrStaleMessage", err)
	}
}

func TestTimeoutOption(t *testing.T) {
	a := newFake(t, "")
	c := dialT(t, failoverURL("timeout=200&initialReconnectDelay=20&maxReconnectDelay=20", a.addr), Options{})
	a.stop()
	waitFor(t, "the loss", func() bool { return c.Addr() == "" })
	ctx := testCtx(t)
	start := time.Now()
	err := c.Send(ctx, "/queue/q", []byte("x"))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Send while disconnected: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Fatalf("Send failed after %v, want about 200ms", d)
	}
	if _, err := c.Subscribe(ctx, "/queue/q", "auto"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Subscribe while disconnected: %v, want ErrTimeout", err)
	}
	if err := c.Begin(ctx, "tx"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Begin while disconnected: %v, want ErrTimeout", err)
	}
	// The timed-out SEND is never written once connected again.
	a.restart()
	waitFor(t, "reconnection", func() bool { return c.Addr() != "" })
	if err := c.Send(ctx, "/queue/q", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if f := a.next(t, stomp.SEND); string(f.Body) != "y" {
		t.Fatalf("SEND %q after reconnecting", f.Body)
	}
}

func TestSendWaitsForReconnection(t *testing.T) {
	// Without the timeout option, a SEND made while disconnected waits and
	// is written once connected; one whose context ends first is withdrawn.
	a := newFake(t, "")
	c := dialT(t, failoverURL("initialReconnectDelay=20&maxReconnectDelay=20", a.addr), Options{})
	a.stop()
	waitFor(t, "the loss", func() bool { return c.Addr() == "" })
	short, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	if err := c.Send(short, "/queue/q", []byte("withdrawn")); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not sent") {
		t.Fatalf("Send: %v, want the deadline and not sent", err)
	}
	r, err := c.SendAsync("/queue/q", []byte("waited"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	a.restart()
	if err := r.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if f := a.next(t, stomp.SEND); string(f.Body) != "waited" {
		t.Fatalf("SEND %q", f.Body)
	}
}

func TestDisconnectWaitsForReceipts(t *testing.T) {
	a := newFake(t, "")
	a.setHandle(func(fc *fakeConn, f *stomp.Frame) bool {
		if f.Command != stomp.SEND {
			return false
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			fc.receipt(f)
		}()
		return true
	})
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	var rs []*Receipt
	for range 5 {
		r, err := c.SendAsync("/queue/q", []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if err := c.Disconnect(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for i, r := range rs {
		if err := r.Err(); err != nil {
			t.Fatalf("SEND %d: %v", i, err)
		}
	}
	a.next(t, stomp.DISCONNECT)
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err() = %v", c.Err())
	}
	if _, err := c.SendAsync("/queue/q", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendAsync after Disconnect: %v", err)
	}
}

func TestDisconnectGivesUp(t *testing.T) {
	a := newFake(t, "")
	a.setHandle(swallowSends)
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	r, err := c.SendAsync("/queue/q", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	if err := c.Disconnect(ctx); err == nil || !strings.Contains(err.Error(), "1 SEND(s) not receipted") {
		t.Fatalf("Disconnect: %v", err)
	}
	if err := r.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("the SEND: %v, want ErrClosed", err)
	}
}

func TestCloseFailsPending(t *testing.T) {
	a := newFake(t, "")
	a.setHandle(swallowSends)
	c := dialT(t, failoverURL(fast, a.addr), Options{})
	sub, err := c.Subscribe(testCtx(t), "/queue/q", "auto")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Send(context.Background(), "/queue/q", []byte("x")) }()
	a.next(t, stomp.SEND)
	_ = c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Send across Close: %v", err)
	}
	if _, ok := <-sub.C(); ok {
		t.Fatal("message after Close")
	}
	_ = c.Close() // twice is fine
	checkGoroutines(t)
}

func TestConcurrentSendsAcrossFailovers(t *testing.T) {
	a, b := newFake(t, ""), newFake(t, "")
	c := dialT(t, failoverURL(fast, a.addr, b.addr), Options{})
	ctx := testCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "auto")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for m := range sub.C() {
			_ = m
		}
	}()
	const senders, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				if err := c.Send(ctx, "/queue/q", []byte(fmt.Sprint(g, "-", i))); err != nil {
					errs <- err
				}
			}
		})
	}
	// Kill connections on both servers while the senders run.
	stop := make(chan struct{})
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				a.kill(nil)
				b.kill(nil)
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-killed
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.Reconnects() == 0 {
		t.Log("no failover happened while sending")
	}
	// Every message reached a server at least once.
	seen := map[string]bool{}
	for _, s := range []*fakeServer{a, b} {
	drain:
		for {
			select {
			case f := <-s.frames:
				if f.Command == stomp.SEND {
					seen[string(f.Body)] = true
				}
			default:
				break drain
			}
		}
	}
	for g := range senders {
		for i := range each {
			if !seen[fmt.Sprint(g, "-", i)] {
				t.Fatalf("message %d-%d never sent", g, i)
			}
		}
	}
}

func TestReconnectAttemptsAfterLoss(t *testing.T) {
	a := newFake(t, "")
	lostAt := make(chan time.Time, 1)
	c := dialT(t, failoverURL("maxReconnectAttempts=3&initialReconnectDelay=50&maxReconnectDelay=1000", a.addr),
		Options{OnDisconnect: func(string, error) { lostAt <- time.Now() }})
	a.stop()
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("the client did not give up")
	}
	gaveUp := time.Now()
	// As ActiveMQ: wait 50ms, then three passes with 100 and 200ms between.
	if d := gaveUp.Sub(<-lostAt); d < 350*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up %v after the loss, want about 350ms", d)
	}
	if err := c.Err(); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "after 3 attempt(s)") {
		t.Fatalf("Err() = %v", err)
	}
	if _, err := c.Subscribe(testCtx(t), "/queue/q", ""); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Subscribe after the end: %v", err)
	}
}
