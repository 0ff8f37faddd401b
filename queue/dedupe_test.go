package queue

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// dedupeMsg is a persistent message with a dedupe-id header.
func dedupeMsg(dest, body, id string) *fsm.Message {
	return &fsm.Message{Destination: dest, Body: []byte(body), Priority: 4, Persistent: true,
		Headers: []fsm.Header{{Key: "x", Value: "y"}, {Key: HeaderDedupeID, Value: id}}}
}

func sendMsg(t *testing.T, s *Session, m *fsm.Message, tx string) {
	t.Helper()
	do(t, func(done func(error)) error { return s.Send(m, tx, done) })
}

// stored returns how many messages the engine holds for a store
// queue, pending or in flight. In the fsmLog, a send's done runs after its
// changes reached the engine, so this is exact once the sends completed.
func stored(e *Engine, queue string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if q := e.queues[queue]; q != nil {
		return len(q.refs)
	}
	return 0
}

// proposed returns every command proposed so far with op.
func (l *fsmLog) proposed(op fsm.Op) []fsm.Command {
	l.mu.Lock()
	defer l.mu.Unlock()
	var cmds []fsm.Command
	for _, p := range l.props {
		for _, c := range p {
			if c.Op == op {
				cmds = append(cmds, c)
			}
		}
	}
	return cmds
}

func TestDedupeSendStoresOnce(t *testing.T) {
	e, l := newEngine(t, Config{})
	p, _ := open(t, e, "")
	// Both are receipted (done(nil)); the second stores nothing.
	sendMsg(t, p, dedupeMsg("/queue/q", "first", "id-1"), "")
	sendMsg(t, p, dedupeMsg("/queue/q", "resent", "id-1"), "")
	// The id space is the group's: another queue does not help.
	sendMsg(t, p, dedupeMsg("/queue/other", "elsewhere", "id-1"), "")
	if n := stored(e, "/queue/q"); n != 1 {
		t.Fatalf("/queue/q holds %d messages, want 1", n)
	}
	if n := stored(e, "/queue/other"); n != 0 {
		t.Fatalf("/queue/other holds %d messages, want 0", n)
	}
	sendMsg(t, p, dedupeMsg("/queue/q", "second", "id-2"), "")
	send(t, p, "/queue/q", "no id", 4)
	send(t, p, "/queue/q", "no id", 4)

	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckAuto})
	var bodies []string
	for i := range 4 {
		d := out.wait(t, i)
		bodies = append(bodies, string(d.Msg.Body))
		// Consumers see the header: it is the sender's own.
		if i < 2 && dedupeID(d.Msg) == "" {
			t.Errorf("delivery %d lost its dedupe-id header: %v", i, d.Msg.Headers)
		}
	}
	if got, want := strings.Join(bodies, ","), "first,second,no id,no id"; got != want {
		t.Fatalf("delivered %s, want %s", got, want)
	}
	if n := stored(e, "/queue/q"); n != 4 || out.count() != 4 {
		t.Fatalf("%d stored, %d delivered; want 4 and 4", n, out.count())
	}

	var ids []string
	for _, c := range l.proposed(fsm.OpEnqueue) {
		ids = append(ids, c.DedupeID)
	}
	if got, want := strings.Join(ids, ","), "id-1,id-1,id-1,id-2,,"; got != want {
		t.Fatalf("proposed dedupe ids %q, want %q", got, want)
	}
}

