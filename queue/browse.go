package queue

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/raftmq/raftmq/fsm"
)

// Queue browsers, as ActiveMQ has them over STOMP: a SUBSCRIBE with
// browser:true (SubscribeSpec.Browser) on a queue gets a MESSAGE for each
// message the queue holds when the SUBSCRIBE is handled, in the order its
// consumers would get them (priority, then arrival), and then one MESSAGE
// that marks the end (Delivery.BrowseEnd: headers browser:end and
// message-id:0, no body). Nothing is consumed. The subscription then stays
// open, receiving nothing more, until the client unsubscribes.
//
// What is browsed: the queue's pending messages, its parked ones, and
// those delivered to consumers and not yet acknowledged (they are still
// in the queue), persistent or not, that the subscription's selector
// matches. A message that leaves the queue (acked, expired, purged,
// moved) before the browser reaches it is skipped; one that arrives after
// the SUBSCRIBE is not browsed.
//
// A browser is no consumer: it is not among its queue's consumers, so
// dispatch, exclusive owners, group pins, network demand and the queue's
// consumer count never see it, and it changes no message's state or
// counters (only the queue's browsed counter and the subscription's
// delivered one). Its deliveries are never in flight: Written and
// WriteFailed ignore them, prefetch does not apply, and an ACK of a
// browsed message is accepted and does nothing, as ActiveMQ's broker
// ignores a browser's acks. A NACK is refused, as ActiveMQ refuses it
// ("Cannot Nack a message on a Queue Browser Subscription").
//
// Cost: the SUBSCRIBE takes a snapshot of the queue's refs (a pointer
// each, sorted into consumer order under the engine's lock). Bodies that
// are not in the engine's cache are read from the store a window at a
// time (about readAheadBytes), in seq order, and not added to the cache.
// Messages are delivered only while the connection is writable: when it is
// full the browse waits for Session.Resume. One step does a bounded amount
// of work under the lock (browseStepRefs refs, browseStepReads store
// reads); a browse that has more to do while the connection still has
// room goes on in a goroutine of its own, one step per lock.

var (
	// ErrBrowseTopic: browser:true on a topic.
	ErrBrowseTopic = errors.New("browsing needs a queue")
	// ErrBrowseNetwork: a bridge's network subscription cannot browse.
	ErrBrowseNetwork = errors.New("a network subscription cannot browse")
	// ErrBrowseNack: a NACK of a browsed message (ActiveMQ refuses it too).
	ErrBrowseNack = errors.New("cannot NACK a message of a queue browser: browsed messages are not consumed")
	// ErrTooManyBrowsers: a session browses maxBrowsers queues at most
	// at once; each holds a snapshot as long as its queue.
	ErrTooManyBrowsers = fmt.Errorf("at most %d queue browsers per connection at once", maxBrowsers)
)

// maxBrowsers bounds the browsers of one session that have not finished.
const maxBrowsers = 8

// browseAckPrefix starts the AckID of browsed deliveries, which consumers'
// (decimal) AckIDs never do: an ACK naming one is recognized and ignored.
const browseAckPrefix = "b"

// Bounds of one browse step (see the comment at the top).
const (
	browseStepRefs  = 4096 // snapshot entries looked at
	browseStepReads = 4    // store reads of about readAheadBytes each
	browseWindow    = 512  // bodies one store read fetches at most
	browseSpan      = 4096 // seqs one store read spans at most
)

// browser is the state of a queue browser subscription.
type browser struct {
	q    *destQueue // the queue browsed; nil when it did not exist
	refs []*ref     // the snapshot in consumer order; entries passed are nil
	next int        // the next entry of refs to look at
	// bodies holds the bodies of refs[next:] read from the store and not
	// delivered yet, by seq; bodyBytes is their size.
	bodies    map[uint64]*fsm.Message
	bodyBytes int64
	running   bool // a goroutine continues the browse (browseLoop)
	ended     bool // the end marker was delivered
}

