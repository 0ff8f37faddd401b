package queue

import (
	"slices"
	"strings"

	"github.com/raftmq/raftmq/fsm"
)

// tx is an open transaction: its frames wait for COMMIT. What it buffers
// counts in its session's totals (Session.txFrames, txBytes) from the
// frame that adds it until the transaction is committed or aborted, held
// commits included: MaxTxFrames and MaxTxBytes bound a connection's open
// transactions together, so opening more of them buys no more memory.
type tx struct {
	sess     *Session
	sends    []*fsm.Message
	bytes    int64 // of sends
	acks     []*Delivery
	nacks    []*Delivery
	released bool // its frames no longer count in its session's totals
}

// frames counts the BEGIN and the frames buffered since.
func (t *tx) frames() int { return 1 + len(t.sends) + len(t.acks) + len(t.nacks) }

// counted adds frames and bytes the transaction now buffers to its
// session's totals.
func (t *tx) counted(frames int, bytes int64) {
	t.bytes += bytes
	t.sess.txFrames += frames
	t.sess.txBytes += bytes
}

// release takes the transaction off its session's totals, once: it was
// committed or aborted.
func (t *tx) release() {
	if t.released {
		return
	}
	t.released = true
	t.sess.txFrames -= t.frames()
	t.sess.txBytes -= t.bytes
}

// tx returns the open transaction id, if the session's transactions have
// room for one more frame.
func (s *Session) tx(id string) (*tx, error) {
	t := s.txs[id]
	if t == nil {
		return nil, ErrUnknownTx
	}
	if s.txFrames >= s.e.cfg.MaxTxFrames {
		return nil, ErrTooManyTxFrames
	}
	return t, nil
}

// find resolves an ACK/NACK reference to an unacknowledged delivery.
func (s *Session) find(r AckRef) *Delivery {
	var d *Delivery
	switch {
	case r.ID != "":
		d = s.deliveries[r.ID]
	case r.MessageID != "":
		d = s.byMsgID[r.MessageID]
		if d == nil || (r.Subscription != "" && d.Subscription != r.Subscription) {
			// The same message may be in flight twice (two subscriptions
			// to one topic): look through the subscriptions.
			d = nil
			for _, sub := range s.subs {
				if r.Subscription != "" && sub.id != r.Subscription {
					continue
				}
				for _, c := range sub.inflight[sub.head:] {
					if c.state == dInflight && c.Msg.ID == r.MessageID {
						d = c
						break
					}
				}
			}
		}
	}
	if d == nil || d.state != dInflight {
		return nil
	}
	return d
}

// Ack acknowledges a delivery; in client mode every earlier delivery of
// the subscription too. Outside a transaction done runs after the removal
// is applied.
func (s *Session) Ack(r AckRef, txID string, done func(error)) error {
	e := s.e
	e.mu.Lock()
	if err := s.usable(); err != nil {
		e.mu.Unlock()
		return err
	}
	d := s.find(r)
	if d == nil && s.browsedAck(r) { // a browsed message: ignored (browse.go)
		e.mu.Unlock()
		done(nil)
		return nil
	}
	if d == nil {
		e.mu.Unlock()
		return ErrUnknownAck
	}
	ds := []*Delivery{d}
	if d.sub.ack == AckClient {
		ds = d.sub.acct().upTo(d)
	}
	for _, d := range ds {
		e.reached(d) // frames are written in order: all of them arrived
	}
	if txID != "" {
		t, err := s.tx(txID)
		if err == nil {
			for _, d := range ds {
				e.holdInTx(d)
			}
			t.acks = append(t.acks, ds...)
			t.counted(len(ds), 0)
		}
		e.mu.Unlock()
		if err == nil {
			done(nil)
		}
		return err
	}
	touched := make(map[*destQueue]struct{})
	cmds := e.ackDeliveries(ds, touched)
	for q := range touched {
		e.dispatchFreed(q)
	}
	e.mu.Unlock()
	e.proposeThen(cmds, done)
	return nil
}

// upTo lists the subscription's unacknowledged deliveries up to d.
func (s *subscription) upTo(d *Delivery) []*Delivery {
	var out []*Delivery
	for _, c := range s.inflight[s.head:] {
		if c.state == dInflight {
			out = append(out, c)
		}
		if c == d {
			break
		}
	}
	return out
}

