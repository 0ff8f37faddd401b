package transport

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/stomp"
)

// waitFor is how long a test waits for something that should happen.
const waitFor = 5 * time.Second

// call is one Session call the fake recorded.
type call struct {
	op      string // send, subscribe, unsubscribe, ack, nack, begin, commit, abort
	msg     *fsm.Message
	spec    queue.SubscribeSpec
	ref     queue.AckRef
	id      string
	durable string
	tx      string
	done    func(error) // nil for begin and abort
}

// fakeBroker opens fakeSessions.
type fakeBroker struct {
	auto     bool             // complete every operation inside the call
	syncErr  map[string]error // op -> error the Session call returns
	openErr  error
	sessions chan *fakeSession
}

func newFakeBroker(auto bool) *fakeBroker {
	return &fakeBroker{auto: auto, sessions: make(chan *fakeSession, 100)}
}

func (b *fakeBroker) Open(clientID string, out queue.Outbound) (Session, error) {
	if b.openErr != nil {
		return nil, b.openErr
	}
	s := &fakeSession{
		clientID: clientID,
		out:      out,
		auto:     b.auto,
		syncErr:  b.syncErr,
		calls:    make(chan call, 10000),
		resumed:  make(chan struct{}, 1),
		closed:   make(chan struct{}),
	}
	b.sessions <- s
	return s, nil
}

// session returns the next session opened.
func (b *fakeBroker) session(t *testing.T) *fakeSession {
	t.Helper()
	select {
	case s := <-b.sessions:
		return s
	case <-time.After(waitFor):
		t.Fatal("no session opened")
		return nil
	}
}

// fakeSession records calls; the test completes them by calling done.
type fakeSession struct {
	clientID string
	out      queue.Outbound
	auto     bool
	syncErr  map[string]error
	calls    chan call

	resumes  atomic.Int32
	resumed  chan struct{} // capacity 1: signalled on every Resume
	closes   atomic.Int32
	closed   chan struct{}
	closeOne sync.Once
}

func (s *fakeSession) record(c call) error {
	if err := s.syncErr[c.op]; err != nil {
		return err
	}
	s.calls <- c
	if s.auto && c.done != nil {
		c.done(nil)
	}
	return nil
}

func (s *fakeSession) Send(m *fsm.Message, tx string, done func(error)) error {
	return s.record(call{op: "send", msg: m, tx: tx, done: done})
}

func (s *fakeSession) Subscribe(spec queue.SubscribeSpec, done func(error)) error {
	return s.record(call{op: "subscribe", spec: spec, done: done})
}

func (s *fakeSession) Unsubscribe(id, durable string, done func(error)) error {
	return s.record(call{op: "unsubscribe", id: id, durable: durable, done: done})
}

func (s *fakeSession) Ack(r queue.AckRef, tx string, done func(error)) error {
	return s.record(call{op: "ack", ref: r, tx: tx, done: done})
}

func (s *fakeSession) Nack(r queue.AckRef, tx string, done func(error)) error {
	return s.record(call{op: "nack", ref: r, tx: tx, done: done})
}

func (s *fakeSession) Begin(tx string) error { return s.record(call{op: "begin", tx: tx}) }

func (s *fakeSession) Commit(tx string, done func(error)) error {
	return s.record(call{op: "commit", tx: tx, done: done})
}

func (s *fakeSession) Abort(tx string) error { return s.record(call{op: "abort", tx: tx}) }

func (s *fakeSession) Resume() {
	s.resumes.Add(1)
	select {
	case s.resumed <- struct{}{}:
	default:
	}
}

func (s *fakeSession) Close() {
	s.closes.Add(1)
	s.closeOne.Do(func() { close(s.closed) })
}

// next returns the next call, which must be op.
func (s *fakeSession) next(t *testing.T, op string) call {
	t.Helper()
	select {
	case c := <-s.calls:
		if c.op != op {
			t.Fatalf("got %s call, want %s", c.op, op)
		}
		return c
	case <-time.After(waitFor):
		t.Fatalf("no %s call", op)
		return call{}
	}
}

// noCall fails if a call arrives within a short while.
func (s *fakeSession) noCall(t *testing.T) {
	t.Helper()
	select {
	case c := <-s.calls:
		t.Fatalf("unexpected %s call", c.op)
	case <-time.After(100 * time.Millisecond):
	}
}

// waitClosed waits for the session to be closed and checks it was closed
// exactly once.
func (s *fakeSession) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-s.closed:
	case <-time.After(waitFor):
		t.Fatal("session not closed")
	}
	if n := s.closes.Load(); n != 1 {
		t.Fatalf("session closed %d times", n)
	}
}

// env is a Server on 127.0.0.1:0 with a fake broker.
type env struct {
	t       *testing.T
	srv     *Server
	broker  *fakeBroker
	addr    string
	served  chan error
	mu      sync.Mutex
	written []*queue.Delivery
	failed  []*queue.Delivery // reported by writeFailed
}

// newEnv starts a server. It checks, when the test ends, that the server
// closes cleanly and leaves no goroutine behind.
func newEnv(t *testing.T, cfg Config, b *fakeBroker) *env {
	t.Helper()
	checkLeaks(t)
	return newEnvListener(t, cfg, b, nil)
}

