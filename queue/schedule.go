package queue

import (
	"container/heap"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// Scheduled delivery, as ActiveMQ's scheduler does it
// (https://activemq.apache.org/delay-and-schedule-message-delivery), but
// replicated: nothing of it lives only in one node's memory or disk.
//
// A SEND with AMQ_SCHEDULED_DELAY or AMQ_SCHEDULED_PERIOD is scheduled
// (AMQ_SCHEDULED_REPEAT alone is not, as in ActiveMQ):
//
//   - AMQ_SCHEDULED_DELAY: ms before the first copy (0 up to
//     MaxScheduledDelay).
//   - AMQ_SCHEDULED_PERIOD: ms between copies (0 up to MaxScheduledDelay).
//     Without a delay, the first copy also waits one period, as ActiveMQ's
//     scheduler does.
//   - AMQ_SCHEDULED_REPEAT: copies after the first (0 up to
//     MaxScheduledRepeat, ActiveMQ's maxRepeatAllowed). ActiveMQ reads a
//     negative repeat as "forever"; raftmq bounds what a message may
//     weigh in the store, so -1 means MaxScheduledRepeat repeats, and
//     other negative values are refused.
//   - AMQ_SCHEDULED_CRON: refused (ErrCronUnsupported), never ignored. An
//     empty value counts as absent.
//   - A SEND that carries scheduledJobId is not scheduled, whatever else it
//     carries: ActiveMQ reserves the header for its scheduler, whose copies
//     carry it, so a copy sent on (by a bridge, by an application that
//     copies headers) is not scheduled again.
//
// A value that is not a whole decimal number in range fails the SEND
// with a *ScheduleError (errors.Is ErrBadSchedule), which the transport
// turns into an ERROR frame.
//
// The leader stores a scheduled message through raft, in the internal
// store queue fsm.ScheduledQueue, with its due time computed once (when
// the leader accepted the SEND: its timestamp plus the delay) in the
// message's fsm.HeaderSchedule; the RECEIPT follows the commit, as for
// any persistent send. Inside a transaction the SEND is checked when it
// arrives and scheduled at COMMIT, its delay counting from the commit
// (ActiveMQ schedules after the commit too). A non-persistent scheduled
// message is stored all the same, as ActiveMQ's scheduler keeps every
// scheduled message in its persistent job store, and its copies are
// delivered as persistent messages. Topics are scheduled alike: the
// copy reaches the subscribers present when it fires, and the durable
// subscriptions.
//
// The leader keeps a timer (a min-heap of due times) over the scheduled
// entries it mirrors, and at the due time proposes fsm.OpFire for each:
// one raft command per copy, which applies from the stored entry alone
// (see the fsm package) and is a no-op if the entry already fired. A new
// leader loads the scheduled entries from the store and fires at once
// what fell due meanwhile, so a copy is delivered once, not before its
// due time by the leader's clock, and soon after it (or after the new
// leader is up). A leader whose clock runs ahead of its predecessor's
// fires earlier by as much.
//
// A copy carries the sender's headers without the AMQ_SCHEDULED_*
// headers, plus scheduledJobId (the scheduled message's id); a message
// that repeats gets a new message-id per copy. See the fsm package.
//
// Limits: a scheduled message counts against StoreLimit from when it is
// sent (a send that does not fit is refused with a *FullError whatever
// the queue's OnFull says, since it cannot be held yet), and against its
// queue's limit only once a copy fires: a firing is never refused, like
// a dead letter or a move. The scheduled store queue is not a
// destination: Destinations does not list it; Scheduled reports it, and
// ListScheduled and Unschedule (schedadmin.go) are for operators.

// Bounds of the scheduling headers.
const (
	// MaxScheduledRepeat bounds AMQ_SCHEDULED_REPEAT, as ActiveMQ's
	// maxRepeatAllowed does (1000).
	MaxScheduledRepeat = fsm.MaxScheduleRemaining
	// MaxScheduledDelay bounds AMQ_SCHEDULED_DELAY and _PERIOD: ten years.
	MaxScheduledDelay = 10 * 365 * 24 * time.Hour
)

const (
	fireBatch = 256         // OpFire commands proposed together at most
	fireRetry = time.Second // before a fire whose proposal failed is tried again
)

// ErrBadSchedule is matched (errors.Is) by every *ScheduleError.
var ErrBadSchedule = errors.New("invalid scheduled delivery header")

// ErrCronUnsupported refuses a SEND with an AMQ_SCHEDULED_CRON header.
var ErrCronUnsupported = errors.New(fsm.HeaderScheduledCron + " is not supported: schedule with " +
	fsm.HeaderScheduledDelay + ", " + fsm.HeaderScheduledPeriod + " and " + fsm.HeaderScheduledRepeat)

// ScheduleError says which scheduling header of a SEND is invalid. Its
// text is written for the client, who sees it in the ERROR frame.
type ScheduleError struct {
	Header, Value string
	Want          string // what a valid value is
}

func (e *ScheduleError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Header, e.Value, e.Want)
}

