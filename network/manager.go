package network

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raftmq/raftmq/transport"
	"github.com/raftmq/raftmq/transport/stomp"
)

// Peer is a node another group advertises through discovery.
type Peer struct {
	Group   string
	ID      string
	Leader  bool
	Stomp   string // client address, host:port
	TLS     bool   // the client address speaks TLS (ssl://)
	Network bool   // its group links to the groups it discovers (it may dial us)
}

// Discovery finds the nodes of other groups: gossip's pool, adapted.
type Discovery interface {
	Peers() []Peer
	// Changed is signalled when Peers may have changed. The manager is
	// its only reader.
	Changed() <-chan struct{}
}

// Config is a manager's configuration.
type Config struct {
	Group string
	Links []Spec
	// Discovery is needed by gossip links; nil without gossip.
	Discovery Discovery
	Logger    *slog.Logger
	// Login and Passcode are what bridges present to the groups they
	// reach and to this node's own listener, once those require a login.
	Login, Passcode string
	// TLS, when set, returns the TLS settings for a bridge session's
	// connections to ssl:// addresses: this node's certificate, for
	// brokers that ask for one, and the CA that verifies theirs. It is
	// called for every session, so reloaded certificates apply to the
	// next one. Nil leaves ssl:// addresses to the failover client's
	// default (the system's CAs).
	TLS func() *tls.Config
}

// Manager runs this node's part of the network: nothing while it follows;
// while it leads, the demand publisher and one outbound bridge per linked
// group. It also admits or refuses bridges other groups dial to this one.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	leading bool
	bridges map[string]*running // outbound, by key
	inbound map[*inbound]struct{}
}

type running struct {
	b      *bridge
	cancel context.CancelFunc
	done   chan struct{}
}

type inbound struct {
	group, addr string
	since       time.Time
}

// New checks cfg and returns a manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, l := range cfg.Links {
		if l.Kind == Gossip && cfg.Discovery == nil {
			return nil, fmt.Errorf("network gossip needs a gossip pool (--gossip)")
		}
	}
	return &Manager{cfg: cfg, log: cfg.Logger, bridges: map[string]*running{}, inbound: map[*inbound]struct{}{}}, nil
}

// Lead runs the network's leader side until ctx ends (the term ends):
// localAddr is this node's STOMP listener as a URI (tcp://host:port or
// ssl://host:port), e its delivery engine.
func (m *Manager) Lead(ctx context.Context, e Engine, localAddr string) {
	m.mu.Lock()
	m.leading = true
	m.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		publishDemand(ctx, m.cfg.Group, e, m.log)
	}()
	for i, l := range m.cfg.Links {
		if l.Kind == Static {
			key := fmt.Sprintf("static#%d", i)
			m.start(ctx, key, newBridge(m.cfg.Group, l.String(), l.failoverURL(), "", l.Options, m.log, m.yields), localAddr)
		}
	}
	if m.gossipLinks() {
		m.followGossip(ctx, localAddr)
	}
	<-ctx.Done()
	m.mu.Lock()
	m.leading = false
	all := make([]*running, 0, len(m.bridges))
	for key, r := range m.bridges {
		all = append(all, r)
		delete(m.bridges, key)
	}
	m.mu.Unlock()
	for _, r := range all {
		r.cancel()
		<-r.done
	}
	wg.Wait()
}

func (m *Manager) gossipLinks() bool {
	return slices.ContainsFunc(m.cfg.Links, func(l Spec) bool { return l.Kind == Gossip })
}

func (m *Manager) start(ctx context.Context, key string, b *bridge, localAddr string) {
	b.dial = Config{Login: m.cfg.Login, Passcode: m.cfg.Passcode, TLS: m.cfg.TLS}
	bctx, cancel := context.WithCancel(ctx)
	r := &running{b: b, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	m.bridges[key] = r
	m.mu.Unlock()
	go func() {
		defer close(r.done)
		b.run(bctx, localAddr)
	}()
}

func (m *Manager) stop(key string) {
	m.mu.Lock()
	r := m.bridges[key]
	delete(m.bridges, key)
	m.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

// followGossip links the groups the pool shows until ctx ends: a bridge
// for each group found (unless a static link reaches it, or it dials us),
// torn down when the group's last node leaves the pool.
func (m *Manager) followGossip(ctx context.Context, localAddr string) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		m.syncGossip(ctx, localAddr)
		select {
		case <-ctx.Done():
			return
		case <-m.cfg.Discovery.Changed():
		case <-tick.C:
		}
	}
}

func (m *Manager) syncGossip(ctx context.Context, localAddr string) {
	groups := map[string][]Peer{}
	for _, p := range m.cfg.Discovery.Peers() {
		if p.Group != m.cfg.Group && p.Stomp != "" {
			groups[p.Group] = append(groups[p.Group], p)
		}
	}
	want := map[string]bool{}
	for g, peers := range groups {
		spec, ok := m.gossipSpecFor(g)
		if !ok || m.dialedBy(g, peers) || m.staticReaches(g) {
			continue
		}
		uris := peerURIs(peers, m.cfg.TLS != nil)
		if len(uris) == 0 {
			m.log.Debug("gossip: group announces only plaintext listeners; a TLS node does not bridge to it", "group", g)
			continue
		}
		key := "gossip:" + g
		want[key] = true
		url := failoverURL(uris)
		m.mu.Lock()
		r := m.bridges[key]
		m.mu.Unlock()
		if r != nil {
			// A connected bridge learns the group's members from its
			// leader. One still trying may be dialing only the nodes
			// that were in the pool when it began, none of them the
			// leader: start it again with the addresses known now.
			if sameAddrs(r.b.url, url) || r.b.connectedTo(g) {
				continue
			}
			m.stop(key)
		} else {
			m.log.Info("linking a group found by gossip", "group", g, "nodes", len(peers))
		}
		m.start(ctx, key, newBridge(m.cfg.Group, Gossip, url, g, spec.Options, m.log, m.yields), localAddr)
	}
	m.mu.Lock()
	var gone []string
	for key := range m.bridges {
		if strings.HasPrefix(key, "gossip:") && !want[key] {
			gone = append(gone, key)
		}
	}
	m.mu.Unlock()
	for _, key := range gone {
		m.log.Info("unlinking a group gone from gossip", "group", strings.TrimPrefix(key, "gossip:"))
		m.stop(key)
	}
}

