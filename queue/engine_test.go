package queue

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/fsm"
)

// fsmLog applies proposals to a real FSM in order on its own goroutine,
// as raft would after a commit, without raft or a network.
type fsmLog struct {
	f     *fsm.FSM
	mu    sync.Mutex
	index uint64
	ch    chan func()
	props [][]fsm.Command // every proposal, for tests that inspect batching
}

func newFSMLog(t *testing.T) *fsmLog {
	t.Helper()
	f, err := fsm.Open(t.TempDir(), fsm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := &fsmLog{f: f, ch: make(chan func(), 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for fn := range l.ch {
			fn()
		}
	}()
	t.Cleanup(func() { close(l.ch); <-done; f.Close() })
	return l
}

func (l *fsmLog) Propose(cmds []fsm.Command, done func([]fsm.Result, error)) {
	l.mu.Lock()
	l.props = append(l.props, cmds)
	l.mu.Unlock()
	l.ch <- func() {
		l.index++
		resp := l.f.Apply(&raft.Log{Index: l.index, Term: 1, Type: raft.LogCommand, Data: fsm.EncodeBatch(cmds)})
		res, ok := resp.([]fsm.Result)
		if !ok {
			done(nil, fmt.Errorf("apply: %v", resp))
			return
		}
		done(res, nil)
	}
}

// recorder is an Outbound that keeps what it is handed.
type recorder struct {
	mu       sync.Mutex
	ds       []*Delivery
	writable bool
	closed   string // the reason CloseWithError was given
}

func (r *recorder) CloseWithError(reason string) {
	r.mu.Lock()
	r.closed = reason
	r.mu.Unlock()
}

func (r *recorder) Deliver(d *Delivery) {
	r.mu.Lock()
	r.ds = append(r.ds, d)
	r.mu.Unlock()
}

func (r *recorder) Writable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writable
}

// wait returns the n-th delivery (0-based), waiting for it.
func (r *recorder) wait(t *testing.T, n int) *Delivery {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		if len(r.ds) > n {
			d := r.ds[n]
			r.mu.Unlock()
			return d
		}
		r.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("delivery %d never came", n)
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ds)
}

func newEngine(t *testing.T, cfg Config) (*Engine, *fsmLog) {
	t.Helper()
	l := newFSMLog(t)
	e, err := NewEngine(cfg, l, l.f)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.f.Attach(e); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, l
}

func open(t *testing.T, e *Engine, clientID string) (*Session, *recorder) {
	t.Helper()
	out := &recorder{writable: true}
	s, err := e.Open(clientID, out)
	if err != nil {
		t.Fatal(err)
	}
	return s, out
}

// do calls an operation with a done callback and waits for it.
func do(t *testing.T, op func(done func(error)) error) {
	t.Helper()
	ch := make(chan error, 1)
	if err := op(func(err error) { ch <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ch:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("operation never completed")
	}
}

func send(t *testing.T, s *Session, dest, body string, prio uint8) {
	t.Helper()
	m := &fsm.Message{Destination: dest, Body: []byte(body), Priority: prio, Persistent: true}
	do(t, func(done func(error)) error { return s.Send(m, "", done) })
}

func subscribe(t *testing.T, s *Session, spec SubscribeSpec) {
	t.Helper()
	do(t, func(done func(error)) error { return s.Subscribe(spec, done) })
}

func TestRedeliveryIsFlaggedAndCounted(t *testing.T) {
	e, _ := newEngine(t, Config{MaxDeliveries: 3})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "m", 4)

	c1, out1 := open(t, e, "")
	subscribe(t, c1, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual})
	d := out1.wait(t, 0)
	if d.Redelivered || d.DeliveryCount != 1 {
		t.Fatalf("first delivery: redelivered=%v count=%d", d.Redelivered, d.DeliveryCount)
	}
	// The write failed mid-frame: the client may have the message.
	d.WriteFailed()
	c1.Close()

	c2, out2 := open(t, e, "")
	subscribe(t, c2, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual})
	d = out2.wait(t, 0)
	if !d.Redelivered || d.DeliveryCount != 2 {
		t.Fatalf("after a failed write: redelivered=%v count=%d, want true 2", d.Redelivered, d.DeliveryCount)
	}
	// A NACK that overtakes the transport's Written report still counts.
	do(t, func(done func(error)) error { return c2.Nack(AckRef{ID: d.AckID}, "", done) })
	d = out2.wait(t, 1)
	if d.DeliveryCount != 3 {
		t.Fatalf("after NACK: count=%d, want 3", d.DeliveryCount)
	}
	// The third delivery was the last: this NACK dead-letters it.
	do(t, func(done func(error)) error { return c2.Nack(AckRef{ID: d.AckID}, "", done) })
	dlq, outD := open(t, e, "")
	subscribe(t, dlq, SubscribeSpec{ID: "d", Destination: "/queue/DLQ.q", Ack: AckAuto})
	got := outD.wait(t, 0)
	if string(got.Msg.Body) != "m" || out2.count() != 2 {
		t.Fatalf("DLQ got %q; consumer saw %d deliveries", got.Msg.Body, out2.count())
	}
}

