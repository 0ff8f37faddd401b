package queue

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// counters are a destination's traffic since the engine started. They
// live in the leader's memory, as ActiveMQ's live in its broker's: a new
// leader counts from zero (Stats says since when).
type counters struct {
	enqueued     uint64 // stored (or, for topics, published)
	dequeued     uint64 // acknowledged by a consumer
	deadLettered uint64 // sent to the dead-letter queue after too many deliveries
	expired      uint64 // expired, dropped or sent to the dead-letter queue
	blocked      uint64 // sends (and commits) held for room (flow control)
	failed       uint64 // sends refused for want of room, at once or after BlockTimeout
	browsed      uint64 // messages shown to queue browsers, not consumed (browse.go)
}

// DestinationStats describes one queue or topic: GET /api/v1/destinations
// and the per-destination metrics.
type DestinationStats struct {
	Name string `json:"name"`
	Type string `json:"type"` // "queue" or "topic"
	// Pending counts messages not yet acknowledged, InFlight included; for
	// a topic, summed over its subscribers.
	Pending          int `json:"pending"`
	InFlight         int `json:"in_flight"`
	Consumers        int `json:"consumers"`         // local subscriptions
	NetworkConsumers int `json:"network_consumers"` // bridges to other groups

	Enqueued     uint64 `json:"enqueued"`
	Dequeued     uint64 `json:"dequeued"`
	DeadLettered uint64 `json:"dead_lettered"`
	Expired      uint64 `json:"expired"`
	// Browsed counts the messages shown to queue browsers (browser:true),
	// which consume nothing.
	Browsed uint64 `json:"browsed"`

	// OldestAgeMs is the age of a queue's oldest stored message, nil when
	// it has none (non-persistent messages are not looked at).
	OldestAgeMs *int64 `json:"oldest_age_ms,omitempty"`
	// DurableSubscriptions counts a topic's durable subscriptions,
	// connected or not.
	DurableSubscriptions int `json:"durable_subscriptions"`
	// DeadLetterQueue marks a dead-letter queue (named with the engine's
	// DLQ prefix, "DLQ."): its messages can be retried.
	DeadLetterQueue bool `json:"dead_letter_queue"`

	// A queue's limit (limits.go); 0 means none. OnFull is "block" or
	// "fail" for a queue whose sends are checked (it has a limit, or the
	// store has one), else empty; BlockTimeoutMs 0 means no timeout.
	MaxMessages    int64  `json:"max_messages"`
	MaxBytes       int64  `json:"max_bytes"`
	OnFull         string `json:"on_full,omitempty"`
	BlockTimeoutMs int64  `json:"block_timeout_ms"`
	// Bytes is what counts against a queue's MaxBytes: the bytes of its
	// messages, pending and in flight, and of the sends to it in raft
	// (those are counted for limited queues only).
	Bytes int64 `json:"bytes"`
	// SendsHeld is the sends (and commits) waiting for room now;
	// SendsBlocked counts every one that had to wait, SendsFailed every
	// one refused for want of room (Fail, or BlockTimeout passed).
	SendsHeld    int    `json:"sends_held"`
	SendsBlocked uint64 `json:"sends_blocked"`
	SendsFailed  uint64 `json:"sends_failed"`
}

