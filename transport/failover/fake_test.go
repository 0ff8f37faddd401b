package failover

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/stomp"
)

// This file holds the test helpers: a tiny STOMP server for what a real
// node cannot be made to do (announce other brokers, refuse a frame at
// will, never receipt), loggers, and the goroutine leak check.

// waitLong bounds what should happen promptly; generous, for the race
// detector on a small machine.
const waitLong = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testLogger logs to the test's output, and drops what goroutines still
// write after the test ended (testing panics on that).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(w.stop) // registered first, so it runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu      sync.Mutex
	w       io.Writer
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return len(p), nil
	}
	return w.w.Write(p)
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

// dialT dials and, at the end of the test, closes the client and checks
// that none of its goroutines is left.
func dialT(t *testing.T, url string, opts Options) *Client {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	leakCheck(t)
	c, err := Dial(testCtx(t), url, opts)
	if err != nil {
		t.Fatalf("Dial(%q): %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var leakChecked sync.Map // testing.TB → true

// leakCheck makes the test check, after the cleanups registered later
// (clients' Close), that no goroutine of the package is left.
func leakCheck(t testing.TB) {
	if _, done := leakChecked.LoadOrStore(t, true); !done {
		t.Cleanup(func() {
			checkGoroutines(t)
			leakChecked.Delete(t)
		})
	}
}

// checkGoroutines fails the test if goroutines of this package or of
// transport/client are still running (the test's own excepted).
func checkGoroutines(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaked := leakedGoroutines()
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutine(s) left after Close:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func leakedGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		for line := range strings.SplitSeq(g, "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "/") || strings.Contains(line, "_test.go:") {
				continue // not a file line, or the tests' own code
			}
			if strings.Contains(line, "/transport/failover/") || strings.Contains(line, "/transport/client/") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// waitFor polls cond until it holds or waitLong passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freeAddr returns a loopback address nothing listens on (a refused
// connection), which a test may then listen on. The port is below Linux's
// ephemeral range: no outgoing connection takes it meanwhile, and a
// client dialing it cannot connect to itself (TCP's simultaneous open
// when source and destination ports match).
func freeAddr(t testing.TB) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if portsGiven[addr] {
			continue
		}
		if ln, err := net.Listen("tcp", addr); err == nil {
			_ = ln.Close()
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

func receive(t testing.TB, sub *Subscription) *Message {
	t.Helper()
	select {
	case m, ok := <-sub.C():
		if !ok {
			t.Fatalf("subscription %s closed: %v", sub.ID(), sub.Err())
		}
		return m
	case <-time.After(waitLong):
		t.Fatalf("no message on %s", sub.ID())
		return nil
	}
}

func noMessage(t testing.TB, sub *Subscription, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-sub.C():
		if ok {
			t.Fatalf("unexpected message %q on %s", m.Body, sub.ID())
		}
	case <-time.After(d):
	}
}

// fakeServer is a STOMP server for the tests. It answers receipts, keeps
// subscriptions per connection and delivers each SEND to the subscribers
// of its destination on every connection. Hooks change its behaviour;
// set them before clients connect, or under mu.
type fakeServer struct {
	t    *testing.T
	addr string

	mu sync.Mutex
	// connected, if set, builds the reply to CONNECT (nil: swallow it).
	connected func(connect *stomp.Frame) *stomp.Frame
	// brokers, if set, is the raftmq-brokers header of CONNECTED.
	brokers string
	// handle, if set, sees every frame after CONNECT first; true means
	// it handled the frame.
	handle  func(fc *fakeConn, f *stomp.Frame) bool
	tls     *tls.Config // if set, the server speaks TLS
	ln      net.Listener
	conns   map[*fakeConn]struct{}
	msgID   int
	accepts []time.Time

	frames chan *stomp.Frame // every frame received, CONNECT included
	wg     sync.WaitGroup
}

type fakeConn struct {
	srv  *fakeServer
	nc   net.Conn
	r    *stomp.Reader
	wmu  sync.Mutex
	w    *stomp.Writer
	v    stomp.Version
	subs map[string]string // id → destination, under srv.mu
}

// newFake listens on addr ("" for a free port).
func newFake(t *testing.T, addr string) *fakeServer {
	t.Helper()
	return newFakeTLS(t, addr, nil)
}

// newFakeTLS listens on addr ("" for a free port), speaking TLS with cfg
// (plain TCP if nil).
func newFakeTLS(t *testing.T, addr string, cfg *tls.Config) *fakeServer {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	s := &fakeServer{t: t, tls: cfg, conns: map[*fakeConn]struct{}{}, frames: make(chan *stomp.Frame, 100000)}
	s.listen(addr)
	t.Cleanup(s.stop)
	return s
}

func (s *fakeServer) listen(addr string) {
	s.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.mu.Lock()
	s.ln = ln
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			fc := &fakeConn{srv: s, nc: nc, r: stomp.NewReader(nc, stomp.Limits{}), w: stomp.NewWriter(nc), subs: map[string]string{}}
			s.mu.Lock()
			s.conns[fc] = struct{}{}
			s.accepts = append(s.accepts, time.Now())
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				fc.serve()
				_ = nc.Close()
				s.mu.Lock()
				delete(s.conns, fc)
				s.mu.Unlock()
			}()
		}
	}()
}

// stop closes the listener and every connection: the address refuses.
func (s *fakeServer) stop() {
	s.mu.Lock()
	if s.ln != nil {
		_ = s.ln.Close()
		s.ln = nil
	}
	s.mu.Unlock()
	s.kill(nil)
	s.wg.Wait()
}

// restart listens again on the same address.
func (s *fakeServer) restart() { s.listen(s.addr) }

// kill closes every connection, after writing final (if not nil) to each.
func (s *fakeServer) kill(final *stomp.Frame) {
	s.mu.Lock()
	conns := make([]*fakeConn, 0, len(s.conns))
	for fc := range s.conns {
		conns = append(conns, fc)
	}
	s.mu.Unlock()
	for _, fc := range conns {
		if final != nil {
			_ = fc.send(final)
		}
		_ = fc.nc.Close()
	}
}

func (s *fakeServer) numConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *fakeServer) numAccepts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepts)
}

