package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"

	"github.com/raftmq/raftmq/gossip"
	"github.com/raftmq/raftmq/network"
)

// This file wires the node into the network of groups: the gossip pool,
// whose metadata follows this node's role, and the network manager, which
// runs bridges while this node leads.

// startNetwork joins the gossip pool (when configured) and builds the
// network manager. It runs in Start, once the advertised addresses are
// known.
func (n *Node) startNetwork() error {
	var disc network.Discovery
	if n.cfg.GossipAddr != "" {
		n.roles = make(chan struct{}, 1)
		pool, err := gossip.Start(gossip.Config{
			Bind:      n.cfg.GossipAddr,
			Advertise: n.cfg.GossipAdvertise,
			Join:      n.cfg.GossipJoin,
			Keys:      n.cfg.GossipKeys,
			Meta:      n.gossipMeta("follower", 0),
			Logger:    n.log.With("logger", "gossip"),
		})
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		n.pool = pool
		disc = poolPeers{pool}
		n.bg.Add(1)
		go n.advertiseRole()
	}
	m, err := network.New(network.Config{
		Group:     n.cfg.Group,
		Links:     n.cfg.Network,
		Discovery: disc,
		Logger:    n.log.With("logger", "network"),
		Login:     n.cfg.BrokerUser,
		Passcode:  n.cfg.BrokerPassword,
		TLS:       n.bridgeTLS(),
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.net = m
	return nil
}

// gossipMeta is what this node advertises in the pool.
func (n *Node) gossipMeta(role string, term uint64) gossip.Meta {
	return gossip.Meta{
		Group:   n.cfg.Group,
		ID:      n.cfg.ID,
		Role:    role,
		Term:    term,
		Stomp:   n.self.StompAddr,
		TLS:     n.stompTLS(),
		Raft:    n.self.RaftAddr,
		HTTP:    n.self.HTTPAddr,
		Network: slices.ContainsFunc(n.cfg.Network, func(s network.Spec) bool { return s.Kind == network.Gossip }),
	}
}

// setRole records this node's role for the pool; advertiseRole sends it.
// It never blocks leadership changes on gossip.
func (n *Node) setRole(role string, term uint64) {
	if n.pool == nil {
		return
	}
	n.roleMu.Lock()
	n.role, n.roleTerm = role, term
	n.roleMu.Unlock()
	select {
	case n.roles <- struct{}{}:
	default:
	}
}

// advertiseRole updates the pool's metadata with the latest role until
// Close.
func (n *Node) advertiseRole() {
	defer n.bg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.roles:
		}
		n.roleMu.Lock()
		meta := n.gossipMeta(n.role, n.roleTerm)
		n.roleMu.Unlock()
		if err := n.pool.SetMeta(meta); err != nil {
			n.log.Warn("gossip: advertise role", "role", meta.Role, "err", err)
		}
	}
}

// roleState holds the role advertised in the pool.
type roleState struct {
	roleMu   sync.Mutex
	role     string
	roleTerm uint64
	roles    chan struct{} // capacity 1: the role changed
}

// leadNetwork runs the network's leader side for term t, serving on addr.
func (t *term) leadNetwork(addr net.Addr) {
	n := t.n
	n.setRole("leader", t.raftTerm)
	local := addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		local = net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
	}
	if n.stompTLS() && n.self.StompAddr != "" {
		// The certificate names the address the node advertises, not
		// necessarily the one it binds.
		local = n.self.StompAddr
	}
	local = n.clientScheme() + local
	ctx, cancel := context.WithCancel(t.ctx)
	t.netCancel, t.netDone = cancel, make(chan struct{})
	go func() {
		defer close(t.netDone)
		n.net.Lead(ctx, t.engine, local)
	}()
}

// stopNetwork ends the network's leader side of term t, before the
// listener closes: bridges stop on purpose instead of failing.
func (t *term) stopNetwork() {
	if t.netDone == nil {
		return
	}
	t.netCancel()
	<-t.netDone
	t.n.setRole("follower", 0)
}

// poolPeers adapts the gossip pool to network.Discovery.
type poolPeers struct{ p *gossip.Pool }

func (pp poolPeers) Peers() []network.Peer {
	ms := pp.p.Members()
	peers := make([]network.Peer, 0, len(ms))
	for _, m := range ms {
		peers = append(peers, network.Peer{
			Group: m.Meta.Group, ID: m.Meta.ID, Leader: m.Meta.Role == "leader",
			Stomp: m.Meta.Stomp, TLS: m.Meta.TLS, Network: m.Meta.Network,
		})
	}
	return peers
}

func (pp poolPeers) Changed() <-chan struct{} { return pp.p.Changed() }

// NetworkStatus is the network as this node sees it: bridges exist only
// on the leader.
func (n *Node) NetworkStatus() network.Status {
	return n.net.Status()
}

// GossipMembers lists the pool's members, nil without gossip.
func (n *Node) GossipMembers() []gossip.Member {
	if n.pool == nil {
		return nil
	}
	return n.pool.Members()
}

func (a *admin) getNetwork(w http.ResponseWriter, r *http.Request) {
	if !a.onLeader(w, r, nil) {
		return
	}
	writeJSON(w, http.StatusOK, a.n.NetworkStatus())
}

func (a *admin) getGossip(w http.ResponseWriter, r *http.Request) {
	ms := a.n.GossipMembers()
	if ms == nil {
		ms = []gossip.Member{}
	}
	writeJSON(w, http.StatusOK, ms)
}
