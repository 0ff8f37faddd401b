package fsm

import (
	"encoding/binary"
	"errors"
	"hash/maphash"

	"github.com/cockroachdb/pebble"
)

// The dedupe window: the ids of the OpEnqueue and OpPublish commands that
// carried one, each recorded with its message's timestamp, until an
// OpExpireDedupe whose Before is later forgets it. A command whose id is
// in the window stores nothing (Result.Duplicate). This makes a client's
// resend idempotent: after a leader change it cannot know whether its
// unreceipted SEND was committed, and sends it again with the same id.
//
// The window is replicated state like any other: it lives in pebble (keys
// 'x' and 'y', see keys.go), travels in snapshots, and changes only at
// apply, from command data. Its length in time is the leader's business
// (it proposes OpExpireDedupe); nothing here reads a clock.
//
// Reads go through the apply batch, so the second of two commands with
// the same id in one batch is a duplicate too.

// checkDedupeID refuses an id longer than MaxDedupeIDLen. Snapshots bound
// key sizes, and ids are keys.
func checkDedupeID(id string) Result {
	if len(id) > MaxDedupeIDLen {
		return invalid("dedupe id of %d bytes, limit %d", len(id), MaxDedupeIDLen)
	}
	return Result{}
}

// dedupeIndex counts the window's ids by a 64-bit hash, in memory, so
// that the common case, an id not in the window, costs a map lookup
// instead of a pebble read: a negative pebble lookup must consult every
// table that might hold the key, and under load that read most of the
// leader's apply time (35% of its CPU in a profile). A hash present here
// may be another id's (a collision), so a hit is confirmed in pebble;
// counts keep a collision from being forgotten when the other id
// expires. About 20-30 bytes per id in the window: at 20k deduplicated
// messages a second and the default 2-minute window, about 60 MiB.
type dedupeIndex struct {
	seed   maphash.Seed
	counts map[uint64]uint32
}

func newDedupeIndex() dedupeIndex {
	return dedupeIndex{seed: maphash.MakeSeed(), counts: make(map[uint64]uint32)}
}

func (x dedupeIndex) hash(id []byte) uint64 { return maphash.Bytes(x.seed, id) }

func (x dedupeIndex) add(id []byte) { x.counts[x.hash(id)]++ }

func (x dedupeIndex) mayHold(id string) bool {
	return x.counts[maphash.String(x.seed, id)] > 0
}

func (x dedupeIndex) remove(id []byte) {
	h := x.hash(id)
	if n := x.counts[h]; n > 1 {
		x.counts[h] = n - 1
	} else {
		delete(x.counts, h)
	}
}

// seen reports whether id is in the window; the empty id never is.
func (a *applier) seen(id string) bool {
	if id == "" || !a.st.window.mayHold(id) {
		return false
	}
	a.key = dedupeKey(a.key[:0], id)
	_, closer, err := a.b.Get(a.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false
	}
	a.must(err, "read dedupe id")
	a.must(closer.Close(), "read dedupe id")
	return true
}

// recordDedupe adds id, not in the window, to it with timestamp ts. The
// empty id is not recorded.
func (a *applier) recordDedupe(id string, ts int64) {
	if id == "" {
		return
	}
	a.key = dedupeKey(a.key[:0], id)
	a.val = binary.BigEndian.AppendUint64(a.val[:0], uint64(ts))
	a.set(a.key, a.val)
	a.key = dedupeTimeKey(a.key[:0], ts, id)
	a.set(a.key, nil)
	a.st.window.add(dedupeTimeID(a.key))
}

// expireDedupe forgets every id recorded with a timestamp before
// c.Before: one scan of the time-ordered keys up to Before, a point
// deletion of each id's key and one range deletion of the scanned keys.
func (a *applier) expireDedupe(c *Command) Result {
	lower, _ := kindRange(kindDedupeByTime)
	// Every 'y' key of a ts < Before sorts below the bare time prefix of
	// Before; those of ts == Before sort above it and stay.
	upper := dedupeTimeKey(nil, c.Before, "")
	// A batch iterator sees the batch as it was when created, so the
	// deletions below do not disturb it.
	it, err := a.b.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	a.must(err, "scan dedupe window")
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		a.key = append(append(a.key[:0], kindDedupe), dedupeTimeID(it.Key())...)
		a.must(a.b.Delete(a.key, nil), "expire dedupe id")
		a.st.window.remove(dedupeTimeID(it.Key()))
		n++
	}
	a.must(errors.Join(it.Error(), it.Close()), "scan dedupe window")
	// The leader proposes expiries periodically whether or not anything
	// was recorded: no range tombstone when there is nothing to delete.
	if n > 0 {
		a.must(a.b.DeleteRange(lower, upper, nil), "expire dedupe ids")
	}
	return Result{}
}
