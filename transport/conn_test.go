package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/stomp"
)

// body is shared by the deliveries of the flow control tests, so that a
// broken bound shows as a failed assertion rather than as exhausted memory.
var body = bytes.Repeat([]byte("x"), 16<<10)

func delivery(id string, size int) *queue.Delivery {
	return &queue.Delivery{
		Msg: &fsm.Message{
			ID: id, Destination: "/queue/a", Body: body[:size],
			Priority: 4, Timestamp: 1700000000000, Persistent: true,
		},
		Destination:   "/queue/a",
		Subscription:  "s1",
		AckID:         "ack-" + id,
		DeliveryCount: 1,
	}
}

func headerList(f *stomp.Frame) []string {
	var hs []string
	for _, h := range f.Headers {
		hs = append(hs, h.Key+":"+h.Value)
	}
	return hs
}

func TestMessageFrames(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)
	for _, v := range []string{"1.0", "1.1", "1.2"} {
		t.Run(v, func(t *testing.T) {
			c, _ := e.connect(v)
			c.t = t
			s := b.session(t)
			d := &queue.Delivery{
				Msg: &fsm.Message{
					ID:          "ID:east-17",
					Destination: "/queue/orders",
					Headers: []fsm.Header{
						{Key: "content-type", Value: "text/plain"},
						{Key: "note", Value: `a:b\c`},
						{Key: "multi", Value: "one\ntwo"}, // STOMP 1.0 cannot carry it
						{Key: "message-id", Value: "shadow"},
					},
					Body:       []byte("hello\x00world"),
					Priority:   7,
					Expires:    1800000000000,
					Timestamp:  1700000000000,
					Persistent: true,
				},
				Destination:   "/queue/orders",
				Subscription:  "sub-1",
				AckID:         "7",
				Redelivered:   true,
				DeliveryCount: 3,
			}
			s.out.Deliver(d)
			f := c.expect(stomp.MESSAGE)
			want := []string{"message-id:ID:east-17", "destination:/queue/orders", "subscription:sub-1"}
			if v == "1.2" {
				want = append(want, "ack:7")
			}
			want = append(want, "redelivered:true", "delivery-count:3", "priority:7",
				"expires:1800000000000", "timestamp:1700000000000", "persistent:true",
				"content-type:text/plain", `note:a:b\c`)
			if v != "1.0" {
				want = append(want, "multi:one\ntwo")
			}
			want = append(want, "message-id:shadow", "content-length:11")
			if got := headerList(f); !slices.Equal(got, want) {
				t.Errorf("MESSAGE headers\n got %q\nwant %q", got, want)
			}
			if f.Get("message-id") != "ID:east-17" {
				t.Errorf("a stored header shadows the broker's message-id")
			}
			if string(f.Body) != "hello\x00world" {
				t.Errorf("MESSAGE body %q", f.Body)
			}

			// First delivery, never expires, not persistent.
			d2 := delivery("m2", 0)
			d2.Msg.Persistent = false
			s.out.Deliver(d2)
			f = c.expect(stomp.MESSAGE)
			want = []string{"message-id:m2", "destination:/queue/a", "subscription:s1"}
			if v == "1.2" {
				want = append(want, "ack:ack-m2")
			}
			want = append(want, "delivery-count:1", "priority:4", "timestamp:1700000000000", "persistent:false")
			if got := headerList(f); !slices.Equal(got, want) {
				t.Errorf("MESSAGE headers\n got %q\nwant %q", got, want)
			}
		})
	}
	waitUntil(t, "every delivery is marked written", func() bool { return e.numWritten() == 6 })
}

// smallBuffers shrinks the server's socket send buffer, so that a client
// that does not read blocks the writer after kilobytes, not megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10)
	}
	return nc, err
}

func withSmallBuffers(l net.Listener) net.Listener { return smallBuffers{l} }

// feeder plays a well-behaved engine: it delivers while the connection is
// Writable and waits for Resume when it is not.
type feeder struct {
	delivered atomic.Int64
	blocked   atomic.Int64
	maxQueued atomic.Int64 // the most bytes the connection had queued when it said no
	done      chan struct{}
}

