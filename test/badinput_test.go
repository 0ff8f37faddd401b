package test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// canary is a well-behaved client that keeps sending to its own queue and
// receiving what it sent, in order, while a test abuses the same broker.
type canary struct {
	t      *testing.T
	n      atomic.Int64 // round trips completed
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	err    error
	latest time.Duration // longest round trip
}

func startCanary(t *testing.T, addr, queue string) *canary {
	t.Helper()
	c := dialClient(t, addr, client.Options{})
	s := subscribe(t, c, queue, "client-individual")
	k := &canary{t: t, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-k.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		for i := 0; ; i++ {
			body := "canary-" + strconv.Itoa(i)
			start := time.Now()
			if err := c.SendReceipt(ctx, queue, []byte(body)); err != nil {
				k.fail(ctx, fmt.Errorf("send %d: %w", i, err))
				return
			}
			var m *stomp.Frame
			select {
			case m = <-s.C():
			case <-ctx.Done():
				return
			case <-time.After(waitLong):
				k.fail(ctx, fmt.Errorf("message %d not received within %v", i, waitLong))
				return
			}
			if m == nil || string(m.Body) != body {
				k.fail(ctx, fmt.Errorf("received %v, want %q", m, body))
				return
			}
			if err := c.AckReceipt(ctx, m, ""); err != nil {
				k.fail(ctx, fmt.Errorf("ack %d: %w", i, err))
				return
			}
			rt := time.Since(start)
			k.mu.Lock()
			k.latest = max(k.latest, rt)
			k.mu.Unlock()
			k.n.Add(1)
		}
	}()
	t.Cleanup(k.finish)
	return k
}

func (k *canary) fail(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // stopping
	}
	k.mu.Lock()
	k.err = err
	k.mu.Unlock()
}

// alive waits until the canary completes a few more round trips.
func (k *canary) alive(what string) {
	k.t.Helper()
	from := k.n.Load()
	Eventually(k.t, waitLong, "the canary client to be served after "+what, func() bool {
		k.mu.Lock()
		err := k.err
		k.mu.Unlock()
		if err != nil {
			k.t.Fatalf("canary client failed after %s: %v", what, err)
		}
		return k.n.Load() >= from+3
	})
}

// finish stops the canary and reports whether it was served throughout.
func (k *canary) finish() {
	select {
	case <-k.stop:
		return
	default:
	}
	close(k.stop)
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err != nil {
		k.t.Errorf("canary client failed: %v", k.err)
	}
	k.t.Logf("canary: %d round trips (send+receipt, receive, ack+receipt), slowest %v", k.n.Load(), k.latest)
}

