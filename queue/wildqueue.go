package queue

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Wildcard subscriptions to queues, as ActiveMQ's wildcard consumers: a
// SUBSCRIBE to /queue/orders.> consumes from every queue of the group
// whose name the pattern matches, those there now and those made later.
//
// To the client it is one subscription: one id, one prefetch window and
// one order of deliveries, which a cumulative (client mode) ACK follows
// across queues. The engine keeps a member subscription on each matching
// queue. To that queue's dispatch a member is a consumer like any other,
// with the selector, priority and exclusivity the SUBSCRIBE asked for, and
// message groups pin to it. Its prefetch credit and in-flight deliveries
// are its parent's (acct), so credit freed by an ACK on one queue lets any
// of the others deliver: a member that could not take a message of its
// queue for want of credit waits in its parent's line, and freed credit
// serves the line in turn (dispatchFreed, dispatchWild). Deliveries show
// the queue they came from.
//
// A member counts as a local consumer of its queue, in the demand other
// groups' bridges follow too: the group has a consumer of that queue.
//
// Members are consumers of the connection: each counts against
// Config.MaxSubscriptions, as the subscriptions do. A SUBSCRIBE that
// matches more queues than the connection has room for is refused; a
// queue made later that would take it past the limit ends the connection
// with an ERROR (Closer) rather than leave that queue silently
// unconsumed: its client learns why, and on subscribing again is refused
// with the same reason.
// Queues that exist only in other groups are not matched. Temporary
// queues, durable subscriptions' store queues and the scheduler's queue
// are never members' queues.

// wildQueue is a wildcard queue subscription's pattern and members.
type wildQueue struct {
	pat     Pattern
	members []*subscription // one per matching queue, in the order they came
	// waiting: members whose queue had messages when they had no credit
	// or room, in the order they found so (each at most once: their
	// waiting flag). Stale entries cost a dispatch that finds nothing.
	// The line runs from head and is compacted as it is served, so that
	// it allocates nothing in steady use.
	waiting []*subscription
	head    int
	// outgrown: a queue was made that would take the connection past
	// its limit, and the connection is being closed (outgrown).
	outgrown bool
}

// push adds m at the back of the line.
func (w *wildQueue) push(m *subscription) {
	if w.head > 0 && w.head*2 >= len(w.waiting) {
		n := copy(w.waiting, w.waiting[w.head:])
		clear(w.waiting[n:])
		w.waiting, w.head = w.waiting[:n], 0
	}
	w.waiting = append(w.waiting, m)
}

// pop takes the member at the front of the line; nil if it is empty.
func (w *wildQueue) pop() *subscription {
	if w.head == len(w.waiting) {
		return nil
	}
	m := w.waiting[w.head]
	w.waiting[w.head] = nil
	w.head++
	return m
}

// acct is the subscription whose prefetch credit and in-flight list s
// uses: its wildcard parent for a member, else s itself.
func (s *subscription) acct() *subscription {
	if s.parent != nil {
		return s.parent
	}
	return s
}

// wildQueueName reports whether a queue of that store name may be a
// wildcard subscription's member queue: a /queue/ destination.
func wildQueueName(name string) bool { return strings.HasPrefix(name, "/queue/") }

// consumers is what counts against Config.MaxSubscriptions: the
// session's subscriptions and the members of its wildcard ones.
func (s *Session) consumers() int { return len(s.subs) + s.members }

// subscribeWildQueue adds a wildcard queue subscription, with a member on
// each matching queue the engine knows. Called with e.mu held.
func (e *Engine) subscribeWildQueue(sub *subscription) (ready bool, err error) {
	_, name, _ := SplitDestination(sub.dest)
	p, err := CompilePattern(name)
	if err != nil {
		return false, errors.Join(ErrBadDestination, err)
	}
	var match []*destQueue
	for name, q := range e.queues {
		if wildQueueName(name) && p.Match(name[len("/queue/"):]) {
			match = append(match, q)
		}
	}
	s := sub.sess
	if n := s.consumers() + 1 + len(match); n > e.cfg.MaxSubscriptions {
		return false, fmt.Errorf("%w: %s matches %d queues, and each queue a wildcard consumes from counts as a subscription (limit %d)",
			ErrTooManySubs, sub.dest, len(match), e.cfg.MaxSubscriptions)
	}
	// In name order: which queue is served first does not depend on a
	// map's order.
	slices.SortFunc(match, func(a, b *destQueue) int { return strings.Compare(a.name, b.name) })
	sub.wq = &wildQueue{pat: p}
	s.subs[sub.id] = sub
	e.wildQueues[sub] = struct{}{}
	for _, q := range match {
		e.joinWild(sub, q)
	}
	return true, nil
}

