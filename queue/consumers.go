package queue

import (
	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue/selector"
)

// Which consumer of a queue gets a message, as ActiveMQ decides it:
//
//   - Selectors. A consumer with a selector (SubscribeSpec.Selector) is
//     given only the messages it matches. Topic subscribers are filtered
//     when a message is published (fanout; the FSM for durable ones), so
//     only queue consumers are checked at dispatch.
//   - Exclusive consumers. While a queue has consumers that asked to be
//     exclusive, one of them, the owner, gets every message: the highest
//     priority, then the first to subscribe. When it goes, the next
//     exclusive consumer takes over; the others wait.
//   - Consumer priority. A message goes to the highest-priority consumer
//     that may have it and can take one now; lower ones get messages only
//     while every higher one is full. Round robin among equals.
//   - Message groups. A message with a JMSXGroupID header goes to the
//     consumer its group is pinned to; the first message of a group pins
//     it to the consumer that takes it. The pin moves when that consumer
//     goes (its unacknowledged messages come back first, in order), and a
//     message with JMSXGroupSeq -1 closes the group after it. Pins are
//     leader memory: after a failover every consumer has reconnected and
//     the first message of each group pins it again, in stored order, so
//     a group's order holds.
//
// A message that no consumer may have, ready or not, is parked until the
// queue's consumers change (see park); one that a consumer may have but
// none that can take one now is stepped over (dispatch's set-aside).

// Message group headers, as ActiveMQ names them.
const (
	HeaderGroupID  = "JMSXGroupID"
	HeaderGroupSeq = "JMSXGroupSeq"
)

// maxGroupPins bounds the groups a queue remembers. Beyond it the pin of
// a group with nothing in flight is forgotten to make room, as ActiveMQ's
// group cache forgets: that group's next message pins it again, possibly
// to another consumer, which keeps its order since nothing of it is being
// processed. If every pinned group has messages in flight, a new group
// goes unpinned until one settles.
var maxGroupPins = 1 << 16 // a variable for tests

// groupPin is the consumer a message group is pinned to, and how many of
// the group's messages it holds unacknowledged.
type groupPin struct {
	sub      *subscription
	inflight int
}

// groupOf returns m's message group, "" for none.
func groupOf(m *fsm.Message) string {
	g, _ := m.Header(HeaderGroupID)
	return g
}

// compileSelector compiles a SUBSCRIBE's selector; nil for none.
func compileSelector(src string) (*selector.Selector, error) {
	if src == "" {
		return nil, nil
	}
	sel, err := selector.Compile(src)
	if err != nil {
		return nil, &SelectorError{Err: err}
	}
	return sel, nil
}

// SelectorError is a SUBSCRIBE whose selector does not compile; Err is a
// *selector.SyntaxError naming the position.
type SelectorError struct{ Err error }

func (e *SelectorError) Error() string { return "invalid " + e.Err.Error() }
func (e *SelectorError) Unwrap() error { return e.Err }

// mayHave reports whether s may be given r, able to take it now or not.
// r's body must be loaded.
func (q *destQueue) mayHave(s *subscription, r *ref) bool {
	if q.owner != nil && s != q.owner {
		return false
	}
	if s.sel != nil && s.t == nil && s.durable == nil && !s.sel.Matches(r.msg.Property) {
		return false
	}
	if q.groups != nil {
		if g := groupOf(r.msg); g != "" {
			if pin := q.groups[g]; pin != nil && pin.sub != s {
				return false
			}
		}
	}
	return true
}

// anyMayHave reports whether some consumer of q may have r, able to take
// it now or not: a network consumer only if r may be forwarded to its
// group, or on replay.
func (q *destQueue) anyMayHave(r *ref, replay bool) bool {
	for _, s := range q.consumers {
		if q.mayHave(s, r) && (s.net == nil || replay || s.net.eligible(r.meta.Path)) {
			return true
		}
	}
	return false
}

// pick chooses the consumer for r among the local ones that can take a
// message now: the highest priority that may have it, round robin among
// equals. nil means none can.
func (q *destQueue) pick(r *ref) *subscription {
	n := len(q.consumers)
	best := -1
	for i := 0; i < n; i++ {
		j := (q.rr + i) % n
		s := q.consumers[j]
		if s.net != nil || !s.ready() || !q.mayHave(s, r) {
			continue
		}
		if best < 0 || s.priority > q.consumers[best].priority {
			best = j
		}
	}
	if best < 0 {
		return nil
	}
	q.rr = (best + 1) % n
	return q.consumers[best]
}

// delivered records what giving r to s means for r's group: the group is
// pinned to s (and one more of its messages is in flight there), or
// closed by JMSXGroupSeq -1.
func (q *destQueue) delivered(s *subscription, r *ref) {
	g := groupOf(r.msg)
	if g == "" {
		return
	}
	if seq, _ := r.msg.Header(HeaderGroupSeq); seq == "-1" {
		delete(q.groups, g)
		return
	}
	if q.groups == nil {
		q.groups = make(map[string]*groupPin)
	}
	pin := q.groups[g]
	if pin == nil {
		if len(q.groups) >= maxGroupPins && !q.forgetIdleGroup() {
			return
		}
		pin = &groupPin{sub: s}
		q.groups[g] = pin
	}
	pin.inflight++
}

// settled is called when a delivery of m by s ended (acked, returned,
// or its consumer gone).
func (q *destQueue) settled(s *subscription, m *fsm.Message) {
	if q.groups == nil {
		return
	}
	if pin := q.groups[groupOf(m)]; pin != nil && pin.sub == s && pin.inflight > 0 {
		pin.inflight--
	}
}

// forgetIdleGroup forgets the pin of a group with nothing in flight, to
// make room; false if there is none.
func (q *destQueue) forgetIdleGroup() bool {
	for g, pin := range q.groups {
		if pin.inflight == 0 {
			delete(q.groups, g)
			return true
		}
	}
	return false
}

// consumerJoined is called when s joined q's consumers (appended): it
// may be the new exclusive owner, and it may take what was parked. It
// costs nothing per consumer already there: a queue that every wildcard
// subscription joins when it is made (wildqueue.go) would otherwise cost
// the square of their number.
func (q *destQueue) consumerJoined(s *subscription) {
	// As consumersChanged chooses: the highest priority, then the first.
	if s.exclusive && (q.owner == nil || s.priority > q.owner.priority) {
		q.owner = s
	}
	q.unpark()
}

// consumersChanged is called when a consumer left q: the exclusive owner
// is chosen again, its groups are unpinned, and parked messages get
// another look when the change may let a consumer take them: the owner
// changed, a group lost its pin, or the queue lost its last local or
// network consumer (replay and plain dispatch, see network.go). A
// consumer that merely left makes no parked message takeable otherwise.
func (q *destQueue) consumersChanged(left *subscription) {
	recheck := q.network == 0 || q.local == 0
	for g, pin := range q.groups {
		if pin.sub == left {
			delete(q.groups, g)
			recheck = true
		}
	}
	if left == q.owner && left != nil { // else the owner is still the best
		var owner *subscription
		for _, s := range q.consumers {
			if s.exclusive && (owner == nil || s.priority > owner.priority) {
				owner = s
			}
		}
		q.owner, recheck = owner, true
	}
	if recheck {
		q.unpark()
	}
}