func feed(s *fakeSession, size, n int) *feeder {
	f := &feeder{done: make(chan struct{})}
	c := s.out.(*conn)
	go func() {
		defer close(f.done)
		for i := 0; i < n; {
			if s.out.Writable() {
				s.out.Deliver(delivery(strconv.Itoa(i), size))
				f.delivered.Add(1)
				i++
				continue
			}
			f.blocked.Add(1)
			c.mu.Lock()
			q := int64(c.outBytes)
			c.mu.Unlock()
			if q > f.maxQueued.Load() {
				f.maxQueued.Store(q)
			}
			select {
			case <-s.resumed:
			case <-s.closed:
				return
			}
		}
	}()
	return f
}

func TestSlowConsumerClosed(t *testing.T) {
	checkLeaks(t)
	const limit = 64 << 10
	b := newFakeBroker(true)
	e := newEnvListener(t, Config{MaxOutboundBytes: limit, WriteTimeout: 200 * time.Millisecond}, b, withSmallBuffers)
	c, _ := e.connect("1.2")
	_ = c.nc.(*net.TCPConn).SetReadBuffer(16 << 10)
	s := b.session(t)
	c.send(stomp.SUBSCRIBE, "id", "s1", "destination", "/queue/a")
	s.next(t, "subscribe")

	// The client never reads from here on.
	f := feed(s, 16<<10, 1_000_000)
	s.waitClosed(t)
	<-f.done
	waitUntil(t, "the connection is gone", func() bool { return e.srv.NumConns() == 0 })

	if f.blocked.Load() == 0 {
		t.Fatal("the connection never reported itself not writable")
	}
	// What the connection queues stays under the limit plus one message;
	// what it delivered is that plus what the kernel buffers hold.
	if q := f.maxQueued.Load(); q > limit+16<<10+frameOverhead+64 {
		t.Errorf("%d bytes queued, limit %d", q, limit)
	}
	t.Logf("%d deliveries, %d marked written, %d bytes queued at most", f.delivered.Load(), e.numWritten(), f.maxQueued.Load())
	if n := f.delivered.Load() * 16 << 10; n > 8<<20 {
		t.Errorf("%d bytes delivered to a client that does not read", n)
	}
	if w := int64(e.numWritten()); w >= f.delivered.Load() {
		t.Errorf("%d of %d deliveries marked written to a client that does not read", w, f.delivered.Load())
	}
}

// cutListener's connections take limit bytes of writes, then fail every
// write as if it timed out: a client that stopped reading, with the
// kernel's buffers full.
type cutListener struct {
	net.Listener
	limit int
}

func (l cutListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &cutConn{Conn: nc, left: l.limit}, nil
}

type cutConn struct {
	net.Conn
	left int
}

func (c *cutConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p[:min(len(p), c.left)])
	c.left -= n
	if err == nil && n < len(p) {
		err = os.ErrDeadlineExceeded
	}
	return n, err
}

// TestWriteFailedReported: when a write fails, the deliveries whose frames
// were handed to the writer may have reached the client in full or in
// part, so each is reported to the engine, which flags its redelivery;
// those never written are not.
func TestWriteFailedReported(t *testing.T) {
	checkLeaks(t)
	const cut, n, size = 100_000, 40, 16 << 10
	b := newFakeBroker(true)
	e := newEnvListener(t, Config{}, b, func(l net.Listener) net.Listener { return cutListener{l, cut} })
	c := e.dial()
	c.send(stomp.CONNECT, "accept-version", "1.2")
	s := b.session(t)
	// Read CONNECTED byte by byte, so that nothing after it is consumed.
	_ = c.nc.SetReadDeadline(time.Now().Add(waitFor))
	for one := []byte{1}; one[0] != 0; {
		if _, err := c.nc.Read(one); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		s.out.Deliver(delivery(strconv.Itoa(i), size))
	}
	s.waitClosed(t)

	// What reached the client: complete frames, then maybe part of one.
	got, err := io.ReadAll(c.nc)
	if err != nil {
		t.Fatal(err)
	}
	started := bytes.Count(got, []byte("MESSAGE\n"))
	complete := 0
	for r := stomp.NewReader(bytes.NewReader(got), stomp.Limits{}); ; complete++ {
		if _, err := r.ReadFrame(); err != nil {
			break
		}
	}
	t.Logf("the client got %d complete MESSAGE frames and %d in part", complete, started-complete)

	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.failed) == 0 {
		t.Fatal("no delivery reported as failed")
	}
	reported := map[int]string{}
	for what, ds := range map[string][]*queue.Delivery{"written": e.written, "failed": e.failed} {
		for _, d := range ds {
			i, _ := strconv.Atoi(d.Msg.ID)
			if reported[i] != "" {
				t.Errorf("delivery %d reported %s, then %s", i, reported[i], what)
			}
			reported[i] = what
		}
	}
	for i := range started {
		if reported[i] == "" || i >= complete && reported[i] != "failed" {
			t.Errorf("delivery %d: reported %q, but its frame reached the client (complete %v)", i, reported[i], i < complete)
		}
	}
	// A delivery is written only after those before it went to the socket
	// or to the writer's 64 KiB buffer.
	for i, what := range reported {
		if i*size > cut+64<<10 {
			t.Errorf("delivery %d reported %s, but it was never written", i, what)
		}
	}
}

