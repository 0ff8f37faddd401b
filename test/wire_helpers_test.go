package test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// This file holds the helpers of the wire-protocol suites: an in-process
// broker (node.Node on loopback :0 ports with short raft timings), the Go
// client for normal flows and a raw TCP connection with the codec for
// exact frames and malformed input.

// waitLong bounds what should happen promptly (a frame, a receipt); it is
// generous because the race detector on a small machine is slow.
const waitLong = 10 * time.Second

// quiet is how long a test watches for something that must NOT happen.
const quiet = 300 * time.Millisecond

// inproc is one in-process broker node.
type inproc struct {
	t    *testing.T
	cfg  node.Config
	n    *node.Node
	addr string
}

// startBroker starts a single-node broker with data in a fresh directory.
// tweak, when not nil, adjusts the configuration (queue and transport
// limits) before the node is created.
func startBroker(t *testing.T, tweak func(*node.Config)) *inproc {
	t.Helper()
	cfg := node.Config{
		ID:           "n1",
		DataDir:      t.TempDir(),
		StompAddr:    "127.0.0.1:0",
		HTTPAddr:     "127.0.0.1:0",
		RaftAddr:     "127.0.0.1:0",
		RaftTimeouts: node.ShortRaftTimeouts(),
		Logger:       testLogger(t),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	b := &inproc{t: t, cfg: cfg}
	b.start()
	t.Cleanup(func() {
		if b.n != nil {
			b.n.Close()
		}
	})
	return b
}

func (b *inproc) start() {
	b.t.Helper()
	n, err := node.New(b.cfg)
	if err != nil {
		b.t.Fatalf("node.New: %v", err)
	}
	b.n = n
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		b.t.Fatalf("node Start: %v", err)
	}
	if err := n.WaitServing(ctx); err != nil {
		b.t.Fatalf("node WaitServing: %v", err)
	}
	a := n.StompAddr()
	if a == nil {
		b.t.Fatal("node serves but has no STOMP address")
	}
	b.addr = a.String()
}

// stop closes the node cleanly (clients are disconnected).
func (b *inproc) stop() {
	b.t.Helper()
	if err := b.n.Close(); err != nil {
		b.t.Fatalf("node Close: %v", err)
	}
	b.n = nil
}

// restart closes the node and opens a new one on the same data directory.
// The STOMP port changes (it is :0).
func (b *inproc) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

// dial connects a Go client and closes it at the end of the test.
func (b *inproc) dial(opts client.Options) *client.Conn {
	b.t.Helper()
	return dialClient(b.t, b.addr, opts)
}

func dialClient(t testing.TB, addr string, opts client.Options) *client.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := client.Dial(ctx, addr, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testLogger logs the node's warnings and errors to the test's output and
// drops what raft's goroutines still write after the test ended.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{w: t.Output()}
	t.Cleanup(w.stop) // registered before the node's Close, so it runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
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

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return ctx
}

func hdr(kv ...string) []stomp.Header {
	h := make([]stomp.Header, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		h = append(h, stomp.Header{Key: kv[i], Value: kv[i+1]})
	}
	return h
}

func frame(cmd string, body string, kv ...string) *stomp.Frame {
	f := &stomp.Frame{Command: cmd, Headers: hdr(kv...)}
	if body != "" {
		f.Body = []byte(body)
	}
	return f
}

// subscribe subscribes with the Go client, failing the test on error.
func subscribe(t testing.TB, c *client.Conn, dest, ack string, kv ...string) *client.Subscription {
	t.Helper()
	s, err := c.Subscribe(ctxT(t), dest, ack, hdr(kv...)...)
	if err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
	return s
}

// sendR sends with a receipt, failing the test on error.
func sendR(t testing.TB, c *client.Conn, dest, body string, kv ...string) {
	t.Helper()
	if err := c.SendReceipt(ctxT(t), dest, []byte(body), hdr(kv...)...); err != nil {
		t.Fatalf("send to %s: %v", dest, err)
	}
}

