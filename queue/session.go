package queue

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue/selector"
)

// Session is one client connection's view of the engine.
type Session struct {
	e          *Engine
	clientID   string
	out        Outbound
	closed     bool
	subs       map[string]*subscription
	deliveries map[string]*Delivery // in flight, by AckID
	byMsgID    map[string]*Delivery // in flight, by message-id (STOMP 1.0/1.1 acks)
	txs        map[string]*tx
	held       map[*waiter]struct{} // sends and commits held for room (flow.go)
	members    int                  // of its wildcard queue subscriptions (wildqueue.go)
	// What its open transactions buffer, held commits included (ack.go).
	txFrames int
	txBytes  int64
	temps    []string // the temporary destinations it created (temp.go)
	ackSeq   uint64
}

type subscription struct {
	id       string
	sess     *Session
	dest     string
	ack      AckMode
	prefetch int
	q        *destQueue   // nil while a new durable subscription is being created
	t        *topic       // non-durable topic subscription
	durable  *durableSub  // durable topic subscription
	claim    string       // durable key claimed while being created
	net      *NetworkSpec // a bridge's network subscription (TTL filled in); nil: local
	// What it asked of the queue (consumers.go): only messages its
	// selector matches, to be the exclusive consumer, its priority.
	sel       *selector.Selector
	exclusive bool
	priority  int
	wild      bool // a wildcard topic subscription (wildcard.go)
	// A wildcard queue subscription (wildqueue.go) has wq and no q; each
	// of its members has q and parent.
	wq      *wildQueue
	parent  *subscription
	waiting bool // a member in its parent's line (wildqueue.go)

	// Deliveries, kept by acct(): a wildcard queue subscription's
	// members use their parent's.
	inflight []*Delivery // in delivery order, for cumulative acks
	head     int
	finished int // dDone entries in inflight[head:]
	unacked  int // deliveries counting against prefetch

	delivered uint64 // messages handed to the connection (stats.go)

	browse *browser // a queue browser (browse.go): no consumer, q is nil
}

// Open starts a session for one client connection.
func (e *Engine) Open(clientID string, out Outbound) (*Session, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	s := &Session{
		e:          e,
		clientID:   clientID,
		out:        out,
		subs:       make(map[string]*subscription),
		deliveries: make(map[string]*Delivery),
		byMsgID:    make(map[string]*Delivery),
		txs:        make(map[string]*tx),
		held:       make(map[*waiter]struct{}),
	}
	e.sessions[s] = struct{}{}
	return s, nil
}

// destKind classifies a destination.
type destKind uint8

const (
	kindQueue destKind = iota + 1
	kindTopic
)

// MaxDestinationLen bounds destination names (they are storage keys).
const MaxDestinationLen = 1024

func parseDest(d string) (destKind, error) {
	var k destKind
	var name string
	switch {
	case strings.HasPrefix(d, "/queue/"):
		k, name = kindQueue, d[len("/queue/"):]
	case strings.HasPrefix(d, "/topic/"):
		k, name = kindTopic, d[len("/topic/"):]
	case strings.HasPrefix(d, TempQueuePrefix):
		k, name = kindQueue, d[len(TempQueuePrefix):]
	case strings.HasPrefix(d, TempTopicPrefix):
		k, name = kindTopic, d[len(TempTopicPrefix):]
	default:
		return 0, ErrBadDestination
	}
	// Names are storage keys, metric labels and JSON strings: UTF-8, as
	// STOMP 1.1 and 1.2 require of headers, and without NUL.
	if name == "" || len(d) > MaxDestinationLen || strings.ContainsRune(d, 0) || !utf8.ValidString(d) {
		return 0, ErrBadDestination
	}
	return k, nil
}

// mayUse checks that s may send to (or, with subscribe, subscribe to)
// dest: a temporary destination it may use (temp.go), or a queue that
// exists or may be made on first use (Config.ForbidAutoCreate). Called
// with e.mu held.
func (e *Engine) mayUse(s *Session, dest string, kind destKind, temp, ownTemp, subscribe bool) error {
	if temp {
		return e.useTemp(s, dest, ownTemp, subscribe)
	}
	if kind == kindQueue && e.cfg.ForbidAutoCreate {
		if q := e.queues[dest]; q == nil || !q.stored {
			return ErrNoAutoCreate
		}
	}
	return nil
}

