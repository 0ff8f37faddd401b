package fsm

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/queue/dest"
	"github.com/raftmq/raftmq/queue/selector"
)

// Headers added to a dead-lettered message, as ActiveMQ names them.
const (
	HeaderDLQCause            = "dlqDeliveryFailureCause"
	HeaderOriginalDestination = "original-destination"
)

// Apply implements raft.FSM; see ApplyBatch.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM. It applies every entry in one
// pebble batch, committed without fsync (the raft log is the durable
// record), together with the new applied index.
//
// The response of a raft.LogCommand entry is a []Result, one per command.
// Other entries, and entries at or below the applied index (raft replays
// those after a restart), are skipped with a nil response; only the former
// advance the applied index. After Close every response is ErrClosed.
//
// An entry that cannot be decoded, or a store that cannot be written,
// panics: the node could only go on by diverging from the group.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	resps := make([]any, len(logs))
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	st := f.st
	if st == nil {
		for i := range resps {
			resps[i] = ErrClosed
		}
		return resps
	}

	a := applier{st: st, b: st.db.NewIndexedBatch(), observe: f.obs != nil}
	defer a.b.Close()
	start := st.meta.applied
	for i, l := range logs {
		if l.Index <= st.meta.applied {
			continue
		}
		if l.Type == raft.LogCommand {
			// Without an observer no message outlives this call, so the
			// bodies can point into the log entry instead of being copied.
			cmds, err := decodeBatch(l.Data, !a.observe)
			if err != nil {
				panic(fmt.Errorf("fsm: log entry %d (term %d): %w", l.Index, l.Term, err))
			}
			resps[i] = a.applyAll(cmds)
		}
		st.meta.applied, st.meta.term = l.Index, l.Term
	}
	if st.meta.applied == start {
		return resps
	}
	a.set(metaKey, st.meta.encode())
	if err := a.b.Commit(pebble.NoSync); err != nil {
		panic(fmt.Errorf("fsm: commit entries %d..%d: %w", start+1, st.meta.applied, err))
	}
	f.applied.Store(st.meta.applied)
	if f.obs != nil && len(a.changes) > 0 {
		f.obs.Applied(a.changes)
	}
	return resps
}

// applier applies commands to one indexed pebble batch; reads go through
// the batch, so a command sees the writes of the commands before it.
type applier struct {
	st      *state
	b       *pebble.Batch
	observe bool // collect changes only when somebody will get them
	changes []Change
	key     []byte // scratch buffers: pebble copies keys and values
	val     []byte
}

func (a *applier) applyAll(cmds []Command) []Result {
	res := make([]Result, len(cmds))
	for i := range cmds {
		res[i] = a.apply(&cmds[i])
	}
	return res
}

func (a *applier) apply(c *Command) Result {
	switch c.Op {
	case OpEnqueue:
		return a.enqueue(c)
	case OpPublish:
		return a.publish(c)
	case OpAck:
		return a.ack(c)
	case OpDeadLetter:
		return a.deadLetter(c)
	case OpSubscribe:
		return a.subscribe(c)
	case OpUnsubscribe:
		return a.unsubscribe(c)
	case OpPurge:
		return a.purge(c)
	case OpDeleteQueue:
		return a.deleteQueue(c)
	case OpExpireDedupe:
		return a.expireDedupe(c)
	case OpSetMember:
		return a.setMember(c)
	case OpRemoveMember:
		return a.removeMember(c)
	case OpCreateQueue:
		return a.createQueue(c)
	case OpMove:
		return a.move(c)
	case OpFire:
		return a.fire(c)
	}
	// DecodeBatch lets an unknown op through only when it is skippable.
	return Result{Err: fmt.Errorf("%w: op %#x", ErrSkipped, byte(c.Op))}
}

func invalid(format string, args ...any) Result {
	return Result{Err: fmt.Errorf("%w: "+format, append([]any{ErrInvalidCommand}, args...)...)}
}

func (a *applier) enqueue(c *Command) Result {
	if err := checkQueue(c.Queue); err != nil {
		return Result{Err: err}
	}
	if c.Msg == nil {
		return invalid("enqueue to %q without a message", c.Queue)
	}
	if r := checkDedupeID(c.DedupeID); r.Err != nil {
		return r
	}
	if a.seen(c.DedupeID) {
		return Result{Duplicate: true}
	}
	seq := a.put(c.Queue, c.Msg)
	a.recordDedupe(c.DedupeID, c.Msg.Timestamp)
	return Result{Seq: seq}
}

func (a *applier) publish(c *Command) Result {
	if c.Topic == "" {
		return invalid("publish without a topic")
	}
	if c.Msg == nil {
		return invalid("publish to %q without a message", c.Topic)
	}
	if r := checkDedupeID(c.DedupeID); r.Err != nil {
		return r
	}
	// A duplicate was published already: non-durable subscribers heard of
	// it then (Published), and each durable one got its copy.
	if a.seen(c.DedupeID) {
		return Result{Duplicate: true}
	}
	a.emit(Change{Kind: Published, Queue: c.Topic, Msg: c.Msg})
	// Stored messages are read-only, so the copies share one *Message.
	a.st.durablesFor(c.Topic, func(r *durableRef) {
		if r.selects(c.Msg) {
			a.put(r.queue, c.Msg)
		}
	})
	// Recorded even without durable subscriptions: the publish reached the
	// non-durable subscribers, and a resend must not reach them again.
	a.recordDedupe(c.DedupeID, c.Msg.Timestamp)
	return Result{}
}

