package fsm

import (
	"fmt"
	"strconv"
	"strings"
)

// Scheduled delivery (ActiveMQ's AMQ_SCHEDULED_* headers).
//
// A scheduled message is stored, through raft like any send, as an entry
// of ScheduledQueue: an OpEnqueue the leader proposes with the message as
// sent plus one internal header, HeaderSchedule, saying when its next copy
// is due (computed once, by the leader, when it accepted the send), the
// period between copies, how many copies are left after the next one and
// how many have fired. The entry's index record carries the due time
// (Meta.Due), so a new leader arms its timers from the index alone.
//
// At the due time the leader proposes OpFire for the entry. Applying it
// depends on the stored entry and the command only, never on a clock, so
// every node and every replay does the same: the entry is removed, a copy
// goes to the message's destination (stored at the tail of its queue, or
// published to its topic: a Published change for the live subscribers and
// a copy per durable subscription, as OpPublish does), and, with repeats
// left, the entry is stored again (a new seq) due one period later. The
// command names the due time it fires: once the entry fired it is gone or
// due later, so a second OpFire for it, a duplicate or one from a deposed
// leader, is a no-op.
//
// The copy is what ActiveMQ's scheduler sends: the sender's headers
// without AMQ_SCHEDULED_DELAY, _PERIOD, _REPEAT and _CRON (so that it is
// not scheduled again on its way, over a bridge for instance), with
// scheduledJobId set to the scheduled message's id; a message that repeats
// gets a new message-id per copy (the scheduled message's id, ":" and the
// copy's number from 1), a one-shot message keeps its id. A copy of a
// message with an expiration keeps its time to live from when it fires:
// its timestamp becomes the due time and its expiration moves by as much;
// a message without one keeps its timestamp, as ActiveMQ does.

// ScheduledQueue is the store queue of scheduled messages. It cannot
// collide with a /queue/ destination or a DurableQueue name, and clients
// cannot name it.
const ScheduledQueue = "scheduled:"

// ActiveMQ's scheduling headers, as a SEND carries them, and the header
// a fired copy carries.
const (
	HeaderScheduledDelay  = "AMQ_SCHEDULED_DELAY"  // ms before the first copy
	HeaderScheduledPeriod = "AMQ_SCHEDULED_PERIOD" // ms between copies
	HeaderScheduledRepeat = "AMQ_SCHEDULED_REPEAT" // copies after the first
	HeaderScheduledCron   = "AMQ_SCHEDULED_CRON"   // a cron entry (the queue refuses it)
	// HeaderScheduledJobID is set on every fired copy to the scheduled
	// message's id. A SEND that carries it is not scheduled (ActiveMQ).
	HeaderScheduledJobID = "scheduledJobId"
)

// HeaderSchedule is the internal header of an entry of ScheduledQueue:
// its Schedule (Schedule.String). Fired copies do not carry it.
const HeaderSchedule = "raftmq-schedule"

// MaxScheduleRemaining bounds the copies a scheduled entry has still to
// fire after the next one (the queue refuses more, as ActiveMQ's
// maxRepeatAllowed): what MetaOf weighs an entry by.
const MaxScheduleRemaining = 1000

// Schedule is the state of one scheduled message.
type Schedule struct {
	Due       int64 // unix ms at which the next copy fires
	Period    int64 // ms between copies
	Remaining int64 // copies still to fire after the next one
	Fired     int64 // copies fired so far
}

// String is the value of HeaderSchedule: the four fields in decimal,
// separated by spaces.
func (s Schedule) String() string {
	b := make([]byte, 0, 40)
	b = strconv.AppendInt(b, s.Due, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, s.Period, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, s.Remaining, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, s.Fired, 10)
	return string(b)
}

// ParseSchedule reads a HeaderSchedule value.
func ParseSchedule(v string) (Schedule, error) {
	f := strings.Split(v, " ")
	if len(f) != 4 {
		return Schedule{}, fmt.Errorf("fsm: schedule %q: want 4 fields", v)
	}
	var n [4]int64
	for i, s := range f {
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Schedule{}, fmt.Errorf("fsm: schedule %q: %w", v, err)
		}
		n[i] = x
	}
	s := Schedule{Due: n[0], Period: n[1], Remaining: n[2], Fired: n[3]}
	if s.Period < 0 || s.Remaining < 0 || s.Fired < 0 {
		return Schedule{}, fmt.Errorf("fsm: schedule %q: negative field", v)
	}
	return s, nil
}