// Send accepts a message for m.Destination. The transport fills Headers,
// Body, Priority, Expires and Persistent; the engine assigns ID and
// Timestamp. Outside a transaction done runs once the message is safe:
// a persistent one after raft applied it. Inside one (tx != "") it is
// buffered until COMMIT and done runs at once. A returned error means done
// will not be called.
//
// A dedupe-id header makes a send that goes through raft idempotent (see
// dedupe.go): a duplicate completes with done(nil) and is not stored.
// Topics under SystemTopicPrefix are the broker's: sending to one is
// ErrReservedDestination, in a transaction or not.
//
// A send to a queue with a limit (limits.go) that does not fit is refused
// with a *FullError (ErrDestinationFull) or held until there is room, as
// the queue's OnFull says; done runs once it was admitted and is safe, or
// with the error that ended its wait. A transaction's sends are checked
// at COMMIT.
func (s *Session) Send(m *fsm.Message, tx string, done func(error)) error {
	if m.Destination == SchedulerManagement { // ActiveMQ's (schedmanage.go)
		return s.manageScheduler(m, tx, done)
	}
	tempName, ownTemp, temp := tempDest(m.Destination)
	if temp {
		// Leader memory only, never scheduled (temp.go).
		m.Destination, m.Persistent = tempName, false
		if _, sched, _ := parseSchedule(m); sched {
			return ErrTempScheduled
		}
	}
	kind, err := parseDest(m.Destination)
	if err != nil {
		return err
	}
	if reserved(m.Destination) {
		return ErrReservedDestination
	}
	if wildcard(m.Destination) {
		return ErrWildcardSend
	}
	if err := checkDedupeID(m); err != nil {
		return err
	}
	// The schedule header is the leader's to write: one from a client
	// would give an ordinary entry a due time in the store's index.
	m.Headers = slices.DeleteFunc(m.Headers, func(h fsm.Header) bool { return h.Key == fsm.HeaderSchedule })
	// Scheduled delivery (schedule.go): AMQ_SCHEDULED_* headers are
	// checked here, in a transaction or not; a bad one fails the SEND.
	sched, isSched, err := parseSchedule(m)
	if err != nil {
		return err
	}
	e := s.e
	e.mu.Lock()
	if err := s.usable(); err != nil {
		e.mu.Unlock()
		return err
	}
	if err := e.mayUse(s, m.Destination, kind, temp, ownTemp, false); err != nil {
		e.mu.Unlock()
		return err
	}
	m.ID = e.nextMessageID()
	m.Timestamp = e.nowMs()
	if isSched {
		// Stored whatever its persistence; in a transaction, scheduled
		// at COMMIT (commitTx), else now.
		m.Persistent = true
		if tx == "" {
			return s.sendScheduled(m, sched, done)
		}
	}
	if tx != "" {
		t, err := s.tx(tx)
		if err == nil && s.txBytes > 0 && s.txBytes+int64(m.Size()) > e.cfg.MaxTxBytes {
			err = ErrTxTooLarge
		}
		if err == nil {
			t.sends = append(t.sends, m)
			t.counted(1, int64(m.Size()))
		}
		e.mu.Unlock()
		if err == nil {
			done(nil)
		}
		return err
	}
	if kind == kindQueue {
		if q := e.limitedQueue(m.Destination); q != nil && !temp {
			return s.sendLimited(q, m, done)
		}
		if m.Persistent {
			e.mu.Unlock()
			// A duplicate (Result.Duplicate) is a success with nothing
			// stored: the client gets its receipt, no Enqueued follows.
			e.propose([]fsm.Command{{Op: fsm.OpEnqueue, Queue: m.Destination, Msg: m, DedupeID: dedupeID(m)}},
				func(_ []fsm.Result, err error) { done(err) })
			return nil
		}
		// Non-persistent: leader memory only, never deduplicated.
		err := e.enqueueMemory(m)
		e.mu.Unlock()
		if err == nil {
			done(nil)
		}
		return err
	}
	// A topic: persistent messages go through raft only when a durable
	// subscription must keep them (or earlier ones are still on their way,
	// so that order holds); otherwise non-durable subscribers get them now.
	t := e.topics[m.Destination]
	if m.Persistent && t == nil && e.wildDurable(m.Destination) {
		t = e.topic(m.Destination) // counts the publish in raft (inRaft)
	}
	if m.Persistent && t != nil && (t.durables > 0 || t.inRaft > 0 || e.wildDurable(m.Destination)) {
		t.inRaft++
		e.mu.Unlock()
		e.propose([]fsm.Command{{Op: fsm.OpPublish, Topic: m.Destination, Msg: m, DedupeID: dedupeID(m)}},
			func(_ []fsm.Result, err error) {
				e.mu.Lock()
				t.inRaft--
				e.gcTopic(t)
				e.mu.Unlock()
				done(err)
			})
		return nil
	}
	// Straight to the subscribers: nothing is recorded, so a dedupe-id
	// does not stop a resend from reaching them again.
	e.fanout(t, m, nil)
	e.mu.Unlock()
	done(nil)
	return nil
}

