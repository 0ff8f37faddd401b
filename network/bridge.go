package network

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport"
	"github.com/raftmq/raftmq/transport/failover"
	"github.com/raftmq/raftmq/transport/stomp"
)

// Bridge states, as status reports them.
const (
	StateConnecting = "connecting" // dialing the remote group, or between its leaders
	StateConnected  = "connected"
	StateStandby    = "standby" // the remote group bridges to us instead
	StateError      = "error"   // the last session failed; retrying
)

// redundantText is in the ERROR by which a group refuses a bridge because
// it keeps its own bridge to the dialing group.
const redundantText = "redundant bridge"

var errRedundant = errors.New(redundantText)

// BridgeStatus describes one bridge for the admin API and `raftmq status`.
type BridgeStatus struct {
	RemoteGroup string `json:"remote_group"`
	// Direction is "outbound" for a bridge this leader keeps (it dialed),
	// "inbound" for one another group's leader keeps to this group.
	Direction string `json:"direction"`
	// Link is how the remote group was found: the static link, "gossip",
	// or, inbound, the address the remote leader connected from.
	Link         string    `json:"link"`
	State        string    `json:"state"`
	RemoteLeader string    `json:"remote_leader,omitempty"`
	Since        time.Time `json:"since"`
	LastError    string    `json:"last_error,omitempty"`
	// ForwardedOut and ForwardedIn count messages moved to and from the
	// remote group and acknowledged at their source, since this leader
	// began. The dialing side counts; inbound bridges show zeros.
	ForwardedOut uint64 `json:"forwarded_out"`
	ForwardedIn  uint64 `json:"forwarded_in"`
	// DemandOut lists the destinations forwarded to the remote group (it
	// has consumers for them); DemandIn those forwarded from it.
	DemandOut []string `json:"demand_out"`
	DemandIn  []string `json:"demand_in"`
}

// bridge is one outbound bridge: this leader's link to one remote group.
type bridge struct {
	group     string // ours
	link      string // static spec or "gossip"
	url       string // failover URL of the remote group
	wantGroup string // the remote group, when known before dialing (gossip)
	opts      Options
	log       *slog.Logger
	// dial holds the credentials and TLS settings of its connections
	// (Config's Login, Passcode and TLS), set by Manager.start.
	dial Config

	// yields reports whether group keeps its own bridge to ours, inbound
	// here, and has the smaller name: then this bridge stands by.
	yields func(group string) bool

	out, in atomic.Uint64

	mu            sync.Mutex
	st            BridgeStatus
	cancelSession context.CancelCauseFunc // nil between sessions
	lostRemote    time.Time               // when the remote connection was lost; zero while connected
}

func newBridge(group, link, url, wantGroup string, opts Options, log *slog.Logger, yields func(string) bool) *bridge {
	b := &bridge{group: group, link: link, url: url, wantGroup: wantGroup, opts: opts, log: log, yields: yields}
	b.st = BridgeStatus{RemoteGroup: wantGroup, Direction: "outbound", Link: link, State: StateConnecting, Since: time.Now()}
	return b
}

func (b *bridge) status() BridgeStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.st
	st.DemandOut = append([]string{}, st.DemandOut...)
	st.DemandIn = append([]string{}, st.DemandIn...)
	st.ForwardedOut, st.ForwardedIn = b.out.Load(), b.in.Load()
	return st
}

func (b *bridge) remoteGroup() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.RemoteGroup
}

// standDown ends the current session, if any, because group's own bridge
// to ours is the one to keep.
func (b *bridge) standDown(group string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancelSession != nil && b.st.RemoteGroup == group {
		b.cancelSession(fmt.Errorf("%w: group %s bridges to group %s", errRedundant, group, b.group))
	}
}

// connectedTo reports whether the bridge is up and reaches group.
func (b *bridge) connectedTo(group string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.State == StateConnected && b.st.RemoteGroup == group
}

