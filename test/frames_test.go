package test

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/stomp"
)

// TestConnectAndConnected checks CONNECT and STOMP, version negotiation
// and every header of CONNECTED: version, heart-beat (the server's
// offer), session (unique per connection) and server.
func TestConnectAndConnected(t *testing.T) {
	t.Parallel()
	b := startBroker(t, func(c *node.Config) {
		c.Transport.HeartBeat = [2]time.Duration{1500 * time.Millisecond, 2500 * time.Millisecond}
	})
	sessions := map[string]bool{}
	for _, tc := range []struct {
		command, accept, want string
	}{
		{stomp.CONNECT, "1.2", "1.2"},
		{stomp.STOMP, "1.2", "1.2"},
		{stomp.CONNECT, "1.1", "1.1"},
		{stomp.STOMP, "1.1", "1.1"},
		{stomp.CONNECT, "1.0", "1.0"},
		{stomp.CONNECT, "", "1.0"}, // a STOMP 1.0 client sends no accept-version
		{stomp.CONNECT, "1.0,1.1", "1.1"},
		{stomp.CONNECT, "1.1,1.0,1.2", "1.2"},
		{stomp.CONNECT, "1.2,2.0", "1.2"},
	} {
		c := rawDial(t, b.addr, stomp.Limits{})
		h := []string{"host", "localhost", "heart-beat", "0,0"}
		if tc.accept != "" {
			h = append(h, "accept-version", tc.accept)
		}
		c.write(frame(tc.command, "", h...))
		f := c.expect(stomp.CONNECTED)
		if got := f.Get("version"); got != tc.want {
			t.Errorf("%s accept-version %q: version %q, want %q", tc.command, tc.accept, got, tc.want)
		}
		if got := f.Get("heart-beat"); got != "1500,2500" {
			t.Errorf("%s accept-version %q: heart-beat %q, want the server's offer 1500,2500", tc.command, tc.accept, got)
		}
		if got := f.Get("server"); got != "raftmq" {
			t.Errorf("server header %q, want raftmq", got)
		}
		s := f.Get("session")
		if s == "" || sessions[s] {
			t.Errorf("session header %q: empty or reused", s)
		}
		sessions[s] = true
		// DISCONNECT with a receipt: RECEIPT, then the server closes.
		c.r.SetVersion(stomp.Version(tc.want))
		c.w.SetVersion(stomp.Version(tc.want))
		c.write(frame(stomp.DISCONNECT, "", "receipt", "bye-"+s))
		c.expectReceipt("bye-" + s)
		c.expectClosed()
	}

	// No common version: ERROR listing ours in a version header, then close.
	c := rawDial(t, b.addr, stomp.Limits{})
	c.write(frame(stomp.CONNECT, "", "accept-version", "2.0,3.1", "host", "localhost", "receipt", "r-v"))
	f := c.expectError("supported protocol versions are 1.0,1.1,1.2", "r-v")
	if got := f.Get("version"); got != "1.0,1.1,1.2" {
		t.Errorf("ERROR version header %q, want 1.0,1.1,1.2", got)
	}

	// A malformed heart-beat header.
	c = rawDial(t, b.addr, stomp.Limits{})
	c.write(frame(stomp.CONNECT, "", "accept-version", "1.2", "host", "localhost", "heart-beat", "ten,0"))
	c.expectError("invalid heart-beat header", "")
}

