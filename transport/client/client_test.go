package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/stomp"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, b *fakeBroker, opts Options) *Conn {
	t.Helper()
	c, err := Dial(testCtx(t), b.addr(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// connectedWith returns a CONNECTED builder with fixed headers.
func connectedWith(kv ...string) func(*stomp.Frame) *stomp.Frame {
	return func(*stomp.Frame) *stomp.Frame {
		f := &stomp.Frame{Command: stomp.CONNECTED}
		for i := 0; i < len(kv); i += 2 {
			f.Add(kv[i], kv[i+1])
		}
		return f
	}
}

func receive(t *testing.T, s *Subscription) *stomp.Frame {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if !ok {
			t.Fatal("subscription channel closed")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return nil
	}
}

func wantHeaders(t *testing.T, f *stomp.Frame, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		if got, ok := f.Lookup(kv[i]); !ok || got != kv[i+1] {
			t.Errorf("%s frame: header %s = %q (present %v), want %q", f.Command, kv[i], got, ok, kv[i+1])
		}
	}
}

func TestConnectHeaders(t *testing.T) {
	b := newFakeBroker(t).start()
	c := dial(t, b, Options{
		Login:     "user",
		Passcode:  "secret:with:colons",
		ClientID:  "durable-1",
		HeartBeat: [2]time.Duration{time.Second, 2 * time.Second},
		Headers:   []stomp.Header{{Key: "x-extra", Value: "1"}},
	})
	connect := b.next(t)
	if connect.Command != stomp.CONNECT {
		t.Fatalf("first frame %s, want CONNECT", connect.Command)
	}
	wantHeaders(t, connect,
		"accept-version", "1.0,1.1,1.2",
		"host", "localhost",
		"login", "user",
		"passcode", "secret:with:colons",
		"client-id", "durable-1",
		"heart-beat", "1000,2000",
		"x-extra", "1",
	)
	if c.Version() != stomp.V12 {
		t.Errorf("Version() = %s, want 1.2", c.Version())
	}
	if c.Connected() == nil || c.Connected().Command != stomp.CONNECTED {
		t.Errorf("Connected() = %v", c.Connected())
	}
	if c.Err() != nil {
		t.Errorf("Err() = %v on an open connection", c.Err())
	}
}

func TestVersionNegotiation(t *testing.T) {
	tests := []struct {
		name   string
		accept string
		reply  func(*stomp.Frame) *stomp.Frame
		want   stomp.Version
		err    error
	}{
		{name: "1.1 server", reply: connectedWith("version", "1.1"), want: stomp.V11},
		{name: "1.0 server sends no version", reply: connectedWith(), want: stomp.V10},
		{name: "server picks a version not offered", accept: "1.0,1.1", reply: connectedWith("version", "1.2"), err: ErrProtocol},
		{name: "1.0 server to a 1.2-only client", accept: "1.2", reply: connectedWith(), err: ErrProtocol},
		{name: "bad heart-beat", reply: connectedWith("version", "1.2", "heart-beat", "x"), err: ErrProtocol},
		{name: "RECEIPT instead of CONNECTED", reply: func(*stomp.Frame) *stomp.Frame {
			return &stomp.Frame{Command: stomp.RECEIPT}
		}, err: ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newFakeBroker(t)
			b.connected = tt.reply
			b.start()
			c, err := Dial(testCtx(t), b.addr(), Options{AcceptVersion: tt.accept})
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Dial = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Version() != tt.want {
				t.Errorf("Version() = %s, want %s", c.Version(), tt.want)
			}
		})
	}
}

func TestConnectRefusedWithError(t *testing.T) {
	b := newFakeBroker(t)
	b.connected = func(*stomp.Frame) *stomp.Frame {
		return &stomp.Frame{Command: stomp.ERROR, Headers: []stomp.Header{{Key: "message", Value: "bad login"}}}
	}
	b.start()
	_, err := Dial(testCtx(t), b.addr(), Options{Login: "x"})
	var se *ServerError
	if !errors.As(err, &se) {
		t.Fatalf("Dial = %v, want a *ServerError", err)
	}
	if se.Message() != "bad login" || se.Frame.Command != stomp.ERROR {
		t.Errorf("ServerError message %q, frame %s", se.Message(), se.Frame.Command)
	}
}