// Is makes errors.Is(err, ErrBadSchedule) hold.
func (e *ScheduleError) Is(target error) bool { return target == ErrBadSchedule }

// schedSpec is what a SEND's scheduling headers ask for.
type schedSpec struct {
	delay, period, repeat int64 // ms, ms, copies after the first
}

// first is the ms from the start to the first copy.
func (sc schedSpec) first() int64 {
	if sc.delay > 0 {
		return sc.delay
	}
	return sc.period
}

// parseSchedule reads m's scheduling headers (the first of each, as STOMP
// reads repeated headers). ok says that m is to be scheduled.
func parseSchedule(m *fsm.Message) (sc schedSpec, ok bool, err error) {
	var delay, period, repeat, cron *string
	for i := range m.Headers {
		h := &m.Headers[i]
		switch h.Key {
		case fsm.HeaderScheduledJobID:
			return schedSpec{}, false, nil
		case fsm.HeaderScheduledDelay:
			if delay == nil {
				delay = &h.Value
			}
		case fsm.HeaderScheduledPeriod:
			if period == nil {
				period = &h.Value
			}
		case fsm.HeaderScheduledRepeat:
			if repeat == nil {
				repeat = &h.Value
			}
		case fsm.HeaderScheduledCron:
			if cron == nil {
				cron = &h.Value
			}
		}
	}
	if cron != nil && *cron != "" {
		return schedSpec{}, false, ErrCronUnsupported
	}
	if delay == nil && period == nil {
		return schedSpec{}, false, nil
	}
	maxMs := MaxScheduledDelay.Milliseconds()
	ms := func(key string, v *string) (int64, error) {
		if v == nil {
			return 0, nil
		}
		n, err := strconv.ParseInt(*v, 10, 64)
		if err != nil || n < 0 || n > maxMs {
			return 0, &ScheduleError{Header: key, Value: *v,
				Want: fmt.Sprintf("must be a whole number of milliseconds from 0 to %d (ten years)", maxMs)}
		}
		return n, nil
	}
	if sc.delay, err = ms(fsm.HeaderScheduledDelay, delay); err != nil {
		return schedSpec{}, false, err
	}
	if sc.period, err = ms(fsm.HeaderScheduledPeriod, period); err != nil {
		return schedSpec{}, false, err
	}
	if repeat != nil {
		n, err := strconv.ParseInt(*repeat, 10, 64)
		if err != nil || n < -1 || n > MaxScheduledRepeat {
			return schedSpec{}, false, &ScheduleError{Header: fsm.HeaderScheduledRepeat, Value: *repeat,
				Want: fmt.Sprintf("must be a whole number from 0 to %d, or -1 for as many", MaxScheduledRepeat)}
		}
		if n == -1 {
			n = MaxScheduledRepeat
		}
		sc.repeat = n
	}
	return sc, true, nil
}

// scheduled reports whether m, a message already checked by Send, is to
// be scheduled.
func scheduled(m *fsm.Message) bool {
	_, ok, err := parseSchedule(m)
	return ok && err == nil
}

// scheduleCommand records sc in m, due sc.first() ms after start, and
// returns the command that stores it. m is the engine's until proposed.
func scheduleCommand(m *fsm.Message, sc schedSpec, start int64) fsm.Command {
	m.Persistent = true
	fsm.SetSchedule(m, fsm.Schedule{Due: start + sc.first(), Period: sc.period, Remaining: sc.repeat})
	return fsm.Command{Op: fsm.OpEnqueue, Queue: fsm.ScheduledQueue, Msg: m, DedupeID: dedupeID(m)}
}