// holdInTx parks a delivery in a transaction: it stops counting against
// prefetch, and COMMIT or ABORT decides its fate.
func (e *Engine) holdInTx(d *Delivery) {
	d.state = dInTx
	d.sub.acct().unacked--
	e.dispatchFreed(d.q)
}

// Nack rejects a delivery: it is redelivered, or dead-lettered once it was
// delivered MaxDeliveries times.
func (s *Session) Nack(r AckRef, txID string, done func(error)) error {
	e := s.e
	e.mu.Lock()
	if err := s.usable(); err != nil {
		e.mu.Unlock()
		return err
	}
	d := s.find(r)
	if d == nil && s.browsedAck(r) { // a browsed message: refused (browse.go)
		e.mu.Unlock()
		return ErrBrowseNack
	}
	if d == nil {
		e.mu.Unlock()
		return ErrUnknownAck
	}
	e.reached(d)
	if txID != "" {
		t, err := s.tx(txID)
		if err == nil {
			e.holdInTx(d)
			t.nacks = append(t.nacks, d)
			t.counted(1, 0)
		}
		e.mu.Unlock()
		if err == nil {
			done(nil)
		}
		return err
	}
	cmds := e.release(d, "NACKed")
	e.dispatchFreed(d.q)
	e.mu.Unlock()
	e.proposeThen(cmds, done)
	return nil
}

// Begin opens a transaction.
func (s *Session) Begin(id string) error {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if _, dup := s.txs[id]; dup {
		return ErrDuplicateTx
	}
	if len(id) > MaxTxIDLen {
		return ErrTxIDTooLong
	}
	if s.txFrames >= s.e.cfg.MaxTxFrames {
		return ErrTooManyTxFrames
	}
	// The BEGIN counts as a frame of the transaction, so that empty
	// transactions are bounded too; the id is copied out of the frame it
	// came in, which it would keep in memory whole.
	t := &tx{sess: s}
	s.txs[strings.Clone(id)] = t
	s.txFrames++
	return nil
}

// Commit applies a transaction's frames atomically: its persistent sends
// and acks, and the dead-lettering its NACKs cause, form one command batch,
// which the log keeps in one entry. done runs after it applied.
//
// The sends to limited queues are checked here, not when they are
// buffered: each queue must have room for all of the transaction's sends
// to it, and the store for their bytes. If one does not, the commit is
// refused with a *FullError (ErrDestinationFull) and the transaction
// stays open, as with ErrMemoryLimit; when every queue it sends to has
// OnFull Block, it is held instead, as one send (flow.go), and done runs
// once it was admitted and applied, or with the error that ended its wait
// (the transaction is then aborted). Nothing of it applies before it is
// admitted: its acked messages stay in flight meanwhile. A transaction
// that sends a queue more messages than its MaxMessages can never fit and
// is refused whatever the policy.
func (s *Session) Commit(id string, done func(error)) error {
	e := s.e
	e.mu.Lock()
	if err := s.usable(); err != nil {
		e.mu.Unlock()
		return err
	}
	t := s.txs[id]
	if t == nil {
		e.mu.Unlock()
		return ErrUnknownTx
	}
	if err := e.txMemory(t); err != nil {
		e.mu.Unlock()
		return err
	}
	if err := e.txScheduled(t); err != nil {
		e.mu.Unlock()
		return err
	}
	if w := e.txWaiter(s, t, done); w != nil {
		held, err := e.holdCommit(w)
		if err != nil {
			e.mu.Unlock()
			return err
		}
		if held {
			delete(s.txs, id)
			e.mu.Unlock()
			return nil
		}
	}
	delete(s.txs, id)
	cmds, finish := e.commitTx(t, done)
	e.mu.Unlock()
	if len(cmds) == 0 {
		finish(nil)
		return nil
	}
	e.propose(cmds, func(_ []fsm.Result, err error) { finish(err) })
	return nil
}

