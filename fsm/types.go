package fsm

import "strconv"

// Header is one user header of a stored message, kept in the order sent.
type Header struct {
	Key, Value string
}

// Message is a message as the group stores it. A stored *Message is shared
// read-only between the FSM's observer and readers: never modify one that
// came out of the FSM or an Applied change.
type Message struct {
	ID          string   // broker-assigned message-id, shared by the copies of a topic message
	Destination string   // as sent: /queue/NAME or /topic/NAME
	Headers     []Header // the sender's own headers (no transport headers)
	Body        []byte
	Priority    uint8 // 0..9, default 4
	Expires     int64 // unix ms; 0 means never
	Timestamp   int64 // unix ms when the leader accepted it
	Persistent  bool
}

// Size is the number of bytes the message occupies, roughly: used for
// cache and memory accounting, not for storage layout.
func (m *Message) Size() int {
	n := len(m.ID) + len(m.Destination) + len(m.Body) + 32
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 8
	}
	return n
}

// HeaderNetworkPath is the message header a bridge between groups sets on
// a message it forwards: the comma-separated names of the groups the
// message was stored in before this one, oldest first ("A", "A,B"). The
// delivery engine reads it to keep messages from going round in circles.
const HeaderNetworkPath = "raftmq-network-path"

// Meta is what the leader keeps in memory for a stored entry; the body
// stays in pebble until a consumer needs it.
type Meta struct {
	Priority uint8
	Expires  int64
	Size     int
	// Path is the message's HeaderNetworkPath, empty for a message that
	// never crossed a bridge: the leader decides where a message may be
	// forwarded without reading its body.
	Path string
	// Due is, for an entry of ScheduledQueue, the unix ms at which its
	// next copy fires (the Due of its HeaderSchedule); 0 for every other
	// entry. The leader arms its timers from it without reading bodies.
	Due int64
}

// MetaOf returns the Meta of m. It is the one place that derives a Meta
// from a message, so the FSM's stored index and the leader's engine agree.
// A repeated path header counts once, its first occurrence, as STOMP reads
// repeated headers.
func MetaOf(m *Message) Meta {
	meta := Meta{Priority: m.Priority, Expires: m.Expires, Size: m.Size()}
	path, sched := false, false
	for _, h := range m.Headers {
		switch {
		case h.Key == HeaderNetworkPath && !path:
			meta.Path, path = h.Value, true
		case h.Key == HeaderSchedule && !sched:
			// A value that does not parse is due at once (see applier.fire).
			s, _ := ParseSchedule(h.Value)
			meta.Due, sched = s.Due, true
			// A scheduled entry weighs what its copies still to come
			// will: the store limit counts them from the SEND on, and
			// each fire moves one copy's weight to its destination.
			meta.Size *= int(min(max(s.Remaining, 0), MaxScheduleRemaining)) + 1
		}
	}
	return meta
}

// Durable is a durable topic subscription: client-id plus subscription name.
// Its messages live in the store queue DurableQueue(ClientID, Name).
type Durable struct {
	ClientID string
	Name     string
	Topic    string // /topic/NAME
	Selector string // reserved for selectors (issue 7); stored as given
}

// Queue is the store queue that holds this subscription's messages.
func (d Durable) Queue() string { return DurableQueue(d.ClientID, d.Name) }

// Op is a command type. The list is append-only: a value, once released,
// keeps its meaning forever, so old logs replay the same way.
type Op uint8

const (
	OpEnqueue     Op = 1 // Queue, Msg: store Msg at the tail of Queue
	OpPublish     Op = 2 // Topic, Msg: store a copy in every durable subscription of Topic
	OpAck         Op = 3 // Queue, Seqs: delete these entries (missing ones are ignored)
	OpDeadLetter  Op = 4 // Queue, Seqs, Target, Reason: move entries to Target, adding the reason headers
	OpSubscribe   Op = 5 // Durable: create, or replace when topic or selector differ
	OpUnsubscribe Op = 6 // Durable (ClientID, Name): delete it and its messages
	OpPurge       Op = 7 // Queue: delete every entry
	OpDeleteQueue Op = 8 // Queue: delete every entry and the queue itself

	// OpExpireDedupe (Before) forgets every dedupe id recorded with a
	// timestamp before Before: the window slides only when the leader
	// says so, never by a node's own clock, so every node forgets the same
	// ids at the same point of the log.
	OpExpireDedupe Op = 9
	OpSetMember    Op = 10 // Member: insert it, or replace the member with its ID
	OpRemoveMember Op = 11 // Member (ID): delete it (a missing one is ignored)
	OpCreateQueue  Op = 12 // Queue: create it, empty, if it does not exist
	// OpMove (Queue, Seqs, Target) moves entries to the tail of Target,
	// which becomes their destination, without the dead-letter headers:
	// an operator sending dead letters back, or elsewhere.
	OpMove Op = 13
	// OpFire (Queue, Seqs: one seq, Due) fires the scheduled entry seq of
	// Queue (ScheduledQueue) if it still exists and its schedule's Due is
	// Due: it removes the entry, delivers a copy to the message's
	// destination (a queue, or a topic as OpPublish does) and, if the
	// schedule has repeats left, stores the entry again, due one period
	// later. Anything else (the entry gone, or due at another time) makes
	// it a no-op, so a duplicate or stale fire changes nothing. Applying
	// it reads no clock: the copy's timestamp is the due time.
	OpFire Op = 14

	// OpSkippable marks a command a node may ignore if it does not know
	// the type, so that a newer leader can add optional commands. Only a
	// command that changes no replicated state may carry it (a hint, a
	// no-op marker): an older node skipping a state change would diverge
	// from the rest of its group.
	OpSkippable Op = 0x80
)