func TestConnectTimeoutAndCancel(t *testing.T) {
	b := newFakeBroker(t)
	b.connected = func(*stomp.Frame) *stomp.Frame { return nil } // never answers
	b.start()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Dial(ctx, b.addr(), Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Dial took %v to time out", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := Dial(ctx, b.addr(), Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial = %v, want context.Canceled", err)
	}
}

func TestDialUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Dial(testCtx(t), addr, Options{}); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
}

func TestSend(t *testing.T) {
	b := newFakeBroker(t).start()
	c := dial(t, b, Options{})
	b.next(t) // CONNECT

	if err := c.Send("/queue/a", []byte("no receipt"), stomp.Header{Key: "persistent", Value: "false"}); err != nil {
		t.Fatal(err)
	}
	f := b.next(t)
	wantHeaders(t, f, "destination", "/queue/a", "persistent", "false")
	if _, ok := f.Lookup("receipt"); ok || string(f.Body) != "no receipt" {
		t.Errorf("Send wrote %q with receipt header %v", f.Body, ok)
	}

	ctx := testCtx(t)
	body := []byte("with\x00NUL")
	if err := c.SendReceipt(ctx, "/queue/a", body, stomp.Header{Key: "k", Value: "a:b\nc\\"}); err != nil {
		t.Fatal(err)
	}
	f = b.next(t)
	wantHeaders(t, f, "destination", "/queue/a", "k", "a:b\nc\\")
	if _, ok := f.Lookup("receipt"); !ok || string(f.Body) != string(body) {
		t.Errorf("SendReceipt wrote %q, receipt header %v", f.Body, ok)
	}

	// Concurrent SendAsync: receipt ids are unique and all complete.
	const n = 200
	receipts := make([]*Receipt, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := c.SendAsync("/queue/b", fmt.Appendf(nil, "%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			receipts[i] = r
		})
	}
	wg.Wait()
	ids := map[string]bool{}
	for _, r := range receipts {
		if r == nil {
			t.FailNow()
		}
		if err := r.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if ids[r.ID()] {
			t.Fatalf("receipt id %s used twice", r.ID())
		}
		ids[r.ID()] = true
		if r.Frame() == nil || r.Frame().Get("receipt-id") != r.ID() || r.Err() != nil {
			t.Fatalf("receipt %s: frame %v, err %v", r.ID(), r.Frame(), r.Err())
		}
	}
}

func TestSubscriptionRouting(t *testing.T) {
	b := newFakeBroker(t).start()
	c := dial(t, b, Options{})
	ctx := testCtx(t)
	sa, err := c.Subscribe(ctx, "/queue/a", "")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := c.Subscribe(ctx, "/topic/b", "client")
	if err != nil {
		t.Fatal(err)
	}
	if sa.ID() == sb.ID() || sa.Destination() != "/queue/a" {
		t.Fatalf("ids %q %q, destination %q", sa.ID(), sb.ID(), sa.Destination())
	}
	b.next(t) // CONNECT
	wantHeaders(t, b.next(t), "id", sa.ID(), "destination", "/queue/a", "ack", "auto")
	wantHeaders(t, b.next(t), "id", sb.ID(), "destination", "/topic/b", "ack", "client")

	// A message for a subscription the client does not have is dropped.
	if err := c.WriteFrame(&stomp.Frame{Command: stomp.SEND, Headers: []stomp.Header{{Key: "destination", Value: "/queue/nobody"}}}); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		dest := "/queue/a"
		if i%2 == 1 {
			dest = "/topic/b"
		}
		if err := c.Send(dest, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		s := sa
		if i%2 == 1 {
			s = sb
		}
		m := receive(t, s)
		if string(m.Body) != fmt.Sprint(i) || m.Get("subscription") != s.ID() {
			t.Fatalf("message %d: got %q on subscription %s", i, m.Body, m.Get("subscription"))
		}
	}
}

