package queue

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// browse subscribes a queue browser and returns the bodies it was shown,
// after checking that the end marker came last.
func browse(t *testing.T, e *Engine, dest string, spec SubscribeSpec) (*Session, *recorder, []string) {
	t.Helper()
	s, out := open(t, e, "")
	spec.ID, spec.Destination, spec.Browser = "b", dest, true
	subscribe(t, s, spec)
	return s, out, browsed(t, out)
}

// browsed waits for out's end marker and returns the bodies before it.
func browsed(t *testing.T, out *recorder) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out.mu.Lock()
		var got []string
		for i, d := range out.ds {
			if !d.Browsed {
				out.mu.Unlock()
				t.Fatalf("delivery %d to a browser is not marked Browsed", i)
			}
			if d.BrowseEnd {
				if i != len(out.ds)-1 {
					out.mu.Unlock()
					t.Fatalf("%d deliveries after the end marker", len(out.ds)-1-i)
				}
				if d.Msg == nil || d.Msg.ID != "0" || d.Subscription != "b" || d.Destination == "" {
					out.mu.Unlock()
					t.Fatalf("end marker %+v", d)
				}
				out.mu.Unlock()
				return got
			}
			got = append(got, string(d.Msg.Body))
		}
		out.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no end marker; browsed %q", got)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBrowseOrderAndNothingConsumed(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	for i, prio := range []uint8{1, 9, 4, 9, 1} {
		send(t, p, "/queue/q", fmt.Sprintf("m%d-p%d", i, prio), prio)
	}
	want := []string{"m1-p9", "m3-p9", "m2-p4", "m0-p1", "m4-p1"}
	b, out, got := browse(t, e, "/queue/q", SubscribeSpec{Ack: AckAuto, Prefetch: 1})
	if !slices.Equal(got, want) {
		t.Fatalf("browsed %q, want %q (prefetch must not apply)", got, want)
	}
	// The transport reports the writes: in auto mode that would ack a
	// consumer's delivery; a browser's is not consumed.
	written(out)
	out.mu.Lock()
	ds := slices.Clone(out.ds)
	out.mu.Unlock()
	for _, d := range ds {
		d.WriteFailed()
	}
	// An ACK of a browsed message is accepted and does nothing; a NACK is
	// refused, as ActiveMQ does.
	do(t, func(done func(error)) error { return b.Ack(AckRef{ID: ds[0].AckID}, "", done) })
	do(t, func(done func(error)) error {
		return b.Ack(AckRef{MessageID: ds[1].Msg.ID, Subscription: "b"}, "", done)
	})
	if err := b.Nack(AckRef{ID: ds[0].AckID}, "", func(error) {}); !errors.Is(err, ErrBrowseNack) {
		t.Fatalf("NACK of a browsed message: %v, want ErrBrowseNack", err)
	}
	settle()
	if n := out.count(); n != len(want)+1 {
		t.Fatalf("%d deliveries after the end marker", n-len(want)-1)
	}
	st := destStats(t, e, "/queue/q")
	if st.Pending != 5 || st.InFlight != 0 || st.Dequeued != 0 || st.Consumers != 0 || st.Browsed != 5 {
		t.Fatalf("after browsing: %+v", st)
	}
	subs := e.Subscriptions()
	if len(subs) != 1 || !subs[0].Browser || subs[0].Type != "queue" || subs[0].Delivered != 5 || subs[0].InFlight != 0 {
		t.Fatalf("subscriptions: %+v", subs)
	}

	// A consumer gets every message, first delivery, in the same order.
	c, cout := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckAuto})
	cout.wait(t, len(want)-1)
	settle()
	if got := bodies(cout); !slices.Equal(got, want) {
		t.Fatalf("consumer got %q, want %q", got, want)
	}
	for _, d := range cout.ds {
		if d.Redelivered || d.DeliveryCount != 1 {
			t.Fatalf("%s: redelivered=%v count=%d after a browse", d.Msg.Body, d.Redelivered, d.DeliveryCount)
		}
	}
	// The browser stays subscribed and gets nothing more.
	if n := out.count(); n != len(want)+1 {
		t.Fatalf("browser got %d deliveries, want %d", n, len(want)+1)
	}
	do(t, func(done func(error)) error { return b.Unsubscribe("b", "", done) })
}

