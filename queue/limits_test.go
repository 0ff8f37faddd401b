package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// sendAsync sends and returns where the outcome will be: Send's own error
// or done's.
func sendAsync(s *Session, m *fsm.Message) <-chan error {
	ch := make(chan error, 1)
	if err := s.Send(m, "", func(err error) { ch <- err }); err != nil {
		ch <- err
	}
	return ch
}

func pmsg(dest, body string) *fsm.Message {
	return &fsm.Message{Destination: dest, Body: []byte(body), Priority: 4, Persistent: true}
}

// outcome waits for a send's outcome.
func outcome(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("send never completed")
		return nil
	}
}

// stillHeld asserts that a send has not completed yet.
func stillHeld(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("held send completed: %v", err)
	case <-time.After(50 * time.Millisecond): // asserting that nothing happens
	}
}

// held returns how many sends wait for room in queue.
func held(e *Engine, queue string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if q := e.queues[queue]; q != nil {
		return q.held.n
	}
	return 0
}

// reservations returns the engine's reservations and the store bytes they hold.
func reservations(e *Engine) (int, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.rsv), e.storeRsv
}

func TestLimitFail(t *testing.T) {
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 2, OnFull: Fail}})
	p, _ := open(t, e, "")
	send(t, p, "/queue/orders", "a", 4)
	send(t, p, "/queue/orders", "b", 4)
	err := p.Send(pmsg("/queue/orders", "c"), "", func(error) { t.Error("done called for a refused send") })
	if !errors.Is(err, ErrDestinationFull) {
		t.Fatalf("third send: err = %v, want ErrDestinationFull", err)
	}
	if want := "destination /queue/orders is full (2 messages, limit 2)"; err.Error() != want {
		t.Fatalf("error text %q, want %q", err, want)
	}
	var full *FullError
	if !errors.As(err, &full) || full.Used != 2 || full.Limit != 2 {
		t.Fatalf("error %#v", err)
	}
	if n := stored(e, "/queue/orders"); n != 2 {
		t.Fatalf("queue holds %d, want 2", n)
	}
	st := destStats(t, e, "/queue/orders")
	if st.SendsFailed != 1 || st.SendsBlocked != 0 || st.MaxMessages != 2 || st.OnFull != "fail" || st.Pending != 2 {
		t.Fatalf("stats %+v", st)
	}
	if n, b := reservations(e); n != 0 || b != 0 {
		t.Fatalf("%d reservations (%d bytes) left after the sends completed", n, b)
	}

	// An ack makes room.
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/orders", Ack: AckClientIndividual, Prefetch: 1})
	ack(t, c, out.wait(t, 0))
	send(t, p, "/queue/orders", "c", 4)
	if n := stored(e, "/queue/orders"); n != 2 {
		t.Fatalf("queue holds %d, want 2", n)
	}
}

func TestLimitNonPersistent(t *testing.T) {
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 1, OnFull: Fail}, StoreLimit: 1})
	p, _ := open(t, e, "")
	if err := outcome(t, sendAsync(p, &fsm.Message{Destination: "/queue/np", Body: []byte("a")})); err != nil {
		t.Fatal(err)
	}
	err := outcome(t, sendAsync(p, &fsm.Message{Destination: "/queue/np", Body: []byte("b")}))
	if !errors.Is(err, ErrDestinationFull) {
		t.Fatalf("second non-persistent send: %v, want ErrDestinationFull", err)
	}
	// Not stored, so not in the store's count.
	if b := e.StoreBytes(); b != 0 {
		t.Fatalf("store bytes %d with only a non-persistent message", b)
	}
}

