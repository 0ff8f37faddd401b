package fsm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
)

// FSM is the replicated state of one group in a pebble store. It implements
// raft.BatchingFSM; Message, AppliedIndex, Attach and Detach may be called
// from any goroutine.
type FSM struct {
	dir  string
	opts Options

	// applyMu serializes applying, snapshots, Restore, Close and the
	// observer's attachment. Raft already calls Apply, Snapshot and Restore
	// from one goroutine; the lock is for everybody else.
	applyMu sync.Mutex
	obs     Observer
	old     []*state // replaced states possibly still read by a snapshot

	// mu guards st for readers (Message), which must never see a store
	// that Restore or Close has closed: readers RLock, the swap Locks.
	mu sync.RWMutex
	st *state // nil once closed

	applied atomic.Uint64
}

var _ raft.BatchingFSM = (*FSM)(nil)

// Open opens the FSM stored in dir, creating it if needed.
func Open(dir string, opts Options) (*FSM, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fsm: create %s: %w", dir, err)
	}
	name, err := readActive(dir)
	if err != nil {
		return nil, err
	}
	// A store named by ACTIVE must exist: starting empty instead would
	// silently drop state that raft may no longer be able to replay.
	existing := name != ""
	if !existing {
		name = storeName(1)
	}
	st, err := openState(dir, name, opts, existing)
	if err != nil {
		return nil, err
	}
	if !existing {
		if err := writeActive(dir, name); err != nil {
			return nil, errors.Join(err, st.db.Close())
		}
	}
	if err := removeStale(dir, name); err != nil {
		return nil, errors.Join(err, st.db.Close())
	}
	f := &FSM{dir: dir, opts: opts, st: st}
	f.applied.Store(st.meta.applied)
	return f, nil
}

func openState(dir, name string, opts Options, mustExist bool) (*state, error) {
	path := filepath.Join(dir, name)
	db, err := openPebble(path, opts, mustExist)
	if err != nil {
		return nil, err
	}
	st, err := loadState(name, path, db)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return st, nil
}

// Close closes the store. It waits for snapshots still being persisted to
// be released. Raft must be shut down first: entries given to Apply after
// Close are answered with ErrClosed and not applied.
func (f *FSM) Close() error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.mu.Lock()
	st := f.st
	f.st = nil
	f.mu.Unlock()
	if st == nil {
		return ErrClosed
	}
	f.obs = nil
	st.retire(false)
	err := st.wait()
	for _, old := range f.old {
		err = errors.Join(err, old.wait())
	}
	f.old = nil
	return err
}

// AppliedIndex returns the index of the last log entry applied, as
// persisted with the state.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Message returns the message of entry seq of queue, or an error wrapping
// ErrNotFound. It sees every batch committed before it was called.
func (f *FSM) Message(queue string, seq uint64) (*Message, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.st == nil {
		return nil, ErrClosed
	}
	v, closer, err := f.st.db.Get(entryKey(nil, kindBody, queue, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("fsm: message %d of %q: %w", seq, queue, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fsm: read message %d of %q: %w", seq, queue, err)
	}
	defer closer.Close()
	m, err := decodeMessage(v)
	if err != nil {
		return nil, fmt.Errorf("fsm: message %d of %q: %w", seq, queue, err)
	}
	return m, nil
}

// Messages calls fn for queue's entries from seq from on, in seq order,
// until fn returns false or the queue ends. One iterator serves them all:
// the leader reads ahead this way when a consumer has fallen behind the
// bodies it keeps in memory, instead of one point read per message.
func (f *FSM) Messages(queue string, from uint64, fn func(seq uint64, m *Message) bool) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.st == nil {
		return ErrClosed
	}
	_, upper := entryRange(kindBody, queue)
	it, err := f.st.db.NewIter(&pebble.IterOptions{
		LowerBound: entryKey(nil, kindBody, queue, from),
		UpperBound: upper,
	})
	if err != nil {
		return fmt.Errorf("fsm: read messages of %q: %w", queue, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return errors.Join(fmt.Errorf("fsm: read messages of %q: %w", queue, err), it.Close())
		}
		m, err := decodeMessage(v)
		if err != nil {
			return errors.Join(fmt.Errorf("fsm: message %d of %q: %w", entrySeq(it.Key()), queue, err), it.Close())
		}
		if !fn(entrySeq(it.Key()), m) {
			break
		}
	}
	if err := it.Error(); err != nil {
		return errors.Join(fmt.Errorf("fsm: read messages of %q: %w", queue, err), it.Close())
	}
	return it.Close()
}

// Attach calls o.Load with a view of the whole state and then registers o,
// so that every batch applied afterwards is reported to o.Applied. No batch
// is applied between the two. Only one observer can be attached; after a
// Restore the attached observer is loaded again with the restored state.
// Applied runs with the FSM's lock held: it must not call Attach or Detach.
func (f *FSM) Attach(o Observer) error {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	if f.st == nil {
		return ErrClosed
	}
	if f.obs != nil {
		return errors.New("fsm: an observer is already attached")
	}
	if err := f.load(o); err != nil {
		return err
	}
	f.obs = o
	return nil
}

// Detach unregisters the observer. No Applied call starts after it returns.
func (f *FSM) Detach() {
	f.applyMu.Lock()
	f.obs = nil
	f.applyMu.Unlock()
}

// load calls o.Load with a view of the current state. applyMu must be held.
func (f *FSM) load(o Observer) error {
	v := &view{db: f.st.db}
	err := o.Load(v)
	v.done.Store(true)
	if err != nil {
		return fmt.Errorf("fsm: observer load: %w", err)
	}
	return nil
}