// TestControlFrameCost: what a queued RECEIPT is charged against
// MaxOutboundBytes covers what it holds in the heap, the SEND frame it
// answers included (it must not keep it alive), within a factor of two.
func TestControlFrameCost(t *testing.T) {
	const n = 100_000
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, "SEND\ndestination:/queue/orders.eu-west\nreceipt:r-%d\n\n\x00", i)
	}
	rd := stomp.NewReader(&in, stomp.Limits{})
	c := &conn{cfg: &Config{MaxOutboundBytes: math.MaxInt}, wake: make(chan struct{}, 1)}
	c.cond.L = &c.mu

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		f, err := rd.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		c.track(f)(nil)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(&in) // its bytes were counted before

	if len(c.out) != n {
		t.Fatalf("%d frames queued, want %d", len(c.out), n)
	}
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	charged := float64(c.ctrlBytes) / n
	t.Logf("a queued RECEIPT takes %.0f bytes of heap and is charged %.0f", heap, charged)
	if heap > charged || charged > 2*heap {
		t.Errorf("a queued RECEIPT takes %.0f bytes of heap but is charged %.0f", heap, charged)
	}
}

func TestResumeAfterDrain(t *testing.T) {
	checkLeaks(t)
	const n = 400
	b := newFakeBroker(true)
	e := newEnvListener(t, Config{MaxOutboundBytes: 64 << 10}, b, withSmallBuffers)
	c, _ := e.connect("1.2")
	s := b.session(t)
	c.send(stomp.SUBSCRIBE, "id", "s1", "destination", "/queue/a")
	s.next(t, "subscribe")

	f := feed(s, 16<<10, n)
	waitUntil(t, "the connection is full", func() bool { return f.blocked.Load() > 0 })
	for i := range n {
		m := c.expect(stomp.MESSAGE, "message-id", strconv.Itoa(i))
		if len(m.Body) != 16<<10 {
			t.Fatalf("message %d: body of %d bytes", i, len(m.Body))
		}
	}
	<-f.done
	if s.resumes.Load() == 0 {
		t.Error("Resume never called")
	}
	waitUntil(t, "every delivery is marked written", func() bool { return e.numWritten() == n })
}

// TestMaxPendingOps checks that a connection stops reading at the limit of
// operations in flight and goes on when one completes.
func TestMaxPendingOps(t *testing.T) {
	b := newFakeBroker(false)
	e := newEnv(t, Config{MaxPendingOps: 2}, b)
	c, _ := e.connect("1.2")
	s := b.session(t)
	for i := range 4 {
		c.send(stomp.SEND, "destination", "/queue/a", "receipt", fmt.Sprint("r", i))
	}
	first := s.next(t, "send")
	second := s.next(t, "send")
	s.noCall(t)

	first.done(nil)
	c.expect(stomp.RECEIPT, "receipt-id", "r0")
	third := s.next(t, "send")
	s.noCall(t)

	second.done(nil)
	third.done(nil)
	s.next(t, "send").done(nil)
	got := []string{c.read().Get("receipt-id"), c.read().Get("receipt-id"), c.read().Get("receipt-id")}
	slices.Sort(got)
	if want := []string{"r1", "r2", "r3"}; !slices.Equal(got, want) {
		t.Errorf("receipts %q, want %q", got, want)
	}
}

