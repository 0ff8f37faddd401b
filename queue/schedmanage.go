package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/raftmq/raftmq/fsm"
)

// ActiveMQ's scheduler management over STOMP: a SEND to the topic
// ActiveMQ.Scheduler.Management with an AMQ_SCHEDULER_ACTION header acts
// on the scheduled messages instead of being published:
//
//   - BROWSE sends a copy of each scheduled message, the earliest due
//     first, to the SEND's reply-to destination, with scheduledJobId set
//     to its job id (at most MaxScheduledList of them).
//   - REMOVE removes the job named by the SEND's scheduledJobId header.
//     An unknown job is no error: it may have fired its last copy
//     already, as ActiveMQ ignores it too.
//   - REMOVEALL removes every job.
//
// BROWSE and REMOVEALL take only the jobs next due within
// ACTION_START_TIME and ACTION_END_TIME (unix ms, both included) when
// the SEND gives them. The RECEIPT follows once the copies were sent or
// the removals applied. Who may do this is who may write to the topic
// (the transport checks the ACL), as in ActiveMQ; a browse's reply-to
// must be writable by the sender too.

// The management topic and its headers, as ActiveMQ names them.
const (
	SchedulerManagement   = "/topic/ActiveMQ.Scheduler.Management"
	HeaderSchedulerAction = "AMQ_SCHEDULER_ACTION"
	HeaderActionStartTime = "ACTION_START_TIME"
	HeaderActionEndTime   = "ACTION_END_TIME"
)

var (
	// ErrSchedulerAction: a SEND to the management topic without a
	// known action.
	ErrSchedulerAction = errors.New("a SEND to " + SchedulerManagement + " needs " + HeaderSchedulerAction + ": BROWSE, REMOVE or REMOVEALL")
	// ErrSchedulerReplyTo: BROWSE without a reply-to.
	ErrSchedulerReplyTo = errors.New(HeaderSchedulerAction + " BROWSE needs a reply-to header naming where the copies go")
	// ErrSchedulerJobID: REMOVE without a job id.
	ErrSchedulerJobID = errors.New(HeaderSchedulerAction + " REMOVE needs a " + fsm.HeaderScheduledJobID + " header")
	// ErrSchedulerTx: a management SEND in a transaction.
	ErrSchedulerTx = errors.New("a SEND to " + SchedulerManagement + " cannot be part of a transaction")
)

// manageScheduler carries out a SEND to SchedulerManagement; it is
// Send's work for that destination.
func (s *Session) manageScheduler(m *fsm.Message, tx string, done func(error)) error {
	if tx != "" {
		return ErrSchedulerTx
	}
	e := s.e
	e.mu.Lock()
	err := s.usable()
	e.mu.Unlock()
	if err != nil {
		return err
	}
	action, _ := m.Header(HeaderSchedulerAction)
	switch action {
	case "BROWSE":
		from, to, err := actionWindow(m)
		if err != nil {
			return err
		}
		replyTo, _ := m.Header("reply-to")
		if err := browseTarget(replyTo); err != nil {
			return err
		}
		if err := s.browseScheduled(replyTo, from, to); err != nil {
			return err
		}
		done(nil)
		return nil
	case "REMOVE":
		id, _ := m.Header(fsm.HeaderScheduledJobID)
		if id == "" {
			return ErrSchedulerJobID
		}
		go func() {
			_, err := e.unschedule(context.Background(), []string{id})
			done(err)
		}()
		return nil
	case "REMOVEALL":
		from, to, err := actionWindow(m)
		if err != nil {
			return err
		}
		var ids []string
		err = e.scanScheduled(func(_ uint64, m *fsm.Message) {
			if due := scheduledOf(m).DueMs; due >= from && due <= to {
				ids = append(ids, m.ID)
			}
		})
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			done(nil)
			return nil
		}
		go func() {
			_, err := e.unschedule(context.Background(), ids)
			done(err)
		}()
		return nil
	}
	return ErrSchedulerAction
}