func (m *Manager) gossipSpecFor(group string) (Spec, bool) {
	for _, l := range m.cfg.Links {
		if l.Kind == Gossip && l.LinksGroup(group) {
			return l, true
		}
	}
	return Spec{}, false
}

// dialedBy reports whether group, which also links by gossip, keeps the
// bridge between us: of two groups that find each other, the one with the
// smaller name dials.
func (m *Manager) dialedBy(group string, peers []Peer) bool {
	if group > m.cfg.Group {
		return false
	}
	return slices.ContainsFunc(peers, func(p Peer) bool { return p.Network })
}

// staticReaches reports whether a static link's bridge has reached group
// (connected to it at least once): the link names that group, so gossip
// leaves it to the static bridge.
func (m *Manager) staticReaches(group string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, r := range m.bridges {
		if strings.HasPrefix(key, "static#") && r.b.remoteGroup() == group {
			return true
		}
	}
	return false
}

// sameAddrs reports whether two bridge URLs list the same addresses, in
// any order: a leader change reorders them, which is no reason to drop a
// session that reconnects by itself.
func sameAddrs(a, b string) bool {
	addrs := func(u string) []string {
		list, _, _ := strings.Cut(strings.TrimPrefix(u, "failover:("), ")")
		s := strings.Split(list, ",")
		slices.Sort(s)
		return s
	}
	return slices.Equal(addrs(a), addrs(b))
}

// peerURIs lists a group's client addresses, its leader first.
// With tlsOnly (this node uses TLS), plaintext addresses are left out.
func peerURIs(peers []Peer, tlsOnly bool) []string {
	slices.SortFunc(peers, func(a, b Peer) int {
		if a.Leader != b.Leader {
			if a.Leader {
				return -1
			}
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	uris := make([]string, 0, len(peers))
	for _, p := range peers {
		scheme := "tcp://"
		if p.TLS {
			scheme = "ssl://"
		} else if tlsOnly {
			// Gossip metadata is not proof: a peer announcing a
			// plaintext listener would get the bridge's login in the
			// clear.
			continue
		}
		uris = append(uris, scheme+p.Stomp)
	}
	return uris
}

// Admit decides on a CONNECT (transport.Config.Admit): a bridge from
// another group is let in, and listed as inbound while connected, unless
// this group keeps its own bridge to that group and has the smaller name
// (both sides configured a link: one bridge is enough, and both sides
// agree on which).
func (m *Manager) Admit(f *stomp.Frame, remoteAddr string) (release func(), err error) {
	g := f.Get(transport.HeaderBridgeGroup)
	if g == "" {
		return nil, nil
	}
	if g == m.cfg.Group {
		return nil, fmt.Errorf("a bridge from group %s to itself: its link names this group's own members", g)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Of two groups that both keep a bridge to the other, the one with the
	// smaller name keeps its own: it refuses the other's here, and the
	// other, admitting the smaller one's, stands its own bridge down.
	for _, r := range m.bridges {
		switch {
		case m.cfg.Group < g && r.b.connectedTo(g):
			return nil, fmt.Errorf("%s: group %s keeps its own bridge to group %s", redundantText, m.cfg.Group, g)
		case m.cfg.Group > g:
			r.b.standDown(g)
		}
	}
	in := &inbound{group: g, addr: remoteAddr, since: time.Now()}
	m.inbound[in] = struct{}{}
	return func() {
		m.mu.Lock()
		delete(m.inbound, in)
		m.mu.Unlock()
	}, nil
}

// yields reports whether this group's bridge to group should stand by:
// group has the smaller name and keeps a bridge to this one (inbound).
func (m *Manager) yields(group string) bool {
	if group >= m.cfg.Group {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for in := range m.inbound {
		if in.group == group {
			return true
		}
	}
	return false
}

// Status is the network as this node sees it.
type Status struct {
	Group   string         `json:"group"`
	Leader  bool           `json:"leader"`
	Links   []string       `json:"links"`
	Bridges []BridgeStatus `json:"bridges"`
}

// Status lists the bridges, outbound first, each sorted by remote group.
func (m *Manager) Status() Status {
	st := Status{Group: m.cfg.Group, Links: []string{}, Bridges: []BridgeStatus{}}
	for _, l := range m.cfg.Links {
		st.Links = append(st.Links, l.String())
	}
	m.mu.Lock()
	st.Leader = m.leading
	var out, in []BridgeStatus
	for _, r := range m.bridges {
		out = append(out, r.b.status())
	}
	for i := range m.inbound {
		in = append(in, BridgeStatus{RemoteGroup: i.group, Direction: "inbound", Link: i.addr,
			State: StateConnected, Since: i.since, DemandOut: []string{}, DemandIn: []string{}})
	}
	m.mu.Unlock()
	byGroup := func(a, b BridgeStatus) int { return strings.Compare(a.RemoteGroup, b.RemoteGroup) }
	slices.SortFunc(out, byGroup)
	slices.SortFunc(in, byGroup)
	st.Bridges = append(append(st.Bridges, out...), in...)
	return st
}
