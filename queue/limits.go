package queue

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// Limits on what queues hold. A queue may be given a limit on the
// messages and on the message bytes it holds (Config.QueueLimit and
// Config.QueueLimits), and the group one on the persistent bytes of all
// its queues together (Config.StoreLimit, ActiveMQ's storeUsage). A queue
// holds its pending messages, those in flight to consumers, and those
// accepted and not yet applied: a send reserves its room when it is
// proposed, the reservation becomes the message when raft applies it, and
// it is given back if the proposal fails or was a duplicate, so producers
// racing each other cannot overshoot while their sends are in raft.
//
// A send that does not fit is refused with ErrDestinationFull (Fail) or
// held until room frees (Block, ActiveMQ's producer flow control; see
// flow.go). Holding a producer is what keeps a slow or stuck consumer from
// growing the leader's memory without bound: the held sends are bounded
// by the transport's limit on operations awaiting completion per
// connection, which then stops reading from the producer's socket.
//
// Only SENDs and COMMITs are held or refused. Whatever else enters a
// queue is counted but never refused, since refusing it would lose it or
// wedge its source: dead letters, messages an operator moves, and the
// copies of topic messages kept for durable subscriptions (their store
// queues count towards StoreLimit). Topics have no limit of their own: a
// non-durable subscriber's backlog is bounded by TopicSubscriberBacklog,
// and a publish is never held.

// FullPolicy says what a send to a full queue does.
type FullPolicy uint8

const (
	// Block holds the send until the queue has room (the default, as
	// ActiveMQ's producer flow control).
	Block FullPolicy = iota
	// Fail refuses the send with ErrDestinationFull.
	Fail
)

