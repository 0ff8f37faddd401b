package queue

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// sendPath sends a message as a bridge would deliver it: with the network
// path it has (none when path is empty).
func sendPath(t *testing.T, s *Session, dest, body, path string, persistent bool) {
	t.Helper()
	m := &fsm.Message{Destination: dest, Body: []byte(body), Priority: 4, Persistent: persistent}
	if path != "" {
		m.Headers = []fsm.Header{{Key: fsm.HeaderNetworkPath, Value: path}}
	}
	do(t, func(done func(error)) error { return s.Send(m, "", done) })
}

// bodies lists the bodies delivered to out so far, in order.
func (r *recorder) bodies() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bs []string
	for _, d := range r.ds {
		bs = append(bs, string(d.Msg.Body))
	}
	return bs
}

func (r *recorder) last() *Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ds[len(r.ds)-1]
}

func ack(t *testing.T, s *Session, d *Delivery) {
	t.Helper()
	do(t, func(done func(error)) error { return s.Ack(AckRef{ID: d.AckID}, "", done) })
}

func wantBodies(t *testing.T, who string, out *recorder, want ...string) {
	t.Helper()
	if got := out.bodies(); !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("%s got %q, want %q", who, got, want)
	}
}

// networkSub opens a session with a bridge's subscription for group.
func networkSub(t *testing.T, e *Engine, dest string, n NetworkSpec, prefetch int) (*Session, *recorder) {
	t.Helper()
	s, out := open(t, e, "")
	subscribe(t, s, SubscribeSpec{ID: "net-" + n.Group, Destination: dest, Ack: AckClientIndividual,
		Prefetch: prefetch, Network: &n})
	return s, out
}

func TestEligible(t *testing.T) {
	for _, c := range []struct {
		group string
		ttl   int
		path  string
		want  bool
	}{
		{"B", 1, "", true},
		{"B", 1, "A", false}, // stored in one group already: TTL 1 is spent
		{"B", 2, "A", true},
		{"B", 2, "A,C", false},
		{"B", 5, "B", false}, // B stored it before: a loop
		{"B", 5, "A,B,C", false},
		{"B", 5, "A, B ", false}, // sloppy spacing does not hide a group
		{"B", 2, "A,,", true},    // nor do empty elements count
		{"B", 5, "BB,AB", true},
		{"B", 0, "", true}, // TTL <= 0 means 1
		{"B", 0, "A", false},
	} {
		n, err := checkNetwork(SubscribeSpec{Network: &NetworkSpec{Group: c.group, TTL: c.ttl}})
		if err != nil {
			t.Fatal(err)
		}
		if got := n.eligible(c.path); got != c.want {
			t.Errorf("group %s ttl %d path %q: eligible = %v, want %v", c.group, c.ttl, c.path, got, c.want)
		}
	}
}

func TestNetworkSubscriptionChecks(t *testing.T) {
	e, _ := newEngine(t, Config{})
	s, _ := open(t, e, "client-1")
	for _, c := range []struct {
		spec SubscribeSpec
		want error
	}{
		{SubscribeSpec{ID: "1", Destination: "/topic/t", DurableName: "d", Network: &NetworkSpec{Group: "B"}}, ErrNetworkDurable},
		{SubscribeSpec{ID: "2", Destination: "/queue/q", Network: &NetworkSpec{}}, ErrBadNetworkGroup},
		{SubscribeSpec{ID: "3", Destination: "/queue/q", Network: &NetworkSpec{Group: "A,B"}}, ErrBadNetworkGroup},
		{SubscribeSpec{ID: "4", Destination: "/queue/q", Network: &NetworkSpec{Group: " B"}}, ErrBadNetworkGroup},
	} {
		if err := s.Subscribe(c.spec, func(error) { t.Error("done called for a refused subscription") }); err != c.want {
			t.Errorf("subscribe %+v: err = %v, want %v", c.spec, err, c.want)
		}
	}
}