// sendAll sends bodies to dest pipelined, with receipts, and waits for
// them all.
func sendAll(t testing.TB, c *client.Conn, dest string, bodies []string, kv ...string) {
	t.Helper()
	rs := make([]*client.Receipt, 0, len(bodies))
	for _, body := range bodies {
		r, err := c.SendAsync(dest, []byte(body), hdr(kv...)...)
		if err != nil {
			t.Fatalf("send to %s: %v", dest, err)
		}
		rs = append(rs, r)
	}
	for _, r := range rs {
		if err := r.Wait(ctxT(t)); err != nil {
			t.Fatalf("send to %s: %v", dest, err)
		}
	}
}

// recv takes the next message of s, failing the test after waitLong.
func recv(t testing.TB, s *client.Subscription) *stomp.Frame {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if !ok {
			t.Fatalf("subscription %s to %s ended while waiting for a message", s.ID(), s.Destination())
		}
		return m
	case <-time.After(waitLong):
		t.Fatalf("no message on %s (subscription %s) within %v", s.Destination(), s.ID(), waitLong)
	}
	return nil
}

// recvBodies takes n messages and returns their bodies in order.
func recvBodies(t testing.TB, s *client.Subscription, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		out = append(out, string(recv(t, s).Body))
	}
	return out
}

// noMessage checks that nothing arrives on s for a short while.
func noMessage(t testing.TB, s *client.Subscription) {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if ok {
			t.Fatalf("unexpected message on %s: %v %q", s.Destination(), m.Headers, m.Body)
		}
	case <-time.After(quiet):
	}
}

func join(ss []string) string { return strings.Join(ss, ",") }

// rawConn is a STOMP connection driven frame by frame: the codec over TCP,
// with nothing in between, for exact frames and malformed input.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	r  *stomp.Reader
	w  *stomp.Writer
}

// rawDial opens a TCP connection without sending anything.
func rawDial(t testing.TB, addr string, lim stomp.Limits) *rawConn {
	t.Helper()
	return rawDialWith(t, addr, lim, &net.Dialer{Timeout: waitLong})
}

// rawDialSmallWindow dials with a 16 KiB socket receive buffer, for a
// client that stops reading: the kernel then holds little for it. The
// buffer is set before connect, so TCP advertises the small window from
// the handshake on; shrinking the window of a live connection instead
// provoked retransmission stalls of seconds on loopback, which tests
// mistook for server backpressure.
func rawDialSmallWindow(t testing.TB, addr string) *rawConn {
	t.Helper()
	d := &net.Dialer{Timeout: waitLong, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	return rawDialWith(t, addr, stomp.Limits{}, d)
}

func rawDialWith(t testing.TB, addr string, lim stomp.Limits, d *net.Dialer) *rawConn {
	t.Helper()
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: stomp.NewReader(nc, lim), w: stomp.NewWriter(nc)}
}

// rawConnect opens a connection and performs CONNECT with accept-version
// version and extra headers; it returns the CONNECTED frame.
func rawConnect(t testing.TB, addr, version string, kv ...string) (*rawConn, *stomp.Frame) {
	t.Helper()
	c := rawDial(t, addr, stomp.Limits{})
	h := []string{"host", "localhost"}
	if version != "" {
		h = append(h, "accept-version", version)
	}
	c.write(frame(stomp.CONNECT, "", append(h, kv...)...))
	f := c.read()
	if f.Command != stomp.CONNECTED {
		t.Fatalf("CONNECT answered with %s %v %q", f.Command, f.Headers, f.Body)
	}
	v := stomp.Version(f.Get("version"))
	if v == "" {
		v = stomp.V10
	}
	c.r.SetVersion(v)
	c.w.SetVersion(v)
	return c, f
}

func (c *rawConn) write(f *stomp.Frame) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(waitLong))
	if err := c.w.WriteFrame(f); err != nil {
		c.t.Fatalf("write %s: %v", f.Command, err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatalf("flush %s: %v", f.Command, err)
	}
}

