package transport

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/stomp"
)

func TestConnectNegotiatesVersion(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{
		ConnectedHeaders: func() []stomp.Header {
			return []stomp.Header{{Key: "raftmq.brokers", Value: "tcp://a:61613,tcp://b:61613"}}
		},
	}, b)
	tests := []struct {
		command, accept string
		want            stomp.Version
	}{
		{stomp.CONNECT, "", stomp.V10},
		{stomp.CONNECT, "1.0", stomp.V10},
		{stomp.CONNECT, "1.0,1.1", stomp.V11},
		{stomp.CONNECT, "1.1,1.0", stomp.V11},
		{stomp.CONNECT, "1.0,1.1,1.2", stomp.V12},
		{stomp.STOMP, "1.2", stomp.V12},
		{stomp.CONNECT, "1.2,2.0", stomp.V12},
	}
	sessions := map[string]bool{}
	for _, tt := range tests {
		c := e.dial()
		kv := []string{"client-id", "c-" + tt.accept, "login", "l", "passcode", "p"}
		if tt.accept != "" {
			kv = append(kv, "accept-version", tt.accept)
		}
		c.send(tt.command, kv...)
		f := c.expect(stomp.CONNECTED,
			"version", string(tt.want),
			"server", "raftmq",
			"heart-beat", "10000,10000",
			"raftmq.brokers", "tcp://a:61613,tcp://b:61613")
		id := f.Get("session")
		if id == "" || sessions[id] {
			t.Fatalf("session id %q empty or repeated", id)
		}
		sessions[id] = true
		if s := b.session(t); s.clientID != "c-"+tt.accept {
			t.Errorf("Open got client-id %q, want %q", s.clientID, "c-"+tt.accept)
		}
	}
}

func TestConnectNoCommonVersion(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)
	c := e.dial()
	c.send(stomp.CONNECT, "accept-version", "2.0,3.1", "receipt", "r1")
	f := c.expectError("supported protocol versions are 1.0,1.1,1.2", "r1")
	if v := f.Get("version"); v != "1.0,1.1,1.2" {
		t.Errorf("ERROR version header %q, want 1.0,1.1,1.2", v)
	}
	if len(b.sessions) != 0 {
		t.Error("a session was opened for a refused CONNECT")
	}
}

func TestFirstFrameMustBeConnect(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)
	c := e.dial()
	c.send(stomp.SEND, "destination", "/queue/a", "receipt", "r1")
	c.expectError(`expected CONNECT frame, got "SEND"`, "r1")
}

func TestConnectTimeout(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{ConnectTimeout: 100 * time.Millisecond}, b)

	start := time.Now()
	c := e.dial()
	c.expectError("no CONNECT frame within 100ms", "")
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("closed after %v, before the timeout", d)
	}

	// Trickling bytes does not extend the deadline.
	c = e.dial()
	c.raw("CONN")
	c.expectError("no CONNECT frame within", "")
}

func TestConnectInvalidHeartBeat(t *testing.T) {
	e := newEnv(t, Config{}, newFakeBroker(true))
	c := e.dial()
	c.send(stomp.CONNECT, "accept-version", "1.2", "heart-beat", "ten,0")
	c.expectError("invalid heart-beat header", "")
}

func TestOpenFails(t *testing.T) {
	b := newFakeBroker(true)
	b.openErr = queue.ErrClosed
	e := newEnv(t, Config{}, b)
	c := e.dial()
	c.send(stomp.CONNECT, "accept-version", "1.2")
	c.expectError(queue.ErrClosed.Error(), "")
}

func TestHangupClosesSessionOnce(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)
	c, _ := e.connect("1.2")
	s := b.session(t)
	if n := e.srv.NumConns(); n != 1 {
		t.Fatalf("NumConns = %d, want 1", n)
	}
	c.nc.Close()
	s.waitClosed(t)
	waitUntil(t, "the connection is gone", func() bool { return e.srv.NumConns() == 0 })
}

func TestServerClose(t *testing.T) {
	b := newFakeBroker(false)
	e := newEnv(t, Config{}, b)

	var clients []*client
	var sessions []*fakeSession
	for range 3 {
		c, _ := e.connect("1.2")
		clients = append(clients, c)
		sessions = append(sessions, b.session(t))
	}
	// One operation is in flight when the server closes.
	clients[0].send(stomp.SEND, "destination", "/queue/a", "receipt", "r1")
	pending := sessions[0].next(t, "send")
	// A connection that has not sent CONNECT yet is closed too.
	idle := e.dial()
	waitUntil(t, "4 connections", func() bool { return e.srv.NumConns() == 4 })

	closed := make(chan struct{})
	go func() {
		e.srv.Close("leadership lost")
		close(closed)
	}()
	for _, c := range clients {
		c.expectError("leadership lost", "")
	}
	idle.expectError("leadership lost", "")
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close did not return")
	}
	for _, s := range sessions {
		s.waitClosed(t)
	}
	if n := e.srv.NumConns(); n != 0 {
		t.Fatalf("NumConns = %d after Close", n)
	}

	// Completions and deliveries after Close write nothing and do not
	// block or panic.
	pending.done(nil)
	sessions[1].out.Deliver(delivery("m1", 10))
	if sessions[1].out.Writable() {
		t.Error("a closed connection reports Writable")
	}
	if n := e.numWritten(); n != 0 {
		t.Errorf("%d deliveries written after Close", n)
	}

	// The listener is closed, and Serve returned nil (checked at cleanup).
	if nc, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		nc.Close()
		t.Error("listener still accepts after Close")
	}
	// Serving again after Close is a no-op.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Serve(l); err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Serve after Close left the listener open")
	}
}