func TestPriorityAndReturnedOrder(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	for i, prio := range []uint8{1, 9, 4, 9, 1} {
		send(t, p, "/queue/q", fmt.Sprintf("m%d-p%d", i, prio), prio)
	}
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 1})
	first := out.wait(t, 0)
	if string(first.Msg.Body) != "m1-p9" {
		t.Fatalf("first = %s, want m1-p9", first.Msg.Body)
	}
	// Back it goes: it must come again before m3-p9, which arrived later.
	do(t, func(done func(error)) error { return c.Nack(AckRef{ID: first.AckID}, "", done) })
	var order []string
	for i := 1; i <= 5; i++ {
		d := out.wait(t, i)
		order = append(order, string(d.Msg.Body))
		do(t, func(done func(error)) error { return c.Ack(AckRef{ID: d.AckID}, "", done) })
	}
	want := []string{"m1-p9", "m3-p9", "m2-p4", "m0-p1", "m4-p1"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

func TestCommitIsOneProposal(t *testing.T) {
	e, l := newEngine(t, Config{})
	p, _ := open(t, e, "")
	send(t, p, "/queue/in", "to-ack", 4)
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/in", Ack: AckClientIndividual})
	d := out.wait(t, 0)

	if err := c.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		m := &fsm.Message{Destination: "/queue/out", Body: []byte{byte('a' + i)}, Persistent: true}
		do(t, func(done func(error)) error { return c.Send(m, "tx", done) })
	}
	do(t, func(done func(error)) error { return c.Ack(AckRef{ID: d.AckID}, "tx", done) })
	l.mu.Lock()
	before := len(l.props)
	l.mu.Unlock()
	do(t, func(done func(error)) error { return c.Commit("tx", done) })
	l.mu.Lock()
	props := l.props[before:]
	l.mu.Unlock()
	if len(props) != 1 || len(props[0]) != 4 {
		t.Fatalf("commit made %d proposals (%v), want one of 4 commands", len(props), props)
	}
}

func TestLoadFlagsStoredMessagesRedelivered(t *testing.T) {
	e, l := newEngine(t, Config{})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "stored", 4)
	e.Close()
	l.f.Detach()

	// A new leader's engine cannot know what its predecessor dispatched.
	e2, err := NewEngine(Config{}, l, l.f)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if err := l.f.Attach(e2); err != nil {
		t.Fatal(err)
	}
	c, out := open(t, e2, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckAuto})
	if d := out.wait(t, 0); !d.Redelivered || string(d.Msg.Body) != "stored" {
		t.Fatalf("loaded message: redelivered=%v body=%q", d.Redelivered, d.Msg.Body)
	}
}

func TestNotWritableHoldsMessagesBack(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	c, out := open(t, e, "")
	out.writable = false
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckAuto})
	send(t, p, "/queue/q", "held", 4)
	time.Sleep(50 * time.Millisecond) // asserting that nothing happens
	if n := out.count(); n != 0 {
		t.Fatalf("%d deliveries to a connection without room", n)
	}
	out.mu.Lock()
	out.writable = true
	out.mu.Unlock()
	c.Resume()
	if d := out.wait(t, 0); string(d.Msg.Body) != "held" {
		t.Fatalf("after Resume got %q", d.Msg.Body)
	}
}

func TestNonPersistentMemoryLimit(t *testing.T) {
	e, _ := newEngine(t, Config{NonPersistentBytes: 4096})
	p, _ := open(t, e, "")
	body := make([]byte, 1024)
	var err error
	sent := 0
	for ; sent < 10; sent++ {
		m := &fsm.Message{Destination: "/queue/np", Body: body}
		if err = p.Send(m, "", func(error) {}); err != nil {
			break
		}
	}
	if err != ErrMemoryLimit || sent < 2 || sent > 4 {
		t.Fatalf("after %d sends: err = %v, want ErrMemoryLimit after 2-4", sent, err)
	}
	// Consuming frees the budget.
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/np", Ack: AckAuto})
	for i := 0; i < sent; i++ {
		out.wait(t, i).Written()
	}
	if err := p.Send(&fsm.Message{Destination: "/queue/np", Body: body}, "", func(error) {}); err != nil {
		t.Fatalf("send after draining: %v", err)
	}
}