// sendScheduled is Send of a scheduled message outside a transaction. It
// is called with e.mu held and lets go of it.
func (s *Session) sendScheduled(m *fsm.Message, sc schedSpec, done func(error)) error {
	e := s.e
	cmd := scheduleCommand(m, sc, m.Timestamp)
	var cost int64
	if e.cfg.StoreLimit > 0 {
		// Every copy it will fire counts (fsm.MetaOf).
		cost = storeCost(fsm.MetaOf(m).Size)
		if full := e.storeFull(m.Destination, cost); full != nil {
			e.mu.Unlock()
			return full
		}
		// Room in the store from now until applied, as reserve does.
		e.storeRsv += cost
		e.sched.rsv[m.ID] = cost
	}
	e.mu.Unlock()
	e.propose([]fsm.Command{cmd}, func(_ []fsm.Result, err error) {
		if cost > 0 {
			e.mu.Lock()
			e.unreserveScheduled(m.ID)
			e.mu.Unlock()
		}
		done(err)
	})
	return nil
}

// unreserveScheduled gives back the store room reserved by scheduled
// message id, if it still holds any.
func (e *Engine) unreserveScheduled(id string) {
	if cost, ok := e.sched.rsv[id]; ok {
		delete(e.sched.rsv, id)
		e.storeRsv -= cost
		e.roomFreed()
	}
}

// scheduler is the engine's mirror of fsm.ScheduledQueue and its timer.
type scheduler struct {
	entries map[uint64]*schedEntry // by seq
	heap    schedHeap              // entries not being fired, by when to fire
	bytes   int64                  // message bytes of entries
	rsv     map[string]int64       // store room of scheduled sends in raft, by message-id
	// removing: jobs being removed (schedadmin.go), by job id.
	removing map[string][]*unscheduling
	wake     chan struct{} // buffered(1): the earliest time changed
	fired    uint64        // copies fired since the engine started
}

type schedEntry struct {
	seq    uint64
	due    int64 // the schedule's due time: OpFire names it
	at     int64 // when to propose OpFire: due, or later after a failure
	size   int
	idx    int  // in heap, -1 when not in it
	firing bool // OpFire proposed, not yet done
}

type schedHeap []*schedEntry

func (h schedHeap) Len() int { return len(h) }
func (h schedHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h schedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *schedHeap) Push(x any) {
	x.(*schedEntry).idx = len(*h)
	*h = append(*h, x.(*schedEntry))
}
func (h *schedHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	x.idx = -1
	return x
}

// startScheduler readies the scheduler and starts its timer goroutine;
// NewEngine calls it.
func (e *Engine) startScheduler() {
	e.sched = scheduler{
		entries:  make(map[uint64]*schedEntry),
		rsv:      make(map[string]int64),
		removing: make(map[string][]*unscheduling),
		wake:     make(chan struct{}, 1),
	}
	e.wg.Add(1)
	go e.scheduleLoop()
}

