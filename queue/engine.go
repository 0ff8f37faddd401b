package queue

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// Engine is the leader's delivery engine. One mutex guards all of its
// state: every operation is short and never waits for I/O while holding it
// (Log.Propose and Outbound.Deliver do not block). Callbacks into the
// transport (done functions) run without the lock.
type Engine struct {
	cfg   Config
	log   Log
	store Store
	now   func() time.Time

	mu       sync.Mutex
	closed   bool
	queues   map[string]*destQueue  // store queue name → queue (plain and durable)
	topics   map[string]*topic      // /topic/NAME → subscribers
	durables map[string]*durableSub // store queue name → durable subscription
	sessions map[*Session]struct{}
	temps    map[string]*Session    // temporary destinations by name, and their owners (temp.go)
	wild     map[string]Pattern     // wildcard topics with subscribers, by name (wildcard.go)
	wildDurs map[string]wildDurable // wildcard topics with durable subscriptions (wildcard.go)
	// wildQueues: the wildcard queue subscriptions (wildqueue.go).
	wildQueues map[*subscription]struct{}
	idPrefix   string // message-id prefix, unique to this engine's lifetime
	idSeq      uint64
	ordSeq     uint64
	npBytes    int64 // memory held by non-persistent pending messages
	cacheMem   int64 // persistent bodies cached in refs

	lastDedupeExpiry time.Time // when expireDedupe last proposed, or the engine started

	// Flow control (limits.go, flow.go).
	anyLimit   bool                   // some queue may have a limit: sends are checked for room
	storeBytes int64                  // persistent message bytes in the mirror of the store
	storeRsv   int64                  // persistent bytes reserved by sends in raft
	rsv        map[string]reservation // by message-id: sends in raft to limited queues
	holding    map[*destQueue]struct{}
	heldSends  int    // sends held for room, all queues
	heldBytes  int64  // the message bytes of the held sends (not commits): Config.HeldBytes
	heldSeq    uint64 // arrival order of held sends
	admitCh    chan struct{}

	demand chan struct{} // DemandChanged: buffered(1), signalled without blocking
	since  time.Time     // when the engine started: its counters count from here

	sched scheduler // scheduled delivery: fsm.ScheduledQueue's mirror and timer (schedule.go)

	stop chan struct{}
	wg   sync.WaitGroup
}

// destQueue is a queue of messages with competing consumers: a /queue/
// destination, a durable subscription's store queue, or the private
// backlog of one non-durable topic subscriber (held in memory only).
type destQueue struct {
	name    string // store queue name, or the topic for a subscriber backlog
	pending pendingList
	// parked holds pending messages that none of the queue's network
	// consumers may have while it has local ones: only a local consumer
	// takes them, so dispatchNetwork does not step over them again and
	// again (see park).
	parked    pendingList
	refs      map[uint64]*ref // stored refs by seq, pending or in flight
	consumers []*subscription
	local     int // consumers that are local subscriptions
	network   int // consumers that are network subscriptions (network.go)
	// wildMembers: consumers that are members of wildcard queue
	// subscriptions (wildqueue.go), sharing credit with other queues.
	wildMembers int
	rr          int    // round-robin cursor into consumers
	expiring    int    // pending refs with an expiry, to skip sweeping the rest
	backlog     int    // >0: drop the oldest beyond this many pending (topic subscribers)
	dropped     uint64 // messages a slow topic subscriber lost
	inflight    int    // refs taken for delivery and not yet acked, returned or dropped (stats.go)
	ageFrom     uint64 // no stored entry below this seq is left (stats.go)
	stats       counters

	// What the queue holds, for its limit (limits.go): messages pending,
	// parked or in flight, their bytes, and the sends in raft.
	msgs, bytes       int64
	rsvMsgs, rsvBytes int64
	// limit is the queue's own, set when it is created; gated says that
	// sends to it are checked for room (a /queue/ destination with a limit,
	// or any when the store has one).
	limit DestLimit
	gated bool
	held  waitList // sends waiting for room (flow.go)

	// stored says the group's store has the queue (it was created, or a
	// message stored in it): what Config.ForbidAutoCreate asks for.
	stored bool

	// Who gets what (consumers.go): the exclusive consumer, if any
	// asked, and the consumer each message group is pinned to.
	owner  *subscription
	groups map[string]*groupPin
	// continuing: a dispatch pass that stopped at maxParkPerPass goes
	// on in a goroutine (continueDispatch).
	continuing bool
}