func (a *applier) ack(c *Command) Result {
	if err := checkQueue(c.Queue); err != nil {
		return Result{Err: err}
	}
	for _, seq := range c.Seqs {
		// A missing entry is normal: a duplicate ack after failover.
		a.remove(c.Queue, seq)
	}
	return Result{}
}

func (a *applier) deadLetter(c *Command) Result {
	if err := checkQueue(c.Queue); err != nil {
		return Result{Err: err}
	}
	if err := checkQueue(c.Target); err != nil {
		return Result{Err: fmt.Errorf("dead-letter target: %w", err)}
	}
	for _, seq := range c.Seqs {
		m := a.message(c.Queue, seq)
		if m == nil {
			continue
		}
		a.remove(c.Queue, seq)
		// m was just decoded from the store: nobody else holds it yet.
		m.Headers = setHeader(m.Headers, HeaderDLQCause, c.Reason)
		m.Headers = setHeader(m.Headers, HeaderOriginalDestination, m.Destination)
		// A dead letter waits for an operator: it must not expire again in
		// the DLQ (an expired message would be dropped the moment it got
		// there). ActiveMQ clears the expiration the same way.
		m.Expires = 0
		a.put(c.Target, m)
	}
	return Result{}
}

// setHeader replaces the value of key, or appends it. A message moved
// twice keeps one header of each: the latest cause, and its destination,
// which moving does not change.
func setHeader(hs []Header, key, value string) []Header {
	for i := range hs {
		if hs[i].Key == key {
			hs[i].Value = value
			return hs
		}
	}
	return append(hs, Header{Key: key, Value: value})
}

// checkDurable validates the identity of a durable subscription.
func checkDurable(d *Durable) Result {
	if d == nil {
		return invalid("no durable subscription")
	}
	if d.ClientID == "" || d.Name == "" {
		return invalid("durable subscription needs a client-id and a name")
	}
	if err := checkQueue(d.Queue()); err != nil {
		return Result{Err: err}
	}
	return Result{}
}

func (a *applier) subscribe(c *Command) Result {
	if r := checkDurable(c.Durable); r.Err != nil {
		return r
	}
	if c.Durable.Topic == "" {
		return invalid("durable subscription %q without a topic", c.Durable.Name)
	}
	if _, err := selector.Compile(c.Durable.Selector); err != nil {
		return invalid("durable subscription %q: %v", c.Durable.Name, err)
	}
	if dest.HasWildcard(c.Durable.Topic) {
		_, name, _ := dest.Split(c.Durable.Topic)
		if _, err := dest.Compile(name); err != nil {
			return invalid("durable subscription %q: %v", c.Durable.Name, err)
		}
	}
	d := *c.Durable
	q := d.Queue()
	old := a.st.durables[q]
	if old != nil {
		if old.Topic == d.Topic && old.Selector == d.Selector {
			return Result{}
		}
		// Another topic or selector: the stored messages no longer match.
		a.deleteEntries(q)
		a.st.removeDurable(old)
		a.emit(Change{Kind: DurableRemoved, Durable: old})
	}
	a.ensureQueue(q)
	a.val = appendDurable(a.val[:0], &d)
	a.set(durableKey(q), a.val)
	a.st.addDurable(&d)
	a.emit(Change{Kind: DurableAdded, Durable: &d})
	return Result{}
}

func (a *applier) unsubscribe(c *Command) Result {
	if r := checkDurable(c.Durable); r.Err != nil {
		return r
	}
	q := c.Durable.Queue()
	old := a.st.durables[q]
	if old == nil {
		return Result{} // already gone: a retried unsubscribe
	}
	a.deleteEntries(q)
	a.deleteQueueRecord(q)
	a.del(durableKey(q))
	a.st.removeDurable(old)
	a.emit(Change{Kind: DurableRemoved, Durable: old})
	return Result{}
}

func (a *applier) purge(c *Command) Result {
	if err := checkQueue(c.Queue); err != nil {
		return Result{Err: err}
	}
	if _, ok := a.st.queues[c.Queue]; !ok {
		return Result{}
	}
	a.deleteEntries(c.Queue)
	a.emit(Change{Kind: Purged, Queue: c.Queue})
	return Result{}
}

func (a *applier) deleteQueue(c *Command) Result {
	if err := checkQueue(c.Queue); err != nil {
		return Result{Err: err}
	}
	if d := a.st.durables[c.Queue]; d != nil {
		return invalid("queue %q belongs to durable subscription %q of %q: unsubscribe it instead",
			c.Queue, d.Name, d.ClientID)
	}
	if _, ok := a.st.queues[c.Queue]; !ok {
		return Result{}
	}
	a.deleteEntries(c.Queue)
	a.deleteQueueRecord(c.Queue)
	a.emit(Change{Kind: QueueDeleted, Queue: c.Queue})
	return Result{}
}