func TestValidateDefaults(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Limits:           stomp.DefaultLimits(),
		HeartBeat:        [2]time.Duration{10 * time.Second, 10 * time.Second},
		ConnectTimeout:   10 * time.Second,
		WriteTimeout:     30 * time.Second,
		MaxOutboundBytes: 4 << 20,
		MaxPendingOps:    1024,
		ServerName:       "raftmq",
	}
	if c.Limits != want.Limits || c.HeartBeat != want.HeartBeat || c.ConnectTimeout != want.ConnectTimeout ||
		c.WriteTimeout != want.WriteTimeout || c.MaxOutboundBytes != want.MaxOutboundBytes ||
		c.MaxPendingOps != want.MaxPendingOps || c.ServerName != want.ServerName {
		t.Errorf("defaults %+v, want %+v", c, want)
	}
	for _, bad := range []Config{{WriteTimeout: -1}, {ConnectTimeout: -1}, {MaxPendingOps: -1}, {MaxOutboundBytes: -1}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted a negative value", bad)
		}
	}
	// A negative heart-beat means never, and is offered as 0.
	c = Config{HeartBeat: [2]time.Duration{-1, 5 * time.Second}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	hb, err := negotiateHeartBeat("1000,1000", c.HeartBeat)
	if err != nil {
		t.Fatal(err)
	}
	if hb.send != 0 || hb.recv != 5*time.Second {
		t.Errorf("negotiated %+v, want send 0, recv 5s", hb)
	}
}

// TestFenceHoldsWrites: while the Fence is shut nothing is written, a
// RECEIPT included; when it opens the held frames go out; a connection
// closed behind a shut fence gets its ERROR and nothing else.
func TestFenceHoldsWrites(t *testing.T) {
	var open atomic.Bool
	open.Store(true)
	e := newEnv(t, Config{Fence: open.Load}, newFakeBroker(true))
	c, _ := e.connect("1.2")

	open.Store(false)
	c.send(stomp.SEND, "destination", "/queue/a", "receipt", "r1")
	c.expectSilence()
	open.Store(true)
	c.expect(stomp.RECEIPT, "receipt-id", "r1")

	open.Store(false)
	c.send(stomp.SEND, "destination", "/queue/a", "receipt", "r2")
	c.expectSilence()
	e.srv.Close("lost leadership")
	f := c.read()
	if f.Command != stomp.ERROR || !strings.Contains(f.Get("message"), "lost leadership") {
		t.Fatalf("got %s %q, want the ERROR alone", f.Command, f.Headers)
	}
	c.expectClosed()
}

// Config.Admit refuses a CONNECT with an ERROR that carries its reason,
// and the release of an admitted connection runs once when it ends.
func TestAdmit(t *testing.T) {
	released := make(chan string, 4)
	cfg := Config{Admit: func(f *stomp.Frame, remote string) (func(), error) {
		g := f.Get(HeaderBridgeGroup)
		if g == "loop" {
			return nil, errors.New("a bridge from group loop to itself")
		}
		return func() { released <- g }, nil
	}}
	e := newEnv(t, cfg, newFakeBroker(true))

	c := e.dial()
	c.send(stomp.CONNECT, "accept-version", "1.2", HeaderBridgeGroup, "loop")
	c.expectError("a bridge from group loop to itself", "") // and closed

	c, _ = e.connect("1.2", HeaderBridgeGroup, "west")
	select {
	case g := <-released:
		t.Fatalf("released %q while connected", g)
	default:
	}
	c.send(stomp.DISCONNECT)
	c.nc.Close()
	select {
	case g := <-released:
		if g != "west" {
			t.Errorf("released %q, want west", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("admission never released")
	}
}

// TestCloseWithError: the engine ends a session with a reason (a
// wildcard subscription outgrew its limit): the client gets an ERROR
// saying so, the connection closes and so does the session.
func TestCloseWithError(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)
	c, _ := e.connect("1.2")
	s := b.session(t)
	closer, ok := s.out.(queue.Closer)
	if !ok {
		t.Fatal("the connection is no queue.Closer")
	}
	closer.CloseWithError("wildcard subscription /queue/> outgrew its limit")
	c.expectError("wildcard subscription /queue/> outgrew its limit", "") // and the close
	s.waitClosed(t)
}