type topic struct {
	name     string
	subs     map[*subscription]struct{} // non-durable subscribers
	durables int                        // durable subscriptions on this topic
	inRaft   int                        // persistent publishes proposed, not yet applied
	stats    counters
}

type durableSub struct {
	d      fsm.Durable
	q      *destQueue
	active *subscription
}

// NewEngine returns an engine ready for Load (through fsm.Attach).
func NewEngine(cfg Config, log Log, store Store) (*Engine, error) {
	return newEngineWithClock(cfg, log, store, time.Now)
}

// newEngineWithClock is NewEngine with the clock its timestamps, expiry and
// dedupe window go by; tests set it before the sweep loop starts.
func newEngineWithClock(cfg Config, log Log, store Store, now func() time.Time) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var nonce [4]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("message-id nonce: %w", err)
	}
	prefix := cfg.MessageIDPrefix
	if prefix == "" {
		prefix = "raftmq"
	}
	e := &Engine{
		cfg:        cfg,
		log:        log,
		store:      store,
		now:        now,
		queues:     make(map[string]*destQueue),
		topics:     make(map[string]*topic),
		durables:   make(map[string]*durableSub),
		sessions:   make(map[*Session]struct{}),
		temps:      make(map[string]*Session),
		wild:       make(map[string]Pattern),
		wildDurs:   make(map[string]wildDurable),
		wildQueues: make(map[*subscription]struct{}),
		idPrefix:   "ID:" + prefix + "-" + hex.EncodeToString(nonce[:]) + "-",
		demand:     make(chan struct{}, 1),
		stop:       make(chan struct{}),

		lastDedupeExpiry: now(),
		since:            now(),

		anyLimit: cfg.anyLimit(),
		rsv:      make(map[string]reservation),
		holding:  make(map[*destQueue]struct{}),
		admitCh:  make(chan struct{}, 1),
	}
	e.wg.Add(1)
	go e.sweepLoop()
	e.startScheduler() // scheduled delivery (schedule.go)
	if e.anyLimit {
		e.wg.Add(1)
		go e.admitLoop()
	}
	return e, nil
}

// Close stops the engine: later calls fail with ErrClosed, and so do the
// sends held for room. Pending proposals fail through the Log; sessions
// are closed by the transport.
func (e *Engine) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	var after []func()
	for s := range e.sessions {
		after = append(after, e.releaseHeld(s)...)
	}
	e.mu.Unlock()
	for _, f := range after {
		f()
	}
	e.demandChanged() // Demand is empty from now on
	close(e.stop)
	e.wg.Wait()
}

// Load builds the engine's mirror of the stored state. Every stored
// message is flagged redelivered (see the package comment).
func (e *Engine) Load(v fsm.View) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	names, err := v.Queues()
	if err != nil {
		return fmt.Errorf("load queues: %w", err)
	}
	for _, name := range names {
		// Scheduled messages are not a queue's: the scheduler arms its
		// timers with them (schedule.go).
		if name == fsm.ScheduledQueue {
			if err := e.loadScheduled(v); err != nil {
				return err
			}
			continue
		}
		q := e.queue(name)
		q.stored = true
		err := v.Entries(name, func(seq uint64, m fsm.Meta) error {
			r := &ref{seq: seq, meta: m, persistent: true, redelivered: true}
			e.insert(q, r)
			return nil
		})
		if err != nil {
			return fmt.Errorf("load queue %s: %w", name, err)
		}
	}
	durs, err := v.Durables()
	if err != nil {
		return fmt.Errorf("load durable subscriptions: %w", err)
	}
	for _, d := range durs {
		e.addDurable(d)
	}
	e.demandChanged()
	return nil
}