// String returns the policy's name, as ParseFullPolicy reads it.
func (p FullPolicy) String() string {
	switch p {
	case Block:
		return "block"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("FullPolicy(%d)", uint8(p))
}

// ParseFullPolicy reads "block" or "fail".
func ParseFullPolicy(s string) (FullPolicy, error) {
	switch s {
	case "block":
		return Block, nil
	case "fail":
		return Fail, nil
	}
	return 0, fmt.Errorf("full policy %q: want block or fail", s)
}

// DestLimit bounds one queue. The zero value sets no limit.
type DestLimit struct {
	// MaxMessages bounds the messages the queue holds: pending, in flight
	// (unacknowledged) and accepted but not yet applied. 0: no limit.
	MaxMessages int64
	// MaxBytes bounds the same messages' bytes (fsm.Message.Size). An
	// empty queue takes one message of any size, so that a message larger
	// than the limit cannot wedge it. 0: no limit.
	MaxBytes int64
	// OnFull says what a send that does not fit does.
	OnFull FullPolicy
	// BlockTimeout is how long a held send waits for room before it
	// fails as with Fail; 0 waits as long as it takes (as ActiveMQ does
	// by default).
	BlockTimeout time.Duration
}

// limited reports whether l bounds anything.
func (l DestLimit) limited() bool { return l.MaxMessages > 0 || l.MaxBytes > 0 }

func (l DestLimit) validate() error {
	if l.MaxMessages < 0 || l.MaxBytes < 0 || l.BlockTimeout < 0 {
		return errors.New("negative limit")
	}
	if l.OnFull != Block && l.OnFull != Fail {
		return fmt.Errorf("unknown full policy %d", l.OnFull)
	}
	return nil
}

// LimitRule gives the queues whose names (without /queue/) match Pattern
// their limit.
type LimitRule struct {
	Pattern Pattern
	Limit   DestLimit
}

// LimitFor returns the limit of the queue dest (/queue/NAME): that of the
// first rule that matches its name, or QueueLimit.
func (c *Config) LimitFor(dest string) DestLimit {
	name := strings.TrimPrefix(dest, "/queue/")
	for _, r := range c.QueueLimits {
		if r.Pattern.Match(name) {
			return r.Limit
		}
	}
	return c.QueueLimit
}

// anyLimit reports whether some queue may have a limit: otherwise sends
// skip the accounting of flow control altogether.
func (c *Config) anyLimit() bool {
	if c.StoreLimit > 0 || c.QueueLimit.limited() {
		return true
	}
	for _, r := range c.QueueLimits {
		if r.Limit.limited() {
			return true
		}
	}
	return false
}

// ErrDestinationFull is the error of a send refused because its queue, or
// the store, is full: errors.Is(err, ErrDestinationFull). The error
// itself is a *FullError, which says which limit.
var ErrDestinationFull = errors.New("destination is full")

// FullError says which limit refused a send. Its text is written for the
// client, who sees it in the ERROR frame.
type FullError struct {
	Destination string // the queue the send was for
	// Unit names what is counted: "messages" or "bytes" of the queue,
	// "bytes in the store" (StoreLimit), or "bytes of held sends" (a full
	// queue whose send the broker has no memory left to hold, HeldBytes).
	Unit   string
	Used   int64 // what the queue (or the store) holds, reservations included
	Limit  int64
	Adding int64 // what the send would add: its bytes, or a transaction's messages
	// Waited is set when a held send gave up after waiting that long
	// (BlockTimeout).
	Waited time.Duration
}

const (
	unitMessages   = "messages"
	unitBytes      = "bytes"
	unitStoreBytes = "bytes in the store"
	unitHeldBytes  = "bytes of held sends"
)

func (e *FullError) Error() string {
	unit := e.Unit
	if unit == unitMessages && e.Used == 1 {
		unit = "message"
	}
	var b strings.Builder
	if e.Unit == unitHeldBytes {
		// The queue is full and the broker cannot hold more senders.
		fmt.Fprintf(&b, "destination %s is full, and the broker holds as many blocked sends as it may (%d %s, limit %d", e.Destination, e.Used, unit, e.Limit)
	} else {
		fmt.Fprintf(&b, "destination %s is full (%d %s, limit %d", e.Destination, e.Used, unit, e.Limit)
	}
	if e.Unit != unitMessages || e.Adding > 1 {
		fmt.Fprintf(&b, ", adding %d", e.Adding)
	}
	b.WriteString(")")
	if e.Waited > 0 {
		fmt.Fprintf(&b, " after waiting %v", e.Waited)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrDestinationFull) hold.
func (e *FullError) Is(target error) bool { return target == ErrDestinationFull }

// queueFull returns why n more messages of size bytes do not fit in q
// now, or nil. An empty queue takes any number of bytes. A commit that
// acks messages of q may add fewer than nothing of either.
func (q *destQueue) queueFull(n, size int64) *FullError {
	used := q.msgs + q.rsvMsgs
	if l := q.limit.MaxMessages; l > 0 && n > 0 && used+n > l {
		return &FullError{Destination: q.name, Unit: unitMessages, Used: used, Limit: l, Adding: n}
	}
	if l := q.limit.MaxBytes; l > 0 && size > 0 && used > 0 {
		if b := q.bytes + q.rsvBytes; b+size > l {
			return &FullError{Destination: q.name, Unit: unitBytes, Used: b, Limit: l, Adding: size}
		}
	}
	return nil
}

// MessageOverhead is what each stored message costs against StoreLimit
// beyond its own bytes: the leader keeps every stored message's
// bookkeeping in memory (its ref, its entries in the queue's index and
// pending list: 129 bytes measured by BenchmarkRefMemory), so that
// StoreLimit bounds that memory too, however small the messages are, and
// the store's own per-message keys.
const MessageOverhead = 256

// storeCost is what a persistent message of size bytes counts against
// StoreLimit.
func storeCost(size int) int64 { return int64(size) + MessageOverhead }

// storeFull returns why size more persistent bytes, sent to the queue
// dest, do not fit in the store now, or nil. An empty store takes any
// number of bytes.
func (e *Engine) storeFull(dest string, size int64) *FullError {
	l := e.cfg.StoreLimit
	if l == 0 || size <= 0 {
		return nil
	}
	if b := e.storeBytes + e.storeRsv; b > 0 && b+size > l {
		return &FullError{Destination: dest, Unit: unitStoreBytes, Used: b, Limit: l, Adding: size}
	}
	return nil
}

// tooBig returns the error of a transaction that sends more messages to
// q than q may ever hold: it can never fit, however long it waits.
func (q *destQueue) tooBig(n int64) *FullError {
	if l := q.limit.MaxMessages; l > 0 && n > l {
		return &FullError{Destination: q.name, Unit: unitMessages, Used: q.msgs + q.rsvMsgs, Limit: l, Adding: n}
	}
	return nil
}

// limitedQueue returns the queue dest if its sends are checked for room,
// else nil. Call with e.mu held.
func (e *Engine) limitedQueue(dest string) *destQueue {
	if !e.anyLimit {
		return nil
	}
	if q := e.queue(dest); q.gated {
		return q
	}
	return nil
}

// reservation is the room a send to a limited queue holds from when it
// is proposed until raft applies it.
type reservation struct {
	q          *destQueue
	size       int64
	persistent bool // counts in the store too
}

// reserve takes room in q (and the store) for m, which is about to be
// proposed. Message ids are unique to the engine, so they name
// reservations.
func (e *Engine) reserve(q *destQueue, m *fsm.Message) {
	r := reservation{q: q, size: int64(m.Size()), persistent: m.Persistent}
	q.rsvMsgs++
	q.rsvBytes += r.size
	if r.persistent {
		e.storeRsv += storeCost(int(r.size))
	}
	e.rsv[m.ID] = r
}

// unreserve gives back the room reserved for message id, reporting
// whether there was any.
func (e *Engine) unreserve(id string) bool {
	r, ok := e.rsv[id]
	if !ok {
		return false
	}
	delete(e.rsv, id)
	r.q.rsvMsgs--
	r.q.rsvBytes -= r.size
	if r.persistent {
		e.storeRsv -= storeCost(int(r.size))
	}
	return true
}

// applied turns the reservation of a message raft just stored in q into
// the message itself (insert counts it next).
func (e *Engine) applied(q *destQueue, m *fsm.Message) {
	if len(e.rsv) == 0 || m == nil {
		return
	}
	if r, ok := e.rsv[m.ID]; ok && r.q == q {
		e.unreserve(m.ID)
	}
}

// settle gives back the room of proposed messages that raft did not
// store (a failed proposal, a duplicate): what it stored was converted
// when applied. Call with e.mu held.
func (e *Engine) settle(ms []*fsm.Message) {
	freed := false
	for _, m := range ms {
		if e.unreserve(m.ID) {
			freed = true
		}
	}
	if freed {
		e.roomFreed()
	}
}

// proposeSend proposes a persistent send to a limited queue, whose room
// is reserved. A duplicate (Result.Duplicate) is a success with nothing
// stored: the client gets its receipt, no Enqueued follows.
func (e *Engine) proposeSend(m *fsm.Message, done func(error)) {
	e.propose([]fsm.Command{{Op: fsm.OpEnqueue, Queue: m.Destination, Msg: m, DedupeID: dedupeID(m)}},
		func(_ []fsm.Result, err error) {
			e.mu.Lock()
			e.settle([]*fsm.Message{m})
			e.mu.Unlock()
			done(err)
		})
}

// StoreBytes is what counts against Config.StoreLimit: the bytes of the
// persistent messages in all queues, durable subscriptions' included, and
// of the sends to limited queues accepted and not yet applied.
func (e *Engine) StoreBytes() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.storeBytes + e.storeRsv
}
