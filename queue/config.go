package queue

import (
	"fmt"
	"log/slog"
	"time"
)

// Config holds the delivery rules. The zero value of a field means its
// default (see Validate).
type Config struct {
	// MessageIDPrefix starts every message-id the engine assigns; the node
	// sets it to the group name.
	MessageIDPrefix string
	// DefaultPrefetch applies when SUBSCRIBE has no activemq.prefetchSize
	// (1000, as ActiveMQ).
	DefaultPrefetch int
	// MaxDeliveries is how often a message is delivered before it moves to
	// the dead-letter queue (6, as ActiveMQ's maximumRedeliveries+1... see
	// docs).
	MaxDeliveries int
	// DLQPrefix names dead-letter queues: /queue/<prefix><name> ("DLQ.").
	DLQPrefix string
	// DropExpired drops expired messages instead of moving them to the DLQ.
	DropExpired bool
	// ExpirySweep is how often queues without consumers are checked for
	// expired messages (1s).
	ExpirySweep time.Duration
	// MaxTxFrames bounds the SENDs, ACKs and NACKs a session's open
	// transactions buffer, all of them together (10000).
	MaxTxFrames int
	// MaxTxBytes bounds the message bytes a session's open transactions
	// buffer, all of them together (64 MiB); a single larger SEND still
	// fits when they buffer nothing else.
	MaxTxBytes int64
	// MaxSubscriptions bounds subscriptions per session (1000).
	MaxSubscriptions int
	// NonPersistentBytes bounds the memory held by non-persistent messages
	// waiting for consumers, across all destinations (256 MiB).
	NonPersistentBytes int64
	// CacheBytes bounds the persistent message bodies kept in memory for
	// fast dispatch; the rest are read from the store (64 MiB).
	CacheBytes int64
	// TopicSubscriberBacklog bounds the messages queued for one
	// non-durable topic subscriber that does not keep up; beyond it the
	// oldest are dropped, as ActiveMQ's pending message limit does (10000).
	TopicSubscriberBacklog int
	// DedupeWindow is how long the group remembers the dedupe-id of a
	// persistent SEND, counted from the message's timestamp; a resend
	// within it is receipted and not stored again (2m). It should exceed
	// the longest a client may take to resend after a failover. The
	// engine forgets older ids every min(DedupeWindow/4, 30s), rounded up
	// to the ExpirySweep tick.
	DedupeWindow time.Duration
	// QueueLimit bounds every queue that no QueueLimits rule names: the
	// messages and bytes it may hold, and what a send to it does when it
	// is full (limits.go). The zero value sets no limit.
	QueueLimit DestLimit
	// QueueLimits are per-queue limits; the first rule whose pattern
	// matches a queue's name (without /queue/) is its limit.
	QueueLimits []LimitRule
	// StoreLimit bounds the persistent message bytes stored in all of the
	// group's queues together, durable subscriptions' and dead-letter
	// queues included (ActiveMQ's storeUsage); 0 means none. Each message
	// counts MessageOverhead bytes beyond its own, so that the limit also
	// bounds the leader's memory of small messages. When it is reached,
	// sends to every queue are held or refused, as that queue's OnFull
	// says.
	StoreLimit int64
	// ForbidAutoCreate refuses a SEND or SUBSCRIBE to a queue the group
	// does not have yet (ErrNoAutoCreate) instead of creating it on first
	// use, as ActiveMQ does unless told otherwise: queues are then made
	// through the admin API. Topics and temporary destinations are
	// always made on first use.
	ForbidAutoCreate bool
	// HeldBytes bounds the memory of the sends held by flow control, all
	// queues together (256 MiB): a send that would be held beyond it is
	// refused at once, as if its queue's OnFull were Fail, so that many
	// blocked producers cannot fill the leader's memory.
	HeldBytes int64
	// Logger receives the engine's warnings (slog.Default() when nil).
	Logger *slog.Logger
}

// Validate fills in defaults and rejects impossible values.
func (c *Config) Validate() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.DefaultPrefetch, 1000)
	def(&c.MaxDeliveries, 6)
	def(&c.MaxTxFrames, 10000)
	def(&c.MaxSubscriptions, 1000)
	def(&c.TopicSubscriberBacklog, 10000)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.DLQPrefix == "" {
		c.DLQPrefix = "DLQ."
	}
	if c.ExpirySweep == 0 {
		c.ExpirySweep = time.Second
	}
	if c.NonPersistentBytes == 0 {
		c.NonPersistentBytes = 256 << 20
	}
	if c.MaxTxBytes == 0 {
		c.MaxTxBytes = 64 << 20
	}
	if c.HeldBytes == 0 {
		c.HeldBytes = 256 << 20
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 64 << 20
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = 2 * time.Minute
	}
	if c.DefaultPrefetch < 0 || c.MaxDeliveries < 0 || c.MaxTxFrames < 0 ||
		c.MaxSubscriptions < 0 || c.TopicSubscriberBacklog < 0 ||
		c.NonPersistentBytes < 0 || c.CacheBytes < 0 || c.HeldBytes < 0 || c.ExpirySweep < 0 || c.MaxTxBytes < 0 {
		return fmt.Errorf("queue config: negative limit")
	}
	if c.StoreLimit < 0 {
		return fmt.Errorf("queue config: negative store limit")
	}
	if err := c.QueueLimit.validate(); err != nil {
		return fmt.Errorf("queue config: default queue limit: %w", err)
	}
	for i, r := range c.QueueLimits {
		if r.Pattern.String() == "" {
			return fmt.Errorf("queue config: queue limit rule %d has no pattern", i+1)
		}
		if err := r.Limit.validate(); err != nil {
			return fmt.Errorf("queue config: queue limit rule %d (%s): %w", i+1, r.Pattern, err)
		}
	}
	if c.DedupeWindow <= 0 {
		return fmt.Errorf("queue config: dedupe window %v is not positive", c.DedupeWindow)
	}
	return nil
}