func (b *bridge) setState(state string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.st.State != state {
		b.st.State, b.st.Since = state, time.Now()
	}
	if err != nil {
		b.st.LastError = err.Error()
	}
	if state != StateConnected {
		b.st.DemandOut, b.st.DemandIn = nil, nil
	}
}

// run keeps the bridge up until ctx ends: each session lasts while both
// this node's STOMP service (it leads) and the remote group are there.
func (b *bridge) run(ctx context.Context, localAddr string) {
	const maxDelay = 5 * time.Second
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		began := time.Now()
		var err error
		if g := b.knownGroup(); g != "" && b.yields(g) {
			err = fmt.Errorf("%w: group %s bridges to group %s", errRedundant, g, b.group)
		} else {
			err = b.session(ctx, localAddr)
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > 30*time.Second {
			delay = 100 * time.Millisecond
		}
		wait := delay
		switch {
		case errors.Is(err, errRedundant):
			b.setState(StateStandby, err)
			wait = maxDelay
		default:
			b.setState(StateError, err)
			b.log.Warn("bridge down; retrying", "remote", b.url, "err", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		delay = min(2*delay, maxDelay)
	}
}

// knownGroup is the remote group, if known yet.
func (b *bridge) knownGroup() string {
	if b.wantGroup != "" {
		return b.wantGroup
	}
	return b.remoteGroup()
}

// remoteGrace is how long a session waits for a lost remote group to come
// back (a leader change takes one or two seconds) before it ends, so
// that this group takes back the messages its network subscriptions hold
// for that group, for its own consumers.
const remoteGrace = 10 * time.Second

// session connects both sides and forwards by demand until one of them
// fails or ctx ends.
func (b *bridge) session(parent context.Context, localAddr string) (err error) {
	ctx, cancelCause := context.WithCancelCause(parent)
	cancel := func() { cancelCause(nil) }
	defer cancel()
	defer func() {
		// A session ended by standDown reports why.
		if c := context.Cause(ctx); parent.Err() == nil && errors.Is(c, errRedundant) {
			err = c
		}
	}()
	b.mu.Lock()
	b.cancelSession, b.lostRemote = cancelCause, time.Time{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.cancelSession = nil
		b.mu.Unlock()
	}()
	b.setState(StateConnecting, nil)
	var tlsConf *tls.Config
	if b.dial.TLS != nil {
		tlsConf = b.dial.TLS()
	}
	opts := failover.Options{
		Login:     b.dial.Login,
		Passcode:  b.dial.Passcode,
		TLS:       tlsConf,
		HeartBeat: [2]time.Duration{time.Second, time.Second},
		Headers:   []stomp.Header{{Key: transport.HeaderBridgeGroup, Value: b.group}},
		Logger:    b.log,
		OnConnect: func(addr string) {
			b.mu.Lock()
			b.st.RemoteLeader, b.lostRemote = addr, time.Time{}
			b.mu.Unlock()
			b.setState(StateConnected, nil)
		},
		OnDisconnect: func(addr string, err error) {
			b.mu.Lock()
			b.lostRemote = time.Now()
			b.mu.Unlock()
			b.setState(StateConnecting, err)
		},
	}
	remote, err := failover.Dial(ctx, b.url, opts)
	if err != nil {
		if strings.Contains(err.Error(), redundantText) {
			return fmt.Errorf("%w: %v", errRedundant, err)
		}
		return fmt.Errorf("connect to %s: %w", b.url, err)
	}
	defer remote.Close()
	rgroup := remote.Connected().Get(transport.HeaderGroup)
	switch {
	case rgroup == "":
		return fmt.Errorf("%s answered without a %s header: not a raftmq group", b.url, transport.HeaderGroup)
	case rgroup == b.group:
		return fmt.Errorf("%s is this group's own address: a link must name another group", b.url)
	case b.wantGroup != "" && rgroup != b.wantGroup:
		return fmt.Errorf("%s serves group %s, not %s", b.url, rgroup, b.wantGroup)
	}
	b.mu.Lock()
	b.st.RemoteGroup = rgroup
	b.mu.Unlock()

	// The local side: this node's own listener. No failover: when it
	// goes, this node no longer leads and the session ends.
	local, err := failover.Dial(ctx, "failover:("+localAddr+")?maxReconnectAttempts=0&startupMaxReconnectAttempts=2",
		failover.Options{Login: b.dial.Login, Passcode: b.dial.Passcode, TLS: tlsConf,
			HeartBeat: [2]time.Duration{time.Second, time.Second}, Logger: b.log})
	if err != nil {
		return fmt.Errorf("connect to this node's listener %s: %w", localAddr, err)
	}
	defer local.Close()

	localDemand, err := local.Subscribe(ctx, DemandTopic, "auto")
	if err != nil {
		return fmt.Errorf("subscribe to local demand: %w", err)
	}
	remoteDemand, err := remote.Subscribe(ctx, DemandTopic, "auto")
	if err != nil {
		return fmt.Errorf("subscribe to %s's demand: %w", rgroup, err)
	}
	b.log.Info("bridge up", "remote_group", rgroup, "remote", remote.Addr())

	out := &side{b: b, src: local, dst: remote, srcGroup: b.group, dstGroup: rgroup, count: &b.out, pumps: map[pumpKey]*pump{}}
	in := &side{b: b, src: remote, dst: local, srcGroup: rgroup, dstGroup: b.group, count: &b.in, pumps: map[pumpKey]*pump{}}
	defer func() {
		// Cancel first: a pump settling receipts from a group that is
		// gone must not hold the session. What it sent and did not get
		// a receipt for stays unacked, is redelivered to the next
		// session and dropped by the other group as a duplicate.
		cancel()
		out.stopAll()
		in.stopAll()
	}()
	grace := time.NewTicker(time.Second)
	defer grace.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-grace.C:
			b.mu.Lock()
			lost := b.lostRemote
			b.mu.Unlock()
			if !lost.IsZero() && time.Since(lost) > remoteGrace {
				return fmt.Errorf("remote group %s unreachable for %v", rgroup, remoteGrace)
			}
		case <-local.Done():
			return fmt.Errorf("local connection: %w", local.Err())
		case <-remote.Done():
			return fmt.Errorf("remote group %s: %w", rgroup, remote.Err())
		case m, ok := <-remoteDemand.C():
			if !ok {
				return fmt.Errorf("%s's demand subscription ended: %w", rgroup, remoteDemand.Err())
			}
			// The remote group's consumers pull this group's messages.
			if err := out.update(ctx, m); err != nil {
				return err
			}
		case m, ok := <-localDemand.C():
			if !ok {
				return fmt.Errorf("local demand subscription ended: %w", localDemand.Err())
			}
			if err := in.update(ctx, m); err != nil {
				return err
			}
		}
	}
}

