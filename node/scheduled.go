package node

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/auth"
)

// ScheduledList answers GET /api/v1/scheduled: the scheduler's figures
// and the scheduled messages due first.
type ScheduledList struct {
	LeaderID string                   `json:"leader_id"`
	Stats    queue.ScheduledStats     `json:"stats"`
	Total    int                      `json:"total"` // scheduled messages matching the query
	Messages []queue.ScheduledMessage `json:"messages"`
}

// ScheduledRemoved answers DELETE /api/v1/scheduled/{id}.
type ScheduledRemoved struct {
	JobID       string `json:"job_id"`
	Destination string `json:"destination"`
	Removed     bool   `json:"removed"`
}

// getScheduled lists scheduled messages: their destinations and times,
// not their bodies, so the broker read right covers it, as the
// destination list.
func (a *admin) getScheduled(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > queue.MaxScheduledList {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want 1 to %d", s, queue.MaxScheduledList))
			return
		}
		limit = n
	}
	dest := q.Get("destination")
	t, ok := a.leaderTerm(w, r, nil)
	if !ok {
		return
	}
	list, total, err := t.engine.ListScheduled(dest, limit)
	if err != nil {
		writeQueueFailure(w, err)
		return
	}
	if list == nil {
		list = []queue.ScheduledMessage{}
	}
	writeJSON(w, http.StatusOK, ScheduledList{LeaderID: a.n.cfg.ID, Stats: t.engine.Scheduled(), Total: total, Messages: list})
}

// deleteScheduled removes a scheduled message. It needs the broker read
// right, as listing them does (without it, asking for ids would tell
// which jobs exist and where they go), and the admin right on the
// message's destination, as purging a queue does.
func (a *admin) deleteScheduled(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t, ok := a.leaderTerm(w, r, nil)
	if !ok {
		return
	}
	job, err := t.engine.FindScheduled(id)
	if err != nil {
		writeScheduledFailure(w, err)
		return
	}
	if !a.allowed(w, r, job.Destination, auth.Admin) {
		return
	}
	if err := t.engine.Unschedule(r.Context(), id); err != nil {
		writeScheduledFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ScheduledRemoved{JobID: id, Destination: job.Destination, Removed: true})
}

func writeScheduledFailure(w http.ResponseWriter, err error) {
	if errors.Is(err, queue.ErrNoSuchJob) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeQueueFailure(w, err)
}
