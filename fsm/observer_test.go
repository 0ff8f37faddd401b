package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// mirror rebuilds the state from Load and Applied, as the leader's
// delivery engine does.
type mirror struct {
	mu       sync.Mutex
	entries  map[string]map[uint64]Meta // queue -> seq -> meta
	durables map[string]Durable
}

func (m *mirror) Load(v View) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = make(map[string]map[uint64]Meta)
	m.durables = make(map[string]Durable)
	qs, err := v.Queues()
	if err != nil {
		return err
	}
	for _, q := range qs {
		m.entries[q] = make(map[uint64]Meta)
		err := v.Entries(q, func(seq uint64, meta Meta) error {
			m.entries[q][seq] = meta
			return nil
		})
		if err != nil {
			return err
		}
	}
	ds, err := v.Durables()
	for _, d := range ds {
		m.durables[d.Queue()] = d
	}
	return err
}

func (m *mirror) Applied(changes []Change) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range changes {
		switch c.Kind {
		case Enqueued:
			if m.entries[c.Queue] == nil {
				m.entries[c.Queue] = make(map[uint64]Meta)
			}
			m.entries[c.Queue][c.Seq] = MetaOf(c.Msg)
		case Removed:
			delete(m.entries[c.Queue], c.Seq)
		case Purged:
			m.entries[c.Queue] = make(map[uint64]Meta)
		case QueueDeleted:
			delete(m.entries, c.Queue)
		case DurableAdded:
			m.durables[c.Durable.Queue()] = *c.Durable
			if m.entries[c.Durable.Queue()] == nil {
				m.entries[c.Durable.Queue()] = make(map[uint64]Meta)
			}
		case DurableRemoved:
			// Its queue and entries went with it (a replacement adds the
			// queue back, empty).
			delete(m.durables, c.Durable.Queue())
			delete(m.entries, c.Durable.Queue())
		}
	}
}

func (m *mirror) sameAs(t *testing.T, d *dump) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	want := &mirror{entries: make(map[string]map[uint64]Meta), durables: make(map[string]Durable)}
	for _, q := range d.Queues {
		want.entries[q] = make(map[uint64]Meta)
		for _, e := range d.Entries[q] {
			want.entries[q][e.Seq] = e.Meta
		}
	}
	for _, dd := range d.Durables {
		want.durables[dd.Queue()] = dd
	}
	if !reflect.DeepEqual(m.entries, want.entries) || !reflect.DeepEqual(m.durables, want.durables) {
		t.Fatalf("mirror diverged:\n got %v %v\nwant %v %v", m.entries, m.durables, want.entries, want.durables)
	}
}

// workload returns the i-th of a deterministic mix of commands.
func workload(i int) []Command {
	q := fmt.Sprintf("/queue/q%d", i%3)
	cmds := []Command{enqueue(q, fmt.Sprint("m", i), "body", "n", fmt.Sprint(i))}
	switch i % 10 {
	case 2:
		// Every message has the same timestamp: this forgets every id.
		if i%50 == 2 {
			cmds = append(cmds, Command{Op: OpExpireDedupe, Before: testMessage("", "", "").Timestamp + 1},
				setMember(fmt.Sprint("n", i%3), fmt.Sprint("h", i)))
		}
	case 4:
		// Ids repeat: some are duplicates, some new queues are never made.
		dq := fmt.Sprintf("/queue/d%d", i%7)
		c := enqueue(dq, fmt.Sprint("m", i), "body")
		c.DedupeID = fmt.Sprint("d", i%60)
		cmds = append(cmds, c)
	case 3:
		cmds = append(cmds, Command{Op: OpAck, Queue: q, Seqs: []uint64{uint64(i), uint64(i - 1), uint64(i - 2)}})
	case 5:
		// Forwarded by a bridge: the path travels into the stored meta.
		cmds = append(cmds, Command{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("p", "/topic/t", "x", HeaderNetworkPath, "A,B")})
	case 6:
		cmds = append(cmds, Command{Op: OpDeadLetter, Queue: q, Seqs: []uint64{uint64(i - 3)}, Target: "/queue/dlq", Reason: "r"})
	case 7:
		sel := fmt.Sprint("n > ", i%4)
		cmds = append(cmds, Command{Op: OpSubscribe, Durable: &Durable{ClientID: "c", Name: fmt.Sprint(i % 2), Topic: "/topic/t", Selector: sel}})
	case 8:
		if i%40 == 8 {
			cmds = append(cmds, Command{Op: OpPurge, Queue: q})
		}
	case 9:
		if i%30 == 9 {
			cmds = append(cmds, Command{Op: OpUnsubscribe, Durable: &Durable{ClientID: "c", Name: "1"}})
		}
	}
	return cmds
}