// side is one direction of a bridge: messages from src's group to dst's,
// for the demand dst's group published.
type side struct {
	b                  *bridge
	src, dst           *failover.Client
	srcGroup, dstGroup string
	count              *atomic.Uint64
	pumps              map[pumpKey]*pump
	stopping           []*pump // told to stop, still settling what they sent
}

type pumpKey struct {
	dest string
	n    int // conduitSubscriptions=false: one per remote consumer
}

// update applies a demand message from dst's group: it starts a pump for
// every destination wanted and stops those no longer wanted.
func (s *side) update(ctx context.Context, m *failover.Message) error {
	d, err := decodeDemand(m.Body)
	if err != nil {
		s.b.log.Warn("ignoring a bad demand message", "from", s.dstGroup, "err", err)
		return nil
	}
	if d.Group != s.dstGroup {
		return nil // not the group the bridge is about (misrouted or stale)
	}
	want := make(map[pumpKey]bool)
	var dests []string
	for _, dd := range d.Dests {
		n := s.b.opts.pumpsFor(dd)
		if n > 0 {
			dests = append(dests, dd.Destination)
		}
		for i := range n {
			want[pumpKey{dd.Destination, i}] = true
		}
	}
	for k, p := range s.pumps {
		if want[k] && !p.ended() {
			continue
		}
		// Not waiting here: settling can take as long as the other
		// group takes to receipt, and demand keeps coming meanwhile.
		p.cancel()
		s.stopping = append(s.stopping, p)
		delete(s.pumps, k)
	}
	s.stopping = slices.DeleteFunc(s.stopping, (*pump).ended)
	for k := range want {
		if s.pumps[k] == nil {
			s.pumps[k] = s.startPump(ctx, k.dest)
		}
	}
	s.b.mu.Lock()
	if s.count == &s.b.out {
		s.b.st.DemandOut = dests
	} else {
		s.b.st.DemandIn = dests
	}
	s.b.mu.Unlock()
	return nil
}