// SubscriptionInfo describes one subscription: GET /api/v1/subscriptions.
type SubscriptionInfo struct {
	ConnectionID string `json:"connection_id,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ID           string `json:"id,omitempty"`
	Destination  string `json:"destination"`
	Type         string `json:"type"` // "queue", "topic" or "durable"
	DurableName  string `json:"durable_name,omitempty"`
	Ack          string `json:"ack,omitempty"`
	Prefetch     int    `json:"prefetch"`
	InFlight     int    `json:"in_flight"`
	Delivered    uint64 `json:"delivered"`
	NetworkGroup string `json:"network_group,omitempty"`
	// Active is false for a durable subscription nobody is connected to.
	Active bool `json:"active"`
	// Browser marks a queue browser (browser:true): it consumes nothing.
	Browser bool `json:"browser,omitempty"`
	// Pending counts the messages waiting in a durable subscription's or
	// a topic subscriber's own queue.
	Pending int `json:"pending"`
}

// ConnectionIdentifier is implemented by an Outbound that can name its
// connection, so that subscriptions can be matched to connections.
type ConnectionIdentifier interface {
	ConnectionID() string
}

// Since is when the engine started, the origin of its counters.
func (e *Engine) Since() time.Time { return e.since }

// dequeued counts an acknowledged delivery on its destination.
func (e *Engine) dequeued(d *Delivery) {
	switch s := d.sub; {
	case s.t != nil:
		s.t.stats.dequeued++
	case s.durable != nil:
		d.q.stats.dequeued++
		if t := e.topics[s.durable.d.Topic]; t != nil {
			t.stats.dequeued++
		}
	default:
		d.q.stats.dequeued++
	}
}

// pendingCount is what q holds: waiting and in flight.
func (q *destQueue) pendingCount() int { return q.pending.n + q.parked.n + q.inflight }

// Destinations describes every queue and topic the engine knows, sorted
// by name. Store queues of durable subscriptions are not destinations:
// Subscriptions lists them. With age set, each queue's oldest stored
// message is read from the store (outside the engine's lock).
func (e *Engine) Destinations(age bool) []DestinationStats {
	e.mu.Lock()
	out := make([]DestinationStats, 0, len(e.queues)+len(e.topics))
	type ageRead struct {
		i    int // in out
		q    *destQueue
		from uint64
	}
	var stored []ageRead // queues with stored messages
	for name, q := range e.queues {
		if !strings.HasPrefix(name, "/queue/") {
			continue // a durable subscription's queue
		}
		if len(q.refs) > 0 {
			stored = append(stored, ageRead{len(out), q, q.ageFrom})
		}
		st := DestinationStats{
			Name: name, Type: "queue",
			Pending: q.pendingCount(), InFlight: q.inflight,
			Consumers: q.local, NetworkConsumers: q.network,
			Enqueued: q.stats.enqueued, Dequeued: q.stats.dequeued,
			DeadLettered: q.stats.deadLettered, Expired: q.stats.expired,
			Browsed:         q.stats.browsed,
			DeadLetterQueue: e.isDLQ(q),

			MaxMessages: q.limit.MaxMessages, MaxBytes: q.limit.MaxBytes,
			Bytes:     q.bytes + q.rsvBytes,
			SendsHeld: q.held.n, SendsBlocked: q.stats.blocked, SendsFailed: q.stats.failed,
		}
		if q.gated {
			st.OnFull = q.limit.OnFull.String()
			st.BlockTimeoutMs = q.limit.BlockTimeout.Milliseconds()
		}
		out = append(out, st)
	}
	for name, t := range e.topics {
		st := DestinationStats{
			Name: name, Type: "topic",
			Enqueued: t.stats.enqueued, Dequeued: t.stats.dequeued,
			DurableSubscriptions: t.durables,
		}
		for s := range t.subs {
			st.add(s.q)
			if s.net != nil {
				st.NetworkConsumers++
			} else {
				st.Consumers++
			}
		}
		for _, ds := range e.durables {
			if ds.d.Topic == name {
				st.add(ds.q)
				if ds.active != nil {
					st.Consumers++
				}
			}
		}
		out = append(out, st)
	}
	e.mu.Unlock()

	if age {
		// The oldest stored message is the queue's first entry. Seqs only
		// grow, so once an entry was first no entry below it appears
		// again: the next read starts there, not among the tombstones
		// that acks left below.
		now := e.now().UnixMilli()
		for _, a := range stored {
			var first uint64
			e.store.Messages(out[a.i].Name, a.from, func(seq uint64, m *fsm.Message) bool {
				age := max(now-m.Timestamp, 0)
				out[a.i].OldestAgeMs, first = &age, seq
				return false
			})
			if first != 0 {
				e.mu.Lock()
				a.q.ageFrom = max(a.q.ageFrom, first)
				e.mu.Unlock()
			}
		}
	}
	slices.SortFunc(out, func(a, b DestinationStats) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// add sums one subscriber's queue into a topic's stats.
func (st *DestinationStats) add(q *destQueue) {
	st.Pending += q.pendingCount()
	st.InFlight += q.inflight
	st.DeadLettered += q.stats.deadLettered
	st.Expired += q.stats.expired
}

// Subscriptions describes every subscription, offline durable ones
// included, sorted by connection and id.
func (e *Engine) Subscriptions() []SubscriptionInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []SubscriptionInfo
	for s := range e.sessions {
		conn := ""
		if ci, ok := s.out.(ConnectionIdentifier); ok {
			conn = ci.ConnectionID()
		}
		for _, sub := range s.subs {
			info := SubscriptionInfo{
				ConnectionID: conn, ClientID: s.clientID, ID: sub.id,
				Destination: sub.dest, Type: "queue", Ack: sub.ack.String(),
				Prefetch: sub.prefetch, InFlight: sub.unacked, Delivered: sub.delivered,
				Active: true,
			}
			if sub.net != nil {
				info.NetworkGroup = sub.net.Group
			}
			switch {
			case sub.t != nil:
				info.Type = "topic"
				info.Pending = sub.q.pending.n
			case sub.durable != nil:
				info.Type = "durable"
				info.DurableName = sub.durable.d.Name
				info.Pending = sub.q.pendingCount()
			case sub.browse != nil: // a queue browser (browse.go)
				info.Browser = true
			case sub.wq != nil: // a wildcard queue subscription (wildqueue.go)
			case sub.q == nil: // a durable subscription being created
				info.Type = "durable"
			}
			out = append(out, info)
		}
	}
	for _, ds := range e.durables {
		if ds.active != nil {
			continue
		}
		out = append(out, SubscriptionInfo{
			ClientID: ds.d.ClientID, Destination: ds.d.Topic, Type: "durable",
			DurableName: ds.d.Name, Pending: ds.q.pendingCount(),
		})
	}
	slices.SortFunc(out, func(a, b SubscriptionInfo) int {
		return cmp.Or(cmp.Compare(a.ConnectionID, b.ConnectionID), cmp.Compare(a.ClientID, b.ClientID),
			cmp.Compare(a.ID, b.ID), cmp.Compare(a.DurableName, b.DurableName))
	})
	return out
}

// String is the STOMP name of the mode.
func (m AckMode) String() string {
	switch m {
	case AckClient:
		return "client"
	case AckClientIndividual:
		return "client-individual"
	}
	return "auto"
}
