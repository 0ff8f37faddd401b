package queue

import (
	"cmp"
	"slices"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// Producer flow control: sends held until their queue has room (Block).
//
// Each limited queue keeps its held sends in a FIFO (destQueue.held). The
// order is strict: while anything is held, a later send to that queue is
// held behind it even if it would fit, so one producer's messages keep
// their order. A COMMIT that must wait is held in the FIFO of every
// limited queue it sends to, and goes when it is first in all of them and
// all of them have room; it is placed in all of them at once, so two
// commits cannot wait for each other.
//
// Room frees when a message leaves a queue (drop: an ack, expiry,
// dead-lettering, a purge or delete, a move, a bridge's ack) or a
// reservation is given back (settle). Either signals the admitter, one
// goroutine that takes e.mu, admits what fits now, first in each queue,
// round robin over the queues by arrival, and proposes it before it lets
// go of the lock, so that nothing overtakes a held send it just admitted.
// Across queues nothing is strict: a send the store has no room for may
// be passed by a smaller one to another queue.
//
// A network bridge delivers into this group's queues through Send like
// any producer, so a full queue holds its pump too: backpressure across
// groups, the source group keeping the messages meanwhile.
//
// A held send ends with an error instead when its BlockTimeout passes
// (ErrDestinationFull), or when its session or the engine closes
// (ErrClosed); nothing of it is stored. Its done runs without e.mu, as
// every done does.

// waiter is one send, or one COMMIT, held for room.
type waiter struct {
	seq   uint64 // arrival order among held sends
	sess  *Session
	needs []need // the room it needs in each limited queue
	store int64  // persistent bytes: the room it needs in the store
	done  func(error)
	msg   *fsm.Message // a send, or
	tx    *tx          // a commit's transaction
	// timeout is BlockTimeout (the shortest of its queues', for a commit);
	// the timer fails the waiter when it passes. 0: no timer.
	timeout time.Duration
	timer   *time.Timer
	gone    bool // admitted or failed: skipped in the FIFOs it is still in
}

// need is the room a waiter needs in one queue.
type need struct {
	q     *destQueue
	msgs  int64
	bytes int64
}

// waitList is a queue's FIFO of held sends. Removal is lazy: a gone
// waiter stays until it reaches the head, or until a compaction.
type waitList struct {
	ws   []*waiter
	head int
	n    int // live waiters
}

func (l *waitList) push(w *waiter) {
	l.ws = append(l.ws, w)
	l.n++
}

// peek returns the first live waiter, or nil.
func (l *waitList) peek() *waiter {
	for l.head < len(l.ws) {
		if w := l.ws[l.head]; !w.gone {
			return w
		}
		l.ws[l.head] = nil
		l.head++
	}
	return nil
}

// removed records that a waiter in l is gone. Once more than half of the
// list, and more than 32 entries, are gone (waiters that timed out or
// whose session closed behind a head that does not move), the list is
// compacted.
func (l *waitList) removed() {
	l.n--
	if l.n == 0 {
		*l = waitList{}
		return
	}
	if dead := len(l.ws) - l.head - l.n; dead > 32 && dead > l.n {
		live := l.ws[:0]
		for _, w := range l.ws[l.head:] {
			if !w.gone {
				live = append(live, w)
			}
		}
		clear(l.ws[len(live):])
		l.ws, l.head = live, 0
	}
}

// first reports whether w is first in every FIFO it waits in.
func (w *waiter) first() bool {
	for _, n := range w.needs {
		if n.q.held.peek() != w {
			return false
		}
	}
	return true
}

// behind reports whether some queue w needs has sends held already.
func (w *waiter) behind() bool {
	for _, n := range w.needs {
		if n.q.held.n > 0 {
			return true
		}
	}
	return false
}

// full returns why w does not fit now, or nil.
func (e *Engine) full(w *waiter) *FullError {
	for _, n := range w.needs {
		if err := n.q.queueFull(n.msgs, n.bytes); err != nil {
			return err
		}
	}
	return e.storeFull(w.needs[0].q.name, w.store)
}

// whyHeld explains why w is still held: it does not fit, or what is held
// before it does not.
func (e *Engine) whyHeld(w *waiter) *FullError {
	if err := e.full(w); err != nil {
		return err
	}
	for _, n := range w.needs {
		if h := n.q.held.peek(); h != nil && h != w {
			if err := e.full(h); err != nil {
				return err
			}
		}
	}
	// Everything fits: the admitter has not run yet. Say what the queue
	// holds.
	n := w.needs[0]
	err := &FullError{Destination: n.q.name, Unit: unitMessages, Used: n.q.msgs + n.q.rsvMsgs,
		Limit: n.q.limit.MaxMessages, Adding: n.msgs}
	switch {
	case n.q.limit.MaxMessages > 0:
	case n.q.limit.MaxBytes > 0:
		err.Unit, err.Used, err.Limit, err.Adding = unitBytes, n.q.bytes+n.q.rsvBytes, n.q.limit.MaxBytes, n.bytes
	default:
		err.Unit, err.Used, err.Limit, err.Adding = unitStoreBytes, e.storeBytes+e.storeRsv, e.cfg.StoreLimit, w.store
	}
	return err
}

// hold puts w at the tail of the FIFOs of its queues.
func (e *Engine) hold(w *waiter) {
	e.heldSeq++
	w.seq = e.heldSeq
	for _, n := range w.needs {
		n.q.held.push(w)
		n.q.stats.blocked++
		e.holding[n.q] = struct{}{}
	}
	e.heldSends++
	if w.msg != nil {
		e.heldBytes += int64(w.msg.Size())
	}
	w.sess.held[w] = struct{}{}
	if w.timeout > 0 {
		w.timer = time.AfterFunc(w.timeout, func() { e.timedOut(w) })
	}
}

// unhold takes w out of the FIFOs: it was admitted or failed.
func (e *Engine) unhold(w *waiter) {
	w.gone = true
	for _, n := range w.needs {
		n.q.held.removed()
		if n.q.held.n == 0 {
			delete(e.holding, n.q)
		}
	}
	e.heldSends--
	if w.msg != nil {
		e.heldBytes -= int64(w.msg.Size())
	}
	delete(w.sess.held, w)
	if w.timer != nil {
		w.timer.Stop()
	}
}

// failed counts a refused send on the queue err names.
func (e *Engine) failed(err *FullError) {
	if q := e.queues[err.Destination]; q != nil {
		q.stats.failed++
	}
}

// roomFreed tells the admitter that held sends may fit now. It does not
// block: one signal stands for any number.
func (e *Engine) roomFreed() {
	if e.heldSends == 0 {
		return
	}
	select {
	case e.admitCh <- struct{}{}:
	default:
	}
}

// admitLoop admits held sends whenever room may have freed.
func (e *Engine) admitLoop() {
	defer e.wg.Done()
	for {
		select {
		case <-e.stop:
			return
		case <-e.admitCh:
		}
		e.mu.Lock()
		after := e.admit()
		e.mu.Unlock()
		for _, f := range after {
			f()
		}
	}
}

// admit admits the held sends that fit now, under e.mu: each round takes
// at most the first of each queue, queues in the order their first sends
// arrived, so that queues share the store's room. It returns the done
// calls to make without the lock.
func (e *Engine) admit() []func() {
	var after []func()
	var qs []*destQueue
	for !e.closed && e.heldSends > 0 {
		qs = qs[:0]
		for q := range e.holding {
			qs = append(qs, q)
		}
		slices.SortFunc(qs, func(a, b *destQueue) int { return cmp.Compare(a.held.peek().seq, b.held.peek().seq) })
		progress := false
		for _, q := range qs {
			// An admitted commit may have emptied a later queue.
			w := q.held.peek()
			if w == nil || !w.first() || e.full(w) != nil {
				continue
			}
			e.unhold(w)
			if f := e.admitHeld(w); f != nil {
				after = append(after, f)
			}
			progress = true
		}
		if !progress {
			break
		}
	}
	return after
}

// admitHeld carries out a held send or commit that now fits. It proposes
// under e.mu (Log.Propose does not block), so that a send arriving once
// the lock is free follows it in the log. It returns what to call without
// the lock, or nil.
func (e *Engine) admitHeld(w *waiter) func() {
	done := w.done
	if w.tx != nil {
		if err := e.txMemory(w.tx); err != nil {
			return e.failHeld(w, err)
		}
		cmds, finish := e.commitTx(w.tx, done)
		if len(cmds) == 0 {
			return func() { finish(nil) }
		}
		e.propose(cmds, func(_ []fsm.Result, err error) { finish(err) })
		return nil
	}
	m := w.msg
	if !m.Persistent {
		err := e.enqueueMemory(m)
		return func() { done(err) }
	}
	e.reserve(w.needs[0].q, m)
	e.proposeSend(m, done)
	return nil
}

// failHeld ends a held send, already unheld, with err: nothing of it is
// stored, and a held commit's transaction is aborted. It returns the done
// call to make without the lock.
func (e *Engine) failHeld(w *waiter, err error) func() {
	if w.tx != nil && !e.closed {
		if cmds := e.abort(w.tx); len(cmds) > 0 {
			e.propose(cmds, nil)
		}
	}
	done := w.done
	return func() { done(err) }
}

// timedOut fails w once its BlockTimeout has passed.
func (e *Engine) timedOut(w *waiter) {
	e.mu.Lock()
	if w.gone || e.closed {
		e.mu.Unlock()
		return
	}
	err := e.whyHeld(w)
	err.Waited = w.timeout
	e.unhold(w)
	e.failed(err)
	after := e.failHeld(w, err)
	e.roomFreed() // what was held behind w may fit
	e.mu.Unlock()
	after()
}

// releaseHeld fails every send s holds, with ErrClosed: the session or
// the engine is closing. Call with e.mu held; it returns the done calls
// to make without the lock.
func (e *Engine) releaseHeld(s *Session) []func() {
	if len(s.held) == 0 {
		return nil
	}
	ws := make([]*waiter, 0, len(s.held))
	for w := range s.held {
		ws = append(ws, w)
	}
	// Abort held commits in the order they came.
	slices.SortFunc(ws, func(a, b *waiter) int { return cmp.Compare(a.seq, b.seq) })
	after := make([]func(), 0, len(ws))
	for _, w := range ws {
		e.unhold(w)
		after = append(after, e.failHeld(w, ErrClosed))
	}
	e.roomFreed() // what was held behind them may fit
	return after
}