// joinWild adds a member of the wildcard subscription parent on q, a
// queue its pattern matches.
func (e *Engine) joinWild(parent *subscription, q *destQueue) {
	parent.sess.members++
	m := &subscription{id: parent.id, sess: parent.sess, dest: parent.dest, ack: parent.ack,
		prefetch: parent.prefetch, sel: parent.sel, exclusive: parent.exclusive,
		priority: parent.priority, parent: parent}
	parent.wq.members = append(parent.wq.members, m)
	e.attach(m, q)
}

// newQueueForWild gives a queue just made to the wildcard subscriptions
// that match it. Called with e.mu held, from queue.
func (e *Engine) newQueueForWild(q *destQueue) {
	if len(e.wildQueues) == 0 || !wildQueueName(q.name) {
		return
	}
	name := q.name[len("/queue/"):]
	for parent := range e.wildQueues {
		switch s := parent.sess; {
		case !parent.wq.pat.Match(name) || parent.wq.outgrown:
		case s.consumers() >= e.cfg.MaxSubscriptions:
			e.outgrown(parent, q)
		default:
			e.joinWild(parent, q)
		}
	}
}

// outgrown ends the connection of a wildcard subscription that q would
// take past Config.MaxSubscriptions (see the top of this file).
func (e *Engine) outgrown(parent *subscription, q *destQueue) {
	parent.wq.outgrown = true // once: the connection is closing
	reason := fmt.Sprintf("wildcard subscription %s (id %s) now matches more queues than the connection may consume from: %s is one too many (limit %d subscriptions, one per queue a wildcard consumes from)",
		parent.dest, parent.id, q.name, e.cfg.MaxSubscriptions)
	e.cfg.Logger.Warn("closing a connection whose wildcard subscription outgrew its limit",
		"subscription", parent.id, "destination", parent.dest, "queue", q.name, "limit", e.cfg.MaxSubscriptions)
	if c, ok := parent.sess.out.(Closer); ok {
		c.CloseWithError(reason)
	}
}

// removeWild detaches a wildcard subscription's members from their
// queues; its deliveries were released already (removeSub).
func (e *Engine) removeWild(parent *subscription) {
	delete(e.wildQueues, parent)
	parent.sess.members -= len(parent.wq.members)
	for _, m := range parent.wq.members {
		e.detach(m)
		e.dispatch(m.q)
	}
	parent.wq.members = nil
}

// dispatchWild serves a wildcard subscription's waiting members, first
// come first, while it has credit: each member's queue is dispatched, and
// a member that used the credit up with messages left goes to the back of
// the line again (markWaiting), so no queue is always served first.
func (e *Engine) dispatchWild(parent *subscription) {
	w := parent.wq
	for n := len(w.waiting) - w.head; n > 0 && parent.ready(); n-- {
		m := w.pop()
		if m == nil {
			return
		}
		m.waiting = false
		e.dispatch(m.q)
	}
}

// markWaiting puts the members of wildcard subscriptions on q that could
// not take its messages for want of credit or room in their parents'
// lines. Called when a dispatch of q ends.
func (e *Engine) markWaiting(q *destQueue) {
	// Parked messages are for no consumer of q, except with network
	// consumers, where a local one may take them (dispatchNetwork).
	if q.pending.n == 0 && (q.network == 0 || q.parked.n == 0) {
		return
	}
	for _, c := range q.consumers {
		if c.parent != nil && !c.waiting && !c.ready() {
			c.waiting = true
			c.parent.wq.push(c)
		}
	}
}

// dispatchFreed dispatches q after deliveries of its consumers stopped
// counting against their prefetch (acked, nacked, or held in a
// transaction). The wildcard subscriptions among its consumers share that
// credit with their other queues: they go first, taking turns between
// their queues (dispatchWild), so that a long backlog in q does not keep
// the others waiting; then q's own consumers.
func (e *Engine) dispatchFreed(q *destQueue) {
	if q.wildMembers > 0 {
		for _, c := range q.consumers { // dispatch does not change them
			if c.parent != nil {
				e.dispatchWild(c.parent)
			}
		}
	}
	e.dispatch(q)
}