func TestBrowseSelector(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	sendH(t, p, "/queue/orders", "eu-big", "region", "eu", "amount", "500")
	sendH(t, p, "/queue/orders", "eu-small", "region", "eu", "amount", "5")
	sendH(t, p, "/queue/orders", "us", "region", "us")
	_, _, got := browse(t, e, "/queue/orders", SubscribeSpec{Selector: "region = 'eu'"})
	if !slices.Equal(got, []string{"eu-big", "eu-small"}) {
		t.Fatalf("browsed %q", got)
	}
	_, _, got = browse(t, e, "/queue/orders", SubscribeSpec{Selector: "amount > 100 OR region = 'us'"})
	if !slices.Equal(got, []string{"eu-big", "us"}) {
		t.Fatalf("browsed %q", got)
	}
	s, _ := open(t, e, "")
	var se *SelectorError
	if err := s.Subscribe(SubscribeSpec{ID: "x", Destination: "/queue/orders", Browser: true, Selector: "a ="}, func(error) {}); !errors.As(err, &se) {
		t.Fatalf("bad selector: %v", err)
	}
}

func TestBrowseRefused(t *testing.T) {
	e, _ := newEngine(t, Config{})
	s, _ := open(t, e, "")
	if err := s.Subscribe(SubscribeSpec{ID: "t", Destination: "/topic/t", Browser: true}, func(error) {}); !errors.Is(err, ErrBrowseTopic) || err.Error() != "browsing needs a queue" {
		t.Fatalf("browsing a topic: %v", err)
	}
	if err := s.Subscribe(SubscribeSpec{ID: "n", Destination: "/queue/q", Browser: true, Network: &NetworkSpec{Group: "g"}}, func(error) {}); !errors.Is(err, ErrBrowseNetwork) {
		t.Fatalf("a network browser: %v", err)
	}
	// A queue that does not exist: just the end marker, and no queue made.
	_, _, got := browse(t, e, "/queue/none", SubscribeSpec{})
	if len(got) != 0 {
		t.Fatalf("browsed %q", got)
	}
	e.mu.Lock()
	_, made := e.queues["/queue/none"]
	e.mu.Unlock()
	if made {
		t.Fatal("browsing made the queue")
	}
	// The id is taken like a consumer's.
	b, _, _ := browse(t, e, "/queue/q", SubscribeSpec{})
	if err := b.Subscribe(SubscribeSpec{ID: "b", Destination: "/queue/q"}, func(error) {}); err != ErrDuplicateSub {
		t.Fatalf("same id again: %v", err)
	}
}

// TestBrowseInFlightParkedAndGone: the snapshot holds messages in flight
// to a consumer, parked ones and non-persistent ones; a message acked
// between the snapshot and its turn is skipped.
func TestBrowseInFlightParkedAndGone(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	c, cout := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "c", Destination: "/queue/q", Ack: AckClientIndividual, Selector: "k = 'a'"})
	sendH(t, p, "/queue/q", "a1", "k", "a")
	sendH(t, p, "/queue/q", "b1", "k", "b") // no consumer may have it: parked
	np := &fsm.Message{Destination: "/queue/q", Body: []byte("n1"), Priority: 4,
		Headers: []fsm.Header{{Key: "k", Value: "b"}}}
	do(t, func(done func(error)) error { return p.Send(np, "", done) })
	sendH(t, p, "/queue/q", "a2", "k", "a")
	d := cout.wait(t, 1)
	d.Written()
	if st := destStats(t, e, "/queue/q"); st.InFlight != 2 || st.Pending != 4 {
		t.Fatalf("before browsing: %+v", st)
	}
	_, _, got := browse(t, e, "/queue/q", SubscribeSpec{})
	if want := []string{"a1", "b1", "n1", "a2"}; !slices.Equal(got, want) {
		t.Fatalf("browsed %q, want %q", got, want)
	}

	// A browser whose connection is full takes its snapshot now and
	// delivers later: what left the queue meanwhile is not shown.
	b, bout := open(t, e, "")
	bout.writable = false
	subscribe(t, b, SubscribeSpec{ID: "b", Destination: "/queue/q", Browser: true})
	do(t, func(done func(error)) error { return c.Ack(AckRef{ID: d.AckID}, "", done) }) // a2
	sendH(t, p, "/queue/q", "late", "k", "b")                                           // after the snapshot
	bout.mu.Lock()
	bout.writable = true
	bout.mu.Unlock()
	b.Resume()
	if got, want := browsed(t, bout), []string{"a1", "b1", "n1"}; !slices.Equal(got, want) {
		t.Fatalf("browsed %q, want %q", got, want)
	}
	if st := destStats(t, e, "/queue/q"); st.InFlight != 1 || st.Pending != 4 || st.Dequeued != 1 {
		t.Fatalf("after browsing: %+v", st)
	}
	// In-flight counts are the consumer's, untouched by the browse.
	first := cout.wait(t, 0)
	if first.DeliveryCount != 1 || first.Redelivered {
		t.Fatalf("in-flight delivery changed: %+v", first)
	}
	// Closing the browsers gives nothing back and takes nothing away.
	b.Close()
	c.Close()
	all, aout := open(t, e, "")
	subscribe(t, all, SubscribeSpec{ID: "all", Destination: "/queue/q", Ack: AckAuto})
	aout.wait(t, 3)
	settle()
	if got, want := bodies(aout), []string{"a1", "b1", "n1", "late"}; !slices.Equal(got, want) {
		t.Fatalf("consumer got %q, want %q", got, want)
	}
}