func TestDurableInUse(t *testing.T) {
	e, _ := newEngine(t, Config{})
	a, _ := open(t, e, "client-1")
	spec := SubscribeSpec{ID: "s", Destination: "/topic/t", DurableName: "d"}
	subscribe(t, a, spec)
	b, _ := open(t, e, "client-1")
	if err := b.Subscribe(spec, func(error) {}); err != ErrDurableInUse {
		t.Fatalf("second subscriber: err = %v, want ErrDurableInUse", err)
	}
	anon, _ := open(t, e, "")
	if err := anon.Subscribe(spec, func(error) {}); err != ErrNoClientID {
		t.Fatalf("no client-id: err = %v, want ErrNoClientID", err)
	}
}

func TestReadAheadPastTheCache(t *testing.T) {
	// A cache of one message: the rest of the backlog must be read from
	// the store, in order, and every message delivered once.
	e, _ := newEngine(t, Config{CacheBytes: 1})
	p, _ := open(t, e, "")
	const n = 300
	for i := 0; i < n; i++ {
		send(t, p, "/queue/backlog", fmt.Sprintf("m%03d", i), 4)
	}
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/backlog", Ack: AckAuto})
	for i := 0; i < n; i++ {
		d := out.wait(t, i)
		if want := fmt.Sprintf("m%03d", i); string(d.Msg.Body) != want {
			t.Fatalf("delivery %d = %q, want %q", i, d.Msg.Body, want)
		}
		d.Written()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cacheMem != 0 {
		t.Fatalf("cache holds %d bytes after every message was acked", e.cacheMem)
	}
}

func TestTransactionBytesBounded(t *testing.T) {
	e, _ := newEngine(t, Config{MaxTxBytes: 3000})
	s, _ := open(t, e, "")
	if err := s.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	big := func() *fsm.Message {
		return &fsm.Message{Destination: "/queue/q", Body: make([]byte, 1000), Persistent: true}
	}
	for i := 0; i < 2; i++ {
		if err := s.Send(big(), "tx", func(error) {}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := s.Send(big(), "tx", func(error) {}); err != ErrTxTooLarge {
		t.Fatalf("third 1 KB send into a 3000-byte transaction: err = %v, want ErrTxTooLarge", err)
	}
	// The limit is the connection's, all its open transactions together:
	// another transaction buys no more room.
	if err := s.Begin("tx2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(big(), "tx2", func(error) {}); err != ErrTxTooLarge {
		t.Fatalf("a 1 KB send into a second transaction with 2000 bytes in the first: err = %v, want ErrTxTooLarge", err)
	}
	// Ending the first frees its room; and one SEND larger than the limit
	// still fits when nothing else is buffered.
	if err := s.Abort("tx"); err != nil {
		t.Fatal(err)
	}
	huge := &fsm.Message{Destination: "/queue/q", Body: make([]byte, 10000), Persistent: true}
	if err := s.Send(huge, "tx2", func(error) {}); err != nil {
		t.Fatalf("large send into an empty transaction: %v", err)
	}
	do(t, func(done func(error)) error { return s.Commit("tx2", done) })
	e.mu.Lock()
	frames, bytes := s.txFrames, s.txBytes
	e.mu.Unlock()
	if frames != 0 || bytes != 0 {
		t.Errorf("after commit and abort the connection counts %d frames, %d bytes", frames, bytes)
	}
}

// TestOpenTransactionsBounded: a BEGIN counts as a frame of the
// connection's transactions, so empty ones are bounded too, and an id
// is at most MaxTxIDLen bytes.
func TestOpenTransactionsBounded(t *testing.T) {
	e, _ := newEngine(t, Config{MaxTxFrames: 3})
	s, _ := open(t, e, "")
	for _, id := range []string{"a", "b", "c"} {
		if err := s.Begin(id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Begin("d"); !errors.Is(err, ErrTooManyTxFrames) {
		t.Fatalf("a fourth open transaction with room for 3 frames: %v", err)
	}
	if err := s.Abort("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(strings.Repeat("x", MaxTxIDLen+1)); !errors.Is(err, ErrTxIDTooLong) {
		t.Fatalf("a long id: %v", err)
	}
	if err := s.Begin("d"); err != nil {
		t.Fatalf("after an abort: %v", err)
	}
}