func TestLimitBlockUntilAck(t *testing.T) {
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 2}})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "a", 4)
	send(t, p, "/queue/q", "b", 4)
	third := sendAsync(p, pmsg("/queue/q", "c"))
	stillHeld(t, third)
	if n, h := stored(e, "/queue/q"), held(e, "/queue/q"); n != 2 || h != 1 {
		t.Fatalf("queue holds %d with %d held, want 2 and 1", n, h)
	}
	if st := destStats(t, e, "/queue/q"); st.SendsHeld != 1 || st.SendsBlocked != 1 || st.OnFull != "block" {
		t.Fatalf("stats while held %+v", st)
	}

	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	d := out.wait(t, 0)
	stillHeld(t, third) // delivered is not acked: it still counts
	ack(t, c, d)
	if err := outcome(t, third); err != nil {
		t.Fatalf("held send: %v", err)
	}
	if n := stored(e, "/queue/q"); n != 2 {
		t.Fatalf("queue holds %d, want 2", n)
	}
	if st := destStats(t, e, "/queue/q"); st.SendsHeld != 0 || st.SendsBlocked != 1 || st.SendsFailed != 0 {
		t.Fatalf("stats after %+v", st)
	}
}

func TestLimitBlockFIFO(t *testing.T) {
	// A bytes limit lets a small send fit where a large one does not: it
	// must still wait behind the large one.
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxBytes: 1000}})
	p1, _ := open(t, e, "")
	p2, _ := open(t, e, "")
	send(t, p1, "/queue/q", strings.Repeat("x", 600), 4)
	big := sendAsync(p1, pmsg("/queue/q", strings.Repeat("b", 600)))
	small := sendAsync(p2, pmsg("/queue/q", "small"))
	stillHeld(t, big)
	stillHeld(t, small)
	if h := held(e, "/queue/q"); h != 2 {
		t.Fatalf("%d held, want 2", h)
	}

	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	ack(t, c, out.wait(t, 0))
	if err := outcome(t, big); err != nil {
		t.Fatal(err)
	}
	if err := outcome(t, small); err != nil {
		t.Fatal(err)
	}
	ack(t, c, out.wait(t, 1))
	ack(t, c, out.wait(t, 2))
	if got := out.bodies(); len(got) != 3 || got[1][0] != 'b' || got[2] != "small" {
		t.Fatalf("delivered %.12q, want the first, the big one, then the small one", got)
	}
}

func TestLimitBlockOrderOfManyProducers(t *testing.T) {
	const limit, producers, each = 5, 8, 25
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: limit}})
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckAuto})

	var wg sync.WaitGroup
	errs := make(chan error, producers*each)
	for i := range producers {
		p, _ := open(t, e, "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				m := pmsg("/queue/q", fmt.Sprintf("%d-%03d", i, j))
				if err := p.Send(m, "", func(err error) { errs <- err }); err != nil {
					errs <- err
				}
			}
		}()
	}
	last := make(map[string]string)
	for n := range producers * each {
		d := out.wait(t, n)
		e.mu.Lock()
		q := e.queues["/queue/q"]
		if used := q.msgs + q.rsvMsgs; used > limit {
			e.mu.Unlock()
			t.Fatalf("queue holds %d with its sends in raft, limit %d", used, limit)
		}
		e.mu.Unlock()
		who, seq, _ := strings.Cut(string(d.Msg.Body), "-")
		if seq <= last[who] {
			t.Fatalf("producer %s: %s after %s", who, seq, last[who])
		}
		last[who] = seq
		d.Written()
	}
	wg.Wait()
	for range producers * each {
		if err := outcome(t, errs); err != nil {
			t.Fatal(err)
		}
	}
	if st := destStats(t, e, "/queue/q"); st.SendsBlocked == 0 || st.SendsHeld != 0 || st.SendsFailed != 0 {
		t.Fatalf("stats %+v: want some sends blocked, none held or failed now", st)
	}
}

