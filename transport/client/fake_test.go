package client

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/stomp"
)

// fakeBroker is a tiny STOMP server for the client's tests, built on the
// codec. Per connection it negotiates the version, answers receipts, keeps
// subscriptions and delivers every SEND to the same connection's
// subscribers of its destination. Tests change its behaviour through the
// fields, set before the first connection.
type fakeBroker struct {
	t  *testing.T
	ln net.Listener

	// connected builds the reply to CONNECT; nil: a CONNECTED with the
	// negotiated version and heart-beat 0,0.
	connected func(connect *stomp.Frame) *stomp.Frame
	// handle, if set, sees every frame after CONNECT first; returning true
	// means it handled the frame.
	handle func(sc *serverConn, f *stomp.Frame) bool
	// onConnect, if set, runs in its own goroutine once CONNECTED is sent.
	onConnect func(sc *serverConn)

	frames chan *stomp.Frame // every frame received after CONNECT

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newFakeBroker(t *testing.T) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBroker{t: t, ln: ln, frames: make(chan *stomp.Frame, 10000)}
	t.Cleanup(b.close)
	return b
}

// start accepts connections; call it after setting the hooks.
func (b *fakeBroker) start() *fakeBroker {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			nc, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, nc)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer nc.Close()
				b.serve(newServerConn(nc))
			}()
		}
	}()
	return b
}

func (b *fakeBroker) addr() string { return b.ln.Addr().String() }

func (b *fakeBroker) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	for _, nc := range b.conns {
		_ = nc.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// next returns the next frame the broker received after CONNECT.
func (b *fakeBroker) next(t *testing.T) *stomp.Frame {
	t.Helper()
	select {
	case f := <-b.frames:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("broker received no frame")
		return nil
	}
}

type serverConn struct {
	nc      net.Conn
	r       *stomp.Reader
	wmu     sync.Mutex
	w       *stomp.Writer
	version stomp.Version
	subs    map[string]string // id → destination
	msgID   int
}

func newServerConn(nc net.Conn) *serverConn {
	return &serverConn{nc: nc, r: stomp.NewReader(nc, stomp.Limits{}), w: stomp.NewWriter(nc), subs: map[string]string{}}
}

func (sc *serverConn) send(f *stomp.Frame) error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	if err := sc.w.WriteFrame(f); err != nil {
		return err
	}
	return sc.w.Flush()
}

func (b *fakeBroker) serve(sc *serverConn) {
	connect, err := sc.r.ReadFrame()
	if err != nil {
		return
	}
	var reply *stomp.Frame
	if b.connected != nil {
		reply = b.connected(connect)
	} else {
		v, _ := stomp.NegotiateVersion(connect.Get("accept-version"))
		reply = &stomp.Frame{Command: stomp.CONNECTED}
		reply.Add("version", string(v))
		reply.Add("heart-beat", "0,0")
	}
	if reply == nil {
		// Swallow the CONNECT: a server that never answers.
		_, _ = io.Copy(io.Discard, sc.nc)
		return
	}
	b.frames <- connect
	if err := sc.send(reply); err != nil || reply.Command != stomp.CONNECTED {
		return
	}
	sc.version = stomp.Version(reply.Get("version"))
	if sc.version == "" {
		sc.version = stomp.V10
	}
	sc.r.SetVersion(sc.version)
	sc.w.SetVersion(sc.version)
	if b.onConnect != nil {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.onConnect(sc)
		}()
	}

	for {
		f, err := sc.r.ReadFrame()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && err != io.EOF {
				b.t.Logf("fake broker: %v", err)
			}
			return
		}
		b.frames <- f
		if b.handle != nil && b.handle(sc, f) {
			continue
		}
		switch f.Command {
		case stomp.SUBSCRIBE:
			sc.subs[f.Get("id")] = f.Get("destination")
		case stomp.UNSUBSCRIBE:
			delete(sc.subs, f.Get("id"))
		case stomp.SEND:
			for id, dest := range sc.subs {
				if dest == f.Get("destination") {
					if sc.send(sc.message(id, f)) != nil {
						return
					}
				}
			}
		}
		if r, ok := f.Lookup("receipt"); ok {
			if sc.send(&stomp.Frame{Command: stomp.RECEIPT, Headers: []stomp.Header{{Key: "receipt-id", Value: r}}}) != nil {
				return
			}
		}
		if f.Command == stomp.DISCONNECT {
			return
		}
	}
}

// message turns a SEND into the MESSAGE for subscription id.
func (sc *serverConn) message(id string, send *stomp.Frame) *stomp.Frame {
	sc.msgID++
	mid := "m" + strconv.Itoa(sc.msgID)
	m := &stomp.Frame{Command: stomp.MESSAGE, Body: send.Body}
	m.Add("subscription", id)
	m.Add("message-id", mid)
	m.Add("destination", send.Get("destination"))
	if sc.version == stomp.V12 {
		m.Add("ack", "ack-"+mid)
	}
	for _, h := range send.Headers {
		if h.Key != "destination" && h.Key != "receipt" && h.Key != "content-length" {
			m.Headers = append(m.Headers, h)
		}
	}
	return m
}