func (a *applier) createQueue(c *Command) Result {
	if err := checkQueue(c.Queue); err != nil {
		return Result{Err: err}
	}
	if _, ok := a.st.queues[c.Queue]; ok {
		return Result{}
	}
	a.ensureQueue(c.Queue)
	a.emit(Change{Kind: QueueCreated, Queue: c.Queue})
	return Result{}
}

// move moves entries of c.Queue to c.Target. A moved message starts over
// in its new queue: it loses the dead-letter headers, and its destination
// becomes the target, so a later dead-lettering names the queue it was
// really in. Missing entries (acked or moved meanwhile) are skipped.
func (a *applier) move(c *Command) Result {
	if err := checkQueue(c.Queue); err != nil {
		return Result{Err: err}
	}
	if err := checkQueue(c.Target); err != nil {
		return Result{Err: fmt.Errorf("move target: %w", err)}
	}
	if c.Target == c.Queue {
		return invalid("move from %q to itself", c.Queue)
	}
	for _, seq := range c.Seqs {
		m := a.message(c.Queue, seq)
		if m == nil {
			continue
		}
		a.remove(c.Queue, seq)
		// m was just decoded from the store: nobody else holds it yet.
		m.Headers = slices.DeleteFunc(m.Headers, func(h Header) bool {
			return h.Key == HeaderDLQCause || h.Key == HeaderOriginalDestination
		})
		if len(m.Headers) == 0 {
			m.Headers = nil // as decoding a message without headers gives
		}
		m.Destination = c.Target
		a.put(c.Target, m)
	}
	return Result{}
}

// put stores m as a new entry at the tail of queue, creating the queue if
// needed, and returns its seq.
func (a *applier) put(queue string, m *Message) uint64 {
	a.ensureQueue(queue)
	seq := a.st.meta.nextSeq
	a.st.meta.nextSeq++
	a.key = entryKey(a.key[:0], kindIndex, queue, seq)
	a.val = appendMeta(a.val[:0], MetaOf(m))
	a.set(a.key, a.val)
	a.key[0] = kindBody
	a.val = appendMessage(a.val[:0], m)
	a.set(a.key, a.val)
	a.emit(Change{Kind: Enqueued, Queue: queue, Seq: seq, Msg: m})
	return seq
}

// remove deletes entry seq of queue, whether or not it exists.
func (a *applier) remove(queue string, seq uint64) {
	// No read first: it cost two thirds of apply time once acked entries
	// had left the memtable. Seqs are never reused, so deleting an entry
	// that is already gone (a duplicate ack after failover, an ack after a
	// purge) changes nothing. That rules out SingleDelete, whose behaviour
	// is undefined for a key already deleted; plain tombstones are dropped
	// by compaction instead.
	a.key = entryKey(a.key[:0], kindIndex, queue, seq)
	a.must(a.b.Delete(a.key, nil), "delete entry")
	a.key[0] = kindBody
	a.must(a.b.Delete(a.key, nil), "delete entry")
	// Observers may hear of an entry they no longer have: the leader's
	// engine drops its messages before proposing their removal and
	// ignores the report.
	a.emit(Change{Kind: Removed, Queue: queue, Seq: seq})
}

// message reads entry seq of queue, or returns nil if it does not exist.
func (a *applier) message(queue string, seq uint64) *Message {
	a.key = entryKey(a.key[:0], kindBody, queue, seq)
	v, closer, err := a.b.Get(a.key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	a.must(err, "read entry")
	defer closer.Close()
	m, err := decodeMessage(v)
	a.must(err, "read entry")
	return m
}

// deleteEntries deletes every entry of queue with two range deletions,
// however many there are.
func (a *applier) deleteEntries(queue string) {
	for _, kind := range []byte{kindIndex, kindBody} {
		lower, upper := entryRange(kind, queue)
		a.must(a.b.DeleteRange(lower, upper, nil), "delete entries")
	}
}

func (a *applier) ensureQueue(queue string) {
	if _, ok := a.st.queues[queue]; ok {
		return
	}
	a.st.queues[queue] = struct{}{}
	a.set(queueKey(queue), nil)
}

func (a *applier) deleteQueueRecord(queue string) {
	delete(a.st.queues, queue)
	a.del(queueKey(queue))
}

func (a *applier) set(k, v []byte) { a.must(a.b.Set(k, v, nil), "write") }

func (a *applier) del(k []byte) { a.must(a.b.Delete(k, nil), "delete") }

func (a *applier) emit(c Change) {
	if a.observe {
		a.changes = append(a.changes, c)
	}
}

// must panics on a store error: the batch would miss a write that the
// other nodes make, and the node must stop rather than diverge.
func (a *applier) must(err error, what string) {
	if err != nil {
		panic(fmt.Errorf("fsm: %s: %w", what, err))
	}
}