// ScheduleOf returns m's schedule (its first HeaderSchedule). A message
// without one, or with one that does not parse, has the zero Schedule:
// due at once, fired once.
func ScheduleOf(m *Message) (Schedule, bool) {
	for _, h := range m.Headers {
		if h.Key == HeaderSchedule {
			s, err := ParseSchedule(h.Value)
			return s, err == nil
		}
	}
	return Schedule{}, false
}

// SetSchedule sets m's HeaderSchedule to s, replacing the first one.
func SetSchedule(m *Message, s Schedule) {
	m.Headers = setHeader(m.Headers, HeaderSchedule, s.String())
}

// isScheduleHeader reports the headers a fired copy leaves out.
func isScheduleHeader(key string) bool {
	switch key {
	case HeaderSchedule, HeaderScheduledDelay, HeaderScheduledPeriod,
		HeaderScheduledRepeat, HeaderScheduledCron, HeaderScheduledJobID:
		return true
	}
	return false
}

// firedCopy is the message a firing of m (whose schedule is s) delivers.
// It shares m's body: stored messages are read-only.
func firedCopy(m *Message, s Schedule) *Message {
	cp := *m
	cp.Headers = make([]Header, 0, len(m.Headers)+1)
	for _, h := range m.Headers {
		if !isScheduleHeader(h.Key) {
			cp.Headers = append(cp.Headers, h)
		}
	}
	cp.Headers = append(cp.Headers, Header{Key: HeaderScheduledJobID, Value: m.ID})
	if s.Fired > 0 || s.Remaining > 0 {
		cp.ID = m.ID + ":" + strconv.FormatInt(s.Fired+1, 10)
	}
	if m.Expires > 0 && m.Timestamp > 0 {
		if ttl := m.Expires - m.Timestamp; ttl > 0 && s.Due+ttl > m.Expires {
			cp.Expires = s.Due + ttl
			cp.Timestamp = s.Due
		}
	}
	return &cp
}

// fire applies OpFire (see the package's scheduling comment above).
func (a *applier) fire(c *Command) Result {
	if err := checkQueue(c.Queue); err != nil {
		return Result{Err: err}
	}
	if len(c.Seqs) != 1 {
		return invalid("fire of %d entries of %q: want one", len(c.Seqs), c.Queue)
	}
	seq := c.Seqs[0]
	m := a.message(c.Queue, seq)
	if m == nil {
		return Result{} // fired already, or removed
	}
	s, _ := ScheduleOf(m)
	if s.Due != c.Due {
		return Result{} // a stale fire: the entry is due at another time
	}
	a.remove(c.Queue, seq)
	cp := firedCopy(m, s)
	if strings.HasPrefix(cp.Destination, "/topic/") {
		// As OpPublish does it: live subscribers hear of it, and each
		// durable subscription whose selector takes it stores a copy.
		a.emit(Change{Kind: Published, Queue: cp.Destination, Msg: cp})
		a.st.durablesFor(cp.Destination, func(r *durableRef) {
			if r.selects(cp) {
				a.put(r.queue, cp)
			}
		})
	} else {
		if err := checkQueue(cp.Destination); err != nil {
			// It can never be delivered: dropped, on every node alike.
			return Result{Err: fmt.Errorf("scheduled entry %d of %q: %w", seq, c.Queue, err)}
		}
		if cp.Destination == c.Queue {
			return invalid("scheduled entry %d of %q is for its own queue", seq, c.Queue)
		}
		a.put(cp.Destination, cp)
	}
	if s.Remaining > 0 {
		s.Due += s.Period
		s.Remaining--
		s.Fired++
		// m was just decoded from the store: nobody else holds it, and
		// cp has headers of its own.
		SetSchedule(m, s)
		a.put(c.Queue, m)
	}
	return Result{}
}
