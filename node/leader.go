package node

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport"
)

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
		t, err := n.establish(r)
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
		return "lost leadership"
	}
}

// term holds what one leadership term set up, so revoke can undo
// whatever part of it exists.
type term struct {
	n        *Node
	ln       net.Listener
	prop     *proposer
	engine   *queue.Engine
	attached bool
	srv      *transport.Server
	served   chan struct{} // closed when srv.Serve returned
}

// establish builds the leader's delivery stack and starts serving. On
// error the returned term holds what was built, for revoke.
func (n *Node) establish(r *raft.Raft) (*term, error) {
	t := &term{n: n}
	// Everything committed in earlier terms must be applied before the
	// engine loads the state, or it would miss messages and acks.
	if err := r.Barrier(0).Error(); err != nil {
		return t, fmt.Errorf("raft barrier: %w", err)
	}
	// Listen before loading the state, the costly step, so a busy port
	// fails early. Clients that connect meanwhile wait in the backlog.
	var err error
	if t.ln, err = net.Listen("tcp", n.cfg.StompAddr); err != nil {
		return t, fmt.Errorf("listen for STOMP clients: %w", err)
	}
	t.prop = newProposer(r, batchLimits{
		maxCommands: n.cfg.MaxBatchCommands,
		maxBytes:    n.cfg.MaxBatchBytes,
		maxInflight: n.cfg.MaxInflightEntries,
	}, n.log.With("logger", "proposer"))
	qcfg := n.cfg.Queue
	qcfg.Logger = n.log.With("logger", "queue")
	if t.engine, err = queue.NewEngine(qcfg, t.prop, n.fsm); err != nil {
		return t, fmt.Errorf("delivery engine: %w", err)
	}
	if err := n.fsm.Attach(t.engine); err != nil {
		return t, fmt.Errorf("load state into the engine: %w", err)
	}
	t.attached = true

	t.srv = transport.NewServer(n.cfg.Transport, broker{t.engine}, n.log.With("logger", "transport"))
	t.served = make(chan struct{})
	addr := t.ln.Addr()
	n.setServing(addr) // before Serve, which may clear it on failure
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
	return t, nil
}

// revoke undoes establish, clients first: close the listener and every
// connection, stop the engine, detach it from the state, and fail what
// is still waiting to be proposed.
func (t *term) revoke(reason string) {
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