func TestDedupeTopics(t *testing.T) {
	e, _ := newEngine(t, Config{})
	// A durable subscription: publishes go through raft and are
	// deduplicated.
	dur, _ := open(t, e, "client-1")
	subscribe(t, dur, SubscribeSpec{ID: "d", Destination: "/topic/t", DurableName: "keep"})
	do(t, func(done func(error)) error { return dur.Unsubscribe("d", "", done) })
	p, _ := open(t, e, "")
	sendMsg(t, p, dedupeMsg("/topic/t", "news", "t-1"), "")
	sendMsg(t, p, dedupeMsg("/topic/t", "news again", "t-1"), "")
	key := fsm.DurableQueue("client-1", "keep")
	if n := stored(e, key); n != 1 {
		t.Fatalf("durable subscription holds %d messages, want 1", n)
	}

	// No durable subscription: straight to the subscribers, not
	// deduplicated (nothing is recorded).
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/topic/direct", Ack: AckAuto})
	sendMsg(t, p, dedupeMsg("/topic/direct", "a", "t-2"), "")
	sendMsg(t, p, dedupeMsg("/topic/direct", "b", "t-2"), "")
	out.wait(t, 1)

	// Nor are non-persistent messages.
	np := func(body string) *fsm.Message {
		m := dedupeMsg("/queue/np", body, "np-1")
		m.Persistent = false
		return m
	}
	sendMsg(t, p, np("a"), "")
	sendMsg(t, p, np("b"), "")
	if n := func() int { e.mu.Lock(); defer e.mu.Unlock(); return e.queues["/queue/np"].pending.n }(); n != 2 {
		t.Fatalf("non-persistent queue holds %d messages, want 2", n)
	}
}

func TestDedupeInTransaction(t *testing.T) {
	e, l := newEngine(t, Config{})
	p, _ := open(t, e, "")
	sendMsg(t, p, dedupeMsg("/queue/q", "a", "a"), "")
	if err := p.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	// A duplicate of a stored message, a new one, a duplicate within the
	// transaction, a topic publish with a seen id, and another new one.
	for _, m := range []*fsm.Message{
		dedupeMsg("/queue/q", "a again", "a"),
		dedupeMsg("/queue/q", "b", "b"),
		dedupeMsg("/queue/q", "b again", "b"),
		dedupeMsg("/topic/t", "topic b", "b"),
		dedupeMsg("/queue/q", "c", "c"),
	} {
		sendMsg(t, p, m, "tx")
	}
	do(t, func(done func(error)) error { return p.Commit("tx", done) })
	if n := stored(e, "/queue/q"); n != 3 {
		t.Fatalf("/queue/q holds %d messages, want 3 (a, b, c)", n)
	}
	l.mu.Lock()
	commit := l.props[len(l.props)-1]
	l.mu.Unlock()
	var ids []string
	for _, c := range commit {
		ids = append(ids, c.DedupeID)
	}
	if got, want := strings.Join(ids, ","), "a,b,b,b,c"; got != want {
		t.Fatalf("commit proposed ids %q, want %q", got, want)
	}

	// The same transaction replayed, as a client does after a failover:
	// nothing new is stored, and the commit succeeds.
	if err := p.Begin("tx2"); err != nil {
		t.Fatal(err)
	}
	sendMsg(t, p, dedupeMsg("/queue/q", "b", "b"), "tx2")
	sendMsg(t, p, dedupeMsg("/queue/q", "c", "c"), "tx2")
	do(t, func(done func(error)) error { return p.Commit("tx2", done) })
	if n := stored(e, "/queue/q"); n != 3 {
		t.Fatalf("after the replay /queue/q holds %d messages, want 3", n)
	}
}

func TestDedupeIDTooLong(t *testing.T) {
	e, l := newEngine(t, Config{})
	p, _ := open(t, e, "")
	long := strings.Repeat("x", fsm.MaxDedupeIDLen+1)
	if err := p.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	for _, tx := range []string{"", "tx"} {
		for _, persistent := range []bool{true, false} {
			m := dedupeMsg("/queue/q", "m", long)
			m.Persistent = persistent
			if err := p.Send(m, tx, func(error) { t.Error("done called for a refused send") }); err != ErrBadDedupeID {
				t.Fatalf("tx %q persistent %v: err = %v, want ErrBadDedupeID", tx, persistent, err)
			}
		}
	}
	if ErrBadDedupeID.Error() != "dedupe-id longer than 1024 bytes" {
		t.Errorf("error text %q", ErrBadDedupeID)
	}
	// The longest allowed, and a repeated header: the first counts.
	sendMsg(t, p, dedupeMsg("/queue/q", "max", long[1:]), "")
	m := dedupeMsg("/queue/q", "repeated", "first")
	m.Headers = append(m.Headers, fsm.Header{Key: HeaderDedupeID, Value: long})
	sendMsg(t, p, m, "")
	var ids []string
	for _, c := range l.proposed(fsm.OpEnqueue) {
		ids = append(ids, c.DedupeID)
	}
	if len(ids) != 2 || ids[0] != long[1:] || ids[1] != "first" {
		t.Fatalf("proposed ids %.20q, want the 1024-byte one and \"first\"", ids)
	}
	if err := p.Commit("tx", func(error) {}); err != nil {
		t.Fatal(err)
	}
}

