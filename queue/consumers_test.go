package queue

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue/selector"
)

// sendH sends a persistent message with user headers, given as key,
// value pairs.
func sendH(t *testing.T, s *Session, dest, body string, kv ...string) {
	t.Helper()
	m := &fsm.Message{Destination: dest, Body: []byte(body), Priority: 4, Persistent: true}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, fsm.Header{Key: kv[i], Value: kv[i+1]})
	}
	do(t, func(done func(error)) error { return s.Send(m, "", done) })
}

// bodies returns the bodies r was handed, in order.
func bodies(r *recorder) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.ds {
		out = append(out, string(d.Msg.Body))
	}
	return out
}

// written tells the engine that every delivery r holds reached the
// client, as the transport does once a frame is on the socket: in auto
// mode that is the acknowledgement.
func written(r *recorder) {
	r.mu.Lock()
	ds := slices.Clone(r.ds)
	r.mu.Unlock()
	for _, d := range ds {
		d.Written()
	}
}

// settle waits until the engine has had time to dispatch: asserting that
// nothing more arrives.
func settle() { time.Sleep(50 * time.Millisecond) }

func TestSelectorOnQueue(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	eu, euOut := open(t, e, "")
	us, usOut := open(t, e, "")
	subscribe(t, eu, SubscribeSpec{ID: "eu", Destination: "/queue/orders", Ack: AckAuto, Selector: "region = 'eu' AND amount > 100"})
	subscribe(t, us, SubscribeSpec{ID: "us", Destination: "/queue/orders", Ack: AckAuto, Selector: "region IN ('us', 'ca')"})
	sendH(t, p, "/queue/orders", "eu-big", "region", "eu", "amount", "500")
	sendH(t, p, "/queue/orders", "eu-small", "region", "eu", "amount", "5")
	sendH(t, p, "/queue/orders", "us", "region", "us")
	sendH(t, p, "/queue/orders", "none")
	euOut.wait(t, 0)
	usOut.wait(t, 0)
	settle()
	if got := bodies(euOut); !slices.Equal(got, []string{"eu-big"}) {
		t.Errorf("eu consumer got %q", got)
	}
	if got := bodies(usOut); !slices.Equal(got, []string{"us"}) {
		t.Errorf("us consumer got %q", got)
	}
	// What no selector matches waits (parked) for a consumer that takes
	// it, in order.
	all, allOut := open(t, e, "")
	subscribe(t, all, SubscribeSpec{ID: "all", Destination: "/queue/orders", Ack: AckAuto})
	allOut.wait(t, 1)
	if got := bodies(allOut); !slices.Equal(got, []string{"eu-small", "none"}) {
		t.Errorf("consumer without selector got %q", got)
	}
	// JMS headers read the message's own fields.
	jms, jmsOut := open(t, e, "")
	subscribe(t, jms, SubscribeSpec{ID: "j", Destination: "/queue/prio", Ack: AckAuto, Selector: "JMSPriority >= 7 AND JMSDeliveryMode = 'PERSISTENT'"})
	send(t, p, "/queue/prio", "low", 2)
	send(t, p, "/queue/prio", "high", 8)
	jmsOut.wait(t, 0)
	settle()
	if got := bodies(jmsOut); !slices.Equal(got, []string{"high"}) {
		t.Errorf("JMSPriority selector got %q", got)
	}
}

func TestSelectorSyntaxError(t *testing.T) {
	e, _ := newEngine(t, Config{})
	s, _ := open(t, e, "")
	err := s.Subscribe(SubscribeSpec{ID: "x", Destination: "/queue/q", Selector: "a = 'b' AND"}, func(error) {})
	var se *SelectorError
	var syn *selector.SyntaxError
	if !errors.As(err, &se) || !errors.As(err, &syn) || syn.Pos != 12 {
		t.Fatalf("bad selector: %v", err)
	}
}

