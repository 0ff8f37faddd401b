package node

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/transport/stomp"
)

// freeAddr returns a loopback address with a port free right now, below
// Linux's ephemeral range so that no outgoing connection (raft dialing a
// peer) takes it before its node binds it.
func freeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if portsGiven[addr] {
			continue
		}
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			portsGiven[addr] = true
			return addr
		}
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}

var (
	portsMu    sync.Mutex
	portsGiven = map[string]bool{}
)

// groupNode is one in-process member of a test group, with fixed ports
// so it can be restarted where its peers expect it.
type groupNode struct {
	cfg Config
	n   *Node
}

// newGroupConfigs makes configs for size nodes that form a group with
// bootstrap-expect, each joining through all the others.
func newGroupConfigs(t *testing.T, size int) []Config {
	cfgs := make([]Config, size)
	https := make([]string, size)
	for i := range cfgs {
		https[i] = freeAddr(t)
	}
	for i := range cfgs {
		cfgs[i] = Config{
			ID:              fmt.Sprintf("n%d", i+1),
			Group:           "g",
			DataDir:         t.TempDir(),
			StompAddr:       freeAddr(t),
			RaftAddr:        freeAddr(t),
			HTTPAddr:        https[i],
			BootstrapExpect: size,
			Join:            https,
			RaftTimeouts:    ShortRaftTimeouts(),
			Logger:          testLogger(t).With("node", fmt.Sprintf("n%d", i+1)),
		}
	}
	return cfgs
}

func startGroupNode(t *testing.T, cfg Config) *groupNode {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New %s: %v", cfg.ID, err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("Start %s: %v", cfg.ID, err)
	}
	return &groupNode{cfg: cfg, n: n}
}

// leaderOf waits until exactly one of nodes serves clients and returns it.
func leaderOf(t *testing.T, nodes []*groupNode) *groupNode {
	t.Helper()
	var leader *groupNode
	waitFor(t, 15*time.Second, "one serving leader", func() bool {
		leader = nil
		for _, g := range nodes {
			if g.n != nil && g.n.StompAddr() != nil {
				if leader != nil {
					return false
				}
				leader = g
			}
		}
		return leader != nil
	})
	return leader
}

func getJSON(t *testing.T, addr, uri string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + uri)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, uri, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s%s: decode: %v", addr, uri, err)
	}
	return resp.StatusCode
}

func doJSON(t *testing.T, method, addr, uri, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+uri, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, addr, uri, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s %s%s: decode: %v", method, addr, uri, err)
	}
	return resp.StatusCode
}

func memberIDs(ms []Member) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