// TestUnreadReceiptsStopReading checks that control frames the client does
// not read are bounded too: the connection stops reading at the limit, and
// the write timeout ends it.
func TestUnreadReceiptsStopReading(t *testing.T) {
	checkLeaks(t)
	b := newFakeBroker(true)
	e := newEnvListener(t, Config{MaxOutboundBytes: 4 << 10, WriteTimeout: 200 * time.Millisecond}, b, withSmallBuffers)
	c, _ := e.connect("1.2")
	_ = c.nc.(*net.TCPConn).SetReadBuffer(16 << 10)
	s := b.session(t)

	// Write BEGIN frames with long receipts until the server stops
	// reading (our writes block) or closes the connection.
	receipt := strings.Repeat("r", 1000)
	frame := []byte("BEGIN\ntransaction:t\nreceipt:" + receipt + "\n\n\x00")
	var sent int
	for sent < 64<<20 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.nc.Write(frame); err != nil {
			break
		}
		sent += len(frame)
	}
	if sent >= 64<<20 {
		t.Fatalf("the server read %d bytes of frames without anybody reading its receipts", sent)
	}
	s.waitClosed(t)
	// Receipts the server handled: the 4 KiB queue plus what the socket
	// buffers of both ends hold; without the bound, thousands.
	t.Logf("%d frames handled", len(s.calls))
	if n := len(s.calls); n > 1000 {
		t.Errorf("%d frames handled while their receipts were not read", n)
	}
}

func TestHeartBeatNegotiation(t *testing.T) {
	tests := []struct {
		header     string
		offer      [2]time.Duration
		send, recv time.Duration
	}{
		{"", [2]time.Duration{100, 200}, 0, 0},
		{"0,0", [2]time.Duration{100, 200}, 0, 0},
		{"300,50", [2]time.Duration{100, 200}, 100, 300},
		{"300,500", [2]time.Duration{100, 200}, 500, 300},
		{"0,50", [2]time.Duration{100, 200}, 100, 0},
		{"300,0", [2]time.Duration{100, 200}, 0, 300},
		{"300,50", [2]time.Duration{-1, 200}, 0, 300},
		{"300,50", [2]time.Duration{100, -1}, 100, 0},
		{" 300 , 50 ", [2]time.Duration{100, 200}, 100, 300},
	}
	for _, tt := range tests {
		offer := [2]time.Duration{tt.offer[0] * time.Millisecond, tt.offer[1] * time.Millisecond}
		hb, err := negotiateHeartBeat(tt.header, offer)
		if err != nil {
			t.Errorf("%q: %v", tt.header, err)
			continue
		}
		if hb.send != tt.send*time.Millisecond || hb.recv != tt.recv*time.Millisecond {
			t.Errorf("%q with offer %v: send %v recv %v, want %v %v", tt.header, offer, hb.send, hb.recv,
				tt.send*time.Millisecond, tt.recv*time.Millisecond)
		}
	}
	for _, bad := range []string{"10", "a,b", "-1,0", "1,2,3"} {
		if _, err := negotiateHeartBeat(bad, [2]time.Duration{1, 1}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}

	if got := idleLimit(50 * time.Millisecond); got != 100*time.Millisecond {
		t.Errorf("idleLimit(50ms) = %v, want 100ms", got)
	}
	if got := idleLimit(math.MaxInt64/2 + 1); got != math.MaxInt64 {
		t.Errorf("idleLimit overflows: %v", got)
	}

	e := newEnv(t, Config{HeartBeat: [2]time.Duration{150 * time.Millisecond, -1}}, newFakeBroker(true))
	_, f := e.connect("1.1", "heart-beat", "0,0")
	if hb := f.Get("heart-beat"); hb != "150,0" {
		t.Errorf("CONNECTED heart-beat %q, want 150,0", hb)
	}
}

// rawConnect connects without the codec and returns a reader of the raw
// bytes that follow CONNECTED.
func rawConnect(t *testing.T, e *env, heartBeat string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	fmt.Fprintf(nc, "CONNECT\naccept-version:1.2\nheart-beat:%s\n\n\x00", heartBeat)
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(waitFor))
	connected, err := br.ReadBytes(0)
	if err != nil || !bytes.HasPrefix(connected, []byte("CONNECTED\n")) {
		t.Fatalf("CONNECTED: %q, %v", connected, err)
	}
	return nc, br
}