// TestLimits: each limit gets a clear ERROR frame naming it, then the
// connection closes; another client is served meanwhile.
func TestLimits(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(c *node.Config) {
		c.Transport.Limits = stomp.Limits{MaxFrameSize: 16 << 10, MaxHeaders: 20, MaxHeaderLine: 512}
		c.Queue.MaxTxFrames = 3
		c.Queue.MaxSubscriptions = 3
	})
	k := startCanary(t, b.addr, "/queue/canary")
	k.alive("start")

	t.Run("frame-size", func(t *testing.T) {
		c, _ := rawConnect(t, b.addr, "1.2")
		// Just under the limit is fine.
		c.write(frame(stomp.SEND, strings.Repeat("x", 15<<10), "destination", "/queue/big", "receipt", "ok"))
		c.expectReceipt("ok")
		c.write(frame(stomp.SEND, strings.Repeat("x", 17<<10), "destination", "/queue/big", "receipt", "r"))
		c.expectError("frame too large: limit 16384 bytes", "")
		// A content-length beyond the limit is refused before the body.
		c, _ = rawConnect(t, b.addr, "1.2")
		c.writeRaw("SEND\ndestination:/queue/big\ncontent-length:104857600\n\n")
		c.expectError("frame too large: limit 16384 bytes", "")
		// A body without content-length that goes on and on.
		c, _ = rawConnect(t, b.addr, "1.2")
		c.writeRaw("SEND\ndestination:/queue/big\n\n" + strings.Repeat("y", 200<<10))
		c.expectError("frame too large: limit 16384 bytes", "")
		k.alive("frames too large")
	})

	// A frame already past the limit whose sender then stalls: the limit
	// is known to be broken, so the ERROR should come now, not after more
	// bytes arrive.
	t.Run("frame-size-stalled", func(t *testing.T) {
		c, _ := rawConnect(t, b.addr, "1.2")
		c.writeRaw("SEND\ndestination:/queue/big\n\n" + strings.Repeat("y", 20<<10))
		c.expectErrorWithin(3*time.Second, "frame too large: limit 16384 bytes", "")
		k.alive("a stalled frame too large")
	})

	t.Run("headers", func(t *testing.T) {
		c, _ := rawConnect(t, b.addr, "1.2")
		kv := []string{"destination", "/queue/h", "receipt", "r"}
		for i := range 25 {
			kv = append(kv, "x-h"+strconv.Itoa(i), "v")
		}
		c.write(frame(stomp.SEND, "body", kv...))
		c.expectError("too many headers: limit 20", "")
		k.alive("too many headers")
	})

	t.Run("header-line", func(t *testing.T) {
		c, _ := rawConnect(t, b.addr, "1.2")
		c.write(frame(stomp.SEND, "body", "destination", "/queue/h", "x-long", strings.Repeat("v", 600)))
		c.expectError("header line too long: limit 512 bytes", "")
		// A command line without end.
		c, _ = rawConnect(t, b.addr, "1.2")
		c.writeRaw(strings.Repeat("S", 200<<10))
		c.expectError("header line too long: limit 512 bytes", "")
		// Before CONNECT too.
		c = rawDial(t, b.addr, stomp.Limits{})
		c.writeRaw("CONNECT\naccept-version:1.2\nhost:" + strings.Repeat("h", 1000) + "\n\n\x00")
		c.expectError("header line too long: limit 512 bytes", "")
		k.alive("header lines too long")
	})

	// A header line already past the limit whose sender then stalls.
	t.Run("header-line-stalled", func(t *testing.T) {
		c, _ := rawConnect(t, b.addr, "1.2")
		c.writeRaw("SEND\ndestination:/queue/h\nx-long:" + strings.Repeat("v", 4096))
		c.expectErrorWithin(3*time.Second, "header line too long: limit 512 bytes", "")
		k.alive("a stalled header line too long")
	})

	t.Run("transaction-frames", func(t *testing.T) {
		c, _ := rawConnect(t, b.addr, "1.2")
		// The limit (3 frames, a BEGIN counting as one) is the
		// connection's, its transactions together: a second transaction
		// buys no more room.
		c.write(frame(stomp.BEGIN, "", "transaction", "t", "receipt", "bt"))
		c.expectReceipt("bt")
		c.write(frame(stomp.SEND, "s0", "destination", "/queue/txlimit", "transaction", "t", "receipt", "s0"))
		c.expectReceipt("s0")
		c.write(frame(stomp.BEGIN, "", "transaction", "u", "receipt", "bu"))
		c.expectReceipt("bu")
		c.write(frame(stomp.SEND, "s1", "destination", "/queue/txlimit", "transaction", "u", "receipt", "s1"))
		c.expectError("too many frames in this connection's open transactions", "s1")
		// Nothing of the transaction was delivered: the connection's end
		// aborted it.
		noMessage(t, subscribe(t, b.dial(client.Options{}), "/queue/txlimit", "auto"))
		k.alive("too many frames in a connection's transactions")
	})

	t.Run("subscriptions", func(t *testing.T) {
		c, _ := rawConnect(t, b.addr, "1.2")
		for i := range 3 {
			id := "sub" + strconv.Itoa(i)
			c.write(frame(stomp.SUBSCRIBE, "", "id", id, "destination", "/queue/sublimit-"+id, "receipt", id))
			c.expectReceipt(id)
		}
		c.write(frame(stomp.SUBSCRIBE, "", "id", "sub3", "destination", "/queue/sublimit-sub3", "receipt", "sub3"))
		c.expectError("too many subscriptions on this connection", "sub3")
		k.alive("too many subscriptions")
	})
}