// sendLimited is Send to a queue whose sends are checked for room. It is
// called with e.mu held and lets go of it. A non-persistent message needs
// room in the queue, not in the store, and still fails with
// ErrMemoryLimit beyond NonPersistentBytes.
func (s *Session) sendLimited(q *destQueue, m *fsm.Message, done func(error)) error {
	e := s.e
	size := int64(m.Size())
	var store int64
	if m.Persistent {
		store = storeCost(m.Size())
	}
	full := q.queueFull(1, size)
	if full == nil {
		full = e.storeFull(q.name, store)
	}
	switch {
	case full == nil && q.held.n == 0:
		if !m.Persistent {
			err := e.enqueueMemory(m)
			e.mu.Unlock()
			if err == nil {
				done(nil)
			}
			return err
		}
		e.reserve(q, m)
		e.mu.Unlock()
		e.proposeSend(m, done)
		return nil
	case full != nil && q.limit.OnFull == Fail:
		// A Fail queue holds nothing, so nothing is ahead of this send.
		q.stats.failed++
		e.mu.Unlock()
		return full
	case e.heldBytes+size > e.cfg.HeldBytes:
		q.stats.failed++
		e.mu.Unlock()
		return &FullError{Destination: q.name, Unit: unitHeldBytes, Used: e.heldBytes, Limit: e.cfg.HeldBytes, Adding: size}
	}
	e.hold(&waiter{sess: s, needs: []need{{q: q, msgs: 1, bytes: size}}, store: store,
		done: done, msg: m, timeout: q.limit.BlockTimeout})
	e.mu.Unlock()
	return nil
}

// enqueueMemory queues a non-persistent message: leader memory only.
func (e *Engine) enqueueMemory(m *fsm.Message) error {
	meta := fsm.MetaOf(m)
	if e.npBytes+int64(meta.Size) > e.cfg.NonPersistentBytes {
		return ErrMemoryLimit
	}
	q := e.queue(m.Destination)
	e.npBytes += int64(meta.Size)
	e.insert(q, &ref{meta: meta, msg: m})
	q.stats.enqueued++
	e.dispatch(q)
	return nil
}

// fanout queues a topic message for each of t's non-durable subscribers.
// The queues it added to go into touched, or are dispatched at once when
// touched is nil. A network subscription gets only what it may forward:
// a topic message is a copy per subscriber, so the replay exception of
// queues (see network.go) does not apply.
//
// t may be nil when m's topic has no subscribers of its own; wildcard
// subscriptions that match it get m too (wildcard.go).
func (e *Engine) fanout(t *topic, m *fsm.Message, touched map[*destQueue]struct{}) {
	if t != nil {
		e.fanoutTo(t, m, touched)
	}
	e.fanoutWildcard(m, touched)
}

// fanoutTo queues m for each subscriber of t.
func (e *Engine) fanoutTo(t *topic, m *fsm.Message, touched map[*destQueue]struct{}) {
	meta := fsm.MetaOf(m)
	t.stats.enqueued++
	for s := range t.subs {
		if s.net != nil && !s.net.eligible(meta.Path) {
			continue
		}
		if s.sel != nil && !s.sel.Matches(m.Property) {
			continue
		}
		e.backlog(s, m, meta)
		if touched != nil {
			touched[s.q] = struct{}{}
		} else {
			e.dispatch(s.q)
		}
	}
}

