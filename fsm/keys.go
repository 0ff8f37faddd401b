package fsm

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Key layout. Every key starts with a one-byte kind, so each kind is one
// contiguous range:
//
//	'b' queue 0x00 seq:8  -> message (appendMessage)           entry body
//	'd' storeQueue        -> durable (appendDurable)            durable subscription
//	'i' queue 0x00 seq:8  -> meta (appendMeta)                  entry index
//	'm'                   -> format:1 applied:8 term:8 next:8   store meta
//	'n' memberID          -> member (appendMember)              group member directory
//	'q' queue             -> empty                              the store queue exists
//	'x' dedupeID          -> ts:8 (int64 big-endian)            dedupe window: the id was seen
//	'y' ordTs:8 dedupeID  -> empty                              dedupe window in time order
//
// queue is a store queue name: a /queue/NAME destination or a DurableQueue
// name. Names never contain NUL (the broker validates destinations and
// the FSM refuses commands that break the rule), so "queue 0x00" is a
// prefix that no other queue's keys share, and the range of one queue's
// entries is [kind queue 0x00, kind queue 0x01). seq is big-endian so
// entries iterate in seq order. The index and body keys of an entry
// differ only in the kind byte: the leader loads a queue by scanning small
// index values and reads a body only when it delivers it.
//
// A durable record is keyed by its store queue name, which is unique per
// (client-id, name) and unambiguous (DurableQueue length-prefixes the
// client-id).
//
// Seqs come from one counter for the whole group (next in the meta
// record), so an entry key is written at most once in the life of the
// store, and deleting one that is already gone changes nothing (acks are
// not checked against the store; see applier.remove).
//
// The dedupe window is two keys per id: 'x' answers "was this id seen?"
// with one point read per send, and 'y' orders the ids by the timestamp
// they were recorded with (the message's), so OpExpireDedupe finds what
// to forget with one range scan from the start of 'y' instead of reading
// the whole window. ordTs is ts with the sign bit flipped (ordKey),
// big-endian, so byte order is numeric order for negative times too. An
// id has either both keys, with the same ts, or neither: they are only
// written and deleted together (applier.recordDedupe,
// applier.expireDedupe). Ids are any bytes; in 'y' the fixed-size ts
// ahead of the id keeps keys unambiguous.
//
// Member records are keyed by member ID, so a scan of 'n' lists the
// members sorted by ID.
const (
	kindBody         = 'b'
	kindDurable      = 'd'
	kindIndex        = 'i'
	kindMeta         = 'm'
	kindMember       = 'n'
	kindQueue        = 'q'
	kindDedupe       = 'x'
	kindDedupeByTime = 'y'
)

// storeFormat is the version of the layout above, kept in the meta record.
// The member and dedupe kinds were added without changing it: a store
// without them is an empty directory and an empty window, and the keys of
// the other kinds are laid out as before.
const storeFormat = 1

var metaKey = []byte{kindMeta}

// entryKey appends the kind key of (queue, seq) to dst.
func entryKey(dst []byte, kind byte, queue string, seq uint64) []byte {
	dst = append(dst, kind)
	dst = append(dst, queue...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// entrySeq returns the seq of an entry key.
func entrySeq(key []byte) uint64 {
	return binary.BigEndian.Uint64(key[len(key)-8:])
}

// entryRange returns the bounds of queue's entries of the kind.
func entryRange(kind byte, queue string) (lower, upper []byte) {
	lower = make([]byte, 0, len(queue)+2)
	lower = append(append(append(lower, kind), queue...), 0)
	upper = append(lower[:len(lower)-1:len(lower)-1], 1)
	return lower, upper
}

func queueKey(queue string) []byte {
	return append([]byte{kindQueue}, queue...)
}

func durableKey(storeQueue string) []byte {
	return append([]byte{kindDurable}, storeQueue...)
}

func memberKey(id string) []byte {
	return append([]byte{kindMember}, id...)
}

// dedupeKey appends the 'x' key of a dedupe id to dst.
func dedupeKey(dst []byte, id string) []byte {
	return append(append(dst, kindDedupe), id...)
}

// dedupeTimeKey appends the 'y' key of a dedupe id recorded at ts to dst.
func dedupeTimeKey(dst []byte, ts int64, id string) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, kindDedupeByTime), ordKey(ts))
	return append(dst, id...)
}

// dedupeTimeID returns the id of a 'y' key.
func dedupeTimeID(key []byte) []byte { return key[1+8:] }

// ordKey maps a signed time to an unsigned one whose big-endian bytes sort
// in the same order.
func ordKey(ts int64) uint64 { return uint64(ts) ^ 1<<63 }

// kindRange returns the bounds of every key of the kind.
func kindRange(kind byte) (lower, upper []byte) {
	return []byte{kind}, []byte{kind + 1}
}

// checkQueue reports why name cannot be a store queue.
func checkQueue(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty queue name", ErrInvalidCommand)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("%w: queue name %q contains NUL", ErrInvalidCommand, name)
	}
	return nil
}

// storeMeta is the meta record: the applied position and the seq counter,
// written in the same pebble batch as the state they describe.
type storeMeta struct {
	applied, term, nextSeq uint64
}

const metaLen = 1 + 3*8

func (m storeMeta) encode() []byte {
	b := make([]byte, 1, metaLen)
	b[0] = storeFormat
	b = binary.BigEndian.AppendUint64(b, m.applied)
	b = binary.BigEndian.AppendUint64(b, m.term)
	return binary.BigEndian.AppendUint64(b, m.nextSeq)
}

func decodeStoreMeta(b []byte) (storeMeta, error) {
	if len(b) != metaLen {
		return storeMeta{}, fmt.Errorf("%w: meta record of %d bytes", errCorrupt, len(b))
	}
	if b[0] != storeFormat {
		return storeMeta{}, fmt.Errorf("fsm: unsupported store format %d (this version reads %d)", b[0], storeFormat)
	}
	return storeMeta{
		applied: binary.BigEndian.Uint64(b[1:]),
		term:    binary.BigEndian.Uint64(b[9:]),
		nextSeq: binary.BigEndian.Uint64(b[17:]),
	}, nil
}
