package queue

import (
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// Idempotent sends. A persistent SEND that carries a dedupe-id header has
// it copied into its fsm command (Command.DedupeID), and the group stores
// the message only if no message with that id was stored within the
// dedupe window (see fsm's dedupe window): a resend with the same id gets
// its RECEIPT and is not stored again. A client that lost its leader
// cannot know whether its unreceipted SENDs were committed, so it resends
// them all with their ids; with this, each is stored once.
//
// Only what goes through raft is deduplicated: non-persistent messages,
// and persistent topic messages that go straight to non-durable
// subscribers because the topic has no durable subscription, are
// delivered every time they are sent. Ids are global to the group, not
// per destination.
//
// The window is replicated; only its sliding is the leader's: the engine
// proposes fsm.OpExpireDedupe with Before = now - DedupeWindow
// periodically (expireDedupe). A new leader's clock decides from then on,
// so clock differences between nodes shorten or lengthen the window by
// that much.

// HeaderDedupeID is the SEND header that makes a persistent send
// idempotent.
const HeaderDedupeID = "dedupe-id"

// maxDedupeEvery caps the period of the window's expiry proposals, so a
// long window does not grow by a whole quarter before it is trimmed.
const maxDedupeEvery = 30 * time.Second

// dedupeID returns m's dedupe-id, "" when it has none. A repeated header
// counts once, its first occurrence, as STOMP reads repeated headers.
func dedupeID(m *fsm.Message) string {
	for _, h := range m.Headers {
		if h.Key == HeaderDedupeID {
			return h.Value
		}
	}
	return ""
}

// checkDedupeID refuses a dedupe-id the group would not store. It runs
// for every SEND, whether or not the message will be deduplicated, so a
// client learns of a bad id at once.
func checkDedupeID(m *fsm.Message) error {
	if len(dedupeID(m)) > fsm.MaxDedupeIDLen {
		return ErrBadDedupeID
	}
	return nil
}

// dedupeEvery is how often the engine proposes an expiry of the window.
func dedupeEvery(window time.Duration) time.Duration {
	return min(window/4, maxDedupeEvery)
}

// expireDedupe proposes forgetting the dedupe ids recorded more than
// DedupeWindow before now, once dedupeEvery has passed since the last
// proposal (or since the engine started: a term that only begins adds no
// log entry, and what earlier leaders left waits one period more). It
// runs on every sweep tick, so the period is rounded up to the tick.
// e.mu must be held (proposing does not block).
func (e *Engine) expireDedupe(now time.Time) {
	if now.Sub(e.lastDedupeExpiry) < dedupeEvery(e.cfg.DedupeWindow) {
		return
	}
	e.lastDedupeExpiry = now
	before := now.Add(-e.cfg.DedupeWindow).UnixMilli()
	e.propose([]fsm.Command{{Op: fsm.OpExpireDedupe, Before: before}}, nil)
}
