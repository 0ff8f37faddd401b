package fsm

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
)

// sink is a raft.SnapshotSink in memory.
type sink struct {
	bytes.Buffer
	failWrite         error
	cancelled, closed bool
}

func (s *sink) Write(p []byte) (int, error) {
	if s.failWrite != nil {
		return 0, s.failWrite
	}
	return s.Buffer.Write(p)
}
func (s *sink) ID() string    { return "test" }
func (s *sink) Cancel() error { s.cancelled = true; return nil }
func (s *sink) Close() error  { s.closed = true; return nil }

// persist snapshots f into memory.
func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	return persistSnap(t, snap)
}

func persistSnap(t *testing.T, snap raft.FSMSnapshot) []byte {
	t.Helper()
	var s sink
	if err := snap.Persist(&s); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !s.closed || s.cancelled {
		t.Fatalf("sink closed %v, cancelled %v", s.closed, s.cancelled)
	}
	return s.Bytes()
}

func restore(f *FSM, data []byte) error {
	return f.Restore(io.NopCloser(bytes.NewReader(data)))
}

// populate gives h a bit of every kind of state.
func populate(h *harness) {
	d1 := Durable{ClientID: "c1", Name: "s1", Topic: "/topic/t"}
	d2 := Durable{ClientID: "c2", Name: "s2", Topic: "/topic/t", Selector: "color = 'red'"}
	h.mustApply(
		Command{Op: OpSubscribe, Durable: &d1},
		Command{Op: OpSubscribe, Durable: &d2},
		enqueue("/queue/a", "a1", "one", "k", "v"),
		enqueue("/queue/a", "a2", "two"),
		enqueue("/queue/a", "a3", "three", "x", "y", "z", ""),
		enqueue("/queue/b", "b1", "four"),
		Command{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("t1", "/topic/t", "news")},
	)
	h.mustApply(
		Command{Op: OpAck, Queue: "/queue/a", Seqs: []uint64{4}},
		Command{Op: OpDeadLetter, Queue: "/queue/b", Seqs: []uint64{6}, Target: "/queue/DLQ", Reason: "expired"},
		enqueue("/queue/big", "big", strings.Repeat("0123456789", 30_000)),
		enqueue("/queue/gone", "g", "x"),
		Command{Op: OpDeleteQueue, Queue: "/queue/gone"},
		enqueue("/queue/a", "a4", "forwarded", HeaderNetworkPath, "A,B"),
	)
}

// stores lists the pebble stores in an FSM directory.
func stores(t *testing.T, dir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, storePrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range matches {
		matches[i] = filepath.Base(matches[i])
	}
	sort.Strings(matches)
	return matches
}