// pumpsFor is how many network subscriptions a remote demand entry
// calls for.
func (o Options) pumpsFor(d queue.Demand) int {
	if strings.HasPrefix(d.Destination, queue.SystemTopicPrefix) || !o.Forwards(d.Destination) {
		return 0
	}
	n := d.Consumers
	topic := strings.HasPrefix(d.Destination, "/topic/")
	if topic && n == 0 && !o.DynamicOnly && d.Durables > 0 {
		n = 1
	}
	// A topic is forwarded once per group, whatever its subscribers:
	// more would deliver each message more than once.
	if n > 1 && (o.ConduitSubscriptions || topic) {
		n = 1
	}
	return n
}

// stopAll stops every pump and waits until they have settled.
func (s *side) stopAll() {
	for k, p := range s.pumps {
		p.cancel()
		s.stopping = append(s.stopping, p)
		delete(s.pumps, k)
	}
	for _, p := range s.stopping {
		<-p.done
	}
	s.stopping = nil
}

// pump forwards one destination: a network subscription on the source
// group, each message sent to the destination group and acknowledged at
// the source once the destination group receipted it.
//
// Cancelled, it takes no new message, waits for the receipts of those
// sent and acknowledges them, then unsubscribes (the source takes back
// what it delivered and the pump did not send) and closes done.
type pump struct {
	s      *side
	dest   string
	cancel context.CancelFunc // stops taking new messages
	done   chan struct{}
}

func (s *side) startPump(ctx context.Context, dest string) *pump {
	rctx, cancel := context.WithCancel(ctx)
	p := &pump{s: s, dest: dest, cancel: cancel, done: make(chan struct{})}
	go p.run(ctx, rctx)
	return p
}

func (p *pump) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// sent is a message forwarded and not yet receipted.
type sent struct {
	msg     *failover.Message
	receipt *failover.Receipt
}

func (p *pump) run(ctx, rctx context.Context) {
	defer close(p.done)
	s := p.s
	o := s.b.opts
	priority := "normal"
	if o.DecreaseNetworkConsumerPriority {
		priority = "low"
	}
	sub, err := s.src.Subscribe(rctx, p.dest, "client-individual",
		stomp.Header{Key: transport.HeaderNetworkGroup, Value: s.dstGroup},
		stomp.Header{Key: transport.HeaderNetworkTTL, Value: strconv.Itoa(o.NetworkTTL)},
		stomp.Header{Key: transport.HeaderNetworkPriority, Value: priority},
		stomp.Header{Key: "activemq.prefetchSize", Value: strconv.Itoa(o.PrefetchSize)})
	if err != nil {
		if rctx.Err() == nil {
			s.b.log.Warn("network subscription failed", "dest", p.dest, "from", s.srcGroup, "err", err)
		}
		return // the next demand message starts it again
	}
	inflight := make(chan sent, o.PrefetchSize)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		p.settle(ctx, inflight)
	}()
	p.forward(rctx, sub, inflight)
	close(inflight)
	<-acked
	uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sub.Unsubscribe(uctx); err != nil && ctx.Err() == nil {
		s.b.log.Debug("network unsubscribe", "dest", p.dest, "err", err)
	}
	// Deliveries that arrived after the pump stopped reading: the source
	// took them back with the subscription. Reading them lets the
	// client's subscription end (C closes once drained).
	go func() {
		for range sub.C() {
		}
	}()
}