// TestEveryClientFrame drives a STOMP 1.2 session through every client
// command with receipts and checks every server frame it gets back: SEND
// with user headers and a binary body (NUL bytes, content-length), the
// MESSAGE's headers in order, ACK, NACK, UNSUBSCRIBE, BEGIN, COMMIT, ABORT
// and DISCONNECT.
func TestEveryClientFrame(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	c, _ := rawConnect(t, b.addr, "1.2")
	const q = "/queue/every-frame"

	c.write(frame(stomp.SUBSCRIBE, "", "id", "sub-1", "destination", q, "ack", "client-individual", "receipt", "r-sub"))
	c.expectReceipt("r-sub")

	body := []byte("bin\x00ary\x00\x00body\n")
	send := &stomp.Frame{Command: stomp.SEND, Headers: hdr(
		"destination", q,
		"receipt", "r-send",
		"content-type", "application/octet-stream",
		"x-colon", "a:b",
		"x-newline", "line1\nline2",
		"x-backslash", `c:\dir`,
		"x-repeated", "first",
		"x-repeated", "second",
		// Broker headers a sender must not be able to forge.
		"message-id", "forged-id",
		"subscription", "forged-sub",
		"redelivered", "true",
		"delivery-count", "99",
		"timestamp", "1",
	), Body: body}
	c.write(send) // the Writer adds content-length, body holds NULs
	// The RECEIPT (after the raft commit) and the MESSAGE (dispatched when
	// the entry is applied) may come in either order.
	m := c.receiptAnd("r-send", stomp.MESSAGE)
	wantOrder := []string{"message-id", "destination", "subscription", "ack", "delivery-count", "priority", "timestamp", "persistent"}
	for i, k := range wantOrder {
		if i >= len(m.Headers) || m.Headers[i].Key != k {
			t.Fatalf("MESSAGE headers %v: want the broker's headers first, in order %v", m.Headers, wantOrder)
		}
	}
	mid := m.Get("message-id")
	if mid == "" || mid == "forged-id" {
		t.Errorf("message-id %q: want one the broker assigned", mid)
	}
	for k, want := range map[string]string{
		"destination":    q,
		"subscription":   "sub-1",
		"delivery-count": "1",
		"priority":       "4",
		"persistent":     "true",
		"content-type":   "application/octet-stream",
		"x-colon":        "a:b",
		"x-newline":      "line1\nline2",
		"x-backslash":    `c:\dir`,
		"x-repeated":     "first",
		"content-length": strconv.Itoa(len(body)),
	} {
		if got := m.Get(k); got != want {
			t.Errorf("MESSAGE %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := m.Lookup("redelivered"); ok {
		t.Errorf("first delivery has a redelivered header: %v", m.Headers)
	}
	if ts, err := strconv.ParseInt(m.Get("timestamp"), 10, 64); err != nil || time.Since(time.UnixMilli(ts)) > time.Minute || ts == 1 {
		t.Errorf("timestamp %q is not the broker's time of receipt", m.Get("timestamp"))
	}
	if m.Get("ack") == "" {
		t.Fatalf("STOMP 1.2 MESSAGE without ack header: %v", m.Headers)
	}
	if !bytes.Equal(m.Body, body) {
		t.Errorf("body = %q, want %q", m.Body, body)
	}

	// NACK with a receipt: the message comes back, flagged.
	c.write(frame(stomp.NACK, "", "id", m.Get("ack"), "receipt", "r-nack"))
	m2 := c.receiptAnd("r-nack", stomp.MESSAGE)
	if m2.Get("message-id") != mid || m2.Get("redelivered") != "true" || m2.Get("delivery-count") != "2" {
		t.Errorf("after NACK: %v, want message-id %s redelivered:true delivery-count:2", m2.Headers, mid)
	}
	if m2.Get("ack") == m.Get("ack") {
		t.Errorf("redelivery reuses ack id %q", m.Get("ack"))
	}
	// ACK with a receipt.
	c.write(frame(stomp.ACK, "", "id", m2.Get("ack"), "receipt", "r-ack"))
	c.expectReceipt("r-ack")

	// BEGIN, SEND in the transaction, ABORT, BEGIN, SEND, COMMIT.
	c.write(frame(stomp.BEGIN, "", "transaction", "tx-a", "receipt", "r-begin-a"))
	c.expectReceipt("r-begin-a")
	c.write(frame(stomp.SEND, "aborted", "destination", q, "transaction", "tx-a", "receipt", "r-send-a"))
	c.expectReceipt("r-send-a")
	c.write(frame(stomp.ABORT, "", "transaction", "tx-a", "receipt", "r-abort"))
	c.expectReceipt("r-abort")
	c.write(frame(stomp.BEGIN, "", "transaction", "tx-c", "receipt", "r-begin-c"))
	c.expectReceipt("r-begin-c")
	c.write(frame(stomp.SEND, "committed", "destination", q, "transaction", "tx-c", "receipt", "r-send-c"))
	c.expectReceipt("r-send-c")
	c.expectNothing()
	c.write(frame(stomp.COMMIT, "", "transaction", "tx-c", "receipt", "r-commit"))
	if f := c.receiptAnd("r-commit", stomp.MESSAGE); string(f.Body) != "committed" {
		t.Fatalf("after COMMIT: MESSAGE %q, want committed", f.Body)
	} else {
		c.write(frame(stomp.ACK, "", "id", f.Get("ack"), "receipt", "r-ack-c"))
		c.expectReceipt("r-ack-c")
	}

	// UNSUBSCRIBE with a receipt: later sends are not delivered here.
	c.write(frame(stomp.UNSUBSCRIBE, "", "id", "sub-1", "receipt", "r-unsub"))
	c.expectReceipt("r-unsub")
	c.write(frame(stomp.SEND, "after-unsubscribe", "destination", q, "receipt", "r-send-2"))
	c.expectReceipt("r-send-2")
	c.expectNothing()

	// DISCONNECT with a receipt: its RECEIPT covers everything sent
	// before it (this SEND asks for none), then the connection closes.
	c.write(frame(stomp.SEND, "before-disconnect", "destination", q))
	c.write(frame(stomp.DISCONNECT, "", "receipt", "r-disc"))
	c.expectReceipt("r-disc")
	c.expectClosed()

	// What was sent after UNSUBSCRIBE is still there, and only that.
	c2, _ := rawConnect(t, b.addr, "1.2")
	c2.write(frame(stomp.SUBSCRIBE, "", "id", "s", "destination", q, "ack", "auto"))
	for _, want := range []string{"after-unsubscribe", "before-disconnect"} {
		if f := c2.expect(stomp.MESSAGE); string(f.Body) != want {
			t.Errorf("left in the queue: %q, want %s", f.Body, want)
		}
	}
	c2.expectNothing()
}

// TestAckByVersion checks how each STOMP version names the message it
// acknowledges: 1.0 by message-id, 1.1 by message-id and subscription, 1.2
// by the MESSAGE's ack header (present in 1.2 only), and that NACK does
// not exist in 1.0. An acked message is gone; the unacked one comes back
// to the next consumer with redelivered:true.
func TestAckByVersion(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	for _, v := range []string{"1.0", "1.1", "1.2"} {
		t.Run(v, func(t *testing.T) {
			q := "/queue/ack-v" + v
			c, _ := rawConnect(t, b.addr, v)
			c.write(frame(stomp.SUBSCRIBE, "", "id", "s-"+v, "destination", q, "ack", "client-individual", "receipt", "r0"))
			c.expectReceipt("r0")
			for i := range 3 {
				c.write(frame(stomp.SEND, "m"+strconv.Itoa(i), "destination", q))
			}
			var ms []*stomp.Frame
			for range 3 {
				ms = append(ms, c.expect(stomp.MESSAGE))
			}
			for i, m := range ms {
				if string(m.Body) != "m"+strconv.Itoa(i) {
					t.Fatalf("message %d body %q", i, m.Body)
				}
				_, hasAck := m.Lookup("ack")
				if hasAck != (v == "1.2") {
					t.Errorf("STOMP %s MESSAGE ack header present=%v: %v", v, hasAck, m.Headers)
				}
				if m.Get("subscription") != "s-"+v {
					t.Errorf("subscription header %q", m.Get("subscription"))
				}
			}
			ackOf := func(m *stomp.Frame) []string {
				switch v {
				case "1.0":
					return []string{"message-id", m.Get("message-id")}
				case "1.1":
					return []string{"message-id", m.Get("message-id"), "subscription", m.Get("subscription")}
				}
				return []string{"id", m.Get("ack")}
			}
			// ACK m0 and m2.
			c.write(frame(stomp.ACK, "", append(ackOf(ms[0]), "receipt", "ra0")...))
			c.expectReceipt("ra0")
			c.write(frame(stomp.ACK, "", append(ackOf(ms[2]), "receipt", "ra2")...))
			c.expectReceipt("ra2")
			if v == "1.0" {
				c.write(frame(stomp.NACK, "", append(ackOf(ms[1]), "receipt", "rn")...))
				c.expectError(`unknown command "NACK"`, "rn")
			} else {
				// A second ACK of the same message: it is no longer unacked.
				c.write(frame(stomp.ACK, "", append(ackOf(ms[0]), "receipt", "ra0-again")...))
				c.expectError("no unacknowledged message with that id", "ra0-again")
			}
			// m1 comes back to the next consumer, flagged; m0 and m2 do not.
			c2, _ := rawConnect(t, b.addr, v)
			c2.write(frame(stomp.SUBSCRIBE, "", "id", "s2", "destination", q, "ack", "auto"))
			m := c2.expect(stomp.MESSAGE)
			if string(m.Body) != "m1" || m.Get("redelivered") != "true" || m.Get("delivery-count") != "2" {
				t.Errorf("redelivered %q %v, want m1 with redelivered:true delivery-count:2", m.Body, m.Headers)
			}
			c2.expectNothing()
		})
	}
	// Frames that name no message the way their version requires.
	for _, tc := range []struct {
		v, msg string
		kv     []string
	}{
		{"1.2", "ACK frame has no id", []string{"message-id", "x"}},
		{"1.1", "ACK frame has no subscription", []string{"message-id", "x"}},
		{"1.1", "ACK frame has no message-id", []string{"id", "x"}},
		{"1.0", "ACK frame has no message-id", []string{"id", "x"}},
	} {
		c, _ := rawConnect(t, b.addr, tc.v)
		c.write(frame(stomp.ACK, "", append(tc.kv, "receipt", "r-bad")...))
		c.expectError(tc.msg, "r-bad")
	}
}
