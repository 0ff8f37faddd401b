package queue

import (
	"strconv"

	"github.com/raftmq/raftmq/fsm"
)

// dispatch hands q's pending messages to its consumers while a consumer
// has prefetch credit and its connection has room, each message to the
// consumer pick chooses (consumers.go: selectors, exclusive consumers,
// priorities, message groups). A message no consumer may have is parked;
// one that only consumers without room now may have is stepped over, at
// most maxSetAside per call, and stays in its place. A queue with network
// consumers goes by dispatchNetwork, so the rules of networks cost the
// others nothing.
func (e *Engine) dispatch(q *destQueue) {
	if e.closed || len(q.consumers) == 0 {
		return
	}
	if q.wildMembers > 0 {
		defer e.markWaiting(q) // wildqueue.go
	}
	if q.network > 0 {
		e.dispatchNetwork(q)
		return
	}
	now := e.nowMs()
	var buf [16]*ref
	aside := buf[:0]
	parked := 0
	defer func() {
		if parked >= maxParkPerPass && q.pending.n > 0 {
			e.continueDispatch(q)
		}
	}()
	for q.pending.n > 0 && len(aside) < maxSetAside && parked < maxParkPerPass && q.anyReady() {
		r := q.pending.pop()
		if r == nil {
			break
		}
		e.take(q, r)
		if r.expired(now) {
			e.expire(q, r)
			continue
		}
		// The body is needed to choose (selectors and groups read
		// headers), and would be read for the delivery anyway.
		if r.msg == nil && !e.loadBody(q, r) {
			continue
		}
		s := q.pick(r)
		if s == nil {
			if q.anyMayHave(r, false) {
				aside = append(aside, r)
			} else {
				e.park(q, r)
				parked++
			}
			continue
		}
		e.deliver(s, q, r, r.msg)
	}
	for _, r := range aside {
		e.putBack(q, r)
	}
}

// maxParkPerPass bounds the messages one dispatch call parks. When the
// consumers change, every parked message comes back to be looked at again
// (its body read from the store, the selectors run): a large backlog that
// no consumer selects is parked again in passes of this many, each in its
// own hold of the engine's lock (continueDispatch), so sends, acks and
// other queues are served in between.
const maxParkPerPass = 1024

// continueDispatch dispatches q again soon, in a goroutine of its own that
// takes the lock anew: the current pass stopped at maxParkPerPass.
func (e *Engine) continueDispatch(q *destQueue) {
	if q.continuing || e.closed {
		return
	}
	q.continuing = true
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.mu.Lock()
		defer e.mu.Unlock()
		q.continuing = false
		if !e.closed {
			e.dispatch(q)
		}
	}()
}

// maxSetAside bounds the pending messages one dispatchNetwork call steps
// over because, though a network consumer of the queue may have them, none
// of the consumers that can take a message now may. Beyond it the call
// stops: a long run of such messages waits for a consumer that may take
// them instead of being walked on every dispatch. (Messages that no
// network consumer may have are parked instead, and not walked again.)
const maxSetAside = 128

