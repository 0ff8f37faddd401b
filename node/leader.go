package node

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport"
	"github.com/raftmq/raftmq/transport/stomp"
)

// BrokersHeader is the CONNECTED frame's header listing the client
// addresses of every member of the group, comma-separated tcp:// URIs (ssl:// when the listener speaks TLS), so
// that a client given one address learns the rest (as ActiveMQ's
// updateClusterClients does).
const BrokersHeader = "raftmq-brokers"

// This file is the one place where leader-only work starts and stops, as
// in Nomad's monitorLeadership: on gaining leadership the node waits for a
// raft barrier, builds the delivery engine over the applied state and
// opens the client listener; on losing it (or on Close) it closes every
// client connection before anything else, so a node that is no longer the
// leader neither delivers nor writes receipts.

// monitorLeadership follows raft's leadership changes until Close.
func (n *Node) monitorLeadership(r *raft.Raft) {
	defer close(n.monitorDone)
	var stop, done chan struct{} // the running term's; nil while not leading
	stopLeading := func() {
		if stop != nil {
			close(stop)
			<-done
			stop, done = nil, nil
		}
	}
	defer stopLeading()

	leaderCh := r.LeaderCh()
	for {
		select {
		case isLeader := <-leaderCh:
			// Raft keeps only the latest change in LeaderCh, so true
			// while leading means leadership was lost and regained in
			// between: the old term's engine may be stale, start over.
			stopLeading()
			if !isLeader {
				n.log.Info("lost raft leadership", "id", n.cfg.ID)
				continue
			}
			n.log.Info("gained raft leadership", "id", n.cfg.ID)
			stop, done = make(chan struct{}), make(chan struct{})
			go func(stop <-chan struct{}, done chan<- struct{}) {
				defer close(done)
				n.lead(r, stop)
			}(stop, done)
		case <-n.shutdown:
			return
		}
	}
}