func TestServerHeartBeats(t *testing.T) {
	e := newEnv(t, Config{HeartBeat: [2]time.Duration{50 * time.Millisecond, -1}}, newFakeBroker(true))

	nc, br := rawConnect(t, e, "0,20") // the server sends every max(50,20)ms
	start := time.Now()
	for range 3 {
		_ = nc.SetReadDeadline(time.Now().Add(waitFor))
		b, err := br.ReadByte()
		if err != nil || b != '\n' {
			t.Fatalf("read %q, %v; want a heart-beat EOL", b, err)
		}
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("3 heart-beats in %v, want one per 50ms", d)
	}

	// A client that wants none gets none.
	nc, br = rawConnect(t, e, "0,0")
	_ = nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if b, err := br.ReadByte(); err == nil {
		t.Fatalf("got %q from the server, want silence", b)
	}
}

func TestSilentClientClosed(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{HeartBeat: [2]time.Duration{-1, 50 * time.Millisecond}}, b)
	start := time.Now()
	c, _ := e.connect("1.2", "heart-beat", "20,0") // expected every max(20,50)ms
	s := b.session(t)
	c.expectError("no heart-beat from the client within 100ms", "")
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("closed after %v, before twice the interval", d)
	}
	s.waitClosed(t)
}

func TestClientHeartBeatsKeepAlive(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{HeartBeat: [2]time.Duration{-1, 150 * time.Millisecond}}, b)
	c, _ := e.connect("1.2", "heart-beat", "20,0") // silence allowed: 2*max(20,150)ms
	s := b.session(t)

	// Bare EOLs for 3 times the allowed silence.
	for end := time.Now().Add(900 * time.Millisecond); time.Now().Before(end); {
		c.raw("\n")
		time.Sleep(20 * time.Millisecond)
	}
	// A frame trickling in for longer than the allowed silence: any byte
	// counts, not only whole frames.
	frame := "SEND\ndestination:/queue/a\nreceipt:r1\n\n" + strings.Repeat("x", 20) + "\x00"
	for i := 0; i < len(frame); i += 2 {
		c.raw(frame[i:min(i+2, len(frame))])
		time.Sleep(20 * time.Millisecond)
	}
	if m := s.next(t, "send").msg; len(m.Body) != 20 {
		t.Errorf("body %q", m.Body)
	}
	c.expect(stomp.RECEIPT, "receipt-id", "r1")
}

func TestCodecErrors(t *testing.T) {
	lim := stomp.Limits{MaxFrameSize: 1024, MaxHeaders: 5, MaxHeaderLine: 100}
	tests := []struct {
		name, frame, msg string
	}{
		{"content-length too large", "SEND\ndestination:/q/a\ncontent-length:2000\n\n" + strings.Repeat("x", 2000) + "\x00", "frame too large: limit 1024 bytes"},
		{"body too large", "SEND\ndestination:/q/a\n\n" + strings.Repeat("x", 2000) + "\x00", "frame too large: limit 1024 bytes"},
		{"too many headers", "SEND\na:1\nb:2\nc:3\nd:4\ne:5\nf:6\n\n\x00", "too many headers: limit 5"},
		{"header too long", "SEND\nlong:" + strings.Repeat("y", 200) + "\n\n\x00", "header line too long: limit 100 bytes"},
		{"no colon", "SEND\nno colon here\n\n\x00", "malformed frame"},
		{"bad escape", "SEND\ndestination:/q/\\t\n\n\x00", "malformed frame"},
	}
	b := newFakeBroker(true)
	e := newEnv(t, Config{Limits: lim}, b)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := e.connect("1.2")
			c.t = t
			s := b.session(t)
			c.raw(tt.frame)
			c.expectError(tt.msg, "")
			s.waitClosed(t)
		})
	}
	t.Run("before connect", func(t *testing.T) {
		c := e.dial()
		c.t = t
		c.raw("CONNECT\naccept-version:1.2\nhuge:" + strings.Repeat("z", 200) + "\n\n\x00")
		c.expectError("header line too long: limit 100 bytes", "")
	})
}

