package fsm

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble"

	"github.com/raftmq/raftmq/queue/dest"
	"github.com/raftmq/raftmq/queue/selector"
)

// state is one pebble store and what the apply path keeps in memory about
// it. Restore replaces the whole state; the old one stays open until the
// last snapshot reading it is released.
type state struct {
	name string // store directory name, db-N
	path string
	db   *pebble.DB

	// Owned by the apply path (FSM.applyMu). They are changed while a
	// batch is built, before it commits: a failed commit panics, so memory
	// never outlives a diverging store.
	meta     storeMeta
	queues   map[string]struct{}
	durables map[string]*Durable // by store queue
	byTopic  map[string][]durableRef
	// wildDurables are the durable subscriptions to wildcard topics,
	// sorted by store queue.
	wildDurables []durableRef
	// window indexes the dedupe window's ids by hash (see dedupe.go).
	window dedupeIndex

	refMu     sync.Mutex
	refs      int  // open snapshots
	retired   bool // replaced or closed: shut down once refs is 0
	removeDir bool
	closeErr  error
	down      chan struct{} // closed once db is closed
}

// durableRef is a durable subscription with its store queue name, which
// Publish needs for every copy.
type durableRef struct {
	queue string
	d     *Durable
	// sel is d.Selector compiled; nil selects everything. A selector
	// that does not compile (the leader checks before proposing, so only
	// a newer leader's grammar could store one) selects nothing, on every
	// node alike.
	sel     *selector.Selector
	selNone bool
	// pat is set for a subscription to a wildcard topic (wildDurables).
	pat *dest.Pattern
}

// selects reports whether the durable subscription takes m.
func (r *durableRef) selects(m *Message) bool {
	if r.selNone {
		return false
	}
	return r.sel == nil || r.sel.Matches(m.Property)
}

// loadState reads the meta record, queues and durables of db.
func loadState(name, path string, db *pebble.DB) (*state, error) {
	st := &state{
		name:     name,
		path:     path,
		db:       db,
		meta:     storeMeta{nextSeq: 1},
		queues:   make(map[string]struct{}),
		durables: make(map[string]*Durable),
		byTopic:  make(map[string][]durableRef),
		window:   newDedupeIndex(),
		down:     make(chan struct{}),
	}
	v, closer, err := db.Get(metaKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound): // a new store
	case err != nil:
		return nil, fmt.Errorf("fsm: read meta record: %w", err)
	default:
		st.meta, err = decodeStoreMeta(v)
		_ = closer.Close()
		if err != nil {
			return nil, err
		}
	}
	err = scan(db, kindQueue, func(k, _ []byte) error {
		st.queues[string(k[1:])] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsm: load queues: %w", err)
	}
	err = scan(db, kindDurable, func(k, v []byte) error {
		d, err := decodeDurable(v)
		if err != nil {
			return fmt.Errorf("durable %q: %w", k[1:], err)
		}
		st.addDurable(d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsm: load durables: %w", err)
	}
	err = scan(db, kindDedupeByTime, func(k, _ []byte) error {
		st.window.add(dedupeTimeID(k))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsm: load dedupe window: %w", err)
	}
	return st, nil
}

// scan calls fn for each key of the kind, in key order.
func scan(r pebble.Reader, kind byte, fn func(k, v []byte) error) error {
	lower, upper := kindRange(kind)
	return scanRange(r, lower, upper, fn)
}

func scanRange(r pebble.Reader, lower, upper []byte, fn func(k, v []byte) error) (err error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	return it.Error()
}

func (st *state) addDurable(d *Durable) {
	q := d.Queue()
	st.durables[q] = d
	ref := durableRef{queue: q, d: d}
	if d.Selector != "" {
		sel, err := selector.Compile(d.Selector)
		ref.sel, ref.selNone = sel, err != nil
	}
	if dest.HasWildcard(d.Topic) {
		_, name, _ := dest.Split(d.Topic)
		if p, err := dest.Compile(name); err == nil {
			ref.pat = &p
		} else {
			ref.selNone = true // not a pattern: it matches nothing, on every node
		}
		st.wildDurables = insertRef(st.wildDurables, ref)
		return
	}
	st.byTopic[d.Topic] = insertRef(st.byTopic[d.Topic], ref)
}

// insertRef adds ref to refs, sorted by store queue: Publish stores its
// copies in this order, and seq assignment must not depend on map
// iteration.
func insertRef(refs []durableRef, ref durableRef) []durableRef {
	i, _ := slices.BinarySearchFunc(refs, ref.queue, func(r durableRef, q string) int { return strings.Compare(r.queue, q) })
	return slices.Insert(refs, i, ref)
}

func (st *state) removeDurable(d *Durable) {
	q := d.Queue()
	delete(st.durables, q)
	if dest.HasWildcard(d.Topic) {
		st.wildDurables = slices.DeleteFunc(st.wildDurables, func(r durableRef) bool { return r.queue == q })
		return
	}
	refs := slices.DeleteFunc(st.byTopic[d.Topic], func(r durableRef) bool { return r.queue == q })
	if len(refs) == 0 {
		delete(st.byTopic, d.Topic)
	} else {
		st.byTopic[d.Topic] = refs
	}
}

// durablesFor calls fn for each durable subscription a publish to topic
// reaches, in a fixed order: the topic's own, then the wildcard ones
// whose pattern matches it, each by store queue.
func (st *state) durablesFor(topic string, fn func(r *durableRef)) {
	for i := range st.byTopic[topic] {
		fn(&st.byTopic[topic][i])
	}
	if len(st.wildDurables) == 0 {
		return
	}
	_, name, ok := dest.Split(topic)
	if !ok {
		return
	}
	for i := range st.wildDurables {
		if r := &st.wildDurables[i]; r.pat != nil && r.pat.Match(name) {
			fn(r)
		}
	}
}

// acquire keeps the store open for a snapshot until release.
func (st *state) acquire() {
	st.refMu.Lock()
	st.refs++
	st.refMu.Unlock()
}

func (st *state) release() {
	st.refMu.Lock()
	st.refs--
	last := st.retired && st.refs == 0
	st.refMu.Unlock()
	if last {
		st.shutdown()
	}
}

// retire marks the state as no longer current: it is closed now, or by the
// release of its last snapshot, and then its directory is removed if asked.
func (st *state) retire(removeDir bool) {
	st.refMu.Lock()
	st.retired = true
	st.removeDir = removeDir
	last := st.refs == 0
	st.refMu.Unlock()
	if last {
		st.shutdown()
	}
}

func (st *state) shutdown() {
	err := st.db.Close()
	if err != nil {
		err = fmt.Errorf("fsm: close pebble in %s: %w", st.path, err)
	}
	if st.removeDir {
		if rmErr := os.RemoveAll(st.path); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("fsm: remove old store: %w", rmErr))
		}
	}
	st.closeErr = err
	close(st.down)
}

// closedCleanly reports whether the state is shut down without error.
func (st *state) closedCleanly() bool {
	select {
	case <-st.down:
		return st.closeErr == nil
	default:
		return false
	}
}

// wait blocks until the state is shut down and returns the error of closing it.
func (st *state) wait() error {
	<-st.down
	return st.closeErr
}