func TestLimitBlockTimeout(t *testing.T) {
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 1, BlockTimeout: 50 * time.Millisecond}})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "a", 4)
	start := time.Now()
	err := outcome(t, sendAsync(p, pmsg("/queue/q", "b")))
	if !errors.Is(err, ErrDestinationFull) {
		t.Fatalf("held send: %v, want ErrDestinationFull", err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Fatalf("gave up after %v", waited)
	}
	if want := "destination /queue/q is full (1 message, limit 1) after waiting 50ms"; err.Error() != want {
		t.Fatalf("error text %q, want %q", err, want)
	}
	if n, h := stored(e, "/queue/q"), held(e, "/queue/q"); n != 1 || h != 0 {
		t.Fatalf("queue holds %d with %d held, want 1 and 0", n, h)
	}
	if st := destStats(t, e, "/queue/q"); st.SendsBlocked != 1 || st.SendsFailed != 1 || st.BlockTimeoutMs != 50 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLimitCloseReleasesHeld(t *testing.T) {
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 1}})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "a", 4)
	p2, _ := open(t, e, "")
	b := sendAsync(p2, pmsg("/queue/q", "b"))
	c := sendAsync(p, pmsg("/queue/q", "c"))
	stillHeld(t, b)
	p2.Close()
	if err := outcome(t, b); !errors.Is(err, ErrClosed) {
		t.Fatalf("send held by a closed session: %v, want ErrClosed", err)
	}
	stillHeld(t, c)
	e.Close()
	if err := outcome(t, c); !errors.Is(err, ErrClosed) {
		t.Fatalf("send held by a closed engine: %v, want ErrClosed", err)
	}
	if n := stored(e, "/queue/q"); n != 1 {
		t.Fatalf("queue holds %d, want 1: nothing held may be stored", n)
	}
}

func TestLimitPurgeAndDeleteAdmitHeld(t *testing.T) {
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 1}})
	ctx := context.Background()
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "a", 4)
	b := sendAsync(p, pmsg("/queue/q", "b"))
	stillHeld(t, b)
	if _, err := e.Purge(ctx, "/queue/q"); err != nil {
		t.Fatal(err)
	}
	if err := outcome(t, b); err != nil {
		t.Fatal(err)
	}
	c := sendAsync(p, pmsg("/queue/q", "c"))
	stillHeld(t, c)
	if err := e.DeleteQueue(ctx, "/queue/q"); err != nil {
		t.Fatal(err)
	}
	if err := outcome(t, c); err != nil {
		t.Fatal(err)
	}
	// What the purge and the delete admitted came after them.
	s, out := open(t, e, "")
	subscribe(t, s, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckAuto})
	if d := out.wait(t, 0); string(d.Msg.Body) != "c" {
		t.Fatalf("got %q, want c", d.Msg.Body)
	}
	if n := stored(e, "/queue/q"); n != 1 {
		t.Fatalf("queue holds %d, want 1", n)
	}
}

func TestLimitBytes(t *testing.T) {
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxBytes: 2000, OnFull: Fail}})
	p, _ := open(t, e, "")
	// Larger than the limit, into an empty queue: it goes.
	send(t, p, "/queue/q", strings.Repeat("x", 5000), 4)
	err := p.Send(pmsg("/queue/q", "small"), "", func(error) {})
	var full *FullError
	if !errors.As(err, &full) || full.Unit != "bytes" || full.Limit != 2000 || full.Used < 5000 {
		t.Fatalf("small send into a queue over its bytes: %v", err)
	}
	if !strings.Contains(err.Error(), "bytes, limit 2000, adding") {
		t.Fatalf("error text %q", err)
	}
	if st := destStats(t, e, "/queue/q"); st.Bytes < 5000 || st.MaxBytes != 2000 {
		t.Fatalf("stats %+v", st)
	}

	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckAuto})
	out.wait(t, 0).Written()
	waitFor(t, "the queue to empty", func() bool { return stored(e, "/queue/q") == 0 })
	c.Close()
	send(t, p, "/queue/q", strings.Repeat("y", 900), 4)
	send(t, p, "/queue/q", strings.Repeat("y", 900), 4)
	if err := p.Send(pmsg("/queue/q", strings.Repeat("y", 900)), "", func(error) {}); !errors.Is(err, ErrDestinationFull) {
		t.Fatalf("third 900-byte send into 2000 bytes: %v", err)
	}
}