// subscribeBrowser completes subscribe (under e.mu) for a SUBSCRIBE with
// browser:true: it takes the snapshot and delivers what the connection
// has room for. The subscription is in place at once.
func (e *Engine) subscribeBrowser(sub *subscription, kind destKind) (ready bool, err error) {
	switch {
	case kind != kindQueue:
		return false, ErrBrowseTopic
	case sub.net != nil:
		return false, ErrBrowseNetwork
	}
	active := 0
	for _, o := range sub.sess.subs {
		if o.browse != nil && !o.browse.ended {
			active++
		}
	}
	if active >= maxBrowsers {
		return false, ErrTooManyBrowsers
	}
	sub.prefetch = 0        // does not apply: the connection's room is the only bound
	q := e.queues[sub.dest] // not created: browsing a queue that is not there makes nothing
	b := &browser{q: q, bodies: make(map[uint64]*fsm.Message)}
	if q != nil {
		b.refs = q.snapshot()
	}
	sub.browse = b
	sub.sess.subs[sub.id] = sub
	e.continueBrowse(sub)
	return true, nil
}

// snapshot lists what q holds, pending, parked and in flight, in the
// order its consumers would get it: priority, then arrival.
func (q *destQueue) snapshot() []*ref {
	refs := make([]*ref, 0, q.pendingCount())
	// Each level's FIFO is in arrival order: collected from the highest
	// level down, most of the list is sorted already, which the sort
	// below makes cheap.
	for i := len(q.pending.levels) - 1; i >= 0; i-- {
		l := &q.pending.levels[i]
		for _, r := range l.fifo[l.head:] {
			if r.state == refPending {
				refs = append(refs, r)
			}
		}
		for _, r := range l.returned {
			if r.state == refPending {
				refs = append(refs, r)
			}
		}
	}
	q.parked.each(func(r *ref) { refs = append(refs, r) })
	// In flight: the consumers' unfinished deliveries. A delivery acked
	// or nacked in a transaction of a consumer that has left since is on
	// no consumer's list; the queue's count says when one is missing.
	inflight := 0
	for _, s := range q.consumers {
		a := s.acct() // a wildcard parent's list holds other queues' too
		for _, d := range a.inflight[a.head:] {
			if d.sub == s && d.state != dDone && d.ref.state == refInflight {
				refs = append(refs, d.ref)
				inflight++
			}
		}
	}
	if inflight < q.inflight {
		seen := make(map[*ref]struct{}, inflight)
		for _, r := range refs[len(refs)-inflight:] {
			seen[r] = struct{}{}
		}
		for _, r := range q.refs {
			if _, ok := seen[r]; !ok && r.state == refInflight {
				refs = append(refs, r)
			}
		}
	}
	slices.SortFunc(refs, func(a, b *ref) int {
		switch {
		case before(a, b):
			return -1
		case before(b, a):
			return 1
		}
		return 0
	})
	return refs
}

// continueBrowse delivers what sub's browse can now: a step under the
// caller's lock, and the rest in a goroutine when the step ran out of
// budget with the connection still writable. Subscribe and Resume call
// it.
func (e *Engine) continueBrowse(sub *subscription) {
	b := sub.browse
	if b.running || !e.browseStep(sub) {
		return
	}
	b.running = true
	e.wg.Add(1) // e.closed is false: browseStep checked it under the lock
	go e.browseLoop(sub)
}

// browseLoop continues a browse one step per lock while steps run out
// of budget with the connection still writable.
func (e *Engine) browseLoop(sub *subscription) {
	defer e.wg.Done()
	for {
		runtime.Gosched() // let the engine's other callers in between steps
		e.mu.Lock()
		more := e.browseStep(sub)
		if !more {
			sub.browse.running = false
		}
		e.mu.Unlock()
		if !more {
			return
		}
	}
}

// browseStep delivers sub's next browsed messages while its connection is
// writable, within the step's budget. It reports true when it stopped for
// its budget with more to do; false when the browse is over, the
// subscription or its session gone, or the connection full (Resume
// continues it then).
func (e *Engine) browseStep(sub *subscription) bool {
	b, s := sub.browse, sub.sess
	if b.ended || e.closed || s.closed || s.subs[sub.id] != sub {
		return false
	}
	now := e.nowMs()
	reads := 0
	for range browseStepRefs {
		if !s.out.Writable() {
			return false
		}
		if b.next == len(b.refs) {
			e.browseEnd(sub)
			return false
		}
		r := b.refs[b.next]
		if r.state == refGone || r.expired(now) {
			b.pass()
			continue
		}
		m := r.msg // cached, or non-persistent
		if m == nil {
			if m = b.take(r.seq); m == nil {
				if reads == browseStepReads {
					return true
				}
				reads++
				e.browseRead(b)
				if m = b.take(r.seq); m == nil {
					// Not in the store: it left the queue meanwhile.
					b.pass()
					continue
				}
			}
		}
		b.pass()
		if sub.sel != nil && !sub.sel.Matches(m.Property) {
			continue
		}
		e.deliverBrowsed(sub, r, m)
	}
	return true
}

