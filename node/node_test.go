package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/transport/stomp"
)

func testConfig(t *testing.T, dir string) Config {
	return Config{
		DataDir:      dir,
		StompAddr:    "127.0.0.1:0",
		HTTPAddr:     "127.0.0.1:0",
		RaftAddr:     "127.0.0.1:0",
		RaftTimeouts: ShortRaftTimeouts(),
		Logger:       testLogger(t),
	}
}

// startNode starts a node on dir and waits until it serves clients.
func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := n.WaitServing(ctx); err != nil {
		t.Fatalf("WaitServing: %v", err)
	}
	return n
}

// stompConn is a raw STOMP 1.2 client: frames over TCP with the codec.
type stompConn struct {
	t  testing.TB
	nc net.Conn
	r  *stomp.Reader
	w  *stomp.Writer
}

func dialSTOMP(t testing.TB, addr net.Addr) *stompConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &stompConn{t: t, nc: nc, r: stomp.NewReader(nc, stomp.Limits{}), w: stomp.NewWriter(nc)}
	c.send(&stomp.Frame{Command: stomp.CONNECT, Headers: []stomp.Header{
		{Key: "accept-version", Value: "1.2"}, {Key: "host", Value: "raftmq"}, {Key: "heart-beat", Value: "0,0"},
	}})
	f := c.read()
	if f.Command != stomp.CONNECTED || f.Get("version") != "1.2" {
		t.Fatalf("CONNECT answered with %s %v %q", f.Command, f.Headers, f.Body)
	}
	c.r.SetVersion(stomp.V12)
	c.w.SetVersion(stomp.V12)
	return c
}