func TestSnapshotRestore(t *testing.T) {
	h := newHarness(t)
	populate(h)
	want := dumpFSM(t, h.f)
	applied := h.f.AppliedIndex()

	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	// Applied after the snapshot was taken: not in it.
	later := []*raft.Log{
		h.entry(enqueue("/queue/a", "after", "x")),
		h.entry(Command{Op: OpAck, Queue: "/queue/a", Seqs: []uint64{3}},
			Command{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("t2", "/topic/t", "more")}),
	}
	h.f.ApplyBatch(later)
	data := persistSnap(t, snap)
	snap.Release()

	// Restore into an FSM that has state of its own, with an observer.
	h2 := newHarness(t)
	h2.mustApply(enqueue("/queue/other", "o", "x"), enqueue("/queue/a", "clash", "y"))
	rec := attach(t, h2.f)
	if err := restore(h2.f, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := h2.f.AppliedIndex(); got != applied {
		t.Fatalf("AppliedIndex after Restore = %d, want %d", got, applied)
	}
	sameState(t, dumpFSM(t, h2.f), want)
	if len(rec.loads) != 2 {
		t.Fatalf("observer loaded %d times, want twice (Attach, Restore)", len(rec.loads))
	}
	withoutBodies := *want
	withoutBodies.Entries = make(map[string][]entry)
	for q, es := range want.Entries {
		for _, e := range es {
			withoutBodies.Entries[q] = append(withoutBodies.Entries[q], entry{Seq: e.Seq, Meta: e.Meta})
		}
	}
	sameState(t, rec.loads[1], &withoutBodies)

	// Same log, same state: the restored FSM applies what followed the
	// snapshot exactly as the original did, seqs included.
	for i, resp := range h2.f.ApplyBatch(later) {
		results(t, resp, len(mustDecode(t, later[i].Data)))
	}
	sameState(t, dumpFSM(t, h2.f), dumpFSM(t, h.f))

	// The restored store is the one a restart opens; the old one is gone.
	if got := stores(t, h2.dir); !reflect.DeepEqual(got, []string{"db-2"}) {
		t.Fatalf("stores after Restore: %v", got)
	}
	final := dumpFSM(t, h2.f)
	if err := h2.f.Close(); err != nil {
		t.Fatal(err)
	}
	f := openFSM(t, h2.dir)
	sameState(t, dumpFSM(t, f), final)
	if got := f.AppliedIndex(); got != h.index {
		t.Fatalf("AppliedIndex after reopen = %d, want %d", got, h.index)
	}
}

func TestSnapshotOfEmptyStore(t *testing.T) {
	h := newHarness(t)
	data := persist(t, h.f)
	h2 := newHarness(t)
	populate(h2)
	if err := restore(h2.f, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	sameState(t, dumpFSM(t, h2.f), &dump{Entries: map[string][]entry{}})
	if h2.f.AppliedIndex() != 0 {
		t.Fatalf("AppliedIndex = %d", h2.f.AppliedIndex())
	}
}

func TestRestoreRejectsDamagedSnapshots(t *testing.T) {
	src := newHarness(t)
	populate(src)
	data := persist(t, src.f)

	h := newHarness(t)
	h.mustApply(enqueue("/queue/mine", "m", "x"))
	want := dumpFSM(t, h.f)
	flipped := bytes.Clone(data)
	flipped[len(flipped)/2] ^= 0x10
	cases := map[string][]byte{
		"empty":        nil,
		"header only":  data[:len(snapMagic)+1],
		"half":         data[:len(data)/2],
		"no checksum":  data[:len(data)-4],
		"short by one": data[:len(data)-1],
		"flipped bit":  flipped,
		"trailing":     append(bytes.Clone(data), 0),
		"magic":        append([]byte("raftmq-xxx"), data[len(snapMagic):]...),
		"format":       append(append([]byte(snapMagic), 9), data[len(snapMagic)+1:]...),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			err := restore(h.f, b)
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("Restore: err = %v, want errCorrupt", err)
			}
			sameState(t, dumpFSM(t, h.f), want)
			if got := stores(t, h.dir); !reflect.DeepEqual(got, []string{"db-1"}) {
				t.Fatalf("stores after a failed Restore: %v", got)
			}
		})
	}
	// Still fine afterwards.
	if err := restore(h.f, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	sameState(t, dumpFSM(t, h.f), dumpFSM(t, src.f))
}

func TestPersistCancelsOnError(t *testing.T) {
	h := newHarness(t)
	populate(h)
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	s := &sink{failWrite: errors.New("disk full")}
	if err := snap.Persist(s); !errors.Is(err, s.failWrite) {
		t.Fatalf("Persist: %v", err)
	}
	if !s.cancelled || s.closed {
		t.Fatalf("sink cancelled %v, closed %v; want cancelled only", s.cancelled, s.closed)
	}
}