// forward sends every message the subscription delivers until rctx ends.
func (p *pump) forward(rctx context.Context, sub *failover.Subscription, inflight chan<- sent) {
	s := p.s
	for {
		select {
		case <-rctx.Done():
			return
		case m, ok := <-sub.C():
			if !ok {
				return
			}
			r, err := s.dst.SendAsync(p.dest, m.Body, forwardHeaders(m.Frame, s.srcGroup)...)
			if err != nil {
				// The destination client ended; the session ends with it.
				// Unacked, the message is redelivered.
				return
			}
			inflight <- sent{m, r}
		}
	}
}

// settle acknowledges each forwarded message at its source once the
// destination receipted it, in the order sent.
func (p *pump) settle(ctx context.Context, inflight <-chan sent) {
	s := p.s
	for x := range inflight {
		err := x.receipt.Wait(ctx)
		switch {
		case err == nil:
			if aerr := s.src.Ack(x.msg, ""); aerr == nil {
				s.count.Add(1)
			} else if ctx.Err() == nil {
				// Lost connection: the source redelivers it, and the
				// destination drops the resend as a duplicate.
				s.b.log.Debug("network ack", "dest", p.dest, "err", aerr)
			}
		case errors.Is(err, failover.ErrRefused) && refusedForGood(err):
			// The destination group will never take this message (too
			// large, say). NACK: after the maximum deliveries it goes to
			// this group's dead-letter queue, not lost.
			s.b.log.Warn("remote group refused a forwarded message", "dest", p.dest,
				"to", s.dstGroup, "message-id", x.msg.Get("message-id"), "err", err)
			_ = s.src.Nack(x.msg, "")
		case errors.Is(err, failover.ErrRefused):
			// Refused for now (a memory limit, a failed commit): leave
			// it unacked and stop this pump; the next demand message
			// starts it again and the source redelivers.
			s.b.log.Warn("remote group refused a forwarded message for now; pausing the destination", "dest", p.dest,
				"to", s.dstGroup, "message-id", x.msg.Get("message-id"), "err", err)
			p.cancel()
		default:
			// ctx ended or a client closed: neither acked nor nacked, so
			// the source redelivers it to the next bridge session.
		}
	}
}

// refusedForGood reports whether an ERROR refusing a forwarded SEND would
// refuse it again on every attempt: the message itself is at fault, not
// the destination's state. The wire carries only text, so this matches
// the transport's and engine's messages for such refusals.
func refusedForGood(err error) bool {
	msg := err.Error()
	for _, s := range []string{"too large", "too long", "longer than", "invalid", "reserved for the broker", "too many headers"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// forwardHeaders are the headers of the SEND that carries msg, received
// from group via, to the next group: the sender's own headers, the path
// with via added, and a dedupe-id that is the same for every resend of
// this stored copy (its message-id is assigned once, in raft).
func forwardHeaders(msg *stomp.Frame, via string) []stomp.Header {
	hs := make([]stomp.Header, 0, len(msg.Headers)+2)
	path := ""
	for _, h := range msg.Headers {
		switch h.Key {
		case fsm.HeaderNetworkPath:
			if path == "" {
				path = h.Value
			}
			continue
		case "destination", "message-id", "subscription", "ack", "redelivered", "delivery-count",
			"timestamp", "content-length", "receipt", "transaction", failover.DedupeHeader:
			continue
		}
		hs = append(hs, h)
	}
	if path != "" {
		path += ","
	}
	return append(hs,
		stomp.Header{Key: fsm.HeaderNetworkPath, Value: path + via},
		stomp.Header{Key: failover.DedupeHeader, Value: "net:" + msg.Get("message-id")})
}