func (c *stompConn) send(f *stomp.Frame) {
	c.t.Helper()
	if err := c.w.WriteFrame(f); err != nil {
		c.t.Fatalf("write %s: %v", f.Command, err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatalf("flush %s: %v", f.Command, err)
	}
}

func (c *stompConn) read() *stomp.Frame {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := c.r.ReadFrame()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// expect reads one frame and fails unless it is a cmd.
func (c *stompConn) expect(cmd string) *stomp.Frame {
	c.t.Helper()
	f := c.read()
	if f.Command != cmd {
		c.t.Fatalf("got %s %v %q, want %s", f.Command, f.Headers, f.Body, cmd)
	}
	return f
}

func sendFrame(dest, body, receipt string) *stomp.Frame {
	return &stomp.Frame{Command: stomp.SEND, Headers: []stomp.Header{
		{Key: "destination", Value: dest}, {Key: "receipt", Value: receipt},
	}, Body: []byte(body)}
}

func TestNodeServesAndRestarts(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	n := startNode(t, cfg)

	if st := n.Raft().State(); st != raft.Leader {
		t.Fatalf("raft state = %v, want Leader", st)
	}
	c := dialSTOMP(t, n.StompAddr())
	for i := 0; i < 3; i++ {
		c.send(sendFrame("/queue/restart", "m"+strconv.Itoa(i), "r"+strconv.Itoa(i)))
		if got := c.expect(stomp.RECEIPT).Get("receipt-id"); got != "r"+strconv.Itoa(i) {
			t.Fatalf("receipt-id = %q", got)
		}
	}
	applied := n.fsm.AppliedIndex()
	if applied == 0 {
		t.Fatal("applied index still 0 after receipted sends")
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n.StompAddr() != nil {
		t.Error("StompAddr still set after Close")
	}
	if _, err := net.DialTimeout("tcp", c.nc.RemoteAddr().String(), time.Second); err == nil {
		t.Error("client port still open after Close")
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// Restart on the same directory: the state is still there before raft
	// starts, raft's configuration comes from the log (no bootstrap), and
	// the messages are delivered.
	cfg = testConfig(t, dir)
	n2, err := New(cfg)
	if err != nil {
		t.Fatalf("New after restart: %v", err)
	}
	t.Cleanup(func() { n2.Close() })
	if got := n2.fsm.AppliedIndex(); got != applied {
		t.Fatalf("applied index after restart = %d, want %d", got, applied)
	}
	has, err := raft.HasExistingState(n2.logStore, n2.logStore, n2.snapshots)
	if err != nil || !has {
		t.Fatalf("HasExistingState = %v, %v; want true", has, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n2.Start(ctx); err != nil {
		t.Fatalf("Start after restart: %v", err)
	}
	if err := n2.WaitServing(ctx); err != nil {
		t.Fatalf("WaitServing after restart: %v", err)
	}
	fut := n2.Raft().GetConfiguration()
	if err := fut.Error(); err != nil {
		t.Fatalf("GetConfiguration: %v", err)
	}
	if servers := fut.Configuration().Servers; len(servers) != 1 || servers[0].ID != raft.ServerID(DefaultID) {
		t.Fatalf("configuration = %+v, want the one bootstrapped server", servers)
	}
	expectMessages(t, dialSTOMP(t, n2.StompAddr()), "/queue/restart", "m0", "m1", "m2")
}

// expectMessages subscribes to dest and checks the bodies arrive in order.
func expectMessages(t *testing.T, c *stompConn, dest string, bodies ...string) {
	t.Helper()
	c.send(&stomp.Frame{Command: stomp.SUBSCRIBE, Headers: []stomp.Header{
		{Key: "id", Value: "s1"}, {Key: "destination", Value: dest}, {Key: "ack", Value: "auto"},
	}})
	for _, want := range bodies {
		f := c.expect(stomp.MESSAGE)
		if string(f.Body) != want {
			t.Fatalf("message body = %q, want %q", f.Body, want)
		}
	}
	// And nothing more: replaying the log on restart must not apply an
	// entry twice.
	c.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if f, err := c.r.ReadFrame(); err == nil {
		t.Fatalf("unexpected %s %v %q", f.Command, f.Headers, f.Body)
	}
}

// sendReceipted sends one persistent message to n and waits for its
// receipt: it is then committed and applied.
func sendReceipted(t *testing.T, n *Node, dest, body string) {
	t.Helper()
	c := dialSTOMP(t, n.StompAddr())
	c.send(sendFrame(dest, body, "r1"))
	c.expect(stomp.RECEIPT)
}

func TestNodeRestoresWipedState(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, testConfig(t, dir))
	sendReceipted(t, n, "/queue/snap", "before")
	if err := n.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	snapIndex := n.fsm.AppliedIndex()
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Lose the state: raft resumes after the snapshot, so New must bring
	// the state back from it or the message would be gone.
	if err := os.RemoveAll(filepath.Join(dir, "fsm")); err != nil {
		t.Fatal(err)
	}
	n2 := startNode(t, testConfig(t, dir))
	if got := n2.fsm.AppliedIndex(); got < snapIndex {
		t.Fatalf("applied index = %d, want at least the snapshot's %d", got, snapIndex)
	}
	expectMessages(t, dialSTOMP(t, n2.StompAddr()), "/queue/snap", "before")
}

// TestNodeRestartsAfterSnapshotOfNoops: a snapshot taken right after an
// election has a raft index above the FSM's applied index (the election's
// no-op and the leader's barrier never reach a batching FSM). A restart
// must neither fail nor restore needlessly.
func TestNodeRestartsAfterSnapshotOfNoops(t *testing.T) {
	dir := t.TempDir()
	// Fixed addresses: a node whose addresses changed records them anew
	// (a command the FSM sees), which this test must not have at the end.
	cfg := testConfig(t, dir)
	cfg.RaftAddr, cfg.HTTPAddr = freeAddr(t), freeAddr(t)
	n := startNode(t, cfg)
	sendReceipted(t, n, "/queue/noop", "kept")
	waitFor(t, 5*time.Second, "the node's addresses recorded", func() bool {
		recs, err := n.records()
		return err == nil && recs[n.cfg.ID] == n.self
	})
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	n = startNode(t, cfg) // a new term: no-op and barrier entries
	if err := n.Raft().Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if last, applied := n.Raft().LastIndex(), n.fsm.AppliedIndex(); last <= applied {
		t.Fatalf("raft last index %d, FSM applied %d: the test needs entries the FSM never sees", last, applied)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	n = startNode(t, cfg)
	expectMessages(t, dialSTOMP(t, n.StompAddr()), "/queue/noop", "kept")
}

// TestNodeRefusesStateWithoutLog: state that lost its raft log must not
// start over on a fresh log (its indexes would be below the applied index
// and every command would be skipped).
func TestNodeRefusesStateWithoutLog(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, testConfig(t, dir))
	sendReceipted(t, n, "/queue/q", "x")
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "raft")); err != nil {
		t.Fatal(err)
	}
	n2, err := New(testConfig(t, dir))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer n2.Close()
	err = n2.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no raft log") {
		t.Fatalf("Start on state without a raft log: err = %v, want a refusal", err)
	}
}

func TestNodeGroupCommit(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	first := n.Raft().LastIndex()

	const conns, perConn = 16, 100
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		c := dialSTOMP(t, n.StompAddr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Pipeline every SEND, then collect the receipts: the
			// broker sees many sends at once, as under load.
			for j := 0; j < perConn; j++ {
				if err := c.w.WriteFrame(sendFrame("/queue/gc", "x", strconv.Itoa(j))); err != nil {
					errs <- err
					return
				}
			}
			if err := c.w.Flush(); err != nil {
				errs <- err
				return
			}
			c.nc.SetReadDeadline(time.Now().Add(20 * time.Second))
			for j := 0; j < perConn; j++ {
				f, err := c.r.ReadFrame()
				if err != nil {
					errs <- err
					return
				}
				if f.Command != stomp.RECEIPT {
					errs <- fmt.Errorf("got %s %v", f.Command, f.Headers)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	entries := n.Raft().LastIndex() - first
	if entries >= conns*perConn {
		t.Errorf("%d log entries for %d sends: no group commit", entries, conns*perConn)
	}
	t.Logf("%d receipted sends from %d connections in %d raft log entries", conns*perConn, conns, entries)
}

func TestNodeLifecycleErrors(t *testing.T) {
	n, err := New(testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if n.Raft() != nil || n.StompAddr() != nil {
		t.Error("raft or client address before Start")
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close before Start: %v", err)
	}
	if err := n.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	if err := n.WaitServing(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitServing after Close = %v, want ErrClosed", err)
	}

	// A second process on the same data directory fails instead of
	// waiting for the lock or corrupting the stores.
	dir := t.TempDir()
	n1, err := New(testConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer n1.Close()
	if n2, err := New(testConfig(t, dir)); err == nil {
		n2.Close()
		t.Error("second node on the same directory opened")
	}

	// WaitServing honours its context while the node does not lead.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := n1.WaitServing(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitServing before Start = %v, want deadline exceeded", err)
	}
}

func TestNodeStompPortBusy(t *testing.T) {
	// The leader keeps trying to open its client port rather than lead
	// without serving; it serves as soon as the port is free.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, t.TempDir())
	cfg.StompAddr = busy.Addr().String()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "leadership", func() bool { return n.Raft().State() == raft.Leader })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := n.WaitServing(ctx); err == nil {
		t.Fatal("serving on a busy port")
	}
	busy.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.WaitServing(ctx); err != nil {
		t.Fatalf("WaitServing once the port is free: %v", err)
	}
	if got := n.StompAddr().String(); got != cfg.StompAddr {
		t.Errorf("serving on %s, want %s", got, cfg.StompAddr)
	}
}

func TestConfigValidate(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	if c.ID != "n1" || c.Group != "default" || c.DataDir != "./raftmq-data" ||
		c.StompAddr != "127.0.0.1:61613" || c.RaftAddr != "127.0.0.1:61619" ||
		c.Queue.MessageIDPrefix != "default-n1" || c.SnapshotThreshold != 2048 ||
		c.MaxBatchCommands != 1024 || c.MaxBatchBytes != 4<<20 || c.MaxInflightEntries != 64 ||
		c.Logger == nil || c.Transport.ServerName == "" || c.Queue.DefaultPrefetch == 0 {
		t.Errorf("defaults not filled: %+v", c)
	}

	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string
	}{
		"stomp address":     {func(c *Config) { c.StompAddr = "nope" }, "stomp address"},
		"raft address":      {func(c *Config) { c.RaftAddr = "nope" }, "raft address"},
		"advertise any":     {func(c *Config) { c.RaftAdvertise = "0.0.0.0:7000" }, "advertise"},
		"raft on any":       {func(c *Config) { c.RaftAddr = ":7000" }, "advertise address"},
		"raft on 0.0.0.0":   {func(c *Config) { c.RaftAddr = "0.0.0.0:7000" }, "advertise address"},
		"snapshot interval": {func(c *Config) { c.SnapshotInterval = time.Millisecond }, "SnapshotInterval"},
		"advertise no port": {func(c *Config) { c.RaftAdvertise = "10.0.0.1" }, "advertise"},
		"negative inflight": {func(c *Config) { c.MaxInflightEntries = -1 }, "group commit"},
		"negative batch":    {func(c *Config) { c.MaxBatchBytes = -1 }, "group commit"},
		"lease > heartbeat": {func(c *Config) {
			c.RaftTimeouts = RaftTimeouts{Heartbeat: 100 * time.Millisecond, LeaderLease: time.Second}
		}, "LeaderLeaseTimeout"},
		"queue":     {func(c *Config) { c.Queue.MaxDeliveries = -1 }, "queue"},
		"transport": {func(c *Config) { c.Transport.WriteTimeout = -1 }, "transport"},
	} {
		c := Config{}
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, tc.want)
		}
	}

	c = Config{RaftAddr: "0.0.0.0:7000", RaftAdvertise: "10.0.0.1:7000"}
	if err := c.Validate(); err != nil {
		t.Errorf("raft on every interface with an advertise address: %v", err)
	}
	c = Config{Group: "east", ID: "e2"}
	if err := c.Validate(); err != nil || c.Queue.MessageIDPrefix != "east-e2" {
		t.Errorf("prefix = %q (%v), want east-e2", c.Queue.MessageIDPrefix, err)
	}
	c = Config{Group: "east", ID: "e2"}
	c.Queue.MessageIDPrefix = "mine"
	if err := c.Validate(); err != nil || c.Queue.MessageIDPrefix != "mine" {
		t.Errorf("prefix = %q (%v), want mine", c.Queue.MessageIDPrefix, err)
	}
}

// BenchmarkNodeSend measures receipted persistent SENDs through the whole
// leader path (STOMP, engine, group commit, raft with fsync, pebble):
// 16 connections, each keeping 64 SENDs unreceipted.
func BenchmarkNodeSend(b *testing.B) {
	cfg := Config{
		DataDir:      b.TempDir(),
		StompAddr:    "127.0.0.1:0",
		HTTPAddr:     "127.0.0.1:0",
		RaftAddr:     "127.0.0.1:0",
		RaftTimeouts: ShortRaftTimeouts(),
		Logger:       slog.New(slog.DiscardHandler),
	}
	n, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		b.Fatal(err)
	}
	if err := n.WaitServing(ctx); err != nil {
		b.Fatal(err)
	}
	const conns, window = 16, 64
	body := make([]byte, 256)
	first := n.Raft().LastIndex()
	b.ResetTimer()
	var wg sync.WaitGroup
	var failed atomic.Bool
	for i := 0; i < conns; i++ {
		total := b.N / conns
		if i < b.N%conns {
			total++
		}
		c := dialSTOMP(b, n.StompAddr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent, recvd := 0, 0
			for recvd < total {
				for sent < total && sent-recvd < window {
					f := sendFrame("/queue/bench", "", strconv.Itoa(sent))
					f.Body = body
					if c.w.WriteFrame(f) != nil {
						failed.Store(true)
						return
					}
					sent++
				}
				if c.w.Flush() != nil {
					failed.Store(true)
					return
				}
				f, err := c.r.ReadFrame()
				if err != nil || f.Command != stomp.RECEIPT {
					failed.Store(true)
					return
				}
				recvd++
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if failed.Load() {
		b.Fatal("a connection failed")
	}
	b.ReportMetric(float64(b.N)/float64(n.Raft().LastIndex()-first), "sends/entry")
}
