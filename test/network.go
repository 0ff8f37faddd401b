package test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/gossip"
	"github.com/raftmq/raftmq/network"
)

// Helpers for networks of groups: links, gossip flags, and the admin
// API's view of bridges.

// StaticLink is the --network value that links to group g through its
// members' client addresses, with opts (such as "networkTTL=2") after '?'.
func StaticLink(g *Group, opts string) string {
	addrs := make([]string, len(g.Nodes))
	for i, s := range g.Nodes {
		addrs[i] = "tcp://" + s.Stomp
	}
	l := "static:(" + strings.Join(addrs, ",") + ")"
	if opts != "" {
		l += "?" + opts
	}
	return l
}

// GossipPorts are the gossip addresses of one group's nodes, picked before
// the group starts.
type GossipPorts []string

// NewGossipPorts picks a free gossip address for each of size nodes.
func NewGossipPorts(t testing.TB, size int) GossipPorts {
	t.Helper()
	ps := make(GossipPorts, size)
	for i := range ps {
		ps[i] = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	}
	return ps
}

// Flags returns a GroupOptions.NodeExtra giving node i --gossip on its own
// address and --gossip-join seed. With seed empty the group starts the
// pool: node 0 joins nobody and the others join node 0.
func (ps GossipPorts) Flags(seed string) func(i int) []string {
	return func(i int) []string {
		f := []string{"--gossip", ps[i]}
		join := seed
		if join == "" && i > 0 {
			join = ps[0]
		}
		if join != "" {
			f = append(f, "--gossip-join", join)
		}
		return f
	}
}

// NetworkStatus asks the group for GET /api/v1/network through any live
// member (a follower forwards it to the leader), and returns the answer
// of a node that leads and runs the network.
func (g *Group) NetworkStatus() (network.Status, error) {
	err := errors.New("no live member")
	for _, s := range g.Nodes {
		if !s.Running() {
			continue
		}
		var st network.Status
		if err = g.Access.getJSON(s.HTTP, "/api/v1/network", &st); err != nil {
			continue
		}
		if !st.Leader {
			err = fmt.Errorf("%s answered for a node that does not lead", s.HTTP)
			continue
		}
		return st, nil
	}
	return network.Status{}, err
}

// GossipMembers asks node i for GET /api/v1/gossip.
func (g *Group) GossipMembers(i int) ([]gossip.Member, error) {
	var ms []gossip.Member
	err := getJSON(g.Nodes[i].HTTP, "/api/v1/gossip", &ms)
	return ms, err
}

// FindBridge returns the bridge to or from remote in st ("" direction
// matches either), or nil.
func FindBridge(st network.Status, remote, direction string) *network.BridgeStatus {
	for i, b := range st.Bridges {
		if b.RemoteGroup == remote && (direction == "" || b.Direction == direction) {
			return &st.Bridges[i]
		}
	}
	return nil
}

// WaitBridge waits until g shows a connected bridge to or from remote in
// direction ("" for either) for which cond (if not nil) holds, and
// returns it.
func (g *Group) WaitBridge(timeout time.Duration, remote, direction string, cond func(network.BridgeStatus) bool) network.BridgeStatus {
	g.t.Helper()
	var found network.BridgeStatus
	what := fmt.Sprintf("group %s: a connected %s bridge with group %s", g.Name, direction, remote)
	var last string
	EventuallyWhy(g.t, timeout, what, func() bool {
		st, err := g.NetworkStatus()
		if err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprintf("%+v", st)
		b := FindBridge(st, remote, direction)
		if b == nil || b.State != network.StateConnected || (cond != nil && !cond(*b)) {
			return false
		}
		found = *b
		return true
	}, func() string { return "last /api/v1/network: " + last })
	return found
}

// HasDemand reports whether dests holds dest.
func HasDemand(dests []string, dest string) bool { return slices.Contains(dests, dest) }

// EventuallyWhy is Eventually that, on timeout, also reports why: what
// the last poll saw.
func EventuallyWhy(t testing.TB, timeout time.Duration, what string, cond func() bool, why func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s; %s", timeout, what, why())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// LogMatching returns the last max kept log lines that contain any of
// substrs (every line when none is given).
func (s *Server) LogMatching(max int, substrs ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for i := len(s.logTail) - 1; i >= 0 && len(out) < max; i-- {
		l := s.logTail[i]
		if len(substrs) == 0 || slices.ContainsFunc(substrs, func(sub string) bool { return strings.Contains(l, sub) }) {
			out = append(out, l)
		}
	}
	slices.Reverse(out)
	return strings.Join(out, "\n")
}

// LogNetworkOnFailure registers a cleanup that, if the test failed, logs
// each node's recent network, gossip, warning and error lines.
func LogNetworkOnFailure(t testing.TB, groups ...*Group) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, g := range groups {
			for i, s := range g.Nodes {
				t.Logf("---- group %s node n%d (%s) ----\n%s", g.Name, i+1, s.Stomp,
					s.LogMatching(60, "network", "bridge", "gossip", "level=WARN", "level=ERROR", "leader"))
			}
		}
	})
}