// A low-priority network consumer gets nothing while a local consumer can
// take the message, and gets messages once the local one is saturated or
// gone.
func TestLowPriorityNetworkConsumer(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	local, lout := open(t, e, "")
	subscribe(t, local, SubscribeSpec{ID: "l", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 2})
	_, nout := networkSub(t, e, "/queue/q", NetworkSpec{Group: "B", LowPriority: true}, 100)

	sendPath(t, p, "/queue/q", "m1", "", true)
	sendPath(t, p, "/queue/q", "m2", "", true)
	wantBodies(t, "local", lout, "m1", "m2")
	wantBodies(t, "network", nout)

	// Saturated: now the bridge may have them.
	sendPath(t, p, "/queue/q", "m3", "", true)
	wantBodies(t, "network", nout, "m3")

	// Credit back: the local consumer comes first again.
	ack(t, local, lout.last())
	sendPath(t, p, "/queue/q", "m4", "", true)
	wantBodies(t, "local", lout, "m1", "m2", "m4")
	wantBodies(t, "network", nout, "m3")

	// A local connection without room does not count as able to take it.
	lout.mu.Lock()
	lout.writable = false
	lout.mu.Unlock()
	ack(t, local, lout.wait(t, 0))
	sendPath(t, p, "/queue/q", "m5", "", true)
	wantBodies(t, "network", nout, "m3", "m5")

	// Gone: its unacknowledged messages go to the bridge.
	local.Close()
	wantBodies(t, "network", nout, "m3", "m5", "m4")
}

// A normal-priority network consumer shares round robin with local ones.
func TestNetworkConsumerRoundRobin(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	local, lout := open(t, e, "")
	subscribe(t, local, SubscribeSpec{ID: "l", Destination: "/queue/q", Ack: AckClientIndividual})
	_, nout := networkSub(t, e, "/queue/q", NetworkSpec{Group: "B"}, 100)
	for i := range 4 {
		sendPath(t, p, "/queue/q", fmt.Sprint("m", i), "", false)
	}
	if lout.count() != 2 || nout.count() != 2 {
		t.Fatalf("local got %q, network %q: want two each", lout.bodies(), nout.bodies())
	}
}