func (s *fakeServer) setHandle(h func(fc *fakeConn, f *stomp.Frame) bool) {
	s.mu.Lock()
	s.handle = h
	s.mu.Unlock()
}

// next returns the next frame received with command cmd, skipping others.
func (s *fakeServer) next(t testing.TB, cmd string) *stomp.Frame {
	t.Helper()
	timeout := time.After(waitLong)
	for {
		select {
		case f := <-s.frames:
			if f.Command == cmd {
				return f
			}
		case <-timeout:
			t.Fatalf("%s received no %s frame", s.addr, cmd)
			return nil
		}
	}
}

// none checks that no frame with command cmd arrives within d.
func (s *fakeServer) none(t testing.TB, cmd string, d time.Duration) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case f := <-s.frames:
			if f.Command == cmd {
				t.Fatalf("%s received an unexpected %s frame: %v", s.addr, cmd, f.Headers)
			}
		case <-timeout:
			return
		}
	}
}

func (fc *fakeConn) send(f *stomp.Frame) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	if err := fc.w.WriteFrame(f); err != nil {
		return err
	}
	return fc.w.Flush()
}

// receipt answers f's receipt header, if any.
func (fc *fakeConn) receipt(f *stomp.Frame) {
	if r, ok := f.Lookup("receipt"); ok {
		_ = fc.send(&stomp.Frame{Command: stomp.RECEIPT, Headers: []stomp.Header{{Key: "receipt-id", Value: r}}})
	}
}

// refuse answers f with an ERROR naming its receipt and closes.
func (fc *fakeConn) refuse(f *stomp.Frame, message string) {
	e := &stomp.Frame{Command: stomp.ERROR}
	e.Add("message", message)
	if r, ok := f.Lookup("receipt"); ok {
		e.Add("receipt-id", r)
	}
	_ = fc.send(e)
	_ = fc.nc.Close()
}

func (fc *fakeConn) serve() {
	s := fc.srv
	connect, err := fc.r.ReadFrame()
	if err != nil {
		return
	}
	s.frames <- connect
	s.mu.Lock()
	build, brokers := s.connected, s.brokers
	s.mu.Unlock()
	var reply *stomp.Frame
	if build != nil {
		reply = build(connect)
	} else {
		v, _ := stomp.NegotiateVersion(connect.Get("accept-version"))
		reply = &stomp.Frame{Command: stomp.CONNECTED}
		reply.Add("version", string(v))
		reply.Add("heart-beat", "0,0")
		if brokers != "" {
			reply.Add(BrokersHeader, brokers)
		}
	}
	if reply == nil {
		_, _ = io.Copy(io.Discard, fc.nc)
		return
	}
	if fc.send(reply) != nil || reply.Command != stomp.CONNECTED {
		return
	}
	fc.v = stomp.Version(reply.Get("version"))
	fc.r.SetVersion(fc.v)
	fc.w.SetVersion(fc.v)

	for {
		f, err := fc.r.ReadFrame()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) && !errors.Is(err, fs.ErrClosed) &&
				!strings.Contains(err.Error(), "connection reset") {
				s.t.Logf("fake server: %v", err)
			}
			return
		}
		s.frames <- f
		s.mu.Lock()
		h := s.handle
		s.mu.Unlock()
		if h != nil && h(fc, f) {
			continue
		}
		switch f.Command {
		case stomp.SUBSCRIBE:
			s.mu.Lock()
			fc.subs[f.Get("id")] = f.Get("destination")
			s.mu.Unlock()
		case stomp.UNSUBSCRIBE:
			s.mu.Lock()
			delete(fc.subs, f.Get("id"))
			s.mu.Unlock()
		case stomp.SEND:
			s.deliver(f)
		}
		fc.receipt(f)
		if f.Command == stomp.DISCONNECT {
			return
		}
	}
}

// deliver sends f as a MESSAGE to every subscriber of its destination.
func (s *fakeServer) deliver(f *stomp.Frame) {
	type target struct {
		fc *fakeConn
		id string
	}
	var ts []target
	s.mu.Lock()
	for fc := range s.conns {
		for id, dest := range fc.subs {
			if dest == f.Get("destination") {
				ts = append(ts, target{fc, id})
			}
		}
	}
	s.mu.Unlock()
	for _, tg := range ts {
		s.mu.Lock()
		s.msgID++
		mid := "m" + strconv.Itoa(s.msgID)
		s.mu.Unlock()
		m := &stomp.Frame{Command: stomp.MESSAGE, Body: f.Body}
		m.Add("subscription", tg.id)
		m.Add("message-id", mid)
		m.Add("destination", f.Get("destination"))
		if tg.fc.v == stomp.V12 {
			m.Add("ack", "ack-"+mid)
		}
		for _, h := range f.Headers {
			switch h.Key {
			case "destination", "receipt", "content-length":
			default:
				m.Headers = append(m.Headers, h)
			}
		}
		_ = tg.fc.send(m)
	}
}

// counter counts calls from any goroutine.
type counter struct{ n atomic.Int64 }

func (c *counter) inc()       { c.n.Add(1) }
func (c *counter) get() int64 { return c.n.Load() }