// TestGroupFormsGrowsAndShrinks forms a three-node group with
// bootstrap-expect, checks that only the leader serves, that CONNECTED
// names every member, then joins a fourth node through a follower,
// removes it again through another follower, and transfers leadership.
func TestGroupFormsGrowsAndShrinks(t *testing.T) {
	cfgs := newGroupConfigs(t, 3)
	var nodes []*groupNode
	for _, c := range cfgs {
		nodes = append(nodes, startGroupNode(t, c))
	}
	leader := leaderOf(t, nodes)

	// Every member registers its addresses, and every member learns them.
	waitFor(t, 10*time.Second, "three registered members", func() bool {
		for _, g := range nodes {
			ms, err := g.n.Members()
			if err != nil || len(ms) != 3 {
				return false
			}
			for _, m := range ms {
				if m.StompAddr == "" || m.HTTPAddr == "" || m.Suffrage != "Voter" {
					return false
				}
			}
		}
		return true
	})

	// Followers keep the client port closed.
	for _, g := range nodes {
		if g == leader {
			continue
		}
		if c, err := net.DialTimeout("tcp", g.cfg.StompAddr, time.Second); err == nil {
			c.Close()
			t.Errorf("follower %s accepted a client connection on %s", g.cfg.ID, g.cfg.StompAddr)
		}
	}

	// CONNECTED lists the group's brokers, the leader's first.
	nc, _ := net.Dial("tcp", leader.cfg.StompAddr)
	defer nc.Close()
	w, r := stomp.NewWriter(nc), stomp.NewReader(nc, stomp.Limits{})
	w.WriteFrame(&stomp.Frame{Command: stomp.CONNECT, Headers: []stomp.Header{{Key: "accept-version", Value: "1.2"}, {Key: "host", Value: "g"}}})
	w.Flush()
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	brokers := strings.Split(f.Get(BrokersHeader), ",")
	if len(brokers) != 3 || brokers[0] != "tcp://"+leader.cfg.StompAddr {
		t.Errorf("%s = %q, want three with tcp://%s first", BrokersHeader, f.Get(BrokersHeader), leader.cfg.StompAddr)
	}

	// Status from a follower sees the whole group.
	var follower *groupNode
	for _, g := range nodes {
		if g != leader {
			follower = g
			break
		}
	}
	var st GroupStatus
	if code := getJSON(t, follower.cfg.HTTPAddr, "/api/v1/status", &st); code != 200 {
		t.Fatalf("status: %d", code)
	}
	if st.LeaderID != leader.cfg.ID || len(st.Members) != 3 {
		t.Errorf("status from %s: leader %q, %d members; want %s and 3", follower.cfg.ID, st.LeaderID, len(st.Members), leader.cfg.ID)
	}
	for _, m := range st.Members {
		want := "Follower"
		if m.ID == leader.cfg.ID {
			want = "Leader"
		}
		if m.State != want {
			t.Errorf("member %s state %q (%s), want %s", m.ID, m.State, m.Error, want)
		}
	}

	// A fourth node joins through one follower's admin address only.
	n4 := Config{
		ID: "n4", Group: "g", DataDir: t.TempDir(),
		StompAddr: freeAddr(t), RaftAddr: freeAddr(t), HTTPAddr: freeAddr(t),
		Join:         []string{follower.cfg.HTTPAddr},
		RaftTimeouts: ShortRaftTimeouts(),
		Logger:       testLogger(t).With("node", "n4"),
	}
	g4 := startGroupNode(t, n4)
	nodes = append(nodes, g4)
	waitFor(t, 10*time.Second, "n4 a registered voter", func() bool {
		ms, err := leader.n.Members()
		return err == nil && len(ms) == 4 && slices.ContainsFunc(ms, func(m Member) bool {
			return m.ID == "n4" && m.Suffrage == "Voter" && m.HTTPAddr == n4.HTTPAddr
		})
	})
	// n4 catches up with the log.
	waitFor(t, 10*time.Second, "n4 applied the log", func() bool {
		return g4.n.fsm.AppliedIndex() >= leader.n.fsm.AppliedIndex()
	})

	// Joining again changes nothing.
	var ms []Member
	body := fmt.Sprintf(`{"id":"n4","group":"g","raft_addr":%q,"stomp_addr":%q,"http_addr":%q}`, g4.n.self.RaftAddr, n4.StompAddr, g4.n.self.HTTPAddr)
	if code := doJSON(t, "POST", follower.cfg.HTTPAddr, "/api/v1/members", body, &ms); code != 200 || len(ms) != 4 {
		t.Errorf("repeated join: %d, members %v", code, memberIDs(ms))
	}
	// A join for another group, or stealing an address, is refused.
	var e ErrorResponse
	if code := doJSON(t, "POST", follower.cfg.HTTPAddr, "/api/v1/members", `{"id":"x","group":"other","raft_addr":"127.0.0.1:1"}`, &e); code != http.StatusConflict {
		t.Errorf("join of another group: %d %q, want 409", code, e.Error)
	}
	stolen := fmt.Sprintf(`{"id":"x","group":"g","raft_addr":%q}`, g4.n.self.RaftAddr)
	if code := doJSON(t, "POST", leader.cfg.HTTPAddr, "/api/v1/members", stolen, &e); code != http.StatusConflict {
		t.Errorf("join with a member's raft address: %d %q, want 409", code, e.Error)
	}
	if code := doJSON(t, "POST", leader.cfg.HTTPAddr, "/api/v1/members", `{"id":"x","bogus":1}`, &e); code != http.StatusBadRequest {
		t.Errorf("join with an unknown field: %d %q, want 400", code, e.Error)
	}

	// Stop n4 and remove it through a follower other than the one it
	// joined by.
	g4.n.Close()
	var other *groupNode
	for _, g := range nodes[:3] {
		if g != leader && g != follower {
			other = g
		}
	}
	if code := doJSON(t, "DELETE", other.cfg.HTTPAddr, "/api/v1/members/n4", "", &ms); code != 200 || len(ms) != 3 || slices.Contains(memberIDs(ms), "n4") {
		t.Fatalf("remove n4: %d, members %v", code, memberIDs(ms))
	}
	if code := doJSON(t, "DELETE", other.cfg.HTTPAddr, "/api/v1/members/nobody", "", &e); code != http.StatusNotFound {
		t.Errorf("remove an unknown member: %d %q, want 404", code, e.Error)
	}

	// Hand leadership to a named follower, through another follower.
	var tr TransferResult
	if code := doJSON(t, "POST", other.cfg.HTTPAddr, "/api/v1/leader-transfer", fmt.Sprintf(`{"id":%q}`, follower.cfg.ID), &tr); code != 200 || tr.LeaderID != follower.cfg.ID {
		t.Fatalf("leader transfer: %d %+v, want leader %s", code, tr, follower.cfg.ID)
	}
	if got := leaderOf(t, nodes[:3]); got != follower {
		t.Errorf("serving leader after transfer is %s, want %s", got.cfg.ID, follower.cfg.ID)
	}
	if leader.n.Raft().State() == raft.Leader {
		t.Errorf("old leader %s still leads", leader.cfg.ID)
	}
}