func TestStoreLimitAcrossQueues(t *testing.T) {
	size := int64(pmsg("/queue/a", strings.Repeat("x", 1000)).Size()) + int64(len("ID:raftmq-00000000-1")) + MessageOverhead
	e, _ := newEngine(t, Config{StoreLimit: 3 * size, QueueLimit: DestLimit{OnFull: Fail}})
	p, _ := open(t, e, "")
	body := strings.Repeat("x", 1000)
	send(t, p, "/queue/a", body, 4)
	send(t, p, "/queue/b", body, 4)
	send(t, p, "/queue/a", body, 4)
	if b := e.StoreBytes(); b != 3*size {
		t.Fatalf("store bytes %d, want %d", b, 3*size)
	}
	err := p.Send(pmsg("/queue/b", body), "", func(error) {})
	var full *FullError
	if !errors.As(err, &full) || full.Unit != "bytes in the store" || full.Destination != "/queue/b" {
		t.Fatalf("send into a full store: %v", err)
	}
	if !strings.HasPrefix(err.Error(), "destination /queue/b is full (") {
		t.Fatalf("error text %q", err)
	}
	// Room in the store is room for any queue.
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/a", Ack: AckClientIndividual, Prefetch: 1})
	ack(t, c, out.wait(t, 0))
	send(t, p, "/queue/b", body, 4)
	if st := destStats(t, e, "/queue/b"); st.SendsFailed != 1 || st.Pending != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStoreLimitBlocks(t *testing.T) {
	e, _ := newEngine(t, Config{StoreLimit: 1})
	p, _ := open(t, e, "")
	send(t, p, "/queue/a", "first", 4) // an empty store takes one
	held := sendAsync(p, pmsg("/queue/b", "second"))
	stillHeld(t, held)
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/a", Ack: AckAuto})
	out.wait(t, 0).Written()
	if err := outcome(t, held); err != nil {
		t.Fatal(err)
	}
}

// gateLog holds proposals until it is opened: the sends they carry are
// accepted and not applied.
type gateLog struct {
	next Log
	mu   sync.Mutex
	held []func()
	open bool
	fail error // when set, every proposal fails with it
}

func (g *gateLog) Propose(cmds []fsm.Command, done func([]fsm.Result, error)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fail != nil {
		go done(nil, g.fail)
		return
	}
	if !g.open {
		g.held = append(g.held, func() { g.next.Propose(cmds, done) })
		return
	}
	g.next.Propose(cmds, done)
}

func (g *gateLog) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
	for _, f := range g.held {
		f()
	}
	g.held = nil
}

func newGatedEngine(t *testing.T, cfg Config) (*Engine, *gateLog) {
	t.Helper()
	l := newFSMLog(t)
	g := &gateLog{next: l}
	e, err := NewEngine(cfg, g, l.f)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.f.Attach(e); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, g
}

func TestLimitCountsSendsInRaft(t *testing.T) {
	const limit, senders = 10, 50
	e, g := newGatedEngine(t, Config{QueueLimit: DestLimit{MaxMessages: limit, OnFull: Fail}})
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, refused := 0, 0
	dones := make(chan error, senders)
	for i := range senders {
		p, _ := open(t, e, "")
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.Send(pmsg("/queue/q", fmt.Sprint(i)), "", func(err error) { dones <- err })
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, ErrDestinationFull):
				refused++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if accepted != limit || refused != senders-limit {
		t.Fatalf("%d accepted, %d refused; want %d and %d", accepted, refused, limit, senders-limit)
	}
	if n := stored(e, "/queue/q"); n != 0 {
		t.Fatalf("%d stored before raft applied anything", n)
	}
	if st := destStats(t, e, "/queue/q"); st.Bytes == 0 || st.Pending != 0 {
		t.Fatalf("stats with sends in raft %+v", st)
	}
	g.release()
	for range limit {
		if err := outcome(t, dones); err != nil {
			t.Fatal(err)
		}
	}
	if n := stored(e, "/queue/q"); n != limit {
		t.Fatalf("%d stored, want %d", n, limit)
	}
	if n, _ := reservations(e); n != 0 {
		t.Fatalf("%d reservations left", n)
	}
}

