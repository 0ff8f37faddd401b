package gossip

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testLogger discards memberlist's chatter unless GOSSIP_TEST_LOG is set.
// (t.Log cannot be used: memberlist goroutines may log after a test ends.)
func testLogger() *slog.Logger {
	if os.Getenv("GOSSIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// kill stops memberlist without leaving, as a crash would: the others
// find out by failure detection. For tests.
func (p *Pool) kill() {
	p.life.Lock()
	defer p.life.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.done)
	p.wg.Wait()
	_ = p.ml.Shutdown()
}

func testMeta(group, id string) Meta {
	return Meta{Group: group, ID: id, Stomp: "127.0.0.1:61613", Raft: "127.0.0.1:7000", HTTP: "127.0.0.1:8161"}
}

// start runs a pool with fast timing on a free loopback port and closes
// it when the test ends.
func start(t *testing.T, cfg Config) *Pool {
	t.Helper()
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	cfg.Fast = true
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	p, err := Start(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Meta.Name(), err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func names(ms []Member) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.Name
	}
	return strings.Join(s, ",")
}

func member(p *Pool, name string) (Member, bool) {
	for _, m := range p.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// trio starts a, then b and c joining through a, and waits until all three
// see all three.
func trio(t *testing.T) (a, b, c *Pool) {
	t.Helper()
	a = start(t, Config{Meta: testMeta("g1", "a")})
	b = start(t, Config{Meta: testMeta("g1", "b"), Join: []string{a.Addr()}})
	c = start(t, Config{Meta: testMeta("g2", "c"), Join: []string{a.Addr()}})
	for _, p := range []*Pool{a, b, c} {
		waitFor(t, 10*time.Second, p.Name()+" sees three", func() bool {
			return names(p.Members()) == "g1/a,g1/b,g2/c"
		})
	}
	return a, b, c
}

func TestPoolsMeetThroughSeed(t *testing.T) {
	a, b, c := trio(t)
	for _, p := range []*Pool{a, b, c} {
		if !strings.HasPrefix(p.Addr(), "127.0.0.1:") || strings.HasSuffix(p.Addr(), ":0") {
			t.Fatalf("%s Addr = %q, want 127.0.0.1 and the picked port", p.Name(), p.Addr())
		}
		for _, q := range []*Pool{a, b, c} {
			m, _ := member(p, q.Name())
			if m.Addr != q.Addr() || m.Meta != q.Meta() {
				t.Fatalf("%s sees %+v, want addr %s meta %+v", p.Name(), m, q.Addr(), q.Meta())
			}
		}
	}
	select {
	case <-a.Changed():
	default:
		t.Fatal("a.Changed not signalled after joins")
	}
}

func TestSetMetaPropagates(t *testing.T) {
	a, b, c := trio(t)
	select { // drop the joins' signal, if one is still pending
	case <-a.Changed():
	default:
	}
	m := b.Meta()
	m.Role, m.Term, m.Network = RoleLeader, 3, true
	if err := b.SetMeta(m); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Pool{a, b, c} {
		waitFor(t, 5*time.Second, p.Name()+" sees b leader of term 3", func() bool {
			got, ok := member(p, "g1/b")
			return ok && got.Meta == m
		})
	}
	select {
	case <-a.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("a.Changed not signalled after b's meta update")
	}
	// Name is fixed.
	m.ID = "other"
	if err := b.SetMeta(m); err == nil {
		t.Fatal("SetMeta with another id: want error")
	}
}

func TestCloseLeaves(t *testing.T) {
	a, b, c := trio(t)
	begin := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, p := range []*Pool{a, b} {
		waitFor(t, 5*time.Second, p.Name()+" drops the leaver", func() bool {
			return names(p.Members()) == "g1/a,g1/b"
		})
	}
	t.Logf("left member gone from the others after %v", time.Since(begin).Round(time.Millisecond))
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := c.SetMeta(c.Meta()); err != ErrClosed {
		t.Fatalf("SetMeta after Close = %v, want ErrClosed", err)
	}
}

func TestKilledMemberDisappears(t *testing.T) {
	a, b, c := trio(t)
	begin := time.Now()
	c.kill()
	for _, p := range []*Pool{a, b} {
		waitFor(t, 10*time.Second, p.Name()+" drops the dead member", func() bool {
			return names(p.Members()) == "g1/a,g1/b"
		})
	}
	t.Logf("killed member gone from the others after %v (fast timing)", time.Since(begin).Round(time.Millisecond))
}

func TestRestartSameName(t *testing.T) {
	a, b, c := trio(t)

	// A crash and a restart at the same address: the new incarnation
	// refutes the old one at once.
	addr := c.Addr()
	c.kill()
	c2 := start(t, Config{Bind: addr, Meta: testMeta("g2", "c"), Join: []string{a.Addr()}})
	if c2.Addr() != addr {
		t.Fatalf("restarted at %s, want %s", c2.Addr(), addr)
	}
	m := c2.Meta()
	m.Role = RoleFollower
	if err := c2.SetMeta(m); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Pool{a, b, c2} {
		waitFor(t, 10*time.Second, p.Name()+" sees the restarted c", func() bool {
			got, ok := member(p, "g2/c")
			return ok && got.Meta.Role == RoleFollower && names(p.Members()) == "g1/a,g1/b,g2/c"
		})
	}

	// A crash and a restart at another address: refused while the old
	// entry lives, accepted once it is dead for DeadNodeReclaimTime.
	c2.kill()
	begin := time.Now()
	c3 := start(t, Config{Meta: testMeta("g2", "c"), Join: []string{b.Addr()}})
	for _, p := range []*Pool{a, b} {
		waitFor(t, 15*time.Second, p.Name()+" sees c at its new address", func() bool {
			got, ok := member(p, "g2/c")
			return ok && got.Addr == c3.Addr()
		})
	}
	t.Logf("crashed member back at a new address after %v", time.Since(begin).Round(time.Millisecond))
}

func TestWrongKeyCannotJoin(t *testing.T) {
	key := make([]byte, 32)
	other := make([]byte, 32)
	other[0] = 1
	a := start(t, Config{Meta: testMeta("g1", "a"), Keys: [][]byte{key}})
	wrong := start(t, Config{Meta: testMeta("g1", "wrong"), Keys: [][]byte{other}, Join: []string{a.Addr()}})
	plain := start(t, Config{Meta: testMeta("g1", "plain"), Join: []string{a.Addr()}})
	good := start(t, Config{Meta: testMeta("g1", "good"), Keys: [][]byte{key}, Join: []string{a.Addr()}})

	waitFor(t, 10*time.Second, "good joins, the others try 3 times", func() bool {
		return names(a.Members()) == "g1/a,g1/good" && wrong.joins.Load() >= 3 && plain.joins.Load() >= 3
	})
	for _, p := range []*Pool{a, good} {
		if got := names(p.Members()); got != "g1/a,g1/good" {
			t.Fatalf("%s members = %s, want only the keyed nodes", p.Name(), got)
		}
	}
	for _, p := range []*Pool{wrong, plain} {
		if got := names(p.Members()); got != p.Name() {
			t.Fatalf("%s members = %s, want itself alone", p.Name(), got)
		}
	}
}

// TestKeyRotation rotates the pool's key in the three documented rounds
// while it stays one pool, then checks that only the new key gets in.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := make([]byte, 32), make([]byte, 32)
	newKey[0] = 1
	a := start(t, Config{Meta: testMeta("g1", "a"), Keys: [][]byte{oldKey}})
	b := start(t, Config{Meta: testMeta("g1", "b"), Keys: [][]byte{oldKey}, Join: []string{a.Addr()}})
	waitFor(t, 10*time.Second, "b joins", func() bool { return names(a.Members()) == "g1/a,g1/b" })

	rounds := [][][]byte{{oldKey, newKey}, {newKey, oldKey}, {newKey}}
	for i, keys := range rounds {
		for _, p := range []*Pool{a, b} {
			if err := p.SetKeys(keys); err != nil {
				t.Fatalf("round %d: %s: %v", i+1, p.Name(), err)
			}
		}
		// Gossip keeps flowing: a metadata change crosses in each round.
		m := a.Meta()
		m.Term = uint64(i + 1)
		if err := a.SetMeta(m); err != nil {
			t.Fatalf("round %d: set meta: %v", i+1, err)
		}
		waitFor(t, 10*time.Second, fmt.Sprintf("round %d: b sees a's term %d", i+1, i+1), func() bool {
			for _, mem := range b.Members() {
				if mem.Meta.ID == "a" && mem.Meta.Term == uint64(i+1) {
					return true
				}
			}
			return false
		})
	}

	stale := start(t, Config{Meta: testMeta("g1", "stale"), Keys: [][]byte{oldKey}, Join: []string{a.Addr()}})
	start(t, Config{Meta: testMeta("g1", "fresh"), Keys: [][]byte{newKey}, Join: []string{a.Addr()}})
	waitFor(t, 10*time.Second, "fresh joins, stale keeps trying", func() bool {
		return names(a.Members()) == "g1/a,g1/b,g1/fresh" && stale.joins.Load() >= 3
	})
	if got := names(stale.Members()); got != stale.Name() {
		t.Fatalf("stale members = %s, want itself alone", got)
	}

	plain := start(t, Config{Meta: testMeta("g1", "plain")})
	if err := plain.SetKeys([][]byte{newKey}); err == nil {
		t.Fatal("SetKeys turned encryption on in a plaintext pool")
	}
	if err := a.SetKeys(nil); err == nil {
		t.Fatal("SetKeys(nil) turned encryption off")
	}
}

// freePort finds a port free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func TestJoinBeforeSeedExists(t *testing.T) {
	seed := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	b := start(t, Config{Meta: testMeta("g1", "b"), Join: []string{seed}})
	waitFor(t, 5*time.Second, "b tries the missing seed twice", func() bool { return b.joins.Load() >= 2 })
	if got := names(b.Members()); got != "g1/b" {
		t.Fatalf("b members before the seed = %s", got)
	}
	a := start(t, Config{Bind: seed, Meta: testMeta("g1", "a")})
	for _, p := range []*Pool{a, b} {
		waitFor(t, 10*time.Second, p.Name()+" sees both", func() bool { return names(p.Members()) == "g1/a,g1/b" })
	}

	// Alone again (the seed left), b goes back to joining, and finds the
	// seed when it returns.
	a.Close()
	waitFor(t, 5*time.Second, "b alone", func() bool { return names(b.Members()) == "g1/b" })
	a2 := start(t, Config{Bind: seed, Meta: testMeta("g1", "a")})
	waitFor(t, 10*time.Second, "the new a sees b", func() bool { return names(a2.Members()) == "g1/a,g1/b" })
}