// TestGroupRestartKeepsMembership restarts every member of a formed group:
// none bootstraps again, and they elect a leader from their logs.
func TestGroupRestartKeepsMembership(t *testing.T) {
	cfgs := newGroupConfigs(t, 3)
	var nodes []*groupNode
	for _, c := range cfgs {
		nodes = append(nodes, startGroupNode(t, c))
	}
	leader := leaderOf(t, nodes)
	c := dialSTOMP(t, leader.n.StompAddr())
	c.send(sendFrame("/queue/keep", "kept", "r1"))
	c.expect(stomp.RECEIPT)
	for _, g := range nodes {
		if err := g.n.Close(); err != nil {
			t.Fatalf("close %s: %v", g.cfg.ID, err)
		}
	}
	for i, c := range cfgs {
		nodes[i] = startGroupNode(t, c)
	}
	leader = leaderOf(t, nodes)
	ms, err := leader.n.Members()
	if err != nil || len(ms) != 3 {
		t.Fatalf("members after restart: %v %v", memberIDs(ms), err)
	}
	c = dialSTOMP(t, leader.n.StompAddr())
	c.send(&stomp.Frame{Command: stomp.SUBSCRIBE, Headers: []stomp.Header{{Key: "destination", Value: "/queue/keep"}, {Key: "id", Value: "s"}}})
	if f := c.expect(stomp.MESSAGE); string(f.Body) != "kept" {
		t.Errorf("body %q, want kept", f.Body)
	}
}

// TestBootstrapExpectRefusesExtraNodes: four nodes that each expect three
// must not bootstrap at all (which three?), rather than risk two groups.
func TestBootstrapExpectRefusesExtraNodes(t *testing.T) {
	cfgs := newGroupConfigs(t, 4)
	var nodes []*groupNode
	for _, c := range cfgs {
		c.BootstrapExpect = 3
		nodes = append(nodes, startGroupNode(t, c))
	}
	time.Sleep(2 * time.Second) // several discovery passes
	for _, g := range nodes {
		if info := g.n.Info(); info.Bootstrapped || info.State == "Leader" {
			t.Errorf("%s bootstrapped (state %s) with four candidates for three places", g.cfg.ID, info.State)
		}
		if len(g.n.Info().Discovered) != 4 {
			t.Errorf("%s found %v, want all four", g.cfg.ID, g.n.Info().Discovered)
		}
	}
}