func TestSubscribeOptions(t *testing.T) {
	b := newFakeBroker(t).start()
	c := dial(t, b, Options{})
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, "/queue/a", "client-individual", stomp.Header{Key: "id", Value: "mine"}, stomp.Header{Key: "selector", Value: "x=1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != "mine" {
		t.Errorf("ID() = %q, want the id header given", s.ID())
	}
	if _, err := c.Subscribe(ctx, "/queue/b", "", stomp.Header{Key: "id", Value: "mine"}); err == nil {
		t.Error("a second subscription with the same id succeeded")
	}
	if _, err := c.Subscribe(ctx, "/queue/b", "sometimes"); err == nil {
		t.Error("an invalid ack mode was accepted")
	}
	b.next(t) // CONNECT
	f := b.next(t)
	wantHeaders(t, f, "id", "mine", "destination", "/queue/a", "ack", "client-individual", "selector", "x=1")
	if n := len(slices.DeleteFunc(slices.Clone(f.Headers), func(h stomp.Header) bool { return h.Key != "id" })); n != 1 {
		t.Errorf("SUBSCRIBE has %d id headers", n)
	}
}

func TestUnsubscribe(t *testing.T) {
	b := newFakeBroker(t).start()
	c := dial(t, b, Options{})
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, "/queue/a", "auto")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendReceipt(ctx, "/queue/a", []byte("before")); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	// What arrived before the receipt is still delivered, then C closes.
	if m := receive(t, s); string(m.Body) != "before" {
		t.Fatalf("got %q", m.Body)
	}
	select {
	case _, ok := <-s.C():
		if ok {
			t.Fatal("message after unsubscribe")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("C not closed after Unsubscribe")
	}
	if err := s.Unsubscribe(ctx); err == nil {
		t.Error("second Unsubscribe succeeded")
	}
	for f := b.next(t); f.Command != stomp.UNSUBSCRIBE; f = b.next(t) {
	}
}