// stepOut is an Outbound that takes allow deliveries, keeps none of them,
// and records, as they come (under the engine's lock), the memory the
// engine holds for them.
type stepOut struct {
	e   *Engine
	sub func() *subscription

	mu       sync.Mutex
	allow, n int
	order    []uint64 // each browsed message's seq key, in delivery order
	ended    bool
	maxCache int64
	maxHeld  int64 // bodies the browser read ahead and held
}

func (o *stepOut) Deliver(d *Delivery) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n++
	if d.BrowseEnd {
		o.ended = true
		return
	}
	k, _ := strconv.ParseUint(string(d.Msg.Body[:8]), 10, 64)
	o.order = append(o.order, k)
	o.maxCache = max(o.maxCache, o.e.cacheMem)
	if sub := o.sub(); sub != nil && sub.browse != nil {
		o.maxHeld = max(o.maxHeld, sub.browse.bodyBytes)
	}
}

func (o *stepOut) Writable() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n < o.allow
}

// TestBrowseLargeQueue browses 20,000 messages of three priorities, most
// of them not in the cache, through a connection that takes 1,000 at a
// time: all of them come, in consumer order, while neither the cache nor
// the browser's own read-ahead holds more than its bound; and nothing is
// consumed.
func TestBrowseLargeQueue(t *testing.T) {
	const n, step, cache = 20000, 1000, 256 << 10
	e, l := newEngine(t, Config{CacheBytes: cache})
	fillBig(t, l, n)
	e.mu.Lock()
	cacheBefore := e.cacheMem
	e.mu.Unlock()
	if cacheBefore > cache || cacheBefore == 0 {
		t.Fatalf("cache holds %d bytes before browsing", cacheBefore)
	}

	out := &stepOut{e: e}
	s, err := e.Open("", out)
	if err != nil {
		t.Fatal(err)
	}
	out.sub = func() *subscription { return s.subs["b"] } // under e.mu: called from Deliver
	subscribe(t, s, SubscribeSpec{ID: "b", Destination: "/queue/big", Browser: true})
	for {
		out.mu.Lock()
		ended, got := out.ended, out.n
		out.mu.Unlock()
		if ended {
			break
		}
		if got > n {
			t.Fatalf("%d deliveries and no end marker", got)
		}
		out.mu.Lock()
		out.allow += step
		out.mu.Unlock()
		s.Resume()
		waitFor(t, "the next step browsed", func() bool {
			out.mu.Lock()
			defer out.mu.Unlock()
			return out.n == out.allow || out.ended
		})
	}

	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.order) != n {
		t.Fatalf("browsed %d messages, want %d", len(out.order), n)
	}
	// Consumer order: priority 6 (j%3 == 2), then 5, then 4, each by arrival.
	var want []uint64
	for _, p := range []uint64{2, 1, 0} {
		for j := uint64(0); j < n; j++ {
			if j%3 == p {
				want = append(want, j)
			}
		}
	}
	if !slices.Equal(out.order, want) {
		for i := range want {
			if out.order[i] != want[i] {
				t.Fatalf("delivery %d is message %d, want %d", i, out.order[i], want[i])
			}
		}
	}
	if out.maxCache != cacheBefore {
		t.Errorf("the cache went from %d to %d bytes while browsing", cacheBefore, out.maxCache)
	}
	if limit := int64(readAheadBytes + 4<<10); out.maxHeld > limit || out.maxHeld == 0 {
		t.Errorf("the browser held up to %d bytes of bodies, bound %d", out.maxHeld, limit)
	}
	st := destStats(t, e, "/queue/big")
	if st.Pending != n || st.Dequeued != 0 || st.InFlight != 0 || st.Browsed != n {
		t.Fatalf("after browsing: %+v", st)
	}
	e.mu.Lock()
	sub := s.subs["b"]
	held := sub.browse.refs != nil || sub.browse.bodies != nil
	e.mu.Unlock()
	if held {
		t.Error("the ended browse still holds its snapshot")
	}
}