// Attach while entries are being applied: Load plus the Applied calls
// that follow must add up to the final state, nothing missed or doubled.
func TestAttachIsConsistentWithConcurrentApplies(t *testing.T) {
	h := newHarness(t)
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 400 {
			if i == 50 {
				close(started)
			}
			h.f.Apply(h.entry(workload(i)...))
		}
	}()
	<-started
	m := &mirror{}
	if err := h.f.Attach(m); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	<-done
	m.sameAs(t, dumpFSM(t, h.f))
}

func TestAttachOneObserverAtATime(t *testing.T) {
	h := newHarness(t)
	h.mustApply(enqueue("/queue/a", "1", "x"))
	first := attach(t, h.f)
	if len(first.loads) != 1 || !reflect.DeepEqual(seqsOf(first.loads[0], "/queue/a"), []uint64{1}) {
		t.Fatalf("Load saw %v", first.loads)
	}
	if err := h.f.Attach(&recorder{}); err == nil {
		t.Fatal("a second observer was attached")
	}

	h.f.Detach()
	h.mustApply(enqueue("/queue/a", "2", "y"))
	if c := first.take(); len(c) != 0 {
		t.Fatalf("detached observer got %+v", c)
	}

	// A failed Load leaves nothing attached.
	bad := &recorder{loadErr: errors.New("no room")}
	if err := h.f.Attach(bad); !errors.Is(err, bad.loadErr) {
		t.Fatalf("Attach with failing Load: %v", err)
	}
	h.mustApply(enqueue("/queue/a", "3", "z"))
	if c := bad.take(); len(c) != 0 {
		t.Fatalf("observer whose Load failed got %+v", c)
	}
	second := attach(t, h.f)
	h.mustApply(Command{Op: OpAck, Queue: "/queue/a", Seqs: []uint64{1}})
	sameChanges(t, second.take(), []Change{{Kind: Removed, Queue: "/queue/a", Seq: 1}})
}

func TestViewIsOnlyValidDuringLoad(t *testing.T) {
	h := newHarness(t)
	var kept View
	r := &recorder{onLoad: func(v View) { kept = v }}
	if err := h.f.Attach(r); err != nil {
		t.Fatal(err)
	}
	if _, err := kept.Queues(); !errors.Is(err, errViewDone) {
		t.Fatalf("Queues after Load: %v", err)
	}
	if err := kept.Entries("/queue/a", nil); !errors.Is(err, errViewDone) {
		t.Fatalf("Entries after Load: %v", err)
	}
}

// The observer may read bodies from inside Load and Applied.
func TestObserverMayReadMessages(t *testing.T) {
	h := newHarness(t)
	h.mustApply(enqueue("/queue/a", "1", "x"))
	var got []string
	r := &recorder{onLoad: func(v View) {
		v.Entries("/queue/a", func(seq uint64, _ Meta) error {
			m, err := h.f.Message("/queue/a", seq)
			if err != nil {
				t.Errorf("Message in Load: %v", err)
				return nil
			}
			got = append(got, m.ID)
			return nil
		})
	}}
	if err := h.f.Attach(r); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"1"}) {
		t.Fatalf("read %q in Load", got)
	}
}

// reader is an Observer that reads each enqueued body back from the FSM
// inside Applied, which runs under the FSM's apply lock.
type reader struct {
	f    *FSM
	mu   sync.Mutex
	read []string
	errs []error
}

func (r *reader) Load(View) error { return nil }

func (r *reader) Applied(changes []Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range changes {
		if c.Kind != Enqueued {
			continue
		}
		m, err := r.f.Message(c.Queue, c.Seq)
		if err != nil {
			r.errs = append(r.errs, err)
			continue
		}
		r.read = append(r.read, m.ID)
	}
}

func TestAppliedMayReadMessages(t *testing.T) {
	h := newHarness(t)
	r := &reader{f: h.f}
	if err := h.f.Attach(r); err != nil {
		t.Fatal(err)
	}
	h.mustApply(enqueue("/queue/a", "1", "x"), enqueue("/queue/b", "2", "y"))
	// The batch is committed before Applied: the bodies are readable.
	if len(r.errs) != 0 || !reflect.DeepEqual(r.read, []string{"1", "2"}) {
		t.Fatalf("read %q, errors %v", r.read, r.errs)
	}
}