// writeRaw writes bytes as they are.
func (c *rawConn) writeRaw(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(waitLong))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readWithin reads the next frame, failing the test after d.
func (c *rawConn) readWithin(d time.Duration) *stomp.Frame {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(d))
	f, err := c.r.ReadFrame()
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

func (c *rawConn) read() *stomp.Frame { c.t.Helper(); return c.readWithin(waitLong) }

// expect reads the next frame and checks its command.
func (c *rawConn) expect(cmd string) *stomp.Frame {
	c.t.Helper()
	f := c.read()
	if f.Command != cmd {
		c.t.Fatalf("got %s %v %q, want %s", f.Command, f.Headers, f.Body, cmd)
	}
	return f
}

// expectReceipt reads a RECEIPT and checks its receipt-id.
func (c *rawConn) expectReceipt(id string) {
	c.t.Helper()
	if got := c.expect(stomp.RECEIPT).Get("receipt-id"); got != id {
		c.t.Fatalf("receipt-id = %q, want %q", got, id)
	}
}

// receiptAnd reads two frames, RECEIPT receipt-id id and one cmd frame, in
// either order, and returns the latter.
func (c *rawConn) receiptAnd(id, cmd string) *stomp.Frame {
	c.t.Helper()
	var got *stomp.Frame
	receipted := false
	for !receipted || got == nil {
		f := c.read()
		switch {
		case !receipted && f.Command == stomp.RECEIPT && f.Get("receipt-id") == id:
			receipted = true
		case got == nil && f.Command == cmd:
			got = f
		default:
			c.t.Fatalf("got %s %v %q, want RECEIPT %s and %s", f.Command, f.Headers, f.Body, id, cmd)
		}
	}
	return got
}

// expectError reads an ERROR frame whose message header contains msg and
// whose receipt-id is receipt (none when empty), then checks the server
// closes the connection. It returns the ERROR frame.
func (c *rawConn) expectError(msg, receipt string) *stomp.Frame {
	c.t.Helper()
	return c.expectErrorWithin(waitLong, msg, receipt)
}

// expectErrorWithin is expectError with the ERROR due within d.
func (c *rawConn) expectErrorWithin(d time.Duration, msg, receipt string) *stomp.Frame {
	c.t.Helper()
	f := c.readWithin(d)
	if f.Command != stomp.ERROR {
		c.t.Fatalf("got %s %v %q, want ERROR %q", f.Command, f.Headers, f.Body, msg)
	}
	if got := f.Get("message"); !strings.Contains(got, msg) {
		c.t.Errorf("ERROR message = %q, want it to contain %q", got, msg)
	}
	got, ok := f.Lookup("receipt-id")
	switch {
	case receipt == "" && ok:
		c.t.Errorf("ERROR has receipt-id %q, want none", got)
	case receipt != "" && got != receipt:
		c.t.Errorf("ERROR receipt-id = %q, want %q", got, receipt)
	}
	if len(f.Body) == 0 {
		c.t.Errorf("ERROR frame has no body")
	}
	c.expectClosed()
	return f
}

// expectClosed checks the server ends the connection: nothing but EOF (or
// a reset) follows.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitLong))
	f, err := c.r.ReadFrame()
	if err == nil {
		c.t.Fatalf("frame %s %v %q after the end, want the connection closed", f.Command, f.Headers, f.Body)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open after %v", waitLong)
	}
}

// expectNothing checks no frame arrives for a short while.
func (c *rawConn) expectNothing() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(quiet))
	f, err := c.r.ReadFrame()
	if err == nil {
		c.t.Fatalf("unexpected %s %v %q", f.Command, f.Headers, f.Body)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("connection ended: %v", err)
	}
	// The deadline may have cut a frame in two; the stream is out of
	// sync only if bytes were consumed, which a timeout before any
	// byte does not do (Reader peeks before consuming).
}