// fillBig stores n messages of 200 bytes in /queue/big, the j-th with
// priority 4+j%3 and a body that starts with j in 8 digits.
func fillBig(t *testing.T, l *fsmLog, n int) {
	t.Helper()
	body := make([]byte, 200)
	for i := 0; i < n; i += 1000 {
		var cmds []fsm.Command
		for j := i; j < min(i+1000, n); j++ {
			b := slices.Clone(body)
			copy(b, fmt.Sprintf("%08d", j))
			cmds = append(cmds, fsm.Command{Op: fsm.OpEnqueue, Queue: "/queue/big", Msg: &fsm.Message{
				ID: fmt.Sprint("m", j), Destination: "/queue/big", Body: b, Priority: uint8(4 + j%3), Persistent: true}})
		}
		ch := make(chan error, 1)
		l.Propose(cmds, func(_ []fsm.Result, err error) { ch <- err })
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
}

// TestBrowseGoesOnAlone: a browse whose selector skips most messages,
// through a connection that never fills, outlasts one step's budget and
// goes on by itself to the end.
func TestBrowseGoesOnAlone(t *testing.T) {
	const n = 20000
	e, l := newEngine(t, Config{CacheBytes: 64 << 10})
	fillBig(t, l, n)
	out := &stepOut{e: e, allow: 1 << 30}
	s, err := e.Open("", out)
	if err != nil {
		t.Fatal(err)
	}
	out.sub = func() *subscription { return s.subs["b"] }
	subscribe(t, s, SubscribeSpec{ID: "b", Destination: "/queue/big", Browser: true, Selector: "JMSPriority = 4"})
	waitFor(t, "the end marker", func() bool {
		out.mu.Lock()
		defer out.mu.Unlock()
		return out.ended
	})
	out.mu.Lock()
	defer out.mu.Unlock()
	if len(out.order) != (n+2)/3 || out.order[0] != 0 || out.order[len(out.order)-1] != n-2 {
		t.Fatalf("browsed %d messages, from %d to %d", len(out.order), out.order[0], out.order[len(out.order)-1])
	}
	if limit := int64(readAheadBytes + 4<<10); out.maxHeld > limit {
		t.Errorf("the browser held up to %d bytes of bodies, bound %d", out.maxHeld, limit)
	}
}

// TestBrowseSessionClose: closing a session in the middle of a browse
// ends it; the engine closes without waiting on it.
func TestBrowseSessionClose(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	for i := range 10 {
		send(t, p, "/queue/q", fmt.Sprint(i), 4)
	}
	s, out := open(t, e, "")
	out.writable = false
	subscribe(t, s, SubscribeSpec{ID: "b", Destination: "/queue/q", Browser: true})
	s.Close()
	out.mu.Lock()
	out.writable = true
	out.mu.Unlock()
	s.Resume()
	settle()
	if n := out.count(); n != 0 {
		t.Fatalf("%d deliveries after Close", n)
	}
	if st := destStats(t, e, "/queue/q"); st.Pending != 10 {
		t.Fatalf("after Close: %+v", st)
	}
}

// TestBrowsersBounded: a connection that does not read cannot pile up
// queue snapshots: it has at most maxBrowsers unfinished browsers.
func TestBrowsersBounded(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	send(t, p, "/queue/b", "x", 4)
	s, err := e.Open("", &recorder{writable: false})
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxBrowsers {
		subscribe(t, s, SubscribeSpec{ID: fmt.Sprint(i), Destination: "/queue/b", Browser: true})
	}
	err = s.Subscribe(SubscribeSpec{ID: "over", Destination: "/queue/b", Browser: true}, func(error) {})
	if !errors.Is(err, ErrTooManyBrowsers) {
		t.Fatalf("browser %d: %v", maxBrowsers+1, err)
	}
}