// Command is one change to replicated state. Which fields matter depends
// on Op (see the constants).
type Command struct {
	Op      Op
	Queue   string // store queue: a /queue/NAME destination or a DurableQueue name
	Topic   string
	Msg     *Message
	Seqs    []uint64
	Target  string // OpDeadLetter, OpMove: store queue to move to
	Reason  string // OpDeadLetter: why (expired, max deliveries ...)
	Durable *Durable

	// DedupeID (OpEnqueue, OpPublish), when not empty, makes the command
	// idempotent: if the id is in the dedupe window the command stores
	// nothing and its Result says Duplicate; otherwise the message is
	// stored and the id recorded with Msg.Timestamp. The id space is the
	// whole group's, not a destination's: the same id sent to two
	// destinations is stored once. At most MaxDedupeIDLen bytes.
	DedupeID string
	Before   int64   // OpExpireDedupe: unix ms; ids recorded before it are forgotten
	Member   *Member // OpSetMember, OpRemoveMember
	Due      int64   // OpFire: the due time the entry must have (unix ms)
}

// MaxDedupeIDLen bounds Command.DedupeID (ids are keys, and snapshots
// bound key sizes). A longer one is an invalid command. It must not
// change: a node replaying a log with another bound than the one that
// first applied it would diverge. The queue refuses such a SEND, so no
// such command should reach the log.
const MaxDedupeIDLen = 1024

// Result is the outcome of one command, in the order the commands were
// proposed.
type Result struct {
	Seq uint64 // OpEnqueue: the entry's position in its queue
	// Duplicate (OpEnqueue, OpPublish): the command's DedupeID was in the
	// window, so nothing was stored and nothing reported to the observer.
	// It is a success: the message was stored by the command that first
	// carried the id.
	Duplicate bool
	Err       error // a command that could not be applied (the others still were)
}

// Member is one node of the group as the group's directory records it:
// its addresses for raft, STOMP clients and the admin HTTP API.
type Member struct {
	ID        string // raft server ID, unique in the group
	RaftAddr  string
	StompAddr string
	HTTPAddr  string
}

// ChangeKind says what an Applied change did.
type ChangeKind uint8

const (
	Enqueued       ChangeKind = iota + 1 // Queue, Seq, Msg
	Removed                              // Queue, Seq (acked, expired or moved away; an ack is not checked against the store, so the entry may have been gone already)
	Published                            // Queue = topic, Msg: a topic message, for non-durable subscribers
	DurableAdded                         // Durable
	DurableRemoved                       // Durable
	Purged                               // Queue: every entry removed
	QueueDeleted                         // Queue: entries and queue removed
	QueueCreated                         // Queue: an empty queue created (OpCreateQueue; put creates queues silently)
)

// Change is one effect of an applied command, reported to the Observer.
type Change struct {
	Kind    ChangeKind
	Queue   string
	Seq     uint64
	Msg     *Message
	Durable *Durable
}

// Observer mirrors the FSM's state (the leader's delivery engine does).
type Observer interface {
	// Load is called once by Attach, under the FSM's apply lock, with a
	// view of the whole state; no Applied call runs concurrently with it.
	Load(v View) error
	// Applied is called on the FSM goroutine after each applied batch is in
	// pebble, with its changes in order. It must not wait on raft.
	Applied(changes []Change)
}

// View reads the whole replicated state, consistently, during Load.
type View interface {
	Queues() ([]string, error)    // every store queue that exists, durable queues included
	Durables() ([]Durable, error) // every durable subscription
	// Entries calls fn for each entry of queue in seq order.
	Entries(queue string, fn func(seq uint64, m Meta) error) error
}

// DurableQueue names the store queue of a durable subscription. It cannot
// collide with a /queue/ destination.
func DurableQueue(clientID, name string) string {
	return "durable:" + strconv.Itoa(len(clientID)) + ":" + clientID + ":" + name
}
