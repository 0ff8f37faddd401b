package test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// TestStuckConsumerClosed: a consumer with a large prefetch that never
// reads its socket is closed once writes to it make no progress for
// Transport.WriteTimeout; the messages it held go to another consumer,
// flagged redelivered, and a normal client is served throughout.
func TestStuckConsumerClosed(t *testing.T) {
	t.Parallel()
	const writeTimeout = time.Second
	b := startBroker(t, func(c *node.Config) { c.Transport.WriteTimeout = writeTimeout })
	k := startCanary(t, b.addr, "/queue/canary")
	const q, n, size = "/queue/stuck", 300, 32 << 10

	stuck := stuckConsumer(t, b.addr, q, "100000")
	subscribed := time.Now()

	p := b.dial(client.Options{})
	pad := strings.Repeat("s", size)
	var bodies []string
	for i := range n {
		bodies = append(bodies, fmt.Sprintf("%04d|%s", i, pad))
	}
	sendAll(t, p, q, bodies)
	k.alive("pushing to the stuck consumer")

	// Another consumer gets every message, those the stuck one held
	// once it has been closed.
	s := subscribe(t, b.dial(client.Options{}), q, "auto")
	got := map[string]*stomp.Frame{}
	for len(got) < n {
		var m *stomp.Frame
		select {
		case m = <-s.C():
		case <-time.After(waitLong + 2*writeTimeout):
			t.Fatalf("second consumer got %d of %d messages; the stuck consumer was not closed", len(got), n)
		}
		id := string(m.Body[:4])
		if got[id] != nil {
			t.Errorf("message %s delivered twice to the second consumer", id)
		}
		got[id] = m
	}
	closedAfter := time.Since(subscribed)
	noMessage(t, s)
	held, nbytes := stuck.expectGone()
	checkHeldRedelivered(t, held, got)
	k.alive("the stuck consumer was closed")
	t.Logf("stuck consumer received %d complete messages (%.1f MiB) before it was closed; all %d reached the second consumer %v after the stuck one subscribed (write timeout %v)",
		len(held), float64(nbytes)/mib, n, closedAfter.Round(time.Millisecond), writeTimeout)
}

// checkHeldRedelivered checks that every message the stuck consumer
// received in full came to the next consumer flagged redelivered:true
// with a delivery-count of at least 2: it was delivered before.
func checkHeldRedelivered(t *testing.T, held []string, got map[string]*stomp.Frame) {
	t.Helper()
	if len(held) == 0 {
		t.Errorf("the stuck consumer received no complete message: the test did not test anything")
	}
	bad := 0
	for _, id := range held {
		m := got[id]
		if m == nil {
			t.Errorf("message %s, received by the stuck consumer, never reached the second consumer", id)
			continue
		}
		if m.Get("redelivered") != "true" || m.Get("delivery-count") == "1" {
			bad++
			if bad <= 5 {
				t.Errorf("message %s was delivered in full to the stuck consumer, then to the next one with redelivered=%q delivery-count=%q; want redelivered:true and a delivery-count of 2",
					id, m.Get("redelivered"), m.Get("delivery-count"))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of the %d messages the stuck consumer received came back not flagged as redelivered", bad, len(held))
	}
}

// stuckConn is a consumer that stopped reading.
type stuckConn struct {
	t  testing.TB
	nc net.Conn
}

// stuckConsumer connects with a small socket receive buffer, subscribes
// to q with the given prefetch and then never reads again.
func stuckConsumer(t testing.TB, addr, q, prefetch string) *stuckConn {
	t.Helper()
	c := rawDialSmallWindow(t, addr)
	c.write(frame(stomp.CONNECT, "", "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0"))
	c.expect(stomp.CONNECTED)
	c.r.SetVersion(stomp.V12)
	c.w.SetVersion(stomp.V12)
	c.write(frame(stomp.SUBSCRIBE, "", "id", "stuck", "destination", q, "ack", "client-individual",
		"activemq.prefetchSize", prefetch, "receipt", "r-stuck"))
	c.expectReceipt("r-stuck")
	return &stuckConn{t: t, nc: c.nc}
}

// expectGone reads what the server managed to send before it closed the
// connection, checks that it did close it, and returns the bodies of the
// complete MESSAGE frames among it, up to their first '|'.
func (s *stuckConn) expectGone() (held []string, bytes int64) {
	s.t.Helper()
	var buf bytesBuffer
	total, ok := readToEnd(io.TeeReader(s.nc, &buf), s.nc, waitLong)
	if !ok {
		s.t.Fatalf("stuck consumer's connection still open (read %d bytes)", total)
	}
	rd := stomp.NewReader(&buf, stomp.Limits{})
	rd.SetVersion(stomp.V12)
	for {
		f, err := rd.ReadFrame()
		if err != nil {
			break // the end, or a frame cut short
		}
		if f.Command == stomp.MESSAGE {
			body := string(f.Body)
			if i := strings.IndexByte(body, '|'); i >= 0 {
				body = body[:i]
			}
			held = append(held, body)
		}
	}
	return held, total
}

type bytesBuffer = bytes.Buffer
