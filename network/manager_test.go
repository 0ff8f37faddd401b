package network

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport"
	"github.com/raftmq/raftmq/transport/stomp"
)

type fakeDiscovery struct {
	mu      sync.Mutex
	peers   []Peer
	changed chan struct{}
}

func (f *fakeDiscovery) Peers() []Peer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Peer(nil), f.peers...)
}

func (f *fakeDiscovery) Changed() <-chan struct{} { return f.changed }

func (f *fakeDiscovery) set(peers ...Peer) {
	f.mu.Lock()
	f.peers = peers
	f.mu.Unlock()
}

type fakeEngine struct{ changed chan struct{} }

func (fakeEngine) Demand() []queue.Demand                           { return nil }
func (e fakeEngine) DemandChanged() <-chan struct{}                 { return e.changed }
func (fakeEngine) PublishSystem(string, []fsm.Header, []byte) error { return nil }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestManager(t *testing.T, group string, d Discovery, links ...string) *Manager {
	t.Helper()
	var specs []Spec
	for _, l := range links {
		sp, err := ParseSpec(l)
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, sp)
	}
	m, err := New(Config{Group: group, Links: specs, Discovery: d, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *Manager) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ks []string
	for k := range m.bridges {
		ks = append(ks, k)
	}
	return ks
}

// A gossip link bridges to every other group, except one with a smaller
// name that links by gossip too (it dials us) and excluded ones, and
// drops the bridge when the group's last node leaves the pool.
func TestGossipLinksGroups(t *testing.T) {
	d := &fakeDiscovery{changed: make(chan struct{}, 1)}
	// Nothing listens on port 1: the bridges exist but never connect.
	d.set(
		Peer{Group: "m", ID: "n1", Stomp: "127.0.0.1:1", Network: true}, // ourselves
		Peer{Group: "a", ID: "n1", Stomp: "127.0.0.1:1", Network: true}, // smaller, links: it dials
		Peer{Group: "b", ID: "n1", Stomp: "127.0.0.1:1"},                // smaller, does not link: we dial
		Peer{Group: "x", ID: "n1", Stomp: "127.0.0.1:1", Network: true}, // larger: we dial
		Peer{Group: "staging", ID: "n1", Stomp: "127.0.0.1:1"},          // excluded
	)
	m := newTestManager(t, "m", d, "gossip?excludedGroups=staging")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Lead(ctx, fakeEngine{make(chan struct{})}, "tcp://127.0.0.1:1")
	}()
	defer func() { cancel(); <-done }()
	waitKeys(t, m, "gossip:b gossip:x")
	d.set(Peer{Group: "x", ID: "n2", Stomp: "127.0.0.1:1", Network: true})
	d.changed <- struct{}{}
	waitKeys(t, m, "gossip:x")
	st := m.Status()
	if !st.Leader || len(st.Bridges) != 1 || st.Bridges[0].RemoteGroup != "x" || st.Bridges[0].Direction != "outbound" {
		t.Errorf("status %+v", st)
	}
}

func waitKeys(t *testing.T, m *Manager, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ks := m.keys()
		sortStrings(ks)
		if strings.Join(ks, " ") == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridges %q, want %q", ks, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

func TestAdmit(t *testing.T) {
	m := newTestManager(t, "b", nil)
	connect := func(group string) *stomp.Frame {
		f := &stomp.Frame{Command: stomp.CONNECT}
		if group != "" {
			f.Headers = append(f.Headers, stomp.Header{Key: transport.HeaderBridgeGroup, Value: group})
		}
		return f
	}
	if release, err := m.Admit(connect(""), "c:1"); err != nil || release != nil {
		t.Fatalf("plain client: %v", err)
	}
	if _, err := m.Admit(connect("b"), "c:1"); err == nil {
		t.Fatal("a bridge from our own group was admitted")
	}
	release, err := m.Admit(connect("a"), "c:2")
	if err != nil {
		t.Fatal(err)
	}
	if st := m.Status(); len(st.Bridges) != 1 || st.Bridges[0].RemoteGroup != "a" || st.Bridges[0].Direction != "inbound" {
		t.Fatalf("status %+v", st)
	}
	release()
	if st := m.Status(); len(st.Bridges) != 0 {
		t.Fatalf("released bridge still listed: %+v", st)
	}

	// b keeps a connected bridge to c: c's bridge to b is redundant, as
	// b's name is smaller; a's is not (a < b: b's bridge to a would be
	// refused by a instead).
	for _, g := range []string{"a", "c"} {
		br := newBridge("b", "static", "failover:(tcp://127.0.0.1:1)", "", DefaultOptions(), quietLogger(), m.yields)
		br.st.RemoteGroup = g
		br.setState(StateConnected, nil)
		m.bridges["static#"+g] = &running{b: br}
	}
	if _, err := m.Admit(connect("c"), "c:3"); err == nil || !strings.Contains(err.Error(), redundantText) {
		t.Errorf("redundant bridge from c: %v", err)
	}
	// a's bridge is admitted, and b's own bridge to a stands down: its
	// session ends as redundant, and it waits while a's is there.
	var cause error
	br := m.bridges["static#a"].b
	ctx, cancel := context.WithCancelCause(context.Background())
	br.cancelSession = cancel
	release, err = m.Admit(connect("a"), "c:4")
	if err != nil {
		t.Fatalf("bridge from a: %v", err)
	}
	if cause = context.Cause(ctx); !errors.Is(cause, errRedundant) {
		t.Errorf("b's own bridge to a not stood down: %v", cause)
	}
	if !m.yields("a") || m.yields("c") {
		t.Errorf("yields(a) = %v, yields(c) = %v; want true, false", m.yields("a"), m.yields("c"))
	}
	release()
	if m.yields("a") {
		t.Error("still yields to a after its bridge left")
	}
}