// dispatchNetwork is dispatch for a queue with network consumers (see
// network.go): each message goes to a consumer that may have it
// (consumerFor), and a message that the consumers able to take one now
// may not have does not hold up the messages behind it. If no network
// consumer of the queue may have it, it is parked until a local consumer
// takes it; otherwise it is set aside, and returned to its place when the
// call ends. Parked and pending messages leave in one order, priority
// then arrival, as from one list.
func (e *Engine) dispatchNetwork(q *destQueue) {
	now := e.nowMs()
	// Replay: with no local consumer at all, the messages follow the
	// consumers to the groups they moved to, wherever they have been.
	replay := q.local == 0
	var buf [16]*ref
	aside := buf[:0]
	parked := q.parked.n > 0 // cleared once no local consumer can take one
	parkedNow := 0
	defer func() {
		if parkedNow >= maxParkPerPass && q.pending.n > 0 {
			e.continueDispatch(q)
		}
	}()
	for len(aside) < maxSetAside && parkedNow < maxParkPerPass && (q.pending.n > 0 || parked) {
		var r *ref
		var s *subscription
		if parked {
			var k, p *ref
			if q.parked.n > 0 {
				k = q.parked.peek()
			}
			if k == nil {
				parked = false
				continue
			}
			if q.pending.n > 0 {
				p = q.pending.peek()
			}
			if p == nil || before(k, p) {
				if k.msg == nil && !e.loadBody(q, k) {
					continue
				}
				if s = q.pick(k); s == nil {
					parked = false
					continue
				}
				r = q.parked.pop()
				r.parked = false
			}
		}
		if r == nil {
			if !q.anyReady() {
				break
			}
			if r = q.pending.pop(); r == nil {
				break
			}
		}
		e.take(q, r)
		if r.expired(now) {
			e.expire(q, r)
			continue
		}
		if r.msg == nil && !e.loadBody(q, r) {
			continue
		}
		if s == nil {
			s = q.consumerFor(r, replay)
		}
		if s == nil {
			if !replay && !q.networkMayHave(r) || !q.anyMayHave(r, replay) {
				e.park(q, r)
				parkedNow++
			} else {
				aside = append(aside, r)
			}
			continue
		}
		e.deliver(s, q, r, r.msg)
	}
	// Back among the returned messages, which keep arrival order: each
	// is next again in its place.
	for _, r := range aside {
		e.putBack(q, r)
	}
}

// park moves r, taken from q's pending messages, to its parked ones: no
// consumer of q may have it, or (with network consumers) no network
// consumer may, and only a local consumer will take it. It stays there
// until q's consumers change (unpark). Its body leaves the cache: parked
// messages may be many, and wait long.
func (e *Engine) park(q *destQueue, r *ref) {
	if r.persistent && r.cached {
		e.uncache(r)
	}
	if r.state == refInflight {
		q.inflight--
	}
	r.state = refPending
	r.parked = true
	if r.meta.Expires != 0 {
		q.expiring++
	}
	// Messages that came back may be parked after later ones.
	q.parked.pushInOrder(r)
}

// unpark returns q's parked messages to its pending ones, in their order:
// a network consumer came that may have them, or q lost its last network
// consumer or its last local one.
func (q *destQueue) unpark() {
	if q.parked.n == 0 {
		q.parked.reset() // dead entries only
		return
	}
	q.parked.each(func(r *ref) {
		r.parked = false
		q.pending.pushReturned(r)
	})
	q.parked.reset()
}

// loadBody reads r's body (and the ones that follow it) from the store. A
// message that cannot be read is dropped, and false returned.
func (e *Engine) loadBody(q *destQueue, r *ref) bool {
	e.readAhead(q, r)
	if r.msg == nil {
		// Gone from the store (a purge racing this dispatch) or
		// unreadable: it can't be delivered.
		e.cfg.Logger.Warn("dispatch: stored message not found", "queue", q.name, "seq", r.seq)
		e.drop(q, r)
		return false
	}
	return true
}

// Read-ahead bounds: one pass reads about readAheadBytes of bodies, and
// passes stop adding once the cache is readAheadSlack over its budget (the
// message being dispatched is always read).
const (
	readAheadBytes = 1 << 20
	readAheadSlack = 16 << 20
)

// readAhead loads r's body, and the bodies of the pending messages stored
// after it in q, with one sequential read. A consumer that fell behind
// the cache would otherwise cost a random read per message, and pending
// messages leave a queue mostly in seq order.
func (e *Engine) readAhead(q *destQueue, r *ref) {
	budget := readAheadBytes // counts every entry read, used or not
	err := e.store.Messages(q.name, r.seq, func(seq uint64, m *fsm.Message) bool {
		if seq != r.seq && (budget <= 0 || e.cacheMem >= e.cfg.CacheBytes+readAheadSlack) {
			return false
		}
		budget -= len(m.Body) + 64
		x := q.refs[seq]
		if x == nil || x.msg != nil || (x != r && x.state != refPending) {
			return true
		}
		x.msg, x.cached = m, true
		e.cacheMem += int64(x.meta.Size)
		return true
	})
	if err != nil {
		e.cfg.Logger.Warn("dispatch: read messages", "queue", q.name, "from", r.seq, "err", err)
	}
}