// fakeClock is an engine clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// waitFor polls cond until it holds, failing the test after 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 5s", what)
}

func TestDedupeWindowSlides(t *testing.T) {
	clock := &fakeClock{t: time.UnixMilli(1_700_000_000_000)}
	l := newFSMLog(t)
	cfg := Config{ExpirySweep: time.Millisecond, DedupeWindow: time.Minute}
	e, err := newEngineWithClock(cfg, l, l.f, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	if err := l.f.Attach(e); err != nil {
		t.Fatal(err)
	}
	expiries := func() []int64 {
		var bs []int64
		for _, c := range l.proposed(fsm.OpExpireDedupe) {
			bs = append(bs, c.Before)
		}
		return bs
	}
	p, _ := open(t, e, "")
	t0 := clock.now()
	sendMsg(t, p, dedupeMsg("/queue/q", "first", "x"), "") // recorded at t0

	// A new engine waits a period (a quarter of the window) first.
	time.Sleep(20 * time.Millisecond) // many ticks; asserting nothing happens
	if bs := expiries(); len(bs) != 0 {
		t.Fatalf("expiries %v before a period passed", bs)
	}
	clock.advance(15 * time.Second)
	waitFor(t, "first expiry", func() bool { return len(expiries()) == 1 })
	if got, want := expiries()[0], t0.Add(15*time.Second-time.Minute).UnixMilli(); got != want {
		t.Fatalf("Before = %d, want now - window = %d", got, want)
	}
	// Still in the window.
	sendMsg(t, p, dedupeMsg("/queue/q", "resent", "x"), "")
	if n := stored(e, "/queue/q"); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}

	clock.advance(10 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if bs := expiries(); len(bs) != 1 {
		t.Fatalf("expiries %v within a period of the last", bs)
	}
	// 61s after t0 at the next expiry: x is forgotten, a resend is stored.
	clock.advance(36*time.Second + time.Millisecond)
	waitFor(t, "second expiry", func() bool { return len(expiries()) == 2 })
	if got := expiries()[1]; got <= t0.UnixMilli() {
		t.Fatalf("second Before %d does not pass the id's time %d", got, t0.UnixMilli())
	}
	// The log applies in order: this send comes after the expiry.
	sendMsg(t, p, dedupeMsg("/queue/q", "late resend", "x"), "")
	if n := stored(e, "/queue/q"); n != 2 {
		t.Fatalf("%d stored after the id expired, want 2", n)
	}
}

func TestDedupeEvery(t *testing.T) {
	for window, want := range map[time.Duration]time.Duration{
		2 * time.Minute: 30 * time.Second,
		time.Minute:     15 * time.Second,
		time.Hour:       30 * time.Second,
		time.Second:     250 * time.Millisecond,
	} {
		if got := dedupeEvery(window); got != want {
			t.Errorf("dedupeEvery(%v) = %v, want %v", window, got, want)
		}
	}
}

func TestConfigDedupeWindow(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil || c.DedupeWindow != 2*time.Minute {
		t.Fatalf("default: %v, %v; want 2m", c.DedupeWindow, err)
	}
	c = Config{DedupeWindow: -time.Second}
	if err := c.Validate(); err == nil {
		t.Fatal("a negative dedupe window was accepted")
	}
}