func TestLimitReleasesDuplicatesAndFailures(t *testing.T) {
	e, g := newGatedEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 2, OnFull: Fail}})
	p, _ := open(t, e, "")
	first := sendAsync(p, dedupeMsg("/queue/q", "a", "id-1"))
	again := sendAsync(p, dedupeMsg("/queue/q", "a", "id-1"))
	if err := p.Send(pmsg("/queue/q", "c"), "", func(error) {}); !errors.Is(err, ErrDestinationFull) {
		t.Fatalf("third send with two in raft: %v", err)
	}
	g.release()
	if err := outcome(t, first); err != nil {
		t.Fatal(err)
	}
	if err := outcome(t, again); err != nil {
		t.Fatal(err)
	}
	// The duplicate stored nothing and gave its room back.
	if n := stored(e, "/queue/q"); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}
	if r, _ := reservations(e); r != 0 {
		t.Fatalf("%d reserved after the sends completed, want 0", r)
	}
	send(t, p, "/queue/q", "b", 4)

	// A proposal that fails gives its room back too.
	g.mu.Lock()
	g.fail = errors.New("lost leadership")
	g.mu.Unlock()
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	d := out.wait(t, 0)
	c.Ack(AckRef{ID: d.AckID}, "", func(error) {}) // dropped here; its removal fails in raft
	if err := outcome(t, sendAsync(p, pmsg("/queue/q", "lost"))); err == nil {
		t.Fatal("send through a failing log succeeded")
	}
	if n, b := reservations(e); n != 0 || b != 0 {
		t.Fatalf("%d reservations (%d bytes) after a failed proposal", n, b)
	}
}

func TestSlowConsumerHoldsProducer(t *testing.T) {
	const limit, sends = 10, 100
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: limit}})
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/slow", Ack: AckClientIndividual, Prefetch: 1})
	p, _ := open(t, e, "")
	dones := make([]<-chan error, sends)
	for i := range sends {
		dones[i] = sendAsync(p, pmsg("/queue/slow", fmt.Sprint(i)))
	}
	waitFor(t, "the queue to fill", func() bool { return stored(e, "/queue/slow") == limit })
	stillHeld(t, dones[limit])
	if n, h := stored(e, "/queue/slow"), held(e, "/queue/slow"); n != limit || h != sends-limit {
		t.Fatalf("%d stored, %d held; want %d and %d", n, h, limit, sends-limit)
	}
	// The consumer takes one: one more gets in, and no more.
	ack(t, c, out.wait(t, 0))
	if err := outcome(t, dones[limit]); err != nil {
		t.Fatal(err)
	}
	stillHeld(t, dones[limit+1])
	if n := stored(e, "/queue/slow"); n != limit {
		t.Fatalf("%d stored, want %d", n, limit)
	}
}

func TestLimitRules(t *testing.T) {
	cfg := Config{
		QueueLimit: DestLimit{MaxMessages: 2, OnFull: Fail},
		QueueLimits: []LimitRule{
			{Pattern: MustCompilePattern("orders.>"), Limit: DestLimit{MaxMessages: 1, OnFull: Fail}},
			{Pattern: MustCompilePattern("orders.eu"), Limit: DestLimit{MaxMessages: 5}}, // never reached
			{Pattern: MustCompilePattern("*.audit"), Limit: DestLimit{}},                 // no limit
		},
	}
	for dest, want := range map[string]int64{
		"/queue/orders":    2, // orders.> covers what is below orders, not orders itself
		"/queue/orders.eu": 1, "/queue/x.audit": 0, "/queue/x.audit.y": 2, "/queue/other": 2,
	} {
		if got := cfg.LimitFor(dest).MaxMessages; got != want {
			t.Errorf("LimitFor(%s) = %d, want %d", dest, got, want)
		}
	}
	e, _ := newEngine(t, cfg)
	p, _ := open(t, e, "")
	accepts := func(dest string) int {
		n := 0
		for ; n < 10; n++ {
			if err := p.Send(pmsg(dest, "m"), "", func(error) {}); err != nil {
				if !errors.Is(err, ErrDestinationFull) {
					t.Fatal(err)
				}
				break
			}
		}
		return n
	}
	for dest, want := range map[string]int{"/queue/orders.eu": 1, "/queue/x.audit": 10, "/queue/other": 2} {
		if got := accepts(dest); got != want {
			t.Errorf("%s took %d sends, want %d", dest, got, want)
		}
	}
}