// ready reports whether the subscription can take a message now: it has
// prefetch credit (its wildcard parent's, for a member) and its
// connection has room.
func (s *subscription) ready() bool {
	a := s.acct()
	return a.unacked < a.prefetch && !s.sess.closed && s.sess.out.Writable()
}

// anyReady reports whether some consumer of q can take a message now.
func (q *destQueue) anyReady() bool {
	for _, s := range q.consumers {
		if s.ready() {
			return true
		}
	}
	return false
}

// networkMayHave reports whether some network consumer of q, able to take
// a message now or not, may have r.
func (q *destQueue) networkMayHave(r *ref) bool {
	for _, s := range q.consumers {
		if s.net != nil && s.net.eligible(r.meta.Path) {
			return true
		}
	}
	return false
}

// consumerFor picks the consumer for r among those that can take a message
// now and may have it (mayHave): the local consumers and the network
// consumers that may have r (all of them on replay), the highest priority
// first, round robin among equals, and a LowPriority network consumer only
// when none of those can. nil means none can.
func (q *destQueue) consumerFor(r *ref, replay bool) *subscription {
	n := len(q.consumers)
	best, low := -1, -1
	for i := 0; i < n; i++ {
		j := (q.rr + i) % n
		s := q.consumers[j]
		if !s.ready() || !q.mayHave(s, r) {
			continue
		}
		if s.net != nil {
			if !replay && !s.net.eligible(r.meta.Path) {
				continue
			}
			if s.net.LowPriority {
				if low < 0 {
					low = j
				}
				continue
			}
		}
		if best < 0 || s.priority > q.consumers[best].priority {
			best = j
		}
	}
	if best < 0 {
		// The cursor moves past it, so low-priority consumers share
		// round robin among themselves too.
		best = low
	}
	if best < 0 {
		return nil
	}
	q.rr = (best + 1) % n
	return q.consumers[best]
}

func (e *Engine) deliver(s *subscription, q *destQueue, r *ref, msg *fsm.Message) {
	sess := s.sess
	sess.ackSeq++
	dest := s.dest
	switch {
	case s.wild:
		dest = msg.Destination // the topic it was published to, as ActiveMQ shows it
	case s.parent != nil:
		dest = q.name // the queue it came from (wildqueue.go)
	}
	d := &Delivery{
		Msg:           msg,
		Destination:   dest,
		Subscription:  s.id,
		AckID:         strconv.FormatUint(sess.ackSeq, 10),
		Redelivered:   r.redelivered,
		DeliveryCount: r.deliveries + 1,
		sess:          sess,
		sub:           s,
		q:             q,
		ref:           r,
	}
	q.delivered(s, r)
	sess.deliveries[d.AckID] = d
	sess.byMsgID[msg.ID] = d
	a := s.acct()
	a.inflight = append(a.inflight, d)
	a.unacked++
	a.delivered++
	sess.out.Deliver(d)
}

// Written is called by the transport once d's frame is on the socket: it
// counts as a delivery, and in auto mode it is the acknowledgement.
func (d *Delivery) Written() {
	e := d.sess.e
	e.mu.Lock()
	if d.state != dInflight || d.written {
		e.mu.Unlock()
		return
	}
	e.reached(d)
	var cmds []fsm.Command
	if d.sub.ack == AckAuto {
		cmds = e.ackDeliveries([]*Delivery{d}, nil)
		e.dispatchFreed(d.q)
	}
	e.mu.Unlock()
	if len(cmds) > 0 {
		e.propose(cmds, nil)
	}
}

// WriteFailed is called by the transport for a delivery whose frame it
// was writing when the connection failed: the client may have it, so a
// redelivery must be flagged (and counted), but it is not acknowledged,
// even in auto mode.
func (d *Delivery) WriteFailed() {
	e := d.sess.e
	e.mu.Lock()
	e.reached(d)
	e.mu.Unlock()
}

