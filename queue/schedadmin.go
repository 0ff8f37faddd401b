package queue

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/raftmq/raftmq/fsm"
)

// Scheduled messages for operators: listing them and removing one
// (ActiveMQ's scheduler browse and remove). A scheduled message is known
// by its job id, the id of the message as sent, which every copy it fires
// carries in scheduledJobId; a message that repeats is one job however
// many copies it has left.
//
// Removal goes through raft, as an OpAck of the job's entry in
// fsm.ScheduledQueue. An entry that fires while its removal is in raft is
// stored again under a new seq (a repeat): the engine notices the job id
// as the new entry applies, keeps it off the timer and removes it too, so
// a removed job fires no copy that was not already on its way.

// ErrNoSuchJob: no scheduled message has that job id.
var ErrNoSuchJob = errors.New("no such scheduled message")

// ScheduledMessage is a scheduled message as ListScheduled shows it.
type ScheduledMessage struct {
	JobID       string `json:"job_id"` // the message's id; scheduledJobId on its copies
	Destination string `json:"destination"`
	DueMs       int64  `json:"due_ms"`              // when the next copy fires (unix ms)
	PeriodMs    int64  `json:"period_ms,omitempty"` // between copies
	Remaining   int64  `json:"remaining"`           // copies still to fire after the next one
	Fired       int64  `json:"fired"`               // copies fired so far
	Size        int    `json:"size"`                // of the message, headers included
}

// MaxScheduledList bounds what one ListScheduled returns.
const MaxScheduledList = 1000

// ListScheduled returns up to limit (at most MaxScheduledList) of the
// scheduled messages for dest ("" for every destination), the earliest
// due first, and how many there are in all. It reads the store, not the
// engine's mirror, without holding the engine's lock.
func (e *Engine) ListScheduled(dest string, limit int) (list []ScheduledMessage, total int, err error) {
	if limit <= 0 || limit > MaxScheduledList {
		limit = MaxScheduledList
	}
	err = e.scanScheduled(func(_ uint64, m *fsm.Message) {
		if dest != "" && m.Destination != dest {
			return
		}
		total++
		list = append(list, scheduledOf(m))
		// Keep the earliest limit: sort and trim when twice as many.
		if len(list) >= 2*limit {
			sortScheduled(list)
			list = list[:limit]
		}
	})
	if err != nil {
		return nil, 0, err
	}
	sortScheduled(list)
	if len(list) > limit {
		list = list[:limit]
	}
	return list, total, nil
}

func scheduledOf(m *fsm.Message) ScheduledMessage {
	s, _ := fsm.ScheduleOf(m)
	return ScheduledMessage{JobID: m.ID, Destination: m.Destination, DueMs: s.Due, PeriodMs: s.Period,
		Remaining: s.Remaining, Fired: s.Fired, Size: m.Size()}
}

func sortScheduled(l []ScheduledMessage) {
	slices.SortFunc(l, func(a, b ScheduledMessage) int {
		return cmp.Or(cmp.Compare(a.DueMs, b.DueMs), cmp.Compare(a.JobID, b.JobID))
	})
}

// FindScheduled returns the scheduled message with that job id, or
// ErrNoSuchJob.
func (e *Engine) FindScheduled(jobID string) (ScheduledMessage, error) {
	if e.isClosed() {
		return ScheduledMessage{}, ErrClosed
	}
	var found *ScheduledMessage
	err := e.store.Messages(fsm.ScheduledQueue, 0, func(_ uint64, m *fsm.Message) bool {
		if m.ID == jobID {
			sm := scheduledOf(m)
			found = &sm
			return false
		}
		return true
	})
	switch {
	case err != nil:
		return ScheduledMessage{}, fmt.Errorf("read scheduled messages: %w", err)
	case found == nil:
		return ScheduledMessage{}, fmt.Errorf("%w: %s", ErrNoSuchJob, jobID)
	}
	return *found, nil
}

// unscheduling is a removal of jobs in progress: the store scan and the
// proposals it is waiting for, the entries it took off the timer, and its
// outcome. It is registered under each job id before the store is read,
// so that a repeat stored by a fire applying meanwhile is either in what
// the scan reads or noticed as it applies (unscheduleRepeat).
type unscheduling struct {
	ids     []string
	pending int                 // the scan and proposals not settled
	found   map[string]struct{} // jobs an entry of which was found
	taken   []*schedEntry
	err     error         // set before done is closed
	done    chan struct{} // closed when nothing is pending any more
}