// Readers run through restores without ever seeing a closed store.
func TestReadersDuringRestore(t *testing.T) {
	h := newHarness(t)
	populate(h)
	data := persist(t, h.f)
	want, err := h.f.Message("/queue/a", 3)
	if err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				m, err := h.f.Message("/queue/a", 3)
				if err == nil && !reflect.DeepEqual(m, want) {
					err = errors.New("wrong message")
				}
				if err != nil {
					errs <- err
					return
				}
				h.f.AppliedIndex()
			}
		}()
	}
	for range 5 {
		if err := restore(h.f, data); err != nil {
			t.Fatalf("Restore: %v", err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("reader: %v", err)
	}
	if got := stores(t, h.dir); !reflect.DeepEqual(got, []string{"db-6"}) {
		t.Fatalf("stores: %v", got)
	}
}

// A snapshot taken before a Restore still persists the old state; the old
// store is closed and removed when the snapshot is released.
func TestSnapshotOutlivesRestore(t *testing.T) {
	h := newHarness(t)
	populate(h)
	want := dumpFSM(t, h.f)
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	other := newHarness(t)
	other.mustApply(enqueue("/queue/x", "x", "x"))
	if err := restore(h.f, persist(t, other.f)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := stores(t, h.dir); !reflect.DeepEqual(got, []string{"db-1", "db-2"}) {
		t.Fatalf("stores while the old one is read: %v", got)
	}
	data := persistSnap(t, snap)
	snap.Release()
	snap.Release() // raft may; it must be harmless
	if got := stores(t, h.dir); !reflect.DeepEqual(got, []string{"db-2"}) {
		t.Fatalf("stores after release: %v", got)
	}

	h3 := newHarness(t)
	if err := restore(h3.f, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	sameState(t, dumpFSM(t, h3.f), want)
}

func TestCloseWaitsForSnapshots(t *testing.T) {
	h := newHarness(t)
	populate(h)
	want := dumpFSM(t, h.f)
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error)
	go func() { closed <- h.f.Close() }()
	// Whether or not Close is already waiting, the snapshot still reads
	// an open store.
	data := persistSnap(t, snap)
	snap.Release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	h2 := newHarness(t)
	if err := restore(h2.f, data); err != nil {
		t.Fatal(err)
	}
	sameState(t, dumpFSM(t, h2.f), want)
}

// Open removes a store left behind by a restore that crashed.
func TestOpenRemovesStaleStores(t *testing.T) {
	h := newHarness(t)
	h.mustApply(enqueue("/queue/a", "1", "x"))
	want := dumpFSM(t, h.f)
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(h.dir, "db-2", "junk"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := openFSM(t, h.dir)
	sameState(t, dumpFSM(t, f), want)
	if got := stores(t, h.dir); !reflect.DeepEqual(got, []string{"db-1"}) {
		t.Fatalf("stores: %v", got)
	}
}

func TestOpenRefusesMissingActiveStore(t *testing.T) {
	h := newHarness(t)
	h.mustApply(enqueue("/queue/a", "1", "x"))
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(h.dir, "db-1")); err != nil {
		t.Fatal(err)
	}
	if f, err := Open(h.dir, testOptions); err == nil {
		f.Close()
		t.Fatal("Open started an empty store in place of the missing active one")
	}
}

func TestRestoreDetachesObserverThatFailsToReload(t *testing.T) {
	src := newHarness(t)
	populate(src)
	data := persist(t, src.f)

	h := newHarness(t)
	r := &recorder{}
	if err := h.f.Attach(r); err != nil {
		t.Fatal(err)
	}
	r.loadErr = errors.New("out of memory")
	if err := restore(h.f, data); !errors.Is(err, r.loadErr) {
		t.Fatalf("Restore: %v", err)
	}
	// The state is restored all the same, and the observer is gone.
	sameState(t, dumpFSM(t, h.f), dumpFSM(t, src.f))
	h.index = h.f.AppliedIndex()
	h.mustApply(enqueue("/queue/a", "x", "x"))
	if c := r.take(); len(c) != 0 {
		t.Fatalf("detached observer got %+v", c)
	}
	if err := h.f.Attach(&recorder{}); err != nil {
		t.Fatalf("Attach after the detach: %v", err)
	}
}

func TestOpenRefusesNewerStoreFormat(t *testing.T) {
	h := newHarness(t)
	h.mustApply(enqueue("/queue/a", "1", "x"))
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := openPebble(filepath.Join(h.dir, "db-1"), testOptions, true)
	if err != nil {
		t.Fatal(err)
	}
	meta := storeMeta{applied: 1, nextSeq: 2}.encode()
	meta[0] = storeFormat + 1
	if err := db.Set(metaKey, meta, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if f, err := Open(h.dir, testOptions); err == nil || !strings.Contains(err.Error(), "unsupported store format") {
		if f != nil {
			f.Close()
		}
		t.Fatalf("Open: %v, want an unsupported format error", err)
	}
}