// TestCloseStopsJoiner checks that Close leaves no goroutine behind, ours
// or memberlist's. (The tests of this package do not run in parallel, and
// earlier tests closed their pools.)
func TestCloseStopsJoiner(t *testing.T) {
	seed := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	p := start(t, Config{Meta: testMeta("g1", "b"), Join: []string{seed}})
	waitFor(t, 5*time.Second, "a join attempt", func() bool { return p.joins.Load() >= 1 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		var left []string
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "gossip.(*Pool)") || strings.Contains(g, "memberlist.") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Close:\n%s", strings.Join(left, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAdvertise(t *testing.T) {
	p := start(t, Config{Bind: "0.0.0.0:0", Advertise: "127.0.0.1", Meta: testMeta("g1", "a")})
	host, port, err := net.SplitHostPort(p.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr = %q, want 127.0.0.1 and the picked port", p.Addr())
	}
	q := start(t, Config{Meta: testMeta("g1", "b"), Join: []string{p.Addr()}})
	waitFor(t, 10*time.Second, "join through the advertised address", func() bool {
		return names(q.Members()) == "g1/a,g1/b"
	})
}

func TestStartErrors(t *testing.T) {
	big := testMeta("g1", "a")
	big.Stomp = strings.Repeat("x", 600)
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no id", Config{Bind: "127.0.0.1:0", Meta: Meta{Group: "g1"}}, "group and id are required"},
		{"slash in group", Config{Bind: "127.0.0.1:0", Meta: testMeta("g/1", "a")}, "must not contain"},
		{"meta too large", Config{Bind: "127.0.0.1:0", Meta: big}, "meta too large"},
		{"bad bind port", Config{Bind: "127.0.0.1:http", Meta: testMeta("g1", "a")}, "bad port"},
		{"bad join port", Config{Bind: "127.0.0.1:0", Join: []string{"h:99999"}, Meta: testMeta("g1", "a")}, "bad port"},
		{"advertise without host", Config{Bind: "127.0.0.1:0", Advertise: ":7000", Meta: testMeta("g1", "a")}, "a host is required"},
		{"bad key", Config{Bind: "127.0.0.1:0", Keys: [][]byte{[]byte("short")}, Meta: testMeta("g1", "a")}, "gossip key"},
		{"bind v6 any", Config{Bind: "[::]:0", Meta: testMeta("g1", "a")}, "advertise"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Logger = testLogger()
			p, err := Start(c.cfg)
			if err == nil {
				p.Close()
				t.Fatal("want error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}

	a := start(t, Config{Meta: testMeta("g1", "a")})
	_, err := Start(Config{Bind: a.Addr(), Meta: testMeta("g1", "b"), Logger: testLogger()})
	if err == nil || !strings.Contains(err.Error(), "gossip start on "+a.Addr()) {
		t.Fatalf("bind a used port: err = %v", err)
	}
}

func TestSetMetaTooLarge(t *testing.T) {
	a := start(t, Config{Meta: testMeta("g1", "a")})
	m := a.Meta()
	m.HTTP = strings.Repeat("h", 600)
	if err := a.SetMeta(m); err == nil || !strings.Contains(err.Error(), ErrMetaTooLarge.Error()) {
		t.Fatalf("SetMeta(too large) = %v, want ErrMetaTooLarge", err)
	}
	if a.Meta().HTTP == m.HTTP {
		t.Fatal("a too large meta was kept")
	}
}

// TestDetectionTimeLAN measures how long the default LAN timing takes to
// drop a crashed member. It takes several seconds, so it runs only when
// GOSSIP_MEASURE is set.
func TestDetectionTimeLAN(t *testing.T) {
	if os.Getenv("GOSSIP_MEASURE") == "" {
		t.Skip("set GOSSIP_MEASURE=1 to measure LAN failure detection")
	}
	for _, fast := range []bool{false, true} {
		for _, n := range []int{2, 3, 5} {
			var pools []*Pool
			for i := range n {
				cfg := Config{Bind: "127.0.0.1:0", Fast: fast, Logger: testLogger(), Meta: testMeta("g", fmt.Sprint(i))}
				if i > 0 {
					cfg.Join = []string{pools[0].Addr()}
				}
				p, err := Start(cfg)
				if err != nil {
					t.Fatal(err)
				}
				pools = append(pools, p)
			}
			waitFor(t, 30*time.Second, "all meet", func() bool {
				for _, p := range pools {
					if len(p.Members()) != n {
						return false
					}
				}
				return true
			})
			begin := time.Now()
			pools[n-1].kill()
			seen := make([]time.Duration, n-1)
			waitFor(t, 60*time.Second, "dead dropped", func() bool {
				all := true
				for i, p := range pools[:n-1] {
					if seen[i] == 0 && len(p.Members()) == n-1 {
						seen[i] = time.Since(begin).Round(10 * time.Millisecond)
					}
					all = all && seen[i] != 0
				}
				return all
			})
			t.Logf("fast=%v nodes=%d: crashed member dropped after %v", fast, n, seen)
			if n > 2 {
				begin = time.Now()
				pools[n-2].Close()
				waitFor(t, 60*time.Second, "leaver dropped", func() bool {
					for _, p := range pools[:n-2] {
						if len(p.Members()) != n-2 {
							return false
						}
					}
					return true
				})
				t.Logf("fast=%v nodes=%d: closed member dropped by all after %v", fast, n, time.Since(begin).Round(10*time.Millisecond))
			}
			for _, p := range pools[:n-1] {
				p.Close()
			}
		}
	}
}