// backlog queues a topic message for one non-durable subscriber. A
// subscriber that falls behind by more than its backlog loses its oldest
// messages, and when the memory budget is spent, the new one.
func (e *Engine) backlog(s *subscription, m *fsm.Message, meta fsm.Meta) {
	q := s.q
	if q.pending.n >= q.backlog {
		if old := q.pending.pop(); old != nil {
			e.take(q, old)
			e.drop(q, old)
			e.lost(s)
		}
	}
	if e.npBytes+int64(meta.Size) > e.cfg.NonPersistentBytes {
		e.lost(s)
		return
	}
	e.npBytes += int64(meta.Size)
	e.insert(q, &ref{meta: meta, msg: m})
}

// lost counts a message a slow topic subscriber will never see, and says
// so once per subscription.
func (e *Engine) lost(s *subscription) {
	if s.q.dropped == 0 {
		e.cfg.Logger.Warn("topic subscriber is not keeping up: dropping its oldest messages",
			"topic", s.dest, "subscription", s.id, "backlog", s.q.backlog)
	}
	s.q.dropped++
}

func (s *Session) usable() error {
	if s.e.closed || s.closed {
		return ErrClosed
	}
	return nil
}

// Subscribe adds a subscription; done runs once it is in place (a new
// durable subscription goes through raft first).
func (s *Session) Subscribe(spec SubscribeSpec, done func(error)) error {
	tempName, ownTemp, temp := tempDest(spec.Destination)
	if temp {
		if spec.DurableName != "" {
			return ErrTempDurable
		}
		spec.Destination = tempName
	}
	kind, err := parseDest(spec.Destination)
	if err != nil {
		return err
	}
	wildQueue := kind == kindQueue && wildcard(spec.Destination)
	if wildQueue {
		switch { // (temporary destinations have no wildcards)
		case spec.Browser:
			return ErrWildcardBrowse
		case spec.Network != nil:
			return ErrWildcardNetwork
		}
	}
	net, err := checkNetwork(spec)
	if err != nil {
		return err
	}
	sel, err := compileSelector(spec.Selector)
	if err != nil {
		return err
	}
	e := s.e
	e.mu.Lock()
	// A wildcard makes no queue: nothing to check for auto-creation.
	if err := e.mayUse(s, spec.Destination, kind, temp, ownTemp, true); err != nil && !wildQueue {
		e.mu.Unlock()
		return err
	}
	ready, err := e.subscribe(s, kind, spec, net, sel, done)
	e.mu.Unlock()
	if err == nil && ready {
		done(nil)
	}
	return err
}

// subscribe does Subscribe's work under the lock. ready reports that the
// subscription is in place now; otherwise done will be called later.
func (e *Engine) subscribe(s *Session, kind destKind, spec SubscribeSpec, net *NetworkSpec, sel *selector.Selector, done func(error)) (ready bool, err error) {
	if err := s.usable(); err != nil {
		return false, err
	}
	if _, dup := s.subs[spec.ID]; dup {
		return false, ErrDuplicateSub
	}
	if s.consumers() >= e.cfg.MaxSubscriptions {
		return false, ErrTooManySubs
	}
	sub := &subscription{id: spec.ID, sess: s, dest: spec.Destination, ack: spec.Ack, prefetch: spec.Prefetch, net: net,
		sel: sel, exclusive: spec.Exclusive, priority: spec.Priority}
	if sub.prefetch <= 0 {
		sub.prefetch = e.cfg.DefaultPrefetch
	}
	switch {
	case spec.Browser: // a queue browser, not a consumer (browse.go)
		return e.subscribeBrowser(sub, kind)
	case kind == kindQueue && wildcard(spec.Destination): // wildqueue.go
		return e.subscribeWildQueue(sub)
	case kind == kindQueue:
		s.subs[sub.id] = sub
		e.attach(sub, e.queue(spec.Destination))
		return true, nil
	case spec.DurableName == "":
		if wildcard(spec.Destination) {
			if err := e.addWildcard(spec.Destination); err != nil {
				return false, err
			}
			sub.wild = true
		}
		t := e.topic(spec.Destination)
		sub.t = t
		t.subs[sub] = struct{}{}
		s.subs[sub.id] = sub
		e.attach(sub, &destQueue{name: spec.Destination, backlog: e.cfg.TopicSubscriberBacklog})
		return true, nil
	default:
		return e.subscribeDurable(sub, spec.DurableName, done)
	}
}