// Applied mirrors applied changes and dispatches what became available.
func (e *Engine) Applied(changes []fsm.Change) {
	e.mu.Lock()
	defer e.mu.Unlock()
	touched := make(map[*destQueue]struct{})
	for i := range changes {
		c := &changes[i]
		if c.Queue == fsm.ScheduledQueue { // scheduled delivery (schedule.go)
			e.scheduledChange(c)
			continue
		}
		switch c.Kind {
		case fsm.Enqueued:
			q := e.queue(c.Queue)
			q.stored = true
			e.applied(q, c.Msg)
			if _, ok := q.refs[c.Seq]; ok {
				continue
			}
			r := &ref{seq: c.Seq, meta: fsm.MetaOf(c.Msg), persistent: true}
			e.cache(r, c.Msg)
			e.insert(q, r)
			q.stats.enqueued++
			touched[q] = struct{}{}
		case fsm.Removed:
			if q := e.queues[c.Queue]; q != nil {
				if r := q.refs[c.Seq]; r != nil {
					e.drop(q, r)
				}
			}
		case fsm.Published:
			e.fanout(e.topics[c.Queue], c.Msg, touched)
		case fsm.DurableAdded:
			e.addDurable(*c.Durable)
		case fsm.DurableRemoved:
			e.removeDurable(c.Durable.Queue())
		case fsm.Purged:
			if q := e.queues[c.Queue]; q != nil {
				e.purge(q)
			}
		case fsm.QueueCreated:
			e.queue(c.Queue).stored = true
		case fsm.QueueDeleted:
			if q := e.queues[c.Queue]; q != nil {
				q.stored = false
				e.purge(q)
				if q.idle() {
					delete(e.queues, c.Queue)
				}
			}
		}
	}
	for q := range touched {
		e.dispatch(q)
	}
}

// queue returns the named store queue, creating its in-memory state.
func (e *Engine) queue(name string) *destQueue {
	q := e.queues[name]
	if q == nil {
		q = &destQueue{name: name, refs: make(map[uint64]*ref)}
		if strings.HasPrefix(name, "/queue/") {
			q.limit = e.cfg.LimitFor(name)
			q.gated = q.limit.limited() || e.cfg.StoreLimit > 0
		}
		e.queues[name] = q
		e.newQueueForWild(q)
	}
	return q
}

// idle reports whether nothing but its messages keeps q in memory: no
// consumers, no sends in raft or held for it.
func (q *destQueue) idle() bool {
	return len(q.consumers) == 0 && q.rsvMsgs == 0 && q.held.n == 0
}

func (e *Engine) topic(name string) *topic {
	t := e.topics[name]
	if t == nil {
		t = &topic{name: name, subs: make(map[*subscription]struct{})}
		e.topics[name] = t
	}
	return t
}

// insert adds a new ref at the tail of q.
func (e *Engine) insert(q *destQueue, r *ref) {
	e.ordSeq++
	r.ord = e.ordSeq
	r.state = refPending
	if r.persistent {
		q.refs[r.seq] = r
		e.storeBytes += storeCost(r.meta.Size)
	}
	q.msgs++
	q.bytes += int64(r.meta.Size)
	if r.meta.Expires != 0 {
		q.expiring++
	}
	q.pending.push(r)
}

// putBack returns a ref taken by a consumer to q's pending messages.
func (e *Engine) putBack(q *destQueue, r *ref) {
	if r.state == refGone {
		return
	}
	if r.state == refInflight {
		q.inflight--
	}
	r.state = refPending
	if r.meta.Expires != 0 {
		q.expiring++
	}
	q.pending.pushReturned(r)
}

// take removes r from pending for delivery.
func (e *Engine) take(q *destQueue, r *ref) {
	r.state = refInflight
	q.inflight++
	if r.meta.Expires != 0 {
		q.expiring--
	}
}

// drop forgets r for good: it was acked, moved, expired or purged. The
// command saying so may still be on its way through raft; its Removed
// change then finds nothing to do.
func (e *Engine) drop(q *destQueue, r *ref) {
	if r.state == refGone {
		return
	}
	if r.state == refPending {
		if r.parked {
			q.parked.removed()
		} else {
			q.pending.removed()
		}
		if r.meta.Expires != 0 {
			q.expiring--
		}
	}
	if r.state == refInflight {
		q.inflight--
	}
	r.state = refGone
	if r.persistent {
		if q.refs[r.seq] == r {
			delete(q.refs, r.seq)
		}
		e.storeBytes -= storeCost(r.meta.Size)
	}
	q.msgs--
	q.bytes -= int64(r.meta.Size)
	e.uncache(r)
	e.roomFreed()
}

