package fsm

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
)

// harness feeds an FSM raft log entries directly, as raft would.
type harness struct {
	t     *testing.T
	dir   string
	f     *FSM
	index uint64
}

var testOptions = Options{
	CacheSize:    4 << 20,
	MemTableSize: 1 << 20,
	Logger:       slog.New(slog.DiscardHandler),
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir()}
	h.f = openFSM(t, h.dir)
	return h
}

func openFSM(t *testing.T, dir string) *FSM {
	t.Helper()
	f, err := Open(dir, testOptions)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return f
}

// entry makes the next log entry, holding cmds.
func (h *harness) entry(cmds ...Command) *raft.Log {
	h.index++
	return &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: EncodeBatch(cmds)}
}

// apply applies cmds as one log entry and returns their results.
func (h *harness) apply(cmds ...Command) []Result {
	h.t.Helper()
	return results(h.t, h.f.Apply(h.entry(cmds...)), len(cmds))
}

// mustApply applies cmds and fails on any Result.Err.
func (h *harness) mustApply(cmds ...Command) []Result {
	h.t.Helper()
	res := h.apply(cmds...)
	for i, r := range res {
		if r.Err != nil {
			h.t.Fatalf("command %d (op %d): %v", i, cmds[i].Op, r.Err)
		}
	}
	return res
}

func results(t *testing.T, resp any, n int) []Result {
	t.Helper()
	res, ok := resp.([]Result)
	if !ok {
		t.Fatalf("response is %T (%v), want []Result", resp, resp)
	}
	if len(res) != n {
		t.Fatalf("%d results for %d commands", len(res), n)
	}
	return res
}

func enqueue(queue, id, body string, headers ...string) Command {
	return Command{Op: OpEnqueue, Queue: queue, Msg: testMessage(id, queue, body, headers...)}
}

// recorder is an Observer that keeps what it was given.
type recorder struct {
	mu      sync.Mutex
	loads   []*dump
	changes []Change
	loadErr error
	onLoad  func(View) // called inside Load, after the dump
}

func (r *recorder) Load(v View) error {
	d, err := dumpView(v, nil)
	if err != nil {
		return err
	}
	if r.onLoad != nil {
		r.onLoad(v)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loads = append(r.loads, d)
	return r.loadErr
}

func (r *recorder) Applied(changes []Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, changes...)
}

// take returns the changes received since the last take.
func (r *recorder) take() []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.changes
	r.changes = nil
	return c
}

func attach(t *testing.T, f *FSM) *recorder {
	t.Helper()
	r := &recorder{}
	if err := f.Attach(r); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	return r
}

// dump is the whole state as a View shows it, with message bodies.
type dump struct {
	Queues   []string
	Durables []Durable
	Entries  map[string][]entry
}

type entry struct {
	Seq  uint64
	Meta Meta
	Msg  *Message
}

func (d *dump) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "queues %q\ndurables %+v\n", d.Queues, d.Durables)
	for _, q := range d.Queues {
		for _, e := range d.Entries[q] {
			fmt.Fprintf(&b, "  %s #%d %+v", q, e.Seq, e.Meta)
			if e.Msg != nil {
				fmt.Fprintf(&b, " %s %q %q", e.Msg.ID, e.Msg.Headers, e.Msg.Body)
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// dumpView reads everything v shows, and each entry's message from f when
// f is not nil.
func dumpView(v View, f *FSM) (*dump, error) {
	d := &dump{Entries: make(map[string][]entry)}
	var err error
	if d.Queues, err = v.Queues(); err != nil {
		return nil, err
	}
	if d.Durables, err = v.Durables(); err != nil {
		return nil, err
	}
	for _, q := range d.Queues {
		err := v.Entries(q, func(seq uint64, m Meta) error {
			e := entry{Seq: seq, Meta: m}
			if f != nil {
				if e.Msg, err = f.Message(q, seq); err != nil {
					return err
				}
			}
			d.Entries[q] = append(d.Entries[q], e)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// dumpFSM dumps f's whole state, messages included.
func dumpFSM(t *testing.T, f *FSM) *dump {
	t.Helper()
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	d, err := dumpView(&view{db: f.st.db}, f)
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return d
}

func sameState(t *testing.T, got, want *dump) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("state differs:\n got %v\nwant %v", got, want)
	}
}

func sameChanges(t *testing.T, got, want []Change) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		var b strings.Builder
		for _, c := range got {
			fmt.Fprintf(&b, "\n  %+v", c)
		}
		b.WriteString("\nwant:")
		for _, c := range want {
			fmt.Fprintf(&b, "\n  %+v", c)
		}
		t.Fatalf("changes differ:%s", b.String())
	}
}

// seqsOf lists the entry seqs of a queue in d.
func seqsOf(d *dump, queue string) []uint64 {
	var s []uint64
	for _, e := range d.Entries[queue] {
		s = append(s, e.Seq)
	}
	return s
}
