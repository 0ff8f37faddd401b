package queue

import (
	"errors"
	"fmt"

	"github.com/raftmq/raftmq/fsm"
)

// Log replicates commands. The node implements it with raft and group
// commit.
type Log interface {
	// Propose submits cmds to be applied together (one log entry, or part
	// of one). It must never block: the engine calls it under its lock.
	// done is called exactly once, never from within Propose itself, with
	// one result per command after they were committed and applied, or
	// with an error when they may not have been (lost leadership,
	// shutdown).
	Propose(cmds []fsm.Command, done func([]fsm.Result, error))
}

// Store reads message bodies the engine does not keep in memory.
type Store interface {
	// Messages calls fn for queue's stored messages from seq from on, in
	// seq order, until fn returns false.
	Messages(queue string, from uint64, fn func(seq uint64, m *fsm.Message) bool) error
}

// Outbound is the engine's way to a client connection. The transport
// implements it.
type Outbound interface {
	// Deliver queues d for writing. It must not block. After the frame
	// was written to the socket the transport calls d.Written().
	Deliver(d *Delivery)
	// Writable reports whether the connection has room for more
	// deliveries; when it is false the engine holds messages back, and the
	// transport calls Session.Resume once it drained.
	Writable() bool
}

// Closer is implemented by an Outbound that can end its connection with
// an ERROR frame. The engine ends a session this way when it cannot keep
// a subscription's promise any more: a wildcard queue subscription that a
// new queue would take past Config.MaxSubscriptions (wildqueue.go). It is
// called with the engine's lock held and must not block.
type Closer interface {
	CloseWithError(reason string)
}

// AckMode is a subscription's acknowledgement mode.
type AckMode uint8

const (
	AckAuto             AckMode = iota // acked when written to the socket
	AckClient                          // ACK is cumulative over the subscription
	AckClientIndividual                // ACK covers one message
)

// SubscribeSpec is a SUBSCRIBE in domain terms.
type SubscribeSpec struct {
	ID          string // subscription id, unique within the session
	Destination string // /queue/NAME or /topic/NAME
	Ack         AckMode
	Prefetch    int    // max unacknowledged messages; 0 means the default
	DurableName string // activemq.subscriptionName: a durable topic subscription
	// Selector (JMS SQL-92, queue/selector) limits the messages it gets;
	// a durable subscription keeps it. A change of a durable's selector
	// replaces the subscription and its stored messages, as JMS says.
	Selector string
	// Exclusive (activemq.exclusive) asks to be the queue's only
	// consumer while it is there; Priority (activemq.priority) ranks the
	// consumers of a queue: higher ones are served first.
	Exclusive bool
	Priority  int
	// Network, when not nil, marks a subscription opened by a bridge to
	// another group (see network.go). Other subscriptions are local.
	Network *NetworkSpec
	// Browser (browser:true) makes a queue browser: it gets the queue's
	// messages without consuming them, then an end marker (browse.go).
	Browser bool
}

// NetworkSpec marks a subscription opened by a bridge to another group: it
// forwards what it receives to Group.
type NetworkSpec struct {
	Group string // the group the bridge forwards to
	// TTL is networkTTL: a message already stored in TTL groups (its path
	// names TTL groups or more) is not forwarded; <= 0 means 1.
	TTL int
	// LowPriority is decreaseNetworkConsumerPriority: the subscription gets
	// a queue's messages only when no local consumer can take one now.
	LowPriority bool
}

// AckRef names a delivery to ACK or NACK: by ID (STOMP 1.2 "id", the
// MESSAGE's "ack" header), or by MessageID and, when given, Subscription
// (STOMP 1.0 and 1.1).
type AckRef struct {
	ID           string
	MessageID    string
	Subscription string
}

// Delivery is one message handed to one subscription.
type Delivery struct {
	Msg           *fsm.Message
	Destination   string // the destination to report: the subscribed one
	Subscription  string
	AckID         string
	Redelivered   bool
	DeliveryCount int // 1 on first delivery
	// Browsed marks a queue browser's delivery (browse.go): not consumed,
	// nothing to acknowledge. BrowseEnd marks its last one, which carries
	// no message: the transport writes it as the browser:end MESSAGE.
	Browsed   bool
	BrowseEnd bool

	sess    *Session
	sub     *subscription
	q       *destQueue
	ref     *ref
	written bool
	state   deliveryState
}

type deliveryState uint8

const (
	dInflight deliveryState = iota // unacknowledged, counts against prefetch
	dInTx                          // acked or nacked inside an open transaction
	dDone                          // finished: acked, released or dead-lettered
)

// MaxTxIDLen bounds a transaction id: a connection may hold as many open
// transactions as MaxTxFrames, each keeping its id.
const MaxTxIDLen = 256

// Client errors. The transport turns them into ERROR frames.
var (
	ErrBadDestination = errors.New("invalid destination")
	// ErrNoAutoCreate: Config.ForbidAutoCreate is set and the queue does
	// not exist. It wraps ErrNoSuchQueue.
	ErrNoAutoCreate    = fmt.Errorf("%w: this broker does not create queues on first use (create it through the admin API)", ErrNoSuchQueue)
	ErrDuplicateSub    = errors.New("subscription id already in use")
	ErrUnknownSub      = errors.New("no such subscription")
	ErrUnknownAck      = errors.New("no unacknowledged message with that id")
	ErrUnknownTx       = errors.New("no such transaction")
	ErrDuplicateTx     = errors.New("transaction already begun")
	ErrTooManyTxFrames = errors.New("too many frames in this connection's open transactions")
	ErrTxTooLarge      = errors.New("too many message bytes in this connection's open transactions")
	ErrTxIDTooLong     = fmt.Errorf("transaction id longer than %d bytes", MaxTxIDLen)
	ErrDurableInUse    = errors.New("durable subscription is already active")
	ErrNoClientID      = errors.New("durable subscription requires client-id on CONNECT")
	ErrMemoryLimit     = errors.New("non-persistent message memory limit reached")
	ErrClosed          = errors.New("broker is not serving (lost leadership or shutting down)")
	ErrTooManySubs     = errors.New("too many subscriptions on this connection")
	ErrBadDedupeID     = fmt.Errorf("%s longer than %d bytes", HeaderDedupeID, fsm.MaxDedupeIDLen)

	ErrReservedDestination = errors.New("destinations under " + SystemTopicPrefix + " are reserved for the broker")
	ErrNetworkDurable      = errors.New("a network subscription cannot be durable")
	ErrBadNetworkGroup     = errors.New("a network subscription needs a group name without commas or surrounding spaces")
)