func TestSelectorOnTopics(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	live, liveOut := open(t, e, "")
	subscribe(t, live, SubscribeSpec{ID: "l", Destination: "/topic/prices", Ack: AckAuto, Selector: "symbol LIKE 'RAFT%'"})
	dur, durOut := open(t, e, "app")
	subscribe(t, dur, SubscribeSpec{ID: "d", Destination: "/topic/prices", Ack: AckAuto, DurableName: "d", Selector: "price > 10"})
	sendH(t, p, "/topic/prices", "raft-5", "symbol", "RAFTMQ", "price", "5")
	sendH(t, p, "/topic/prices", "acme-50", "symbol", "ACME", "price", "50")
	sendH(t, p, "/topic/prices", "raft-20", "symbol", "RAFTMQ", "price", "20")
	liveOut.wait(t, 1)
	durOut.wait(t, 1)
	settle()
	if got := bodies(liveOut); !slices.Equal(got, []string{"raft-5", "raft-20"}) {
		t.Errorf("live subscriber got %q", got)
	}
	if got := bodies(durOut); !slices.Equal(got, []string{"acme-50", "raft-20"}) {
		t.Errorf("durable subscriber got %q", got)
	}
	// The durable subscription kept its selector while away: the FSM
	// stored only what it selects.
	written(durOut)
	do(t, func(done func(error)) error { return dur.Unsubscribe("d", "", done) })
	sendH(t, p, "/topic/prices", "cheap", "price", "1")
	sendH(t, p, "/topic/prices", "dear", "price", "99")
	back, backOut := open(t, e, "app")
	dur.Close()
	subscribe(t, back, SubscribeSpec{ID: "d", Destination: "/topic/prices", Ack: AckAuto, DurableName: "d", Selector: "price > 10"})
	backOut.wait(t, 0)
	settle()
	if got := bodies(backOut); !slices.Equal(got, []string{"dear"}) {
		t.Errorf("durable subscriber after coming back got %q", got)
	}
}

func TestExclusiveConsumer(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	first, firstOut := open(t, e, "")
	second, secondOut := open(t, e, "")
	plain, plainOut := open(t, e, "")
	subscribe(t, plain, SubscribeSpec{ID: "p", Destination: "/queue/x", Ack: AckAuto})
	subscribe(t, first, SubscribeSpec{ID: "1", Destination: "/queue/x", Ack: AckAuto, Exclusive: true})
	subscribe(t, second, SubscribeSpec{ID: "2", Destination: "/queue/x", Ack: AckAuto, Exclusive: true})
	for i := range 6 {
		send(t, p, "/queue/x", fmt.Sprint(i), 4)
	}
	firstOut.wait(t, 5)
	settle()
	if secondOut.count() != 0 || plainOut.count() != 0 {
		t.Fatalf("others got %q and %q while the exclusive consumer was there", bodies(secondOut), bodies(plainOut))
	}
	written(firstOut)
	first.Close()
	send(t, p, "/queue/x", "after", 4)
	secondOut.wait(t, 0)
	settle()
	if got := bodies(secondOut); !slices.Equal(got, []string{"after"}) || plainOut.count() != 0 {
		t.Errorf("after the owner left: second %q, plain %q", got, bodies(plainOut))
	}
}

func TestConsumerPriority(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	low, lowOut := open(t, e, "")
	high, highOut := open(t, e, "")
	subscribe(t, low, SubscribeSpec{ID: "l", Destination: "/queue/x", Ack: AckClientIndividual, Prefetch: 10})
	subscribe(t, high, SubscribeSpec{ID: "h", Destination: "/queue/x", Ack: AckClientIndividual, Prefetch: 3, Priority: 9})
	for i := range 5 {
		send(t, p, "/queue/x", fmt.Sprint(i), 4)
	}
	lowOut.wait(t, 1)
	settle()
	// The high-priority consumer fills its prefetch first; the rest
	// goes to the low one.
	if got := bodies(highOut); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Errorf("high-priority consumer got %q", got)
	}
	if got := bodies(lowOut); !slices.Equal(got, []string{"3", "4"}) {
		t.Errorf("low-priority consumer got %q", got)
	}
}