// loadScheduled mirrors the stored scheduled entries (Load).
func (e *Engine) loadScheduled(v fsm.View) error {
	err := v.Entries(fsm.ScheduledQueue, func(seq uint64, m fsm.Meta) error {
		if e.sched.entries[seq] == nil {
			e.addScheduled(seq, m)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load scheduled messages: %w", err)
	}
	return nil
}

// scheduledChange mirrors an applied change of fsm.ScheduledQueue.
func (e *Engine) scheduledChange(c *fsm.Change) {
	switch c.Kind {
	case fsm.Enqueued:
		e.unreserveScheduled(c.Msg.ID)
		if e.sched.entries[c.Seq] == nil {
			e.addScheduled(c.Seq, fsm.MetaOf(c.Msg))
			e.unscheduleRepeat(c.Seq, c.Msg.ID)
		}
	case fsm.Removed:
		if x := e.sched.entries[c.Seq]; x != nil {
			if x.firing {
				e.sched.fired++
			}
			e.removeScheduled(x)
		}
	case fsm.Purged, fsm.QueueDeleted:
		for _, x := range e.sched.entries {
			e.removeScheduled(x)
		}
	}
}

func (e *Engine) addScheduled(seq uint64, m fsm.Meta) {
	x := &schedEntry{seq: seq, due: m.Due, at: m.Due, size: m.Size}
	e.sched.entries[seq] = x
	e.sched.bytes += int64(m.Size)
	e.storeBytes += storeCost(m.Size)
	heap.Push(&e.sched.heap, x)
	if x.idx == 0 {
		e.wakeScheduler()
	}
}

func (e *Engine) removeScheduled(x *schedEntry) {
	if x.idx >= 0 {
		heap.Remove(&e.sched.heap, x.idx)
	}
	delete(e.sched.entries, x.seq)
	e.sched.bytes -= int64(x.size)
	e.storeBytes -= storeCost(x.size)
	e.roomFreed()
}

func (e *Engine) wakeScheduler() {
	select {
	case e.sched.wake <- struct{}{}:
	default:
	}
}

// scheduleLoop fires scheduled entries when they fall due.
func (e *Engine) scheduleLoop() {
	defer e.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.mu.Lock()
		wait, ok := e.fireDue()
		e.mu.Unlock()
		if ok {
			t.Reset(wait)
		} else {
			t.Stop()
		}
		select {
		case <-e.stop:
			return
		case <-e.sched.wake:
		case <-t.C:
		}
	}
}

// fireDue proposes OpFire for the entries due by now, up to fireBatch,
// and returns how long until the next one is due (ok false: none is).
// e.mu must be held.
func (e *Engine) fireDue() (wait time.Duration, ok bool) {
	if e.closed {
		return 0, false
	}
	now := e.nowMs()
	h := &e.sched.heap
	var cmds []fsm.Command
	var batch []*schedEntry
	for h.Len() > 0 && (*h)[0].at <= now && len(cmds) < fireBatch {
		x := heap.Pop(h).(*schedEntry)
		x.firing = true
		batch = append(batch, x)
		cmds = append(cmds, fsm.Command{Op: fsm.OpFire, Queue: fsm.ScheduledQueue, Seqs: []uint64{x.seq}, Due: x.due})
	}
	if len(cmds) > 0 {
		e.propose(cmds, func(res []fsm.Result, err error) { e.fired(batch, res, err) })
	}
	switch {
	case len(cmds) == fireBatch:
		return 0, true
	case h.Len() == 0:
		return 0, false
	}
	return time.Duration((*h)[0].at-now) * time.Millisecond, true
}

// fired settles proposed fires. An applied fire removed its entry (the
// Removed change came before this); one that failed is tried again after
// fireRetry; one that applied as a no-op found no such entry in the
// store, so the mirror forgets it.
func (e *Engine) fired(batch []*schedEntry, res []fsm.Result, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	retry := e.nowMs() + fireRetry.Milliseconds()
	var failed error
	for i, x := range batch {
		if e.sched.entries[x.seq] != x || !x.firing {
			continue
		}
		x.firing = false
		ferr := err
		if res != nil && i < len(res) {
			ferr = res[i].Err
		}
		if ferr == nil {
			e.removeScheduled(x)
			continue
		}
		failed = ferr
		x.at = retry
		heap.Push(&e.sched.heap, x)
	}
	if failed != nil {
		e.cfg.Logger.Warn("scheduled delivery: fire failed, retrying", "retry_in", fireRetry, "err", failed)
		e.wakeScheduler()
	}
}

// ScheduledStats describes the scheduled messages: what the admin API
// could show next to the destinations (the scheduled store queue is not
// one of them).
type ScheduledStats struct {
	// Pending counts the scheduled messages stored and waiting to fire
	// (one per message, however many copies it has left), Bytes what
	// their copies still to fire weigh (fsm.MetaOf); they count against
	// the store limit.
	Pending int   `json:"pending"`
	Bytes   int64 `json:"bytes"`
	// NextDueMs is when the next fire is planned (unix ms): the earliest
	// due time of those waiting on the timer (later for one whose fire
	// failed and waits to be tried again); 0 when none is.
	NextDueMs int64 `json:"next_due_ms,omitempty"`
	// Fired counts the copies fired since the engine started.
	Fired uint64 `json:"fired"`
}

// Scheduled describes the scheduled messages.
func (e *Engine) Scheduled() ScheduledStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := ScheduledStats{Pending: len(e.sched.entries), Bytes: e.sched.bytes, Fired: e.sched.fired}
	if len(e.sched.heap) > 0 { // the heap's root: no walk on every scrape
		st.NextDueMs = e.sched.heap[0].at
	}
	return st
}