// txScheduled checks that a transaction's scheduled sends, every copy
// they will fire, fit in the store: they are refused rather than held,
// as outside a transaction (sendScheduled).
func (e *Engine) txScheduled(t *tx) error {
	if e.cfg.StoreLimit <= 0 {
		return nil
	}
	var cost int64
	dest := ""
	for _, m := range t.sends {
		if sc, ok, err := parseSchedule(m); ok && err == nil {
			cost += storeCost(m.Size() * int(sc.repeat+1))
			dest = m.Destination
		}
	}
	if cost == 0 {
		return nil
	}
	if full := e.storeFull(dest, cost); full != nil {
		return full
	}
	return nil
}

// txMemory checks that a transaction's non-persistent sends fit in memory.
// They are routed after the commit applied: checking now makes the
// transaction fail whole or not at all.
func (e *Engine) txMemory(t *tx) error {
	var memBytes int64
	for _, m := range t.sends {
		if !m.Persistent {
			memBytes += int64(m.Size())
		}
	}
	if e.npBytes+memBytes > e.cfg.NonPersistentBytes {
		return ErrMemoryLimit
	}
	return nil
}

// txWaiter describes the room a transaction's sends need in limited
// queues, or returns nil when they need none. The messages it acks leave
// with the commit, so they count as room: a transaction that takes a
// message from a full queue and sends one back to it goes, and one that
// does not grow a queue neither waits in it nor is refused by it.
func (e *Engine) txWaiter(s *Session, t *tx, done func(error)) *waiter {
	w := &waiter{sess: s, tx: t, done: done}
	at := func(q *destQueue) int {
		i := slices.IndexFunc(w.needs, func(n need) bool { return n.q == q })
		if i < 0 {
			i = len(w.needs)
			w.needs = append(w.needs, need{q: q})
		}
		return i
	}
	for _, m := range t.sends {
		// A scheduled send does not count in its queue until it fires
		// (schedule.go).
		if _, _, temp := tempDest(m.Destination); temp || isTopic(m.Destination) || scheduled(m) {
			continue
		}
		if q := e.limitedQueue(m.Destination); q != nil {
			size := int64(m.Size())
			i := at(q)
			w.needs[i].msgs++
			w.needs[i].bytes += size
			if m.Persistent {
				w.store += storeCost(m.Size())
			}
		}
	}
	if len(w.needs) == 0 {
		return nil
	}
	for _, d := range t.acks {
		r := d.ref
		if d.state != dInTx || r.state == refGone {
			continue
		}
		size := int64(r.meta.Size)
		if r.persistent {
			w.store -= storeCost(r.meta.Size)
		}
		if i := slices.IndexFunc(w.needs, func(n need) bool { return n.q == d.q }); i >= 0 {
			w.needs[i].msgs--
			w.needs[i].bytes -= size
		}
	}
	w.needs = slices.DeleteFunc(w.needs, func(n need) bool { return n.msgs <= 0 && n.bytes <= 0 })
	if len(w.needs) == 0 {
		return nil
	}
	return w
}

// holdCommit decides whether a commit's sends can go now (false, nil),
// must be held (true, nil: it is) or are refused (the error). A commit
// to any queue whose OnFull is Fail is refused rather than held.
func (e *Engine) holdCommit(w *waiter) (held bool, err error) {
	fail := false
	for _, n := range w.needs {
		if err := n.q.tooBig(n.msgs); err != nil {
			e.failed(err)
			return false, err
		}
		fail = fail || n.q.limit.OnFull == Fail
		if t := n.q.limit.BlockTimeout; t > 0 && (w.timeout == 0 || t < w.timeout) {
			w.timeout = t
		}
	}
	full := e.full(w)
	if full == nil && !w.behind() {
		return false, nil
	}
	if fail {
		if full == nil {
			full = e.whyHeld(w)
		}
		e.failed(full)
		return false, full
	}
	e.hold(w)
	return true, nil
}