func TestLimitConfig(t *testing.T) {
	for _, s := range []string{"block", "fail"} {
		p, err := ParseFullPolicy(s)
		if err != nil || p.String() != s {
			t.Errorf("ParseFullPolicy(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseFullPolicy("drop"); err == nil {
		t.Error("ParseFullPolicy accepted drop")
	}
	for _, cfg := range []Config{
		{StoreLimit: -1},
		{QueueLimit: DestLimit{MaxBytes: -1}},
		{QueueLimit: DestLimit{OnFull: 7}},
		{QueueLimits: []LimitRule{{Limit: DestLimit{MaxMessages: 1}}}}, // no pattern
		{QueueLimits: []LimitRule{{Pattern: MustCompilePattern("a"), Limit: DestLimit{BlockTimeout: -1}}}},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", cfg)
		}
	}
	// Stats carry the limits under snake_case names.
	b, err := json.Marshal(DestinationStats{MaxMessages: 1, OnFull: "block"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"max_messages":1`, `"max_bytes":0`, `"on_full":"block"`, `"block_timeout_ms":0`,
		`"bytes":0`, `"sends_held":0`, `"sends_blocked":0`, `"sends_failed":0`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
}

func TestLimitTransactionFail(t *testing.T) {
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 3, OnFull: Fail}})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "a", 4)
	send(t, p, "/queue/q", "b", 4)
	if err := p.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	sendMsg(t, p, pmsg("/queue/q", "t1"), "tx")
	sendMsg(t, p, pmsg("/queue/q", "t2"), "tx")
	sendMsg(t, p, pmsg("/queue/other", "t3"), "tx")
	err := p.Commit("tx", func(error) { t.Error("done called for a refused commit") })
	if !errors.Is(err, ErrDestinationFull) || !strings.Contains(err.Error(), "(2 messages, limit 3, adding 2)") {
		t.Fatalf("commit of 2 into 1 free: %v", err)
	}
	if n, m := stored(e, "/queue/q"), stored(e, "/queue/other"); n != 2 || m != 0 {
		t.Fatalf("stored %d and %d after a refused commit, want 2 and 0", n, m)
	}
	// The transaction is still open: the client may abort it (the
	// transport closes the connection after the ERROR, which aborts it).
	if err := p.Abort("tx"); err != nil {
		t.Fatal(err)
	}

	// More than the queue may ever hold is refused even when blocking.
	e2, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 2}})
	p2, _ := open(t, e2, "")
	if err := p2.Begin("big"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sendMsg(t, p2, pmsg("/queue/q", fmt.Sprint(i)), "big")
	}
	if err := p2.Commit("big", func(error) {}); !errors.Is(err, ErrDestinationFull) {
		t.Fatalf("commit of 3 into a queue of 2: %v", err)
	}
}

func TestLimitTransactionBlock(t *testing.T) {
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 2}})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "a", 4)
	send(t, p, "/queue/q", "b", 4)
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	da := out.wait(t, 0)

	if err := p.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	sendMsg(t, p, pmsg("/queue/q", "t1"), "tx")
	sendMsg(t, p, pmsg("/queue/other", "t2"), "tx")
	commit := make(chan error, 1)
	if err := p.Commit("tx", func(err error) { commit <- err }); err != nil {
		t.Fatal(err)
	}
	stillHeld(t, commit)
	if n := stored(e, "/queue/other"); n != 0 {
		t.Fatalf("a held commit stored %d in another queue", n)
	}
	// A later send to the queue waits behind the commit.
	later := sendAsync(p, pmsg("/queue/q", "later"))
	ack(t, c, da)
	if err := outcome(t, commit); err != nil {
		t.Fatal(err)
	}
	if n := stored(e, "/queue/other"); n != 1 {
		t.Fatalf("commit stored %d in /queue/other, want 1", n)
	}
	stillHeld(t, later)
	ack(t, c, out.wait(t, 1))
	if err := outcome(t, later); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := 2; i < 4; i++ {
		d := out.wait(t, i)
		got = append(got, string(d.Msg.Body))
		ack(t, c, d)
	}
	if fmt.Sprint(got) != "[t1 later]" {
		t.Fatalf("delivered %v, want the commit's send before the later one", got)
	}
}

func TestLimitTransactionAcksMakeRoom(t *testing.T) {
	// A consumer that takes from a full queue and sends back to it in one
	// transaction must not wait for itself.
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 1}})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "a", 4)
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	d := out.wait(t, 0)
	if err := c.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	do(t, func(done func(error)) error { return c.Ack(AckRef{ID: d.AckID}, "tx", done) })
	sendMsg(t, c, pmsg("/queue/q", "again"), "tx")
	do(t, func(done func(error)) error { return c.Commit("tx", done) })
	if d := out.wait(t, 1); string(d.Msg.Body) != "again" {
		t.Fatalf("got %q", d.Msg.Body)
	}
}

func TestLimitHeldCommitAbortedOnClose(t *testing.T) {
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 1}})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "a", 4)
	send(t, p, "/queue/in", "in", 4)
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/in", Ack: AckClientIndividual})
	d := out.wait(t, 0)
	if err := c.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	do(t, func(done func(error)) error { return c.Ack(AckRef{ID: d.AckID}, "tx", done) })
	sendMsg(t, c, pmsg("/queue/q", "t"), "tx")
	commit := make(chan error, 1)
	if err := c.Commit("tx", func(err error) { commit <- err }); err != nil {
		t.Fatal(err)
	}
	stillHeld(t, commit)
	c.Close()
	if err := outcome(t, commit); !errors.Is(err, ErrClosed) {
		t.Fatalf("held commit of a closed session: %v, want ErrClosed", err)
	}
	// Its ack was not applied: the message goes to the next consumer.
	c2, out2 := open(t, e, "")
	subscribe(t, c2, SubscribeSpec{ID: "s", Destination: "/queue/in", Ack: AckAuto})
	if d := out2.wait(t, 0); string(d.Msg.Body) != "in" || !d.Redelivered {
		t.Fatalf("got %q redelivered=%v", d.Msg.Body, d.Redelivered)
	}
	if n := stored(e, "/queue/q"); n != 1 {
		t.Fatalf("/queue/q holds %d, want 1", n)
	}
}

func TestWaitListCompacts(t *testing.T) {
	var l waitList
	ws := make([]*waiter, 100)
	for i := range ws {
		ws[i] = &waiter{seq: uint64(i)}
		l.push(ws[i])
	}
	// Everything behind a stuck head leaves (timeouts, closed sessions).
	for _, w := range ws[1:80] {
		w.gone = true
		l.removed()
	}
	if len(l.ws)-l.head > l.n+max(32, l.n) {
		t.Fatalf("%d entries kept for %d live waiters", len(l.ws)-l.head, l.n)
	}
	var order []uint64
	for w := l.peek(); w != nil; w = l.peek() {
		order = append(order, w.seq)
		w.gone = true
		l.removed()
	}
	if len(order) != 21 || order[0] != 0 || order[1] != 80 || order[20] != 99 {
		t.Fatalf("order after compaction %v", order)
	}
}

// TestHeldBytesBound: blocked sends of all queues together hold at most
// HeldBytes of messages; a send beyond it is refused at once, and room
// frees as held sends are admitted.
func TestHeldBytesBound(t *testing.T) {
	body := strings.Repeat("x", 1000)
	size := int64(pmsg("/queue/a", body).Size())
	// The engine adds a message-id before it holds a send: room for it.
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 1}, HeldBytes: 2*size + 200})
	p, _ := open(t, e, "")
	send(t, p, "/queue/a", "first", 4)
	send(t, p, "/queue/b", "first", 4)
	heldA := sendAsync(p, pmsg("/queue/a", body))
	heldB := sendAsync(p, pmsg("/queue/b", body))
	stillHeld(t, heldA)
	stillHeld(t, heldB)
	e.mu.Lock()
	two := e.heldBytes
	e.mu.Unlock()
	err := outcome(t, sendAsync(p, pmsg("/queue/a", body)))
	var full *FullError
	if !errors.As(err, &full) || full.Unit != unitHeldBytes || !errors.Is(err, ErrDestinationFull) {
		t.Fatalf("send past the held-sends memory: %v", err)
	}
	if !strings.Contains(err.Error(), "holds as many blocked sends as it may") {
		t.Errorf("error text %q", err)
	}
	if st := destStats(t, e, "/queue/a"); st.SendsHeld != 1 || st.SendsFailed != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Drain /queue/a: its held send is admitted, and the room it took
	// is free for the next one.
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/a", Ack: AckClientIndividual, Prefetch: 1})
	ack(t, c, out.wait(t, 0))
	if err := outcome(t, heldA); err != nil {
		t.Fatalf("held send: %v", err)
	}
	again := sendAsync(p, pmsg("/queue/a", body))
	stillHeld(t, again)
	e.mu.Lock()
	used := e.heldBytes
	e.mu.Unlock()
	if used != two {
		t.Errorf("held bytes %d, want %d as before", used, two)
	}
}

// TestHeldCommitCountsInTxLimits: a held commit's frames count against
// the connection's transaction limits until it is admitted, so holding
// commits buys no more room than keeping transactions open.
func TestHeldCommitCountsInTxLimits(t *testing.T) {
	// Each BEGIN counts as a frame: the first transaction holds 3.
	e, _ := newEngine(t, Config{QueueLimit: DestLimit{MaxMessages: 1}, MaxTxFrames: 4})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "a", 4)
	if err := p.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	sendMsg(t, p, pmsg("/queue/q", "t1"), "tx")
	sendMsg(t, p, pmsg("/queue/q", "t2"), "tx")
	if err := p.Begin("more"); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(pmsg("/queue/other", "x"), "more", func(error) {}); !errors.Is(err, ErrTooManyTxFrames) {
		t.Fatalf("a fifth frame, in a second transaction: %v, want ErrTooManyTxFrames", err)
	}
	if err := p.Abort("more"); err != nil {
		t.Fatal(err)
	}
	// A queue of two holding one: the commit of two waits for room.
	e.mu.Lock()
	e.queues["/queue/q"].limit.MaxMessages = 2
	e.mu.Unlock()
	commit := make(chan error, 1)
	if err := p.Commit("tx", func(err error) { commit <- err }); err != nil {
		t.Fatal(err)
	}
	stillHeld(t, commit)
	if err := p.Begin("later"); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(pmsg("/queue/other", "x"), "later", func(error) {}); !errors.Is(err, ErrTooManyTxFrames) {
		t.Fatalf("a frame beside a held commit of 3: %v, want ErrTooManyTxFrames", err)
	}
	// A consumer makes room: the commit goes, and its frames stop counting.
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckAuto})
	out.wait(t, 0).Written()
	if err := outcome(t, commit); err != nil {
		t.Fatalf("held commit: %v", err)
	}
	sendMsg(t, p, pmsg("/queue/other", "x"), "later")
}