func (e *Engine) attach(sub *subscription, q *destQueue) {
	sub.q = q
	q.consumers = append(q.consumers, sub)
	if sub.net != nil {
		q.network++
	} else {
		q.local++
	}
	if sub.parent != nil {
		q.wildMembers++
	}
	q.consumerJoined(sub)
	if demandOf(sub) {
		e.demandChanged()
	}
	e.dispatch(q)
}

func (e *Engine) subscribeDurable(sub *subscription, name string, done func(error)) (ready bool, err error) {
	s := sub.sess
	if s.clientID == "" {
		return false, ErrNoClientID
	}
	d := fsm.Durable{ClientID: s.clientID, Name: name, Topic: sub.dest}
	if sub.sel != nil {
		d.Selector = sub.sel.String()
	}
	key := d.Queue()
	ds := e.durables[key]
	if (ds != nil && ds.active != nil) || e.claimed(key) {
		return false, ErrDurableInUse
	}
	s.subs[sub.id] = sub
	if ds != nil && ds.d.Topic == d.Topic && ds.d.Selector == d.Selector {
		e.bindDurable(sub, ds)
		return true, nil
	}
	// New, or changed topic: raft creates (or replaces) it, then we bind.
	sub.claim = key
	e.propose([]fsm.Command{{Op: fsm.OpSubscribe, Durable: &d}}, func(_ []fsm.Result, err error) {
		e.mu.Lock()
		if sub.claim == key {
			sub.claim = ""
			if err == nil && s.subs[sub.id] == sub {
				if ds := e.durables[key]; ds != nil && ds.active == nil {
					e.bindDurable(sub, ds)
				} else {
					err = ErrDurableInUse
				}
			}
		}
		e.mu.Unlock()
		done(err)
	})
	return false, nil
}

func (e *Engine) claimed(key string) bool {
	for s := range e.sessions {
		for _, sub := range s.subs {
			if sub.claim == key {
				return true
			}
		}
	}
	return false
}

func (e *Engine) bindDurable(sub *subscription, ds *durableSub) {
	ds.active = sub
	sub.durable = ds
	sub.wild = wildcard(ds.d.Topic) // deliveries show the topic published to
	e.attach(sub, ds.q)
}

func (e *Engine) addDurable(d fsm.Durable) {
	key := d.Queue()
	if old := e.durables[key]; old != nil {
		e.removeDurable(key)
	}
	e.durables[key] = &durableSub{d: d, q: e.queue(key)}
	e.topic(d.Topic).durables++
	e.addWildDurable(d.Topic)
	e.demandChanged()
}

func (e *Engine) removeDurable(key string) {
	ds := e.durables[key]
	if ds == nil {
		return
	}
	if ds.active != nil {
		e.removeSub(ds.active)
	}
	e.purge(ds.q)
	delete(e.queues, key)
	delete(e.durables, key)
	if t := e.topics[ds.d.Topic]; t != nil {
		t.durables--
		e.gcTopic(t)
	}
	e.removeWildDurable(ds.d.Topic)
	e.demandChanged()
}

func (e *Engine) gcTopic(t *topic) {
	if len(t.subs) == 0 && t.durables == 0 && t.inRaft == 0 && e.topics[t.name] == t {
		delete(e.topics, t.name)
		delete(e.wild, t.name)
	}
}