func TestAckPerVersion(t *testing.T) {
	for _, v := range []stomp.Version{stomp.V10, stomp.V11, stomp.V12} {
		t.Run(string(v), func(t *testing.T) {
			b := newFakeBroker(t).start()
			c := dial(t, b, Options{AcceptVersion: string(v)})
			ctx := testCtx(t)
			s, err := c.Subscribe(ctx, "/queue/a", "client")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Send("/queue/a", []byte("m")); err != nil {
				t.Fatal(err)
			}
			m := receive(t, s)
			if err := c.Ack(m, ""); err != nil {
				t.Fatal(err)
			}
			if err := c.AckReceipt(ctx, m, "tx1"); err != nil {
				t.Fatal(err)
			}
			nackErr := c.Nack(m, "")
			for f := b.next(t); f.Command != stomp.SEND; f = b.next(t) {
			}
			ack, ackTx := b.next(t), b.next(t)
			var want []string
			switch v {
			case stomp.V12:
				want = []string{"id", "ack-m1"}
			case stomp.V11:
				want = []string{"message-id", "m1", "subscription", s.ID()}
			case stomp.V10:
				want = []string{"message-id", "m1"}
			}
			wantHeaders(t, ack, want...)
			wantHeaders(t, ackTx, append(want, "transaction", "tx1")...)
			if _, ok := ack.Lookup("receipt"); ok {
				t.Error("Ack asked for a receipt")
			}
			if _, ok := ackTx.Lookup("receipt"); !ok {
				t.Error("AckReceipt asked for no receipt")
			}
			if v == stomp.V10 {
				if nackErr == nil {
					t.Error("NACK accepted on STOMP 1.0")
				}
				return
			}
			if nackErr != nil {
				t.Fatal(nackErr)
			}
			nack := b.next(t)
			if nack.Command != stomp.NACK {
				t.Fatalf("got %s, want NACK", nack.Command)
			}
			wantHeaders(t, nack, want...)
			if err := c.NackReceipt(ctx, m, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAckNeedsMessageHeaders(t *testing.T) {
	b := newFakeBroker(t).start()
	c := dial(t, b, Options{})
	if err := c.Ack(&stomp.Frame{Command: stomp.MESSAGE}, ""); err == nil {
		t.Error("Ack of a MESSAGE without an ack header succeeded")
	}
	if err := c.AckReceipt(testCtx(t), &stomp.Frame{Command: stomp.MESSAGE}, ""); err == nil {
		t.Error("AckReceipt of a MESSAGE without an ack header succeeded")
	}
	// The failed AckReceipt must not leave its receipt registered.
	c.mu.Lock()
	n := len(c.receipts)
	c.mu.Unlock()
	if n != 0 {
		t.Errorf("%d receipts left pending", n)
	}
}

func TestTransactions(t *testing.T) {
	b := newFakeBroker(t).start()
	c := dial(t, b, Options{})
	ctx := testCtx(t)
	for _, step := range []struct {
		cmd string
		fn  func(context.Context, string) error
	}{{stomp.BEGIN, c.Begin}, {stomp.COMMIT, c.Commit}, {stomp.BEGIN, c.Begin}, {stomp.ABORT, c.Abort}} {
		if err := step.fn(ctx, "tx-1"); err != nil {
			t.Fatalf("%s: %v", step.cmd, err)
		}
	}
	b.next(t) // CONNECT
	for _, cmd := range []string{stomp.BEGIN, stomp.COMMIT, stomp.BEGIN, stomp.ABORT} {
		f := b.next(t)
		if f.Command != cmd {
			t.Fatalf("got %s, want %s", f.Command, cmd)
		}
		wantHeaders(t, f, "transaction", "tx-1")
		if _, ok := f.Lookup("receipt"); !ok {
			t.Errorf("%s without a receipt", cmd)
		}
	}
}

func TestServerErrorEndsConnection(t *testing.T) {
	b := newFakeBroker(t)
	b.handle = func(sc *serverConn, f *stomp.Frame) bool {
		switch f.Get("destination") {
		case "/queue/slow":
			return true // never receipted
		case "/queue/boom":
			_ = sc.send(&stomp.Frame{Command: stomp.ERROR, Headers: []stomp.Header{
				{Key: "message", Value: "no such queue"},
				{Key: "receipt-id", Value: f.Get("receipt")},
			}, Body: []byte("details")})
			sc.nc.Close()
			return true
		}
		return false
	}
	b.start()
	c := dial(t, b, Options{})
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, "/queue/a", "auto")
	if err != nil {
		t.Fatal(err)
	}
	slow, err := c.SendAsync("/queue/slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.SendReceipt(ctx, "/queue/boom", nil)
	var se *ServerError
	if !errors.As(err, &se) || se.Message() != "no such queue" {
		t.Fatalf("SendReceipt = %v, want the server's error", err)
	}
	if err := slow.Wait(ctx); !errors.As(err, &se) {
		t.Errorf("pending receipt: %v, want the server's error", err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after ERROR")
	}
	if !errors.As(c.Err(), &se) {
		t.Errorf("Err() = %v", c.Err())
	}
	if _, ok := <-s.C(); ok {
		t.Error("subscription delivered after ERROR")
	}
	if err := c.Send("/queue/a", nil); !errors.As(err, &se) {
		t.Errorf("Send after ERROR = %v, want the server's error", err)
	}
	if _, err := c.Subscribe(ctx, "/queue/a", ""); !errors.As(err, &se) {
		t.Errorf("Subscribe after ERROR = %v", err)
	}
}

func TestUnexpectedFrameIsProtocolError(t *testing.T) {
	b := newFakeBroker(t)
	b.onConnect = func(sc *serverConn) { _ = sc.send(&stomp.Frame{Command: stomp.CONNECTED}) }
	b.start()
	c := dial(t, b, Options{})
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection survived a second CONNECTED")
	}
	if !errors.Is(c.Err(), ErrProtocol) {
		t.Errorf("Err() = %v, want ErrProtocol", c.Err())
	}
}

func TestHeartBeatNegotiation(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name       string
		version    string
		ours       [2]time.Duration
		theirs     string
		send, recv time.Duration
	}{
		{"none asked", "1.2", [2]time.Duration{}, "1000,1000", 0, 0},
		{"server offers none", "1.2", [2]time.Duration{100 * ms, 100 * ms}, "0,0", 0, 0},
		{"server sends no header", "1.1", [2]time.Duration{100 * ms, 100 * ms}, "", 0, 0},
		{"max of both sides", "1.2", [2]time.Duration{100 * ms, 500 * ms}, "300,50", 100 * ms, 500 * ms},
		{"server slower", "1.1", [2]time.Duration{100 * ms, 100 * ms}, "300,400", 400 * ms, 300 * ms},
		{"only we send", "1.2", [2]time.Duration{100 * ms, 0}, "1000,200", 200 * ms, 0},
		{"1.0 has no heart-beats", "", [2]time.Duration{100 * ms, 100 * ms}, "100,100", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newFakeBroker(t)
			var kv []string
			if tt.version != "" {
				kv = append(kv, "version", tt.version)
			}
			if tt.theirs != "" {
				kv = append(kv, "heart-beat", tt.theirs)
			}
			b.connected = connectedWith(kv...)
			b.start()
			c := dial(t, b, Options{HeartBeat: tt.ours})
			send, recv := c.HeartBeat()
			if send != tt.send || recv != tt.recv {
				t.Errorf("HeartBeat() = %v, %v; want %v, %v", send, recv, tt.send, tt.recv)
			}
		})
	}
}

// countingConn counts the bytes read from it after counting is switched on.
type countingConn struct {
	net.Conn
	on    atomic.Bool
	bytes atomic.Int64
	lfs   atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.on.Load() {
		c.bytes.Add(int64(n))
		for _, b := range p[:n] {
			if b == '\n' {
				c.lfs.Add(1)
			}
		}
	}
	return n, err
}

func TestHeartBeatsSent(t *testing.T) {
	clientEnd, serverEnd := net.Pipe()
	cc := &countingConn{Conn: serverEnd}
	defer serverEnd.Close()
	serverDone := make(chan error, 1)
	go func() {
		r, w := stomp.NewReader(cc, stomp.Limits{}), stomp.NewWriter(serverEnd)
		if _, err := r.ReadFrame(); err != nil {
			serverDone <- err
			return
		}
		cc.on.Store(true) // the client sends nothing more before CONNECTED
		if err := w.WriteFrame(&stomp.Frame{Command: stomp.CONNECTED, Headers: []stomp.Header{
			{Key: "version", Value: "1.2"}, {Key: "heart-beat", Value: "0,20"},
		}}); err != nil {
			serverDone <- err
			return
		}
		if err := w.Flush(); err != nil {
			serverDone <- err
			return
		}
		// Only heart-beats come; read until the deadline.
		_ = serverEnd.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := r.ReadFrame()
		serverDone <- err
	}()
	c, err := NewConn(testCtx(t), clientEnd, Options{HeartBeat: [2]time.Duration{10 * time.Millisecond, 0}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if send, _ := c.HeartBeat(); send != 20*time.Millisecond {
		t.Fatalf("send interval %v, want 20ms", send)
	}
	var ne net.Error
	if err := <-serverDone; !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("server read: %v, want only heart-beats until its deadline", err)
	}
	// One every 20 ms for 300 ms is 15; allow for a slow, loaded machine.
	lfs, n := cc.lfs.Load(), cc.bytes.Load()
	if lfs != n || lfs < 5 {
		t.Errorf("server received %d bytes, %d of them heart-beats; want at least 5, nothing else", n, lfs)
	}
}

func TestSilentServerTimesOut(t *testing.T) {
	b := newFakeBroker(t)
	b.connected = connectedWith("version", "1.2", "heart-beat", "20,0")
	b.handle = func(*serverConn, *stomp.Frame) bool { return true } // and silent
	b.start()
	c := dial(t, b, Options{HeartBeat: [2]time.Duration{0, 20 * time.Millisecond}})
	if _, recv := c.HeartBeat(); recv != 20*time.Millisecond {
		t.Fatalf("receive interval %v", recv)
	}
	r, err := c.SendAsync("/queue/a", nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("silent server not detected")
	}
	var ne net.Error
	if err := c.Err(); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Err() = %v, want a timeout", err)
	}
	if err := r.Wait(testCtx(t)); err == nil {
		t.Error("pending receipt succeeded")
	}
}

func TestServerHeartBeatsKeepConnectionAlive(t *testing.T) {
	// The server promises one every 100 ms and sends one every 10 ms, so
	// a slow, loaded test machine has 190 ms of slack before the client's
	// 200 ms deadline.
	b := newFakeBroker(t)
	b.connected = connectedWith("version", "1.2", "heart-beat", "100,0")
	stop := make(chan struct{})
	b.onConnect = func(sc *serverConn) {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			sc.wmu.Lock()
			err := sc.w.WriteHeartbeat()
			if err == nil {
				err = sc.w.Flush()
			}
			sc.wmu.Unlock()
			if err != nil {
				return
			}
		}
	}
	b.start()
	defer close(stop)
	c := dial(t, b, Options{HeartBeat: [2]time.Duration{0, 20 * time.Millisecond}})
	if _, recv := c.HeartBeat(); recv != 100*time.Millisecond {
		t.Fatalf("receive interval %v", recv)
	}
	time.Sleep(500 * time.Millisecond)
	if err := c.Err(); err != nil {
		t.Fatalf("connection failed despite heart-beats: %v", err)
	}
	if err := c.SendReceipt(testCtx(t), "/queue/a", nil); err != nil {
		t.Fatal(err)
	}
}

// TestSlowConsumer: a consumer that does not read must not stall receipts.
func TestSlowConsumer(t *testing.T) {
	const n = 5000
	b := newFakeBroker(t)
	b.handle = func(sc *serverConn, f *stomp.Frame) bool {
		if f.Command != stomp.SEND || f.Get("destination") != "/queue/flood" {
			return false
		}
		for i := range n {
			m := sc.message("s1", f)
			m.Body = fmt.Appendf(nil, "%d", i)
			if sc.send(m) != nil {
				return true
			}
		}
		return false // and receipt it
	}
	b.start()
	c := dial(t, b, Options{})
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, "/queue/flood", "auto", stomp.Header{Key: "id", Value: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendReceipt(ctx, "/queue/flood", nil); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if m := receive(t, s); string(m.Body) != fmt.Sprint(i) {
			t.Fatalf("message %d: got %q", i, m.Body)
		}
	}
}

func TestDisconnect(t *testing.T) {
	b := newFakeBroker(t).start()
	c := dial(t, b, Options{})
	s, err := c.Subscribe(testCtx(t), "/queue/a", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Disconnect(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	var f *stomp.Frame
	for f = b.next(t); f.Command != stomp.DISCONNECT; f = b.next(t) {
	}
	if _, ok := f.Lookup("receipt"); !ok {
		t.Error("DISCONNECT without a receipt")
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v, want ErrClosed", c.Err())
	}
	if _, ok := <-s.C(); ok {
		t.Error("subscription still open")
	}
	if err := c.Send("/queue/a", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Disconnect = %v, want ErrClosed", err)
	}
	if _, err := c.SendAsync("/queue/a", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("SendAsync after Disconnect = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after Disconnect = %v", err)
	}
}

func TestReceiptWaitContext(t *testing.T) {
	b := newFakeBroker(t)
	b.handle = func(*serverConn, *stomp.Frame) bool { return true } // no receipts
	b.start()
	c := dial(t, b, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.SendReceipt(ctx, "/queue/a", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendReceipt = %v, want context.DeadlineExceeded", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Subscribe(ctx, "/queue/a", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe = %v, want context.DeadlineExceeded", err)
	}
	// Giving up on the SUBSCRIBE's receipt undoes the subscription.
	for f := b.next(t); f.Command != stomp.UNSUBSCRIBE; f = b.next(t) {
	}
	if c.Err() != nil {
		t.Fatalf("a receipt timeout ended the connection: %v", c.Err())
	}
}

func TestCloseFailsPendingAndLeaksNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	b := newFakeBroker(t)
	b.connected = connectedWith("version", "1.2", "heart-beat", "10,10")
	b.handle = func(sc *serverConn, f *stomp.Frame) bool {
		return f.Get("destination") == "/queue/slow"
	}
	b.start()
	c, err := Dial(testCtx(t), b.addr(), Options{HeartBeat: [2]time.Duration{10 * time.Millisecond, time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var subs []*Subscription
	for i := range 3 {
		s, err := c.Subscribe(ctx, fmt.Sprintf("/queue/%d", i), "client")
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
		for range 500 { // more than the channel holds, none read
			if err := c.Send(s.Destination(), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := c.SendAsync("/queue/slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("pending receipt after Close: %v, want ErrClosed", err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err() = %v", c.Err())
	}
	for _, s := range subs {
		for range s.C() { // closed at once; buffered messages drain
		}
	}
	b.close()

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{HeartBeat: [2]time.Duration{-1, 0}},
		{AcceptVersion: "1.2,2.0"},
		{AcceptVersion: "1.1,"},
		{Login: "a\nb"},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", o)
		}
		clientEnd, serverEnd := net.Pipe()
		serverEnd.Close()
		if _, err := NewConn(context.Background(), clientEnd, o); err == nil {
			t.Errorf("NewConn accepted %+v", o)
		}
	}
	if err := (&Options{AcceptVersion: "1.0, 1.2"}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestServerClosesConnection: EOF from the server ends the Conn with an
// error that says so.
func TestServerClosesConnection(t *testing.T) {
	b := newFakeBroker(t)
	b.onConnect = func(sc *serverConn) { sc.nc.Close() }
	b.start()
	c := dial(t, b, Options{})
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("EOF not noticed")
	}
	if err := c.Err(); err == nil || errors.Is(err, ErrClosed) {
		t.Errorf("Err() = %v, want the connection's failure", err)
	}
	if !errors.Is(c.Err(), io.EOF) && !errors.Is(c.Err(), net.ErrClosed) {
		t.Logf("Err() = %v", c.Err()) // a reset is possible too
	}
}

// TestV10MessageWithoutSubscription: a 1.0 server may leave the
// subscription header out of MESSAGE; the destination routes it.
func TestV10MessageWithoutSubscription(t *testing.T) {
	b := newFakeBroker(t)
	b.handle = func(sc *serverConn, f *stomp.Frame) bool {
		if f.Command != stomp.SEND {
			return false
		}
		_ = sc.send(&stomp.Frame{Command: stomp.MESSAGE, Body: f.Body, Headers: []stomp.Header{
			{Key: "destination", Value: f.Get("destination")}, {Key: "message-id", Value: "m1"},
		}})
		return true
	}
	b.start()
	c := dial(t, b, Options{AcceptVersion: "1.0"})
	s, err := c.Subscribe(testCtx(t), "/queue/x", "client")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send("/queue/x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, s); string(m.Body) != "hi" {
		t.Fatalf("got %q", m.Body)
	}
}

// TestReceiptHeaderOfCaller: a receipt header among the caller's headers
// does not replace the one the client waits for.
func TestReceiptHeaderOfCaller(t *testing.T) {
	b := newFakeBroker(t).start()
	c := dial(t, b, Options{})
	ctx := testCtx(t)
	s, err := c.Subscribe(ctx, "/queue/a", "", stomp.Header{Key: "receipt", Value: "theirs"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, stomp.Header{Key: "receipt", Value: "theirs"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SendReceipt(ctx, "/queue/a", nil, stomp.Header{Key: "receipt", Value: "theirs"}); err != nil {
		t.Fatal(err)
	}
}

func TestReceiptAccessors(t *testing.T) {
	b := newFakeBroker(t).start()
	c := dial(t, b, Options{})
	r, err := c.SendAsync("/queue/a", nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("receipt not done")
	}
	if r.Err() != nil || r.Frame().Command != stomp.RECEIPT {
		t.Fatalf("Err() = %v, Frame() = %v", r.Err(), r.Frame())
	}
	pending := &Receipt{id: "x", done: make(chan struct{})}
	if pending.Err() != nil || pending.Frame() != nil {
		t.Error("a pending receipt reports a result")
	}
}

func TestServerErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		f    *stomp.Frame
		want string
	}{
		{&stomp.Frame{Command: stomp.ERROR, Headers: []stomp.Header{{Key: "message", Value: "m"}}, Body: []byte("b")}, "m"},
		{&stomp.Frame{Command: stomp.ERROR, Body: []byte("first line\nsecond")}, "first line"},
		{&stomp.Frame{Command: stomp.ERROR}, ""},
	} {
		e := &ServerError{Frame: tt.f}
		if e.Message() != tt.want {
			t.Errorf("Message() = %q, want %q", e.Message(), tt.want)
		}
		if e.Error() != "client: server error: "+tt.want {
			t.Errorf("Error() = %q", e.Error())
		}
	}
}