func (e *Engine) purge(q *destQueue) {
	for _, r := range q.refs {
		e.drop(q, r)
	}
	q.pending.each(func(r *ref) { e.drop(q, r) })
	q.pending.reset()
	q.parked.each(func(r *ref) { e.drop(q, r) })
	q.parked.reset()
}

func (e *Engine) cache(r *ref, m *fsm.Message) {
	if m == nil {
		return
	}
	if e.cacheMem+int64(r.meta.Size) <= e.cfg.CacheBytes {
		r.msg, r.cached = m, true
		e.cacheMem += int64(r.meta.Size)
	}
}

func (e *Engine) uncache(r *ref) {
	if r.cached {
		e.cacheMem -= int64(r.meta.Size)
		r.cached = false
		r.msg = nil
	}
	if !r.persistent && r.msg != nil {
		e.npBytes -= int64(r.meta.Size)
		r.msg = nil
	}
}

func (e *Engine) nextMessageID() string {
	e.idSeq++
	return e.idPrefix + strconv.FormatUint(e.idSeq, 10)
}

func (e *Engine) nowMs() int64 { return e.now().UnixMilli() }

// dlqFor names the dead-letter queue of a store queue. Durable
// subscriptions dead-letter to their topic's name, as ActiveMQ does.
func (e *Engine) dlqFor(q *destQueue) string {
	name := q.name
	if ds := e.durables[name]; ds != nil {
		name = ds.d.Topic
	}
	name = strings.TrimPrefix(strings.TrimPrefix(name, "/queue/"), "/topic/")
	return "/queue/" + e.cfg.DLQPrefix + name
}

func (e *Engine) isDLQ(q *destQueue) bool {
	return strings.HasPrefix(q.name, "/queue/"+e.cfg.DLQPrefix)
}

// sweepLoop expires messages in queues nobody consumes from, and slides
// the dedupe window.
func (e *Engine) sweepLoop() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.ExpirySweep)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.mu.Lock()
			wall := e.now()
			e.expireDedupe(wall)
			now := wall.UnixMilli()
			for _, q := range e.queues {
				if q.expiring > 0 {
					e.sweep(q, now)
				}
			}
			for _, t := range e.topics {
				for s := range t.subs {
					if s.q.expiring > 0 {
						e.sweep(s.q, now)
					}
				}
			}
			e.mu.Unlock()
		}
	}
}

func (e *Engine) sweep(q *destQueue, now int64) {
	var dead []*ref
	collect := func(r *ref) {
		if r.expired(now) {
			dead = append(dead, r)
		}
	}
	q.pending.each(collect)
	q.parked.each(collect)
	for _, r := range dead {
		e.expire(q, r)
	}
}

// expire removes an expired pending ref: dropped, or moved to the DLQ.
func (e *Engine) expire(q *destQueue, r *ref) {
	e.drop(q, r)
	q.stats.expired++
	if !r.persistent {
		return
	}
	cmd := fsm.Command{Op: fsm.OpAck, Queue: q.name, Seqs: []uint64{r.seq}}
	if !e.cfg.DropExpired && !e.isDLQ(q) {
		cmd = fsm.Command{Op: fsm.OpDeadLetter, Queue: q.name, Seqs: []uint64{r.seq},
			Target: e.dlqFor(q), Reason: "expired"}
	}
	e.propose([]fsm.Command{cmd}, nil)
}

// propose sends cmds to the log. done (may be nil) runs without the lock.
func (e *Engine) propose(cmds []fsm.Command, done func([]fsm.Result, error)) {
	e.log.Propose(cmds, func(res []fsm.Result, err error) {
		if err == nil {
			for _, r := range res {
				if r.Err != nil {
					err = r.Err
					break
				}
			}
		}
		if err != nil && done == nil {
			e.cfg.Logger.Warn("replicated command failed", "op", cmds[0].Op, "queue", cmds[0].Queue, "err", err)
		}
		if done != nil {
			done(res, err)
		}
	})
}