// reached records that d's message may have reached the client: it was
// written, or the client named it in an ACK or NACK (which can arrive
// before the transport reports the write).
func (e *Engine) reached(d *Delivery) {
	if d.state == dInflight && !d.written {
		d.written = true
		d.ref.deliveries++
	}
}

// finish ends a delivery: it no longer counts against prefetch and can no
// longer be acknowledged.
func (e *Engine) finish(d *Delivery) {
	if d.state == dDone {
		return
	}
	a := d.sub.acct()
	if d.state == dInflight {
		a.unacked--
	}
	if d.q != nil {
		d.q.settled(d.sub, d.Msg)
	}
	d.state = dDone
	sess := d.sess
	delete(sess.deliveries, d.AckID)
	if sess.byMsgID[d.Msg.ID] == d {
		delete(sess.byMsgID, d.Msg.ID)
	}
	a.finished++
	a.compact()
}

// ackDeliveries finishes ds and drops their messages, returning the
// commands that remove the stored ones, one per queue. Queues whose
// consumers got credit back are added to touched when it is non-nil.
func (e *Engine) ackDeliveries(ds []*Delivery, touched map[*destQueue]struct{}) []fsm.Command {
	var cmds []fsm.Command
	at := make(map[*destQueue]int)
	for _, d := range ds {
		e.finish(d)
		if touched != nil {
			touched[d.q] = struct{}{}
		}
		r := d.ref
		if r.state == refGone {
			continue // purged meanwhile
		}
		e.drop(d.q, r)
		e.dequeued(d)
		if !r.persistent {
			continue
		}
		i, ok := at[d.q]
		if !ok {
			i = len(cmds)
			at[d.q] = i
			cmds = append(cmds, fsm.Command{Op: fsm.OpAck, Queue: d.q.name})
		}
		cmds[i].Seqs = append(cmds[i].Seqs, r.seq)
	}
	return cmds
}

// release gives a delivery's message back to its queue: the consumer left,
// NACKed it or its transaction was aborted. A message delivered
// MaxDeliveries times goes to the dead-letter queue instead; the command
// doing that is returned.
func (e *Engine) release(d *Delivery, why string) []fsm.Command {
	e.finish(d)
	r, q := d.ref, d.q
	if r.state == refGone {
		return nil
	}
	if d.written {
		r.redelivered = true
	}
	if r.deliveries < e.cfg.MaxDeliveries || e.isDLQ(q) {
		e.putBack(q, r)
		return nil
	}
	e.drop(q, r)
	if !r.persistent {
		e.cfg.Logger.Debug("non-persistent message dropped after max deliveries", "queue", q.name, "id", d.Msg.ID)
		return nil
	}
	q.stats.deadLettered++
	reason := "delivered " + strconv.Itoa(r.deliveries) + " times (max " +
		strconv.Itoa(e.cfg.MaxDeliveries) + "), last " + why
	return []fsm.Command{{Op: fsm.OpDeadLetter, Queue: q.name, Seqs: []uint64{r.seq},
		Target: e.dlqFor(q), Reason: reason}}
}

// compact drops finished deliveries from the subscription's in-flight
// list, which must stay in delivery order for cumulative acks.
func (s *subscription) compact() {
	for s.head < len(s.inflight) && s.inflight[s.head].state == dDone {
		s.inflight[s.head] = nil
		s.head++
		s.finished--
	}
	if s.head == len(s.inflight) {
		s.inflight, s.head, s.finished = s.inflight[:0], 0, 0
		return
	}
	if s.finished > 32 && s.finished*2 > len(s.inflight)-s.head {
		live := s.inflight[:0]
		for _, d := range s.inflight[s.head:] {
			if d.state != dDone {
				live = append(live, d)
			}
		}
		clear(s.inflight[len(live):])
		s.inflight, s.head, s.finished = live, 0, 0
	}
}