// pass moves past the next snapshot entry, forgetting it.
func (b *browser) pass() {
	b.refs[b.next] = nil
	b.next++
}

// take returns the body read for seq, if any, and forgets it.
func (b *browser) take(seq uint64) *fsm.Message {
	m := b.bodies[seq]
	if m != nil {
		delete(b.bodies, seq)
		b.bodyBytes -= int64(m.Size())
	}
	return m
}

// browseRead reads from the store the bodies of the snapshot entries from
// b.next on that are neither cached nor gone, as many as one sequential
// read of about readAheadBytes fetches: entries in rising seq order,
// browseWindow of them at most, within browseSpan seqs. The bodies it
// held before are dropped (they belonged to entries since passed or
// cached). Nothing enters the engine's cache.
func (e *Engine) browseRead(b *browser) {
	clear(b.bodies)
	b.bodyBytes = 0
	want := make(map[uint64]struct{}, 64)
	var first, last uint64
	size := 0
	for i := b.next; i < len(b.refs) && i-b.next < browseStepRefs && len(want) < browseWindow && size < readAheadBytes; i++ {
		r := b.refs[i]
		if r.state == refGone || r.msg != nil || !r.persistent {
			continue
		}
		if len(want) > 0 && (r.seq <= last || r.seq-first > browseSpan) {
			break
		}
		if len(want) == 0 {
			first = r.seq
		}
		last = r.seq
		want[r.seq] = struct{}{}
		size += r.meta.Size
	}
	if len(want) == 0 {
		return
	}
	budget := readAheadBytes // counts every entry read, wanted or not
	got := false
	err := e.store.Messages(b.q.name, first, func(seq uint64, m *fsm.Message) bool {
		if seq > last || (got && budget <= 0) {
			return false
		}
		got = true
		budget -= len(m.Body) + 64
		if _, ok := want[seq]; ok {
			b.bodies[seq] = m
			b.bodyBytes += int64(m.Size())
		}
		return true
	})
	if err != nil {
		e.cfg.Logger.Warn("browse: read messages", "queue", b.q.name, "from", first, "err", err)
	}
}

// deliverBrowsed hands r's message m to the browser sub. The delivery is
// finished from the start: nothing waits for its ack, and Written and
// WriteFailed leave it alone.
func (e *Engine) deliverBrowsed(sub *subscription, r *ref, m *fsm.Message) {
	s := sub.sess
	s.ackSeq++
	// The count the consumer holding it saw, or the next one will.
	count := r.deliveries + 1
	if r.state == refInflight {
		count = max(r.deliveries, 1)
	}
	sub.delivered++
	sub.browse.q.stats.browsed++
	s.out.Deliver(&Delivery{
		Msg:           m,
		Destination:   sub.dest,
		Subscription:  sub.id,
		AckID:         browseAckPrefix + strconv.FormatUint(s.ackSeq, 10),
		Redelivered:   r.redelivered,
		DeliveryCount: count,
		Browsed:       true,
		sess:          s,
		state:         dDone,
	})
}

// browseEnd delivers the end marker and lets go of the snapshot.
func (e *Engine) browseEnd(sub *subscription) {
	b := sub.browse
	b.ended = true
	b.refs, b.bodies, b.bodyBytes = nil, nil, 0
	sub.sess.out.Deliver(&Delivery{
		Msg:          &fsm.Message{ID: "0", Destination: sub.dest},
		Destination:  sub.dest,
		Subscription: sub.id,
		Browsed:      true,
		BrowseEnd:    true,
		sess:         sub.sess,
		state:        dDone,
	})
}

// browsedAck reports whether an ACK or NACK that names no delivery in
// flight names a browsed message: by its AckID (STOMP 1.2), or by the
// browser subscription it came on (1.1, and 1.0 when it names one). A
// STOMP 1.0 ack without a subscription counts as one when the session
// has a browser.
func (s *Session) browsedAck(r AckRef) bool {
	if r.ID != "" {
		return strings.HasPrefix(r.ID, browseAckPrefix)
	}
	if r.Subscription != "" {
		sub := s.subs[r.Subscription]
		return sub != nil && sub.browse != nil
	}
	for _, sub := range s.subs {
		if sub.browse != nil {
			return true
		}
	}
	return false
}
