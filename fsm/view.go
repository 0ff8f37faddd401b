package fsm

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
)

// view is the View given to Observer.Load. It reads the store directly:
// the apply lock is held for as long as the view is valid, so nothing
// changes underneath it.
type view struct {
	db   *pebble.DB
	done atomic.Bool // Load returned: the lock is gone, so is consistency
}

var errViewDone = errors.New("fsm: view used after Load returned")

func (v *view) Queues() ([]string, error) {
	if v.done.Load() {
		return nil, errViewDone
	}
	var qs []string
	err := scan(v.db, kindQueue, func(k, _ []byte) error {
		qs = append(qs, string(k[1:]))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsm: list queues: %w", err)
	}
	return qs, nil
}

func (v *view) Durables() ([]Durable, error) {
	if v.done.Load() {
		return nil, errViewDone
	}
	var ds []Durable
	err := scan(v.db, kindDurable, func(k, val []byte) error {
		d, err := decodeDurable(val)
		if err != nil {
			return fmt.Errorf("durable %q: %w", k[1:], err)
		}
		ds = append(ds, *d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsm: list durables: %w", err)
	}
	return ds, nil
}

func (v *view) Entries(queue string, fn func(seq uint64, m Meta) error) error {
	if v.done.Load() {
		return errViewDone
	}
	if err := checkQueue(queue); err != nil {
		return err
	}
	lower, upper := entryRange(kindIndex, queue)
	return scanRange(v.db, lower, upper, func(k, val []byte) error {
		m, err := decodeMeta(val)
		if err != nil {
			return fmt.Errorf("fsm: entry %d of %q: %w", entrySeq(k), queue, err)
		}
		return fn(entrySeq(k), m)
	})
}