// browseTarget checks a BROWSE's reply-to before anything is sent: one
// destination a message can be sent to, and not the management topic
// itself, where the copies would be read as commands.
func browseTarget(replyTo string) error {
	name, _, _ := tempDest(replyTo)
	_, err := parseDest(name)
	switch {
	case replyTo == "":
		return ErrSchedulerReplyTo
	case err != nil, strings.Contains(replyTo, ","):
		return fmt.Errorf("%w: reply-to %q", ErrBadDestination, replyTo)
	case replyTo == SchedulerManagement:
		return fmt.Errorf("%w: reply-to cannot be %s", ErrBadDestination, SchedulerManagement)
	case reserved(replyTo):
		return ErrReservedDestination
	case wildcard(replyTo):
		return ErrWildcardSend
	}
	return nil
}

// actionWindow reads ACTION_START_TIME and ACTION_END_TIME: all of time
// when absent.
func actionWindow(m *fsm.Message) (from, to int64, err error) {
	from, to = math.MinInt64, math.MaxInt64
	for _, h := range []struct {
		key string
		v   *int64
	}{{HeaderActionStartTime, &from}, {HeaderActionEndTime, &to}} {
		if s, ok := m.Header(h.key); ok && s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return 0, 0, &ScheduleError{Header: h.key, Value: s, Want: "must be a time in unix milliseconds"}
			}
			*h.v = n
		}
	}
	return from, to, nil
}

// browseKey is a scheduled entry a browse chose: what it sorts by.
type browseKey struct {
	due int64
	seq uint64
}

// browseScheduled sends a copy of each scheduled message next due within
// [from, to], the earliest first (at most MaxScheduledList), to replyTo.
// It reads the store twice: first to choose by due time, keeping no
// bodies, then to copy the chosen ones.
func (s *Session) browseScheduled(replyTo string, from, to int64) error {
	var keys []browseKey
	trim := func() {
		slices.SortFunc(keys, func(a, b browseKey) int { return cmp.Or(cmp.Compare(a.due, b.due), cmp.Compare(a.seq, b.seq)) })
		keys = keys[:min(len(keys), MaxScheduledList)]
	}
	err := s.e.scanScheduled(func(seq uint64, m *fsm.Message) {
		sc, _ := fsm.ScheduleOf(m)
		if sc.Due >= from && sc.Due <= to {
			keys = append(keys, browseKey{due: sc.Due, seq: seq})
			if len(keys) >= 2*MaxScheduledList {
				trim()
			}
		}
	})
	if err != nil {
		return err
	}
	trim()
	if len(keys) == 0 {
		return nil
	}
	chosen := make(map[uint64]*fsm.Message, len(keys))
	for _, k := range keys {
		chosen[k.seq] = nil
	}
	err = s.e.scanScheduled(func(seq uint64, m *fsm.Message) {
		if _, ok := chosen[seq]; ok {
			chosen[seq] = m
		}
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		m := chosen[k.seq]
		if m == nil {
			continue // fired or removed between the reads
		}
		cp := &fsm.Message{Destination: replyTo, Body: m.Body, Priority: m.Priority, Headers: browseHeaders(m)}
		if err := s.Send(cp, "", func(error) {}); err != nil {
			return fmt.Errorf("browse of the scheduled messages to %s: %w", replyTo, err)
		}
	}
	return nil
}

// browseHeaders are a scheduled message's headers as a browse shows
// them: the sender's, AMQ_SCHEDULED_* included, without the internal
// schedule, and scheduledJobId (which also keeps the copy from being
// scheduled itself).
func browseHeaders(m *fsm.Message) []fsm.Header {
	hs := make([]fsm.Header, 0, len(m.Headers)+1)
	for _, h := range m.Headers {
		if h.Key != fsm.HeaderSchedule && h.Key != fsm.HeaderScheduledJobID {
			hs = append(hs, h)
		}
	}
	return append(hs, fsm.Header{Key: fsm.HeaderScheduledJobID, Value: m.ID})
}

// scanScheduled calls fn with every stored scheduled message, without
// holding the engine's lock.
func (e *Engine) scanScheduled(fn func(seq uint64, m *fsm.Message)) error {
	if e.isClosed() {
		return ErrClosed
	}
	err := e.store.Messages(fsm.ScheduledQueue, 0, func(seq uint64, m *fsm.Message) bool {
		fn(seq, m)
		return true
	})
	if err != nil {
		return fmt.Errorf("read scheduled messages: %w", err)
	}
	return nil
}