// unscheduleChunk bounds the entries one removal proposal names.
const unscheduleChunk = 4096

// Unschedule removes the scheduled message with that job id: no copy of
// it fires after it returns nil (one already firing still arrives). It
// returns ErrNoSuchJob when there is none.
func (e *Engine) Unschedule(ctx context.Context, jobID string) error {
	n, err := e.unschedule(ctx, []string{jobID})
	if err == nil && n == 0 {
		err = fmt.Errorf("%w: %s", ErrNoSuchJob, jobID)
	}
	return err
}

// unschedule removes the scheduled messages with these job ids and
// returns how many of them it found.
func (e *Engine) unschedule(ctx context.Context, ids []string) (int, error) {
	want := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		want[id] = struct{}{}
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return 0, ErrClosed
	}
	u := &unscheduling{ids: ids, found: make(map[string]struct{}), done: make(chan struct{})}
	for _, id := range ids {
		e.sched.removing[id] = append(e.sched.removing[id], u)
	}
	u.pending++ // the scan
	e.mu.Unlock()

	var seqs []uint64
	var ofIDs []string
	err := e.store.Messages(fsm.ScheduledQueue, 0, func(seq uint64, m *fsm.Message) bool {
		if _, ok := want[m.ID]; ok {
			seqs = append(seqs, seq)
			ofIDs = append(ofIDs, m.ID)
		}
		return true
	})
	e.mu.Lock()
	if err != nil && u.err == nil {
		u.err = fmt.Errorf("read scheduled messages: %w", err)
	}
	if err == nil {
		for _, id := range ofIDs {
			u.found[id] = struct{}{}
		}
		for len(seqs) > 0 {
			n := min(len(seqs), unscheduleChunk)
			e.unscheduleSeqs([]*unscheduling{u}, seqs[:n])
			seqs = seqs[n:]
		}
	}
	e.unscheduleSettled(u)
	e.mu.Unlock()
	select {
	case <-u.done:
		return len(u.found), u.err
	case <-ctx.Done():
		return 0, fmt.Errorf("waiting for raft: %w", ctx.Err())
	}
}

// unscheduleSeqs takes entries of the removals' jobs off the timer and
// proposes their removal; each of the removals waits for it. Called with
// e.mu held.
func (e *Engine) unscheduleSeqs(us []*unscheduling, seqs []uint64) {
	var taken []*schedEntry
	for _, seq := range seqs {
		if x := e.sched.entries[seq]; x != nil && x.idx >= 0 {
			heap.Remove(&e.sched.heap, x.idx)
			taken = append(taken, x)
		}
	}
	for _, u := range us {
		u.taken = append(u.taken, taken...)
		u.pending++
	}
	e.propose([]fsm.Command{{Op: fsm.OpAck, Queue: fsm.ScheduledQueue, Seqs: seqs}}, func(_ []fsm.Result, err error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, u := range us {
			if err != nil && u.err == nil {
				u.err = err
			}
			e.unscheduleSettled(u)
		}
	})
}

// unscheduleSettled counts one scan or proposal of u settled; with the
// last, the removal ends. Called with e.mu held.
func (e *Engine) unscheduleSettled(u *unscheduling) {
	if u.pending--; u.pending > 0 {
		return
	}
	for _, id := range u.ids {
		us := slices.DeleteFunc(e.sched.removing[id], func(v *unscheduling) bool { return v == u })
		if len(us) == 0 {
			delete(e.sched.removing, id)
		} else {
			e.sched.removing[id] = us
		}
	}
	if u.err != nil {
		// Not removed: what was taken off the timer goes back on it.
		for _, x := range u.taken {
			if e.sched.entries[x.seq] == x && x.idx < 0 && !x.firing {
				heap.Push(&e.sched.heap, x)
			}
		}
		e.wakeScheduler()
	}
	close(u.done)
}

// unscheduleRepeat is called as an entry of ScheduledQueue is stored:
// if its job is being removed (it fired meanwhile and repeats), it is
// removed too, and every removal of the job waits for that. Called with
// e.mu held, once the entry was added.
func (e *Engine) unscheduleRepeat(seq uint64, jobID string) {
	us := e.sched.removing[jobID]
	if len(us) == 0 {
		return
	}
	for _, u := range us {
		u.found[jobID] = struct{}{}
	}
	e.unscheduleSeqs(slices.Clone(us), []uint64{seq})
}