// newEnvListener is newEnv with a hook to wrap the listener.
func newEnvListener(t *testing.T, cfg Config, b *fakeBroker, wrap func(net.Listener) net.Listener) *env {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if wrap != nil {
		l = wrap(l)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := &env{t: t, srv: NewServer(cfg, b, log), broker: b, addr: addr, served: make(chan error, 1)}
	e.srv.written = func(d *queue.Delivery) {
		e.mu.Lock()
		e.written = append(e.written, d)
		e.mu.Unlock()
	}
	e.srv.writeFailed = func(d *queue.Delivery) {
		e.mu.Lock()
		e.failed = append(e.failed, d)
		e.mu.Unlock()
	}
	go func() { e.served <- e.srv.Serve(l) }()
	t.Cleanup(func() {
		e.srv.Close("test over")
		select {
		case err := <-e.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("Serve did not return after Close")
		}
		if n := e.srv.NumConns(); n != 0 {
			t.Errorf("%d connections after Close", n)
		}
	})
	return e
}

func (e *env) numWritten() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.written)
}

// testWriter sends log lines to t.Log, shown for failed tests with -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// checkLeaks fails the test if goroutines started during it are still
// running shortly after it ended. Register it before anything that starts
// goroutines: cleanups run last-registered first.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitFor)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// client is a raw STOMP client speaking through the codec.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *stomp.Reader
	w  *stomp.Writer
}

func (e *env) dial() *client {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	return &client{t: e.t, nc: nc, r: stomp.NewReader(nc, stomp.Limits{}), w: stomp.NewWriter(nc)}
}

// connect dials and connects with accept-version v (none when empty) and
// extra headers, and returns the client and CONNECTED frame.
func (e *env) connect(v string, kv ...string) (*client, *stomp.Frame) {
	e.t.Helper()
	c := e.dial()
	if v != "" {
		kv = append([]string{"accept-version", v}, kv...)
	}
	c.send(stomp.CONNECT, kv...)
	f := c.read()
	if f.Command != stomp.CONNECTED {
		e.t.Fatalf("got %s frame, want CONNECTED: %q", f.Command, f.Headers)
	}
	ver := stomp.Version(f.Get("version"))
	c.r.SetVersion(ver)
	c.w.SetVersion(ver)
	return c, f
}

func frame(cmd string, kv ...string) *stomp.Frame {
	f := &stomp.Frame{Command: cmd}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

// send writes a frame with headers kv (key, value, ...).
func (c *client) send(cmd string, kv ...string) {
	c.t.Helper()
	c.write(frame(cmd, kv...))
}

func (c *client) write(f *stomp.Frame) {
	c.t.Helper()
	if err := c.w.WriteFrame(f); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) raw(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next frame.
func (c *client) read() *stomp.Frame {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitFor))
	f, err := c.r.ReadFrame()
	if err != nil {
		c.t.Fatalf("reading frame: %v", err)
	}
	return f
}

// expect reads the next frame and checks its command and headers kv.
func (c *client) expect(cmd string, kv ...string) *stomp.Frame {
	c.t.Helper()
	f := c.read()
	if f.Command != cmd {
		c.t.Fatalf("got %s frame %q %q, want %s", f.Command, f.Headers, f.Body, cmd)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if got, ok := f.Lookup(kv[i]); !ok || got != kv[i+1] {
			c.t.Fatalf("%s frame: header %s = %q (present %v), want %q; headers %q", cmd, kv[i], got, ok, kv[i+1], f.Headers)
		}
	}
	return f
}

// expectError reads an ERROR frame whose message contains msg, with
// receipt-id receipt when not empty, and then the end of the connection.
func (c *client) expectError(msg, receipt string) *stomp.Frame {
	c.t.Helper()
	f := c.expect(stomp.ERROR)
	if m := f.Get("message"); !strings.Contains(m, msg) {
		c.t.Fatalf("ERROR message %q does not contain %q", m, msg)
	}
	if got := f.Get("receipt-id"); got != receipt {
		c.t.Fatalf("ERROR receipt-id %q, want %q", got, receipt)
	}
	if ct := f.Get("content-type"); ct != "text/plain" || len(f.Body) == 0 {
		c.t.Fatalf("ERROR content-type %q body %q: want a text/plain body", ct, f.Body)
	}
	c.expectClosed()
	return f
}

// expectClosed reads until the server closes the connection; a frame
// arriving first fails the test.
func (c *client) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitFor))
	f, err := c.r.ReadFrame()
	if err == nil {
		c.t.Fatalf("got %s frame %q, want the connection closed", f.Command, f.Headers)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("got %v, want the connection closed", err)
	}
	c.nc.Close() // as a client does, which ends the server's lingering
}

// expectSilence checks that no frame arrives within a short while.
func (c *client) expectSilence() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	f, err := c.r.ReadFrame()
	var ne net.Error
	if err == nil {
		c.t.Fatalf("unexpected %s frame %q", f.Command, f.Headers)
	} else if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("unexpected read error %v", err)
	}
	// The Reader is out of sync only if it consumed part of a frame; a
	// timeout between frames leaves it intact (stomp.Reader.skipEOLs).
}

// waitUntil polls cond until it holds or the test times out.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