// commitTx does a commit's work under e.mu: it reserves room for the
// sends to limited queues and finishes the acks and nacks. It returns the
// commands to propose, and the function to call with their outcome,
// without the lock (with none, at once).
func (e *Engine) commitTx(t *tx, done func(error)) ([]fsm.Command, func(error)) {
	// Each persistent send carries its own dedupe-id. One that is a
	// duplicate, of an earlier message or of an earlier send of this
	// transaction, is skipped and the rest applies: a client that replays
	// a transaction after a failover stores each message once.
	t.release()
	var cmds []fsm.Command
	var memory, reserved []*fsm.Message
	var topics []*topic
	now := e.nowMs()
	for _, m := range t.sends {
		// Scheduled delivery (schedule.go): stored for later, its delay
		// counting from the commit.
		if sc, ok, err := parseSchedule(m); ok && err == nil {
			cmds = append(cmds, scheduleCommand(m, sc, now))
			continue
		}
		if _, _, temp := tempDest(m.Destination); !temp && !isTopic(m.Destination) {
			if q := e.limitedQueue(m.Destination); q != nil {
				e.reserve(q, m)
				reserved = append(reserved, m)
			}
		}
		switch {
		case !m.Persistent:
			memory = append(memory, m)
		case isTopic(m.Destination):
			cmds = append(cmds, fsm.Command{Op: fsm.OpPublish, Topic: m.Destination, Msg: m, DedupeID: dedupeID(m)})
			tp := e.topic(m.Destination)
			tp.inRaft++
			topics = append(topics, tp)
		default:
			cmds = append(cmds, fsm.Command{Op: fsm.OpEnqueue, Queue: m.Destination, Msg: m, DedupeID: dedupeID(m)})
		}
	}
	touched := make(map[*destQueue]struct{})
	cmds = append(cmds, e.ackDeliveries(t.acks, touched)...)
	for _, d := range t.nacks {
		d.state = dInflight // release expects an unfinished delivery
		d.sub.acct().unacked++
		cmds = append(cmds, e.release(d, "NACKed")...)
		touched[d.q] = struct{}{}
	}
	for q := range touched {
		e.dispatchFreed(q)
	}

	finish := func(err error) {
		e.mu.Lock()
		for _, tp := range topics {
			tp.inRaft--
			e.gcTopic(tp)
		}
		// The stored sends were converted as they applied; the rest,
		// non-persistent ones included, give their room back here, and
		// the non-persistent ones take it again as they are routed.
		e.settle(reserved)
		if err == nil {
			err = e.sendMemory(memory)
		}
		e.mu.Unlock()
		done(err)
	}
	return cmds, finish
}

// sendMemory routes committed non-persistent messages.
func (e *Engine) sendMemory(ms []*fsm.Message) error {
	for _, m := range ms {
		if _, _, temp := tempDest(m.Destination); temp && e.temps[m.Destination] == nil {
			// Its connection closed while the transaction was open.
			return ErrTempDeleted
		}
		if !isTopic(m.Destination) {
			if err := e.enqueueMemory(m); err != nil {
				return err
			}
			continue
		}
		e.fanout(e.topics[m.Destination], m, nil)
	}
	return nil
}

// Abort discards a transaction's sends; the messages it acked or nacked
// become deliverable again.
func (s *Session) Abort(id string) error {
	e := s.e
	e.mu.Lock()
	if err := s.usable(); err != nil {
		e.mu.Unlock()
		return err
	}
	t := s.txs[id]
	if t == nil {
		e.mu.Unlock()
		return ErrUnknownTx
	}
	delete(s.txs, id)
	cmds := e.abort(t)
	e.mu.Unlock()
	if len(cmds) > 0 {
		e.propose(cmds, nil)
	}
	return nil
}

// abort returns a transaction's acked and nacked messages to their queues.
func (e *Engine) abort(t *tx) []fsm.Command {
	t.release()
	var cmds []fsm.Command
	touched := make(map[*destQueue]struct{})
	for _, ds := range [][]*Delivery{t.acks, t.nacks} {
		for _, d := range ds {
			if d.state != dInTx {
				continue
			}
			d.state = dInflight
			d.sub.acct().unacked++
			cmds = append(cmds, e.release(d, "transaction aborted")...)
			touched[d.q] = struct{}{}
		}
	}
	for q := range touched {
		e.dispatch(q)
	}
	return cmds
}

func isTopic(dest string) bool {
	k, err := parseDest(dest)
	return err == nil && k == kindTopic
}