// With local consumers present, a network consumer gets only the messages
// it may forward; the others are stepped over, not lost, and keep their
// order for the local consumer.
func TestNetworkEligibilityAndSetAside(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	local, lout := open(t, e, "")
	subscribe(t, local, SubscribeSpec{ID: "l", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	sendPath(t, p, "/queue/q", "first", "", true)
	wantBodies(t, "local", lout, "first") // saturated from now on
	_, nout := networkSub(t, e, "/queue/q", NetworkSpec{Group: "B", TTL: 2}, 100)

	for _, m := range []struct{ body, path string }{
		{"none", ""},
		{"loop", "B"},     // B stored it before
		{"A", "A"},        // one group before: within TTL 2
		{"AC", "A,C"},     // two groups: TTL spent
		{"CB", "C,B"},     // a loop again
		{"C", "C"},        // behind three it may not have: not blocked
		{"AB", "A,B"},     // and one more it may not have
		{"plain", ""},     //
		{"spaced", " D "}, //
	} {
		sendPath(t, p, "/queue/q", m.body, m.path, true)
	}
	wantBodies(t, "network", nout, "none", "A", "C", "plain", "spaced")

	// The local consumer gets the rest, in their order.
	for i := 0; i < 4; i++ {
		ack(t, local, lout.last())
	}
	wantBodies(t, "local", lout, "first", "loop", "AC", "CB", "AB")
	wantBodies(t, "network", nout, "none", "A", "C", "plain", "spaced")
}

// Messages that a network consumer without credit may have, but the ready
// one may not, are stepped over and returned, at most maxSetAside of them
// per dispatch: a message behind more of them waits until enough of them
// have gone.
func TestSetAsideIsBounded(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	local, lout := open(t, e, "")
	subscribe(t, local, SubscribeSpec{ID: "l", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	lout.mu.Lock()
	lout.writable = false // never ready in this test
	lout.mu.Unlock()
	c, cout := networkSub(t, e, "/queue/q", NetworkSpec{Group: "C", TTL: 2}, 1)
	sendPath(t, p, "/queue/q", "c-first", "", false) // C is saturated from now on
	wantBodies(t, "network C", cout, "c-first")
	_, bout := networkSub(t, e, "/queue/q", NetworkSpec{Group: "B", TTL: 2}, 100)

	// Non-persistent: routed at once, no raft round trip per message.
	for i := 0; i < maxSetAside+2; i++ {
		sendPath(t, p, "/queue/q", fmt.Sprint("fromB", i), "B", false) // for C only
	}
	sendPath(t, p, "/queue/q", "eligible", "", false)
	wantBodies(t, "network B", bout)

	// Each ack gives C the next one, and the dispatch that follows steps
	// over a shorter run.
	for i := 0; bout.count() == 0; i++ {
		if i > maxSetAside+2 {
			t.Fatal("the eligible message never reached network B")
		}
		ack(t, c, cout.last())
	}
	if got := cout.count(); got != 4 {
		t.Fatalf("C got %d messages before B got its one; want 4 (c-first, and 3 to shorten the run to %d)", got, maxSetAside-1)
	}
	wantBodies(t, "network B", bout, "eligible")
	for cout.count() < maxSetAside+3 {
		ack(t, c, cout.last())
	}
	for i, b := range cout.bodies()[1:] {
		if want := fmt.Sprint("fromB", i); b != want {
			t.Fatalf("C's delivery %d = %q, want %q", i+1, b, want)
		}
	}
	if n := lout.count(); n != 0 {
		t.Fatalf("a local consumer without room got %d messages", n)
	}
}

// Messages no network consumer may have are parked for the local
// consumers: they leave in priority and arrival order with the others,
// and come back when the network consumers change.
func TestParkedMessages(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	local, lout := open(t, e, "")
	subscribe(t, local, SubscribeSpec{ID: "l", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	sendPath(t, p, "/queue/q", "first", "", true)
	wantBodies(t, "local", lout, "first")
	b, bout := networkSub(t, e, "/queue/q", NetworkSpec{Group: "B"}, 1)
	parkedN := func() int {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.queues["/queue/q"].parked.n
	}

	sendPath(t, p, "/queue/q", "fromB", "B", true) // parked
	sendPath(t, p, "/queue/q", "x", "", true)      // B is saturated from now on
	sendPath(t, p, "/queue/q", "y", "", true)
	hi := &fsm.Message{Destination: "/queue/q", Body: []byte("hi"), Priority: 9, Persistent: true,
		Headers: []fsm.Header{{Key: fsm.HeaderNetworkPath, Value: "B"}}}
	do(t, func(done func(error)) error { return p.Send(hi, "", done) })
	wantBodies(t, "network B", bout, "x")
	if n := parkedN(); n != 1 {
		t.Fatalf("%d messages parked, want 1 (fromB)", n)
	}
	for i := 0; i < 3; i++ {
		ack(t, local, lout.last())
	}
	wantBodies(t, "local", lout, "first", "hi", "fromB", "y")

	// A network consumer that may have parked messages gets them.
	ack(t, b, bout.last()) // B can take one again
	sendPath(t, p, "/queue/q", "fromB2", "B", true)
	sendPath(t, p, "/queue/q", "fromB3", "B", true)
	if n := parkedN(); n != 2 {
		t.Fatalf("%d messages parked, want 2", n)
	}
	c, cout := networkSub(t, e, "/queue/q", NetworkSpec{Group: "C", TTL: 2}, 100)
	wantBodies(t, "network C", cout, "fromB2", "fromB3")

	// Without network consumers, plain dispatch must find them again.
	sendPath(t, p, "/queue/q", "fromC", "C", true) // neither B (TTL 1) nor C may have it
	if n := parkedN(); n != 1 {
		t.Fatalf("%d messages parked, want 1", n)
	}
	b.Close()
	c.Close() // fromB2 and fromB3 come back
	if n := parkedN(); n != 0 {
		t.Fatalf("%d messages parked without network consumers", n)
	}
	for i := 0; i < 3; i++ {
		ack(t, local, lout.last())
	}
	wantBodies(t, "local", lout, "first", "hi", "fromB", "y", "fromB2", "fromB3", "fromC")
}

// A queue with no local consumer gives its messages to network consumers
// whatever their path: the consumers moved away, the messages follow.
func TestReplayWithoutLocalConsumers(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	local, lout := open(t, e, "")
	subscribe(t, local, SubscribeSpec{ID: "l", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	sendPath(t, p, "/queue/q", "held", "", true)
	wantBodies(t, "local", lout, "held")
	_, nout := networkSub(t, e, "/queue/q", NetworkSpec{Group: "B", LowPriority: true}, 100)
	sendPath(t, p, "/queue/q", "from-B", "B", true) // came from B: not back while a local consumer exists
	sendPath(t, p, "/queue/q", "far", "A,C", true)  // past TTL 1
	wantBodies(t, "network", nout)

	local.Close()
	wantBodies(t, "network", nout, "held", "from-B", "far")
	sendPath(t, p, "/queue/q", "later", "B", true)
	wantBodies(t, "network", nout, "held", "from-B", "far", "later")

	// A local consumer back: the strict rule again.
	local2, lout2 := open(t, e, "")
	subscribe(t, local2, SubscribeSpec{ID: "l", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	sendPath(t, p, "/queue/q", "x", "", true)
	sendPath(t, p, "/queue/q", "back-from-B", "B", true)
	wantBodies(t, "local", lout2, "x")
	wantBodies(t, "network", nout, "held", "from-B", "far", "later")
}

// Topic copies go to network subscriptions only where they may be
// forwarded, local subscribers or not, through raft (durable subscribers)
// or straight.
func TestTopicFanoutSkipsIneligibleNetworkSubs(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprint("durable=", durable), func(t *testing.T) {
			e, _ := newEngine(t, Config{})
			p, _ := open(t, e, "")
			var lout *recorder
			if durable {
				var d *Session
				d, lout = open(t, e, "client-1")
				subscribe(t, d, SubscribeSpec{ID: "l", Destination: "/topic/t", Ack: AckAuto, DurableName: "d"})
			} else {
				var l *Session
				l, lout = open(t, e, "")
				subscribe(t, l, SubscribeSpec{ID: "l", Destination: "/topic/t", Ack: AckAuto})
			}
			_, bout := networkSub(t, e, "/topic/t", NetworkSpec{Group: "B", TTL: 1}, 100)
			_, cout := networkSub(t, e, "/topic/t", NetworkSpec{Group: "C", TTL: 3, LowPriority: true}, 100)
			for _, m := range []struct{ body, path string }{{"none", ""}, {"B", "B"}, {"AC", "A,C"}, {"A", "A"}} {
				sendPath(t, p, "/topic/t", m.body, m.path, true)
			}
			wantBodies(t, "local", lout, "none", "B", "AC", "A")
			wantBodies(t, "network B", bout, "none")
			wantBodies(t, "network C", cout, "none", "B", "A")
		})
	}
}

// Acks, NACKs, redelivery and dead-lettering work for network
// subscriptions as for any other.
func TestNetworkSubscriptionRedeliveryAndDLQ(t *testing.T) {
	e, _ := newEngine(t, Config{MaxDeliveries: 2})
	p, _ := open(t, e, "")
	n, nout := networkSub(t, e, "/queue/q", NetworkSpec{Group: "B"}, 10)
	sendPath(t, p, "/queue/q", "m", "", true)
	sendPath(t, p, "/queue/q", "ok", "", true)
	d := nout.wait(t, 0)
	ack(t, n, nout.wait(t, 1))
	do(t, func(done func(error)) error { return n.Nack(AckRef{ID: d.AckID}, "", done) })
	d = nout.wait(t, 2)
	if !d.Redelivered || d.DeliveryCount != 2 || string(d.Msg.Body) != "m" {
		t.Fatalf("after NACK: %q redelivered=%v count=%d", d.Msg.Body, d.Redelivered, d.DeliveryCount)
	}
	do(t, func(done func(error)) error { return n.Nack(AckRef{ID: d.AckID}, "", done) })
	dlq, dout := open(t, e, "")
	subscribe(t, dlq, SubscribeSpec{ID: "d", Destination: "/queue/DLQ.q", Ack: AckAuto})
	if got := dout.wait(t, 0); string(got.Msg.Body) != "m" || nout.count() != 3 {
		t.Fatalf("DLQ got %q; network consumer saw %d deliveries", got.Msg.Body, nout.count())
	}
}

func signalled(e *Engine) bool {
	select {
	case <-e.DemandChanged():
		return true
	default:
		return false
	}
}

func wantDemand(t *testing.T, e *Engine, want ...Demand) {
	t.Helper()
	if got := e.Demand(); !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Fatalf("Demand() = %+v, want %+v", got, want)
	}
}

func TestDemand(t *testing.T) {
	e, l := newEngine(t, Config{})
	if !signalled(e) {
		t.Fatal("no DemandChanged after Load")
	}
	wantDemand(t, e)
	step := func(what string, op func()) {
		t.Helper()
		signalled(e) // drain
		op()
		if !signalled(e) {
			t.Fatalf("no DemandChanged after %s", what)
		}
	}

	a, _ := open(t, e, "client-1")
	b, _ := open(t, e, "")
	step("a local queue subscription", func() {
		subscribe(t, a, SubscribeSpec{ID: "q1", Destination: "/queue/b"})
	})
	step("a local topic subscription", func() {
		subscribe(t, b, SubscribeSpec{ID: "t1", Destination: "/topic/t"})
	})
	subscribe(t, b, SubscribeSpec{ID: "q2", Destination: "/queue/b"})
	step("a durable subscription", func() {
		subscribe(t, a, SubscribeSpec{ID: "d1", Destination: "/topic/t", DurableName: "d"})
	})
	// Neither network subscriptions nor reserved topics are demand.
	signalled(e)
	networkSub(t, e, "/queue/b", NetworkSpec{Group: "B"}, 1)
	networkSub(t, e, "/queue/only-network", NetworkSpec{Group: "B"}, 1)
	networkSub(t, e, "/topic/t", NetworkSpec{Group: "B"}, 1)
	subscribe(t, b, SubscribeSpec{ID: "sys", Destination: SystemTopicPrefix + "network.demand"})
	if signalled(e) {
		t.Fatal("DemandChanged after subscriptions that are not demand")
	}
	wantDemand(t, e,
		Demand{Destination: "/queue/b", Consumers: 2},
		Demand{Destination: "/topic/t", Consumers: 2, Durables: 1})

	step("an unsubscribe", func() {
		do(t, func(done func(error)) error { return b.Unsubscribe("q2", "", done) })
	})
	step("closing a session", func() { a.Close() })
	// The durable subscription stays, inactive.
	wantDemand(t, e, Demand{Destination: "/topic/t", Consumers: 1, Durables: 1})

	// Known from the stored state, with no connection at all.
	b.Close()
	e.Close()
	l.f.Detach()
	e2, err := NewEngine(Config{}, l, l.f)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if err := l.f.Attach(e2); err != nil {
		t.Fatal(err)
	}
	if !signalled(e2) {
		t.Fatal("no DemandChanged after Load")
	}
	wantDemand(t, e2, Demand{Destination: "/topic/t", Durables: 1})

	c, _ := open(t, e2, "client-1")
	signalled(e2)
	do(t, func(done func(error)) error { return c.Unsubscribe("", "d", done) })
	if !signalled(e2) {
		t.Fatal("no DemandChanged after a durable subscription was removed")
	}
	wantDemand(t, e2)

	e2.Close()
	if !signalled(e2) {
		t.Fatal("no DemandChanged after Close")
	}
	wantDemand(t, e2)
}

func TestReservedDestinations(t *testing.T) {
	e, _ := newEngine(t, Config{})
	const sys = SystemTopicPrefix + "network.demand"
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: sys, Ack: AckAuto})

	p, _ := open(t, e, "")
	never := func(error) { t.Error("done called for a refused send") }
	if err := p.Send(&fsm.Message{Destination: sys, Body: []byte("x")}, "", never); err != ErrReservedDestination {
		t.Fatalf("send to %s: err = %v, want ErrReservedDestination", sys, err)
	}
	if err := p.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(&fsm.Message{Destination: sys, Persistent: true}, "tx", never); err != ErrReservedDestination {
		t.Fatalf("transactional send to %s: err = %v, want ErrReservedDestination", sys, err)
	}
	// Only topics are reserved.
	sendPath(t, p, "/queue/raftmq.x", "x", "", false)

	hs := []fsm.Header{{Key: "group", Value: "A"}}
	if err := e.PublishSystem(sys, hs, []byte("demand")); err != nil {
		t.Fatal(err)
	}
	d := out.wait(t, 0)
	if string(d.Msg.Body) != "demand" || !reflect.DeepEqual(d.Msg.Headers, hs) || d.Msg.Persistent || d.Msg.ID == "" {
		t.Fatalf("system message: %+v", d.Msg)
	}
	// Nobody listening: nothing happens.
	if err := e.PublishSystem(SystemTopicPrefix+"other", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, dest := range []string{"/topic/t", "/queue/raftmq.x", "/topic/raftmq"} {
		if err := e.PublishSystem(dest, nil, nil); !errors.Is(err, ErrBadDestination) {
			t.Errorf("PublishSystem(%q): err = %v, want ErrBadDestination", dest, err)
		}
	}
	e.Close()
	if err := e.PublishSystem(sys, nil, nil); err != ErrClosed {
		t.Fatalf("PublishSystem after Close: err = %v, want ErrClosed", err)
	}
}

// Parked messages expire, and go with a purge, like pending ones.
func TestParkedMessagesExpireAndPurge(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(1_700_000_000_000)}
	l := newFSMLog(t)
	e, err := newEngineWithClock(Config{ExpirySweep: time.Millisecond}, l, l.f, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := l.f.Attach(e); err != nil {
		t.Fatal(err)
	}
	p, _ := open(t, e, "")
	local, lout := open(t, e, "")
	subscribe(t, local, SubscribeSpec{ID: "l", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	sendPath(t, p, "/queue/q", "first", "", true)
	networkSub(t, e, "/queue/q", NetworkSpec{Group: "B"}, 10)
	parkedN := func() int {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.queues["/queue/q"].parked.n
	}

	m := &fsm.Message{Destination: "/queue/q", Body: []byte("expiring"), Priority: 4, Persistent: true,
		Expires: clock.now().Add(time.Second).UnixMilli(), Headers: []fsm.Header{{Key: fsm.HeaderNetworkPath, Value: "B"}}}
	do(t, func(done func(error)) error { return p.Send(m, "", done) })
	sendPath(t, p, "/queue/q", "doomed", "B", true)
	if n := parkedN(); n != 2 {
		t.Fatalf("%d parked, want 2", n)
	}
	clock.advance(2 * time.Second)
	waitFor(t, "expiry of a parked message", func() bool { return parkedN() == 1 && stored(e, "/queue/DLQ.q") == 1 })

	sendPath(t, p, "/queue/q", "memory", "B", false) // only the pending lists know it
	if n := parkedN(); n != 2 {
		t.Fatalf("%d parked, want 2", n)
	}

	do(t, func(done func(error)) error {
		l.Propose([]fsm.Command{{Op: fsm.OpPurge, Queue: "/queue/q"}}, func(_ []fsm.Result, err error) { done(err) })
		return nil
	})
	if n := parkedN(); n != 0 {
		t.Fatalf("%d parked after a purge", n)
	}
	ack(t, local, lout.last())
	wantBodies(t, "local", lout, "first")
}
