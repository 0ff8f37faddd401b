package node

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport"
	"github.com/raftmq/raftmq/transport/auth"
)

// The admin API's view of what the leader serves: destinations, queue
// actions, connections and subscriptions (docs/API.md). Only the leader's
// engine knows them, so a follower forwards these requests (onLeader);
// actions go through raft like any client's.

// Browse paging bounds.
const (
	defaultBrowseLimit = 50
	maxBrowseLimit     = 500
	// maxBrowseBody is how much of a body a browsed message shows.
	maxBrowseBody = 4096
)

// DestinationList answers GET /api/v1/destinations.
type DestinationList struct {
	LeaderID     string                   `json:"leader_id"`
	Since        time.Time                `json:"since"` // when the counters started
	Destinations []queue.DestinationStats `json:"destinations"`
}

// ConnectionStatus is one client connection: GET /api/v1/connections.
type ConnectionStatus struct {
	transport.ConnectionInfo
	Subscriptions int `json:"subscriptions"`
}

// CreateQueueRequest is POST /api/v1/queues.
type CreateQueueRequest struct {
	Name string `json:"name"`
}

// QueueResult answers create and delete.
type QueueResult struct {
	Queue   string `json:"queue"`
	Created bool   `json:"created,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
}

// PurgeResult answers POST /api/v1/queues/{name}/purge.
type PurgeResult struct {
	Queue  string `json:"queue"`
	Purged int    `json:"purged"`
}

// MoveRequest is POST /api/v1/queues/{name}/move. To is a queue name
// (without /queue/); empty sends each message back to the queue it was
// sent to. Seqs names messages; empty means every one not in flight.
type MoveRequest struct {
	To   string   `json:"to,omitempty"`
	Seqs []uint64 `json:"seqs,omitempty"`
}

// MoveResult answers a move. One move looks at most at queue.MaxMove
// messages: Remaining counts those left for another.
type MoveResult struct {
	Moved     int `json:"moved"`
	Skipped   int `json:"skipped"`
	Remaining int `json:"remaining"`
}

// MessagePage answers GET /api/v1/queues/{name}/messages.
type MessagePage struct {
	Queue    string           `json:"queue"`
	Messages []BrowsedMessage `json:"messages"`
	// Next is the from of the next page; absent on the last one.
	Next uint64 `json:"next,omitempty"`
}

// BrowsedMessage is one stored message, as browsing shows it.
type BrowsedMessage struct {
	Seq         uint64            `json:"seq"`
	MessageID   string            `json:"message_id"`
	Destination string            `json:"destination"`
	Timestamp   time.Time         `json:"timestamp"`
	Expires     *time.Time        `json:"expires,omitempty"`
	Priority    uint8             `json:"priority"`
	Persistent  bool              `json:"persistent"`
	Redelivered bool              `json:"redelivered"`
	InFlight    bool              `json:"in_flight"`
	Headers     map[string]string `json:"headers"` // a repeated header's first value, as STOMP reads it
	BodySize    int               `json:"body_size"`
	Body        string            `json:"body"`
	// BodyEncoding is "text" (UTF-8) or "base64".
	BodyEncoding  string `json:"body_encoding"`
	BodyTruncated bool   `json:"body_truncated,omitempty"`
}

// leaderEngine answers r on a follower (forwarding it) and returns the
// serving term on the leader; ok false means r was answered.
func (a *admin) leaderTerm(w http.ResponseWriter, r *http.Request, body []byte) (*term, bool) {
	if !a.onLeader(w, r, body) {
		return nil, false
	}
	t := a.n.servingTerm()
	if t == nil {
		writeError(w, http.StatusServiceUnavailable, "this node leads but does not serve clients yet: retry")
		return nil, false
	}
	return t, true
}

func (a *admin) getDestinations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, filter := q.Get("type"), strings.ToLower(q.Get("filter"))
	if kind != "" && kind != "queue" && kind != "topic" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("type %q: want queue or topic", kind))
		return
	}
	t, ok := a.leaderTerm(w, r, nil)
	if !ok {
		return
	}
	list := DestinationList{LeaderID: a.n.cfg.ID, Since: t.engine.Since().UTC(), Destinations: []queue.DestinationStats{}}
	for _, d := range t.engine.Destinations(true) {
		if (kind == "" || d.Type == kind) && strings.Contains(strings.ToLower(d.Name), filter) {
			list.Destinations = append(list.Destinations, d)
		}
	}
	writeJSON(w, http.StatusOK, list)
}

func (a *admin) getConnections(w http.ResponseWriter, r *http.Request) {
	t, ok := a.leaderTerm(w, r, nil)
	if !ok {
		return
	}
	subs := make(map[string]int)
	for _, s := range t.engine.Subscriptions() {
		if s.ConnectionID != "" {
			subs[s.ConnectionID]++
		}
	}
	out := []ConnectionStatus{}
	for _, c := range t.srv.Connections() {
		out = append(out, ConnectionStatus{ConnectionInfo: c, Subscriptions: subs[c.ID]})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *admin) getSubscriptions(w http.ResponseWriter, r *http.Request) {
	t, ok := a.leaderTerm(w, r, nil)
	if !ok {
		return
	}
	subs := t.engine.Subscriptions()
	if subs == nil {
		subs = []queue.SubscriptionInfo{}
	}
	writeJSON(w, http.StatusOK, subs)
}

// queueDest turns a queue name from a path or request into its
// destination.
func queueDest(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("queue name %q: give the name without /queue/", name)
	}
	return "/queue/" + name, nil
}

func (a *admin) postQueue(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req CreateQueueRequest
	if !decodeStrict(w, body, &req) {
		return
	}
	dest, err := queueDest(req.Name)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !a.allowed(w, r, dest, auth.Admin) {
		return
	}
	t, ok := a.leaderTerm(w, r, body)
	if !ok {
		return
	}
	created, err := t.engine.CreateQueue(r.Context(), dest)
	if err != nil {
		writeQueueFailure(w, err)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, QueueResult{Queue: dest, Created: created})
}

// pathQueue reads the {name} of a queue path; ok false means w was
// answered.
func pathQueue(w http.ResponseWriter, r *http.Request) (string, bool) {
	dest, err := queueDest(r.PathValue("name"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return dest, true
}

// queueOnLeader reads the queue of a path without a body, checks the
// admin right on it and, on the leader, returns the serving term; ok
// false means w was answered.
func (a *admin) queueOnLeader(w http.ResponseWriter, r *http.Request) (string, *term, bool) {
	dest, ok := pathQueue(w, r)
	if !ok || !a.allowed(w, r, dest, auth.Admin) {
		return "", nil, false
	}
	t, ok := a.leaderTerm(w, r, nil)
	return dest, t, ok
}

func (a *admin) deleteQueue(w http.ResponseWriter, r *http.Request) {
	dest, t, ok := a.queueOnLeader(w, r)
	if !ok {
		return
	}
	if err := t.engine.DeleteQueue(r.Context(), dest); err != nil {
		writeQueueFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, QueueResult{Queue: dest, Deleted: true})
}

func (a *admin) postPurge(w http.ResponseWriter, r *http.Request) {
	dest, t, ok := a.queueOnLeader(w, r)
	if !ok {
		return
	}
	n, err := t.engine.Purge(r.Context(), dest)
	if err != nil {
		writeQueueFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PurgeResult{Queue: dest, Purged: n})
}

// postMove needs the admin right on the queue moved from and, when a
// target is named, the write right on it: moving is sending there. A
// retry (no target) sends each message back where it came from, which
// the admin right on a dead-letter queue covers.
func (a *admin) postMove(w http.ResponseWriter, r *http.Request) {
	dest, ok := pathQueue(w, r)
	if !ok || !a.allowed(w, r, dest, auth.Admin) {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req MoveRequest
	if len(strings.TrimSpace(string(body))) > 0 && !decodeStrict(w, body, &req) {
		return
	}
	if req.Seqs != nil && len(req.Seqs) == 0 {
		writeError(w, http.StatusBadRequest, "seqs is empty: name messages, or leave seqs out to move them all")
		return
	}
	if len(req.Seqs) > queue.MaxMove {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%d seqs: at most %d in one move", len(req.Seqs), queue.MaxMove))
		return
	}
	to := ""
	if req.To != "" {
		var err error
		if to, err = queueDest(req.To); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if !a.allowed(w, r, to, auth.Write) {
			return
		}
	}
	t, ok := a.leaderTerm(w, r, body)
	if !ok {
		return
	}
	res, err := t.engine.Move(r.Context(), dest, to, req.Seqs)
	if err != nil {
		writeQueueFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, MoveResult{Moved: res.Moved, Skipped: res.Skipped, Remaining: res.Remaining})
}

// getMessages needs the read right on the queue: browsing shows bodies.
func (a *admin) getMessages(w http.ResponseWriter, r *http.Request) {
	dest, ok := pathQueue(w, r)
	if !ok || !a.allowed(w, r, dest, auth.Read) {
		return
	}
	from, limit, err := pageParams(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	t, ok := a.leaderTerm(w, r, nil)
	if !ok {
		return
	}
	msgs, next, err := t.engine.Browse(dest, from, limit)
	if err != nil {
		writeQueueFailure(w, err)
		return
	}
	page := MessagePage{Queue: dest, Messages: make([]BrowsedMessage, 0, len(msgs)), Next: next}
	for _, m := range msgs {
		page.Messages = append(page.Messages, browsed(m))
	}
	writeJSON(w, http.StatusOK, page)
}

// pageParams reads from and limit.
func pageParams(r *http.Request) (from uint64, limit int, err error) {
	q := r.URL.Query()
	limit = defaultBrowseLimit
	if s := q.Get("from"); s != "" {
		if from, err = strconv.ParseUint(s, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("from %q: want a message seq (0 or more)", s)
		}
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > maxBrowseLimit {
			return 0, 0, fmt.Errorf("limit %q: want 1 to %d", s, maxBrowseLimit)
		}
	}
	return from, limit, nil
}

func browsed(b queue.BrowsedMessage) BrowsedMessage {
	m := b.Msg
	out := BrowsedMessage{
		Seq: b.Seq, MessageID: m.ID, Destination: m.Destination,
		Timestamp: time.UnixMilli(m.Timestamp).UTC(), Priority: m.Priority, Persistent: m.Persistent,
		Redelivered: b.Redelivered, InFlight: b.InFlight,
		Headers: make(map[string]string, len(m.Headers)), BodySize: len(m.Body),
	}
	if m.Expires != 0 {
		exp := time.UnixMilli(m.Expires).UTC()
		out.Expires = &exp
	}
	for _, h := range m.Headers {
		if _, seen := out.Headers[h.Key]; !seen {
			out.Headers[h.Key] = h.Value
		}
	}
	body := m.Body
	if len(body) > maxBrowseBody {
		body, out.BodyTruncated = body[:maxBrowseBody], true
	}
	text := body
	if out.BodyTruncated {
		// A cut may split the last character: judge the text without it.
		for i := 0; i < utf8.UTFMax && len(text) > 0 && !utf8.Valid(text); i++ {
			text = text[:len(text)-1]
		}
	}
	if utf8.Valid(text) {
		out.Body, out.BodyEncoding = string(text), "text"
	} else {
		out.Body, out.BodyEncoding = base64.StdEncoding.EncodeToString(body), "base64"
	}
	return out
}

// writeQueueFailure maps the engine's errors to statuses.
func writeQueueFailure(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, queue.ErrNoSuchQueue):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, queue.ErrBadDestination):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, queue.ErrClosed), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, err.Error()+" (the action may or may not have been applied)")
	default:
		writeFailure(w, err)
	}
}

func (a *admin) getHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// getReadyz is ready only on the node serving clients, so that a load
// balancer (a Kubernetes Service) sends clients to the leader alone.
func (a *admin) getReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if a.n.servingTerm() == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("not the leader\n"))
		return
	}
	w.Write([]byte("leader\n"))
}