func TestMessageGroups(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	c1, out1 := open(t, e, "")
	c2, out2 := open(t, e, "")
	subscribe(t, c1, SubscribeSpec{ID: "1", Destination: "/queue/g", Ack: AckClientIndividual})
	subscribe(t, c2, SubscribeSpec{ID: "2", Destination: "/queue/g", Ack: AckClientIndividual})
	for i := range 4 {
		sendH(t, p, "/queue/g", fmt.Sprint("A", i), HeaderGroupID, "A")
		sendH(t, p, "/queue/g", fmt.Sprint("B", i), HeaderGroupID, "B")
	}
	out1.wait(t, 3)
	out2.wait(t, 3)
	settle()
	a, b := bodies(out1), bodies(out2)
	if a[0] == "B0" {
		a, b = b, a
		out1, out2 = out2, out1
		c1, c2 = c2, c1
	}
	if !slices.Equal(a, []string{"A0", "A1", "A2", "A3"}) || !slices.Equal(b, []string{"B0", "B1", "B2", "B3"}) {
		t.Fatalf("groups split: %q and %q", a, b)
	}
	// A's consumer goes with two of A's messages unacknowledged: they,
	// and A's next messages, go to the other consumer, in order.
	do(t, func(done func(error)) error { return c1.Ack(AckRef{ID: out1.wait(t, 0).AckID}, "", done) })
	do(t, func(done func(error)) error { return c1.Ack(AckRef{ID: out1.wait(t, 1).AckID}, "", done) })
	c1.Close()
	sendH(t, p, "/queue/g", "A4", HeaderGroupID, "A")
	out2.wait(t, 6)
	if got := bodies(out2)[4:]; !slices.Equal(got, []string{"A2", "A3", "A4"}) {
		t.Errorf("group A after its consumer left: %q", got)
	}
	// JMSXGroupSeq -1 closes a group: its next message may pin anew.
	c3, out3 := open(t, e, "")
	subscribe(t, c3, SubscribeSpec{ID: "3", Destination: "/queue/g", Ack: AckAuto, Priority: 9})
	sendH(t, p, "/queue/g", "B-last", HeaderGroupID, "B", HeaderGroupSeq, "-1")
	sendH(t, p, "/queue/g", "B-new", HeaderGroupID, "B")
	out3.wait(t, 0)
	settle()
	if got := bodies(out3); !slices.Equal(got, []string{"B-new"}) {
		t.Errorf("after B closed, the high-priority newcomer got %q", got)
	}
	if got := bodies(out2); got[len(got)-1] != "B-last" {
		t.Errorf("B's closing message went elsewhere: %q", got)
	}
}

// TestGroupPinsBounded: past maxGroupPins a group with messages in flight
// keeps its pin; only a settled group's pin is forgotten.
func TestGroupPinsBounded(t *testing.T) {
	old := maxGroupPins
	maxGroupPins = 2
	t.Cleanup(func() { maxGroupPins = old })
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	c1, out1 := open(t, e, "")
	subscribe(t, c1, SubscribeSpec{ID: "1", Destination: "/queue/g", Ack: AckClientIndividual})
	sendH(t, p, "/queue/g", "A0", HeaderGroupID, "A")
	sendH(t, p, "/queue/g", "B0", HeaderGroupID, "B")
	out1.wait(t, 1)
	c2, out2 := open(t, e, "")
	subscribe(t, c2, SubscribeSpec{ID: "2", Destination: "/queue/g", Ack: AckClientIndividual, Priority: 9})
	// Both pins are busy: C goes unpinned, and A and B stay with c1
	// although c2 has the higher priority.
	sendH(t, p, "/queue/g", "C0", HeaderGroupID, "C")
	sendH(t, p, "/queue/g", "A1", HeaderGroupID, "A")
	out1.wait(t, 2)
	out2.wait(t, 0)
	settle()
	if got := bodies(out1); !slices.Equal(got, []string{"A0", "B0", "A1"}) {
		t.Errorf("c1 got %q", got)
	}
	if got := bodies(out2); !slices.Equal(got, []string{"C0"}) {
		t.Errorf("c2 got %q", got)
	}
	e.mu.Lock()
	pins := len(e.queues["/queue/g"].groups)
	e.mu.Unlock()
	if pins != 2 {
		t.Errorf("%d pins, want 2", pins)
	}
}

// TestParkedBacklogInPasses: a backlog no consumer selects is parked, and
// looked at again in bounded passes when consumers change; a message
// behind it that a new consumer selects still reaches it.
func TestParkedBacklogInPasses(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	c, _ := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "none", Destination: "/queue/big", Ack: AckAuto, Selector: "kind = 'nothing'"})
	n := 3*maxParkPerPass + 10
	for i := range n {
		m := &fsm.Message{Destination: "/queue/big", Body: []byte(fmt.Sprint(i)), Priority: 4,
			Headers: []fsm.Header{{Key: "kind", Value: "bulk"}}}
		do(t, func(done func(error)) error { return p.Send(m, "", done) })
	}
	sendH(t, p, "/queue/big", "wanted", "kind", "wanted")
	want, out := open(t, e, "")
	subscribe(t, want, SubscribeSpec{ID: "w", Destination: "/queue/big", Ack: AckAuto, Selector: "kind = 'wanted'"})
	if d := out.wait(t, 0); string(d.Msg.Body) != "wanted" {
		t.Fatalf("got %q", d.Msg.Body)
	}
	e.mu.Lock()
	parked := e.queues["/queue/big"].parked.n
	e.mu.Unlock()
	if parked != n {
		t.Errorf("%d parked, want %d", parked, n)
	}
}