// TestHalfFrameHangup checks that a client hanging up inside a frame just
// closes the connection.
func TestHalfFrameHangup(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)
	c, _ := e.connect("1.2")
	s := b.session(t)
	c.raw("SEND\ndestination:/queue/a\n\nhal")
	if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(waitFor))
	if n, err := io.Copy(io.Discard, c.nc); err != nil || n != 0 {
		t.Errorf("read %d bytes, %v; want a plain close", n, err)
	}
	s.waitClosed(t)
	if len(s.calls) != 0 {
		t.Error("the half frame reached the session")
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\r\nb"); got != "a  b" {
		t.Errorf("oneLine = %q", got)
	}
	long := strings.Repeat("m", 1000)
	if got := oneLine(long); len(got) != maxMessageLen+3 {
		t.Errorf("oneLine kept %d bytes", len(got))
	}
	var ce *clientErr
	if err := error(engineErr("r", queue.ErrUnknownTx)); !errors.As(err, &ce) || !errors.Is(err, queue.ErrUnknownTx) {
		t.Errorf("engineErr does not wrap its cause: %v", err)
	}
}

// TestEncodable checks encodable against what the codec's Writer accepts,
// so that the fallback for old clients drops exactly the headers it must.
func TestEncodable(t *testing.T) {
	strs := []string{"", "a", "a:b", "a\nb", "a\r", "a\rb", `a\b`, "\r\n", "é"}
	for _, v := range []stomp.Version{stomp.V10, stomp.V11, stomp.V12} {
		w := stomp.NewWriter(io.Discard)
		w.SetVersion(v)
		for _, key := range strs {
			for _, value := range strs {
				f := &stomp.Frame{Command: stomp.MESSAGE, Headers: []stomp.Header{{Key: key, Value: value}}}
				want := w.WriteFrame(f) == nil
				if got := encodable(key, value, v); got != want {
					t.Errorf("encodable(%q, %q, %s) = %v, the Writer says %v", key, value, v, got, want)
				}
			}
		}
	}
}

// TestMaxPendingBytes: large SENDs still waiting for their commit pause
// the reader by their bytes, not only by their count.
func TestMaxPendingBytes(t *testing.T) {
	b := newFakeBroker(false)
	e := newEnv(t, Config{MaxPendingBytes: 150 << 10}, b)
	c, _ := e.connect("1.2")
	s := b.session(t)
	body := strings.Repeat("x", 100<<10)
	for i := range 3 {
		f := frame(stomp.SEND, "destination", "/queue/a", "receipt", fmt.Sprint("r", i))
		f.Body = []byte(body)
		c.write(f)
	}
	first := s.next(t, "send")
	second := s.next(t, "send") // 100 KiB pending, under the limit: read
	s.noCall(t)                 // 200 KiB pending: the third waits
	first.done(nil)
	c.expect(stomp.RECEIPT, "receipt-id", "r0")
	third := s.next(t, "send") // 100 KiB pending again
	second.done(nil)
	third.done(nil)
}

// TestStoredHeadersOwnTheirMemory: the message handed to the engine keeps
// only the sender's headers, in a string of its own, not the frame's
// header block with a (large) receipt header in it.
func TestStoredHeadersOwnTheirMemory(t *testing.T) {
	hs := []stomp.Header{{Key: "destination", Value: "/queue/a"}, {Key: "receipt", Value: strings.Repeat("r", 60<<10)},
		{Key: "app", Value: "one"}, {Key: "x", Value: "y"}}
	got := ownHeaders(hs)
	if len(got) != 2 || got[0] != (fsm.Header{Key: "app", Value: "one"}) || got[1] != (fsm.Header{Key: "x", Value: "y"}) {
		t.Fatalf("ownHeaders = %+v", got)
	}
	// One block of exactly the kept bytes, in order.
	start := uintptr(unsafe.Pointer(unsafe.StringData(got[0].Key)))
	end := uintptr(unsafe.Pointer(unsafe.StringData(got[1].Value))) + uintptr(len(got[1].Value))
	if n := end - start; n != uintptr(len("appone")+len("xy")) {
		t.Fatalf("kept headers span %d bytes, want %d", n, len("appone")+len("xy"))
	}
	if ownHeaders(hs[:2]) != nil {
		t.Fatal("no own headers should give nil")
	}
}