// lead runs one leadership term until stop is closed. Taking up
// leadership is retried while it lasts: a leader that does not serve
// clients leaves the group unavailable, so giving up is never better.
func (n *Node) lead(r *raft.Raft, stop <-chan struct{}) {
	delay := 100 * time.Millisecond
	for {
		t, err := n.establish(r, stop)
		if err == nil {
			<-stop
			t.revoke(n.revokeReason())
			return
		}
		t.revoke(n.revokeReason())
		if r.State() != raft.Leader {
			// The monitor is about to stop this term.
			n.log.Info("leadership ended before serving", "err", err)
			<-stop
			return
		}
		n.log.Error("cannot take up leadership; retrying", "err", err, "retry_in", delay)
		select {
		case <-stop:
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (n *Node) revokeReason() string {
	select {
	case <-n.shutdown:
		return "broker shutting down"
	default:
		return "lost leadership: the group elected another leader or lost its quorum; what got no RECEIPT may or may not have been stored: reconnect to another member and resend it with the same dedupe-id"
	}
}

// term holds what one leadership term set up, so revoke can undo
// whatever part of it exists.
type term struct {
	n        *Node
	ctx      context.Context // ends with the term, or when revoke starts
	cancel   context.CancelFunc
	raft     *raft.Raft
	raftTerm uint64        // the raft term this term serves, read after the barrier
	lease    atomic.Int64  // nanoseconds since n.epoch until which this node surely leads
	leased   chan struct{} // closed when keepLease returned; nil if it never ran
	ln       net.Listener
	prop     *proposer
	engine   *queue.Engine
	attached bool
	srv      *transport.Server
	served   chan struct{} // closed when srv.Serve returned
	// netCancel ends the network's leader side; netDone is closed when
	// it has (nil if it never started).
	netCancel context.CancelFunc
	netDone   chan struct{}
}

// establish builds the leader's delivery stack and starts serving. On
// error the returned term holds what was built, for revoke.
func (n *Node) establish(r *raft.Raft, stop <-chan struct{}) (*term, error) {
	t := &term{n: n}
	t.ctx, t.cancel = stopContext(stop)
	ctx := t.ctx
	// Everything committed in earlier terms must be applied before the
	// engine loads the state, or it would miss messages and acks. The
	// barrier's commit also proves a quorum follows this leader now.
	start := n.sinceEpoch()
	if err := n.await(ctx, r, r.Barrier(0)); err != nil {
		return t, fmt.Errorf("raft barrier: %w", err)
	}
	t.raft, t.raftTerm = r, r.CurrentTerm()
	if r.State() != raft.Leader {
		return t, fmt.Errorf("lost leadership after the barrier")
	}
	// A transfer this node began in an earlier term is over.
	n.transferring.Store(false)
	t.lease.Store(int64(start + n.leaseDuration()))
	t.leased = make(chan struct{})
	go t.keepLease(r)
	// Listen before loading the state, the costly step, so a busy port
	// fails early. Clients that connect meanwhile wait in the backlog.
	var err error
	if t.ln, err = n.listenStomp(); err != nil {
		return t, fmt.Errorf("listen for STOMP clients: %w", err)
	}
	t.prop = newProposer(r, batchLimits{
		maxCommands: n.cfg.MaxBatchCommands,
		maxBytes:    n.cfg.MaxBatchBytes,
		maxInflight: n.cfg.MaxInflightEntries,
	}, n.log.With("logger", "proposer"))
	t.prop.committed = func(d time.Duration) { n.metrics.commit.Observe(d.Seconds()) }
	qcfg := n.cfg.Queue
	qcfg.Logger = n.log.With("logger", "queue")
	if t.engine, err = queue.NewEngine(qcfg, t.prop, n.fsm); err != nil {
		return t, fmt.Errorf("delivery engine: %w", err)
	}
	if err := n.fsm.Attach(t.engine); err != nil {
		return t, fmt.Errorf("load state into the engine: %w", err)
	}
	t.attached = true

	tcfg := n.cfg.Transport
	tcfg.ConnectedHeaders = n.connectedHeaders
	tcfg.Fence = t.fence
	tcfg.Admit = n.net.Admit
	if g := n.cfg.Guard; g != nil && g.Enabled() {
		tcfg.Authenticate = n.authenticate
	}
	t.srv = transport.NewServer(tcfg, broker{t.engine}, n.log.With("logger", "transport"))
	t.served = make(chan struct{})
	addr := t.ln.Addr()
	n.setServing(t, addr) // before Serve, which may clear it on failure
	go func() {
		defer close(t.served)
		if err := t.srv.Serve(t.ln); err != nil {
			// Not a reason to give up leadership: clients already
			// connected are still served. No new one gets in, though,
			// so stop reporting the address.
			n.clearServing()
			n.log.Error("STOMP listener failed", "addr", addr.String(), "err", err)
		}
	}()
	// Keep addr the first attribute: scripts and tests grep this line.
	n.log.Info("serving STOMP clients", "addr", addr.String())
	t.leadNetwork(addr)
	return t, nil
}

// revoke undoes establish, clients first: close the listener and every
// connection, stop the engine, detach it from the state, and fail what
// is still waiting to be proposed.
func (t *term) revoke(reason string) {
	t.stopNetwork()
	if t.srv != nil {
		t.n.clearServing()
		t.srv.Close(reason) // closes t.ln too
		<-t.served
		t.n.log.Info("stopped serving STOMP clients", "reason", reason)
	} else if t.ln != nil {
		t.ln.Close()
	}
	if t.engine != nil {
		t.engine.Close()
	}
	if t.attached {
		t.n.fsm.Detach()
	}
	if t.prop != nil {
		t.prop.Close()
	}
	t.cancel()
	if t.leased != nil {
		<-t.leased
	}
}

// The leader lease. Raft's leader learns that it was deposed only when it
// hears from the group again, which a paused or partitioned leader does
// not: meanwhile it would go on delivering messages, and a newer leader
// delivers them too. So a leader writes to clients only while a quorum
// confirmed its leadership recently: a follower that answered a
// heart-beat at time t refuses to vote for anybody else until its
// heart-beat timeout passes after t, and the lease ends sooner, after the
// leader lease timeout (which raft requires to be at most the heart-beat
// timeout). The transport holds writes while the lease is out (see
// transport.Config.Fence); every third of a lease the leader asks raft
// to verify its leadership again.

// leaseDuration is how long a confirmation of leadership stays good:
// raft's leader lease timeout, but at most half the heart-beat timeout. A
// VerifyLeader may count a follower's answer to an RPC sent shortly
// before it began, so the lease keeps a margin of at least half a
// heart-beat timeout below the time a follower waits before it would
// vote for another candidate.
func (n *Node) leaseDuration() time.Duration {
	rc := n.cfg.raftConfig()
	return min(rc.LeaderLeaseTimeout, rc.HeartbeatTimeout/2)
}

func (n *Node) sinceEpoch() time.Duration { return time.Since(n.epoch) }

// fence reports whether this term may write to clients now: the lease
// holds, no transfer is under way, and raft still leads in the same term
// (a node that stepped down, or lost and regained leadership, must wait
// for revoke rather than write for a stale engine).
func (t *term) fence() bool {
	return !t.n.transferring.Load() && int64(t.n.sinceEpoch()) < t.lease.Load() &&
		t.raft.State() == raft.Leader && t.raft.CurrentTerm() == t.raftTerm
}

// keepLease renews the lease until the term is revoked or raft says this
// node no longer leads.
func (t *term) keepLease(r *raft.Raft) {
	defer close(t.leased)
	ctx := t.ctx
	d := t.n.leaseDuration()
	for {
		start := t.n.sinceEpoch()
		if r.CurrentTerm() != t.raftTerm {
			return // a later term's confirmations say nothing about this one
		}
		if !t.n.transferring.Load() {
			if err := t.n.await(ctx, r, r.VerifyLeader()); err == nil && r.CurrentTerm() == t.raftTerm {
				t.lease.Store(int64(start + d))
			} else if ctx.Err() != nil || r.State() != raft.Leader {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.n.shutdown:
			return
		case <-time.After(start + d/3 - t.n.sinceEpoch()):
		}
	}
}

// stopContext is a context cancelled when stop closes.
func stopContext(stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// connectedHeaders names the group, and its client addresses (this
// node's first), in CONNECTED.
func (n *Node) connectedHeaders() []stomp.Header {
	recs, err := n.records()
	if err != nil {
		n.log.Warn("cannot list the group's brokers for CONNECTED", "err", err)
		return []stomp.Header{{Key: transport.HeaderGroup, Value: n.cfg.Group}}
	}
	uris := make([]string, 0, len(recs))
	if n.self.StompAddr != "" {
		uris = append(uris, n.clientScheme()+n.self.StompAddr)
	}
	ids := slices.Sorted(maps.Keys(recs))
	for _, id := range ids {
		if rec := recs[id]; id != n.cfg.ID && rec.StompAddr != "" {
			uris = append(uris, n.clientScheme()+rec.StompAddr)
		}
	}
	hs := []stomp.Header{{Key: transport.HeaderGroup, Value: n.cfg.Group}}
	if len(uris) > 0 {
		hs = append(hs, stomp.Header{Key: BrokersHeader, Value: strings.Join(uris, ",")})
	}
	return hs
}

// broker adapts *queue.Engine to transport.Broker.
type broker struct{ e *queue.Engine }

func (b broker) Open(clientID string, out queue.Outbound) (transport.Session, error) {
	s, err := b.e.Open(clientID, out)
	if err != nil {
		// Not s: a nil *queue.Session in the interface would not be nil.
		return nil, err
	}
	return s, nil
}