// TestBadInput: malformed frames, unknown commands, frames before CONNECT,
// SEND without or with an invalid destination, ACK of an unknown id and
// other refused frames each get an ERROR (with receipt-id when the frame
// could be read and had a receipt) and a closed connection, while another
// client keeps sending and receiving.
func TestBadInput(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	k := startCanary(t, b.addr, "/queue/canary")
	k.alive("start")

	for _, tc := range []struct {
		name    string
		version string // "" means: do not CONNECT first
		raw     string
		msg     string // in the ERROR's message header
		detail  string // in the ERROR's body, when set
		receipt string
	}{
		{"header-without-colon", "1.2", "SEND\ndestination:/queue/a\nreceipt:r\nno-colon-here\n\nx\x00", "malformed frame", "header line without a colon", ""},
		{"header-empty-name", "1.2", "SEND\ndestination:/queue/a\n:value\n\nx\x00", "malformed frame", "empty name", ""},
		{"bad-escape-1.2", "1.2", "SEND\ndestination:/queue/a\nx-h:tab\\there\nreceipt:r\n\nx\x00", "malformed frame", "undefined escape", ""},
		{"cr-escape-1.1", "1.1", "SEND\ndestination:/queue/a\nx-h:a\\rb\n\nx\x00", "malformed frame", "undefined escape", ""},
		{"lone-backslash", "1.2", "SEND\ndestination:/queue/a\nx-h:a\\\n\nx\x00", "malformed frame", "backslash", ""},
		{"content-length-not-a-number", "1.2", "SEND\ndestination:/queue/a\ncontent-length:12x\n\nx\x00", "malformed frame", "invalid content-length", ""},
		{"content-length-negative", "1.2", "SEND\ndestination:/queue/a\ncontent-length:-1\n\nx\x00", "malformed frame", "invalid content-length", ""},
		{"content-length-empty", "1.2", "SEND\ndestination:/queue/a\ncontent-length:\n\nx\x00", "malformed frame", "empty content-length", ""},
		{"body-not-nul-terminated", "1.2", "SEND\ndestination:/queue/a\ncontent-length:3\n\nabcdef\x00", "malformed frame", "not followed by NUL", ""},
		{"unknown-command", "1.2", "FROBNICATE\nreceipt:r-unknown\n\n\x00", `unknown command "FROBNICATE"`, "", "r-unknown"},
		{"server-command-from-client", "1.2", "MESSAGE\ndestination:/queue/a\nreceipt:r-msg\n\nx\x00", `unknown command "MESSAGE"`, "", "r-msg"},
		{"nack-in-1.0", "1.0", "NACK\nmessage-id:x\nreceipt:r-n\n\n\x00", `unknown command "NACK"`, "", "r-n"},
		{"send-before-connect", "", "SEND\ndestination:/queue/a\nreceipt:r-first\n\nx\x00", "expected CONNECT frame", "", "r-first"},
		{"subscribe-before-connect", "", "SUBSCRIBE\nid:1\ndestination:/queue/a\n\n\x00", "expected CONNECT frame", "", ""},
		{"garbage-before-connect", "", "\x01\x02\x03 hello\n\n\x00", "expected CONNECT frame", "", ""},
		// Before login, a frame is bounded tighter than after.
		{"connect-too-large", "", "CONNECT\naccept-version:1.2\nhost:x\ncontent-length:100000\n\n" + strings.Repeat("z", 100000) + "\x00", "frame too large: limit 65536 bytes", "", ""},
		{"connect-twice", "1.2", "CONNECT\naccept-version:1.2\nhost:x\nreceipt:r-c2\n\n\x00", "already connected", "", "r-c2"},
		{"send-without-destination", "1.2", "SEND\nreceipt:r-nodest\n\nbody\x00", "SEND frame has no destination", "", "r-nodest"},
		{"send-invalid-destination", "1.2", "SEND\ndestination:/bogus/place\nreceipt:r-bad\n\nbody\x00", "invalid destination", "", "r-bad"},
		{"send-empty-queue-name", "1.2", "SEND\ndestination:/queue/\nreceipt:r-empty\n\nbody\x00", "invalid destination", "", "r-empty"},
		{"send-destination-too-long", "1.2", "SEND\ndestination:/queue/" + strings.Repeat("q", 1100) + "\nreceipt:r-long\n\nbody\x00", "invalid destination", "", "r-long"},
		{"send-bad-expires", "1.2", "SEND\ndestination:/queue/a\nexpires:tomorrow\nreceipt:r-exp\n\nbody\x00", "invalid expires", "", "r-exp"},
		{"subscribe-without-destination", "1.2", "SUBSCRIBE\nid:1\nreceipt:r-sd\n\n\x00", "SUBSCRIBE frame has no destination", "", "r-sd"},
		{"subscribe-without-id", "1.2", "SUBSCRIBE\ndestination:/queue/a\nreceipt:r-si\n\n\x00", "SUBSCRIBE frame has no id", "", "r-si"},
		{"subscribe-bad-ack", "1.2", "SUBSCRIBE\nid:1\ndestination:/queue/a\nack:sometimes\nreceipt:r-sa\n\n\x00", "invalid ack", "", "r-sa"},
		{"subscribe-bad-prefetch", "1.2", "SUBSCRIBE\nid:1\ndestination:/queue/a\nactivemq.prefetchSize:-5\nreceipt:r-sp\n\n\x00", "invalid activemq.prefetchSize", "", "r-sp"},
		{"subscribe-invalid-destination", "1.2", "SUBSCRIBE\nid:1\ndestination:queue-a\nreceipt:r-sx\n\n\x00", "invalid destination", "", "r-sx"},
		{"subscribe-duplicate-id", "1.2", "SUBSCRIBE\nid:1\ndestination:/queue/a\n\n\x00SUBSCRIBE\nid:1\ndestination:/queue/b\nreceipt:r-dup\n\n\x00", "subscription id already in use", "", "r-dup"},
		{"unsubscribe-unknown", "1.2", "UNSUBSCRIBE\nid:nope\nreceipt:r-u\n\n\x00", "no such subscription", "", "r-u"},
		{"ack-unknown-id-1.2", "1.2", "ACK\nid:12345\nreceipt:r-ack\n\n\x00", "no unacknowledged message with that id", "", "r-ack"},
		{"ack-unknown-id-1.1", "1.1", "ACK\nmessage-id:ID:nope\nsubscription:s\nreceipt:r-ack\n\n\x00", "no unacknowledged message with that id", "", "r-ack"},
		{"nack-unknown-id", "1.2", "NACK\nid:12345\nreceipt:r-nack\n\n\x00", "no unacknowledged message with that id", "", "r-nack"},
		{"ack-unknown-no-receipt", "1.2", "ACK\nid:777\n\n\x00", "no unacknowledged message with that id", "", ""},
		{"half-frame-then-hangup", "1.2", "", "", "", ""}, // see below
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *rawConn
			if tc.version == "" {
				c = rawDial(t, b.addr, stomp.Limits{})
			} else {
				c, _ = rawConnect(t, b.addr, tc.version)
			}
			if tc.name == "half-frame-then-hangup" {
				// Half a frame, then the client goes away: nothing to
				// answer, the server just forgets the connection.
				c.writeRaw("SEND\ndestination:/queue/a\ncontent-length:100\n\nabc")
				c.nc.Close()
				k.alive(tc.name)
				return
			}
			c.writeRaw(tc.raw)
			f := c.expectError(tc.msg, tc.receipt)
			if tc.detail != "" && !strings.Contains(string(f.Body), tc.detail) {
				t.Errorf("ERROR body %q, want it to mention %q", f.Body, tc.detail)
			}
			if ct := f.Get("content-type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("ERROR content-type %q, want text/plain", ct)
			}
			k.alive(tc.name)
		})
	}

	// In STOMP 1.0 the same backslash is a plain byte, not an escape.
	c, _ := rawConnect(t, b.addr, "1.0")
	c.writeRaw("SUBSCRIBE\ndestination:/queue/literal\nreceipt:r\n\n\x00")
	c.expectReceipt("r")
	c.writeRaw("SEND\ndestination:/queue/literal\nx-h:tab\\there\n\nx\x00")
	if m := c.expect(stomp.MESSAGE); m.Get("x-h") != `tab\there` {
		t.Errorf("STOMP 1.0 header x-h = %q, want it literal", m.Get("x-h"))
	}
}

// TestConnectTimeout: a connection that never sends CONNECT is closed after
// the connect timeout with an ERROR; one that trickles bytes is closed too.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(c *node.Config) { c.Transport.ConnectTimeout = 300 * time.Millisecond })
	k := startCanary(t, b.addr, "/queue/canary")
	silent := rawDial(t, b.addr, stomp.Limits{})
	trickle := rawDial(t, b.addr, stomp.Limits{})
	start := time.Now()
	trickled := make(chan struct{})
	defer func() { <-trickled }()
	go func() {
		defer close(trickled)
		for _, ch := range "CONNECT\naccept-version:1.2\n" {
			if _, err := trickle.nc.Write([]byte(string(ch))); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	silent.expectError("no CONNECT frame within 300ms", "")
	trickle.expectError("no CONNECT frame within 300ms", "")
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("closed after %v, want about 300ms", el)
	}
	k.alive("connect timeouts")
}
