package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

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
	s.e.mu.Lock()
	err := s.usable()
	s.e.mu.Unlock()
	if err != nil {
		return err
	}
	from, to, err := actionWindow(m)
	if err != nil {
		return err
	}
	e := s.e
	action, _ := m.Header(HeaderSchedulerAction)
	switch action {
	case "BROWSE":
		replyTo, _ := m.Header("reply-to")
		if replyTo == "" {
			return ErrSchedulerReplyTo
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
		var ids []string
		err := e.scanScheduled(func(_ uint64, m *fsm.Message) {
			if due := scheduledOf(m).DueMs; due >= from && due <= to {
				ids = append(ids, m.ID)
			}
		})
		if err != nil {
			return err
		}
		go func() {
			_, err := e.unschedule(context.Background(), ids)
			done(err)
		}()
		return nil
	}
	return ErrSchedulerAction
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
				return 0, 0, &ScheduleError{Header: h.key, Value: s, Want: "a time in unix milliseconds"}
			}
			*h.v = n
		}
	}
	return from, to, nil
}

// browseScheduled sends a copy of each scheduled message next due within
// [from, to], the earliest first, to replyTo.
func (s *Session) browseScheduled(replyTo string, from, to int64) error {
	var list []*fsm.Message
	err := s.e.scanScheduled(func(_ uint64, m *fsm.Message) {
		if due := scheduledOf(m).DueMs; due >= from && due <= to {
			list = append(list, m)
			if len(list) >= 2*MaxScheduledList { // keep the earliest
				sortByDue(list)
				list = list[:MaxScheduledList]
			}
		}
	})
	if err != nil {
		return err
	}
	sortByDue(list)
	if len(list) > MaxScheduledList {
		list = list[:MaxScheduledList]
	}
	for _, m := range list {
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

func sortByDue(l []*fsm.Message) {
	slices.SortFunc(l, func(a, b *fsm.Message) int {
		da, db := scheduledOf(a).DueMs, scheduledOf(b).DueMs
		switch {
		case da < db:
			return -1
		case da > db:
			return 1
		}
		return 0
	})
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