// Unsubscribe removes subscription id. With durableName set the durable
// subscription is destroyed (through raft), else only detached.
func (s *Session) Unsubscribe(id, durableName string, done func(error)) error {
	e := s.e
	e.mu.Lock()
	if err := s.usable(); err != nil {
		e.mu.Unlock()
		return err
	}
	sub := s.subs[id]
	if sub == nil && (id != "" || durableName == "") {
		e.mu.Unlock()
		return ErrUnknownSub
	}
	var cmds []fsm.Command
	if sub != nil {
		cmds = e.removeSub(sub)
	}
	if durableName != "" {
		if s.clientID == "" {
			e.mu.Unlock()
			return ErrNoClientID
		}
		d := fsm.Durable{ClientID: s.clientID, Name: durableName}
		if ds := e.durables[d.Queue()]; ds != nil {
			if ds.active != nil {
				e.mu.Unlock()
				return ErrDurableInUse
			}
			cmds = append(cmds, fsm.Command{Op: fsm.OpUnsubscribe, Durable: &d})
		}
	}
	e.mu.Unlock()
	e.proposeThen(cmds, done)
	return nil
}

// proposeThen proposes cmds, or calls done at once when there are none.
func (e *Engine) proposeThen(cmds []fsm.Command, done func(error)) {
	if len(cmds) == 0 {
		done(nil)
		return
	}
	e.propose(cmds, func(_ []fsm.Result, err error) { done(err) })
}

// removeSub detaches a subscription; its unacknowledged messages go back
// to the queue. Returns dead-letter commands for messages that ran out of
// deliveries.
func (e *Engine) removeSub(sub *subscription) []fsm.Command {
	s := sub.sess
	delete(s.subs, sub.id)
	sub.claim = ""
	var cmds []fsm.Command
	// release compacts sub.inflight in place: walk a copy.
	for _, d := range append([]*Delivery(nil), sub.inflight[sub.head:]...) {
		if d.state == dInflight {
			cmds = append(cmds, e.release(d, "consumer closed")...)
		}
	}
	if sub.wq != nil { // wildqueue.go
		e.removeWild(sub)
		return cmds
	}
	q := sub.q
	if q == nil {
		return cmds
	}
	e.detach(sub)
	switch {
	case sub.t != nil:
		delete(sub.t.subs, sub)
		e.purge(q) // frees the backlog's memory
		e.gcTopic(sub.t)
	case sub.durable != nil:
		sub.durable.active = nil
	default:
		e.dispatch(q)
	}
	return cmds
}

// detach takes sub off its queue's consumers.
func (e *Engine) detach(sub *subscription) {
	q := sub.q
	for i, c := range q.consumers {
		if c == sub {
			q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
			break
		}
	}
	if sub.net != nil {
		q.network--
	} else {
		q.local--
	}
	if sub.parent != nil {
		q.wildMembers--
	}
	// Another exclusive owner, groups to pin again, and parked messages
	// that replay or another consumer may now take.
	q.consumersChanged(sub)
	if demandOf(sub) {
		e.demandChanged()
	}
}

// Resume tells the engine the connection drained its outbound buffer.
func (s *Session) Resume() {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.closed {
		return
	}
	for _, sub := range s.subs {
		if sub.q != nil {
			e.dispatch(sub.q)
		}
		if sub.browse != nil { // a queue browser (browse.go)
			e.continueBrowse(sub)
		}
		if sub.wq != nil { // wildqueue.go
			e.dispatchWild(sub)
		}
	}
}

// Close ends the session: its unacknowledged messages go back to their
// queues, its open transactions are aborted, and its sends held for room
// fail with ErrClosed (held commits are aborted).
func (s *Session) Close() {
	e := s.e
	e.mu.Lock()
	if s.closed {
		e.mu.Unlock()
		return
	}
	s.closed = true
	after := e.releaseHeld(s)
	var cmds []fsm.Command
	for id, t := range s.txs {
		cmds = append(cmds, e.abort(t)...)
		delete(s.txs, id)
	}
	touched := make(map[*destQueue]struct{})
	for _, sub := range s.subs {
		if sub.q != nil {
			touched[sub.q] = struct{}{}
		}
		cmds = append(cmds, e.removeSub(sub)...)
	}
	delete(e.sessions, s)
	e.dropTemps(s)
	for q := range touched {
		e.dispatch(q)
	}
	e.mu.Unlock()
	for _, f := range after {
		f()
	}
	if len(cmds) > 0 && !e.isClosed() {
		e.propose(cmds, nil)
	}
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}
