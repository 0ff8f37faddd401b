package test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// Limits a broker puts on clients that misbehave (SECURITY.md): too many
// connections, floods of frames, producers faster than their consumers.
// Each is refused clearly or held back, nothing is lost, and the broker
// keeps serving the clients that behave.

// TestConnectionLimit fills --max-connections and checks the next
// connection is told so, and that a freed slot is taken again.
func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	s := StartServer(t, raftmqBin, t.TempDir(), "--max-connections", "5")
	var open []*rawConn
	for range 5 {
		c, _ := rawConnect(t, s.Stomp, "1.2")
		open = append(open, c)
	}
	// Many more at once: each refused with an ERROR, none served.
	for range 20 {
		c := rawDial(t, s.Stomp, stomp.Limits{})
		f := c.read()
		if f.Command != stomp.ERROR || !strings.Contains(f.Get("message"), "too many connections: this listener takes at most 5") || f.Get("raftmq-retry") != "true" {
			t.Fatalf("connection past the limit: %s %v %q", f.Command, f.Headers, f.Body)
		}
		c.expectClosed()
	}
	// The five are still served.
	for i, c := range open {
		c.write(frame(stomp.SEND, "x", "destination", "/queue/limit", "receipt", fmt.Sprint(i)))
		c.expectReceipt(fmt.Sprint(i))
	}
	if m := scrape(t, s.HTTP); m["raftmq_connections_refused_total"] != 20 {
		t.Errorf("raftmq_connections_refused_total = %v, want 20", m["raftmq_connections_refused_total"])
	}
	open[0].nc.Close()
	Eventually(t, waitLong, "a freed slot to be taken", func() bool {
		nc, err := net.DialTimeout("tcp", s.Stomp, waitLong)
		if err != nil {
			return false
		}
		defer nc.Close()
		c := &rawConn{t: t, nc: nc, r: stomp.NewReader(nc, stomp.Limits{}), w: stomp.NewWriter(nc)}
		c.write(frame(stomp.CONNECT, "", "accept-version", "1.2", "host", "localhost"))
		return c.read().Command == stomp.CONNECTED
	})
}

const flowLimits = `
# pattern   settings
fail.>      max-messages=10 on-full=fail
block.>     max-messages=10 on-full=block
timed.>     max-messages=5 on-full=block block-timeout=1s
bytes.>     max-bytes=1KiB on-full=fail
flood.>     max-messages=100
`

// TestProducerFlowControl fills queues to their limits under each policy.
func TestProducerFlowControl(t *testing.T) {
	t.Parallel()
	s := StartServer(t, raftmqBin, t.TempDir(), "--queue-limits", writeFile(t, "limits", flowLimits))
	a := api{t: t, addr: s.HTTP}
	good := func() {
		t.Helper()
		c := dialClient(t, s.Stomp, client.Options{})
		sendR(t, c, "/queue/unlimited", "fine")
		c.Close()
	}

	t.Run("fail", func(t *testing.T) {
		c, _ := rawConnect(t, s.Stomp, "1.2")
		for i := range 10 {
			c.write(frame(stomp.SEND, "m", "destination", "/queue/fail.q", "receipt", fmt.Sprint(i)))
			c.expectReceipt(fmt.Sprint(i))
		}
		c.write(frame(stomp.SEND, "m", "destination", "/queue/fail.q", "receipt", "over"))
		c.expectError("destination /queue/fail.q is full (10 messages, limit 10)", "over")
		d := a.destination("/queue/fail.q")
		if d.Pending != 10 || d.SendsFailed != 1 || d.MaxMessages != 10 {
			t.Fatalf("fail.q after the refused send: %+v", d)
		}
		m := scrape(t, s.HTTP)
		if l := "{destination=/queue/fail.q,type=queue}"; m["raftmq_destination_sends_failed_total"+l] != 1 || m["raftmq_store_bytes"] <= 0 {
			t.Errorf("metrics: sends failed %v, store bytes %v", m["raftmq_destination_sends_failed_total"+l], m["raftmq_store_bytes"])
		}
		good()
	})

	t.Run("bytes", func(t *testing.T) {
		c, _ := rawConnect(t, s.Stomp, "1.2")
		// An empty queue takes one message larger than its limit.
		c.write(frame(stomp.SEND, strings.Repeat("b", 2000), "destination", "/queue/bytes.q", "receipt", "big"))
		c.expectReceipt("big")
		c.write(frame(stomp.SEND, "small", "destination", "/queue/bytes.q", "receipt", "small"))
		c.expectError("destination /queue/bytes.q is full", "small")
		good()
	})

	t.Run("block", func(t *testing.T) {
		p, _ := rawConnect(t, s.Stomp, "1.2")
		for i := range 10 {
			p.write(frame(stomp.SEND, fmt.Sprint(i), "destination", "/queue/block.q", "receipt", fmt.Sprint(i)))
			p.expectReceipt(fmt.Sprint(i))
		}
		p.write(frame(stomp.SEND, "10", "destination", "/queue/block.q", "receipt", "held"))
		p.expectNothing() // the receipt is held: the queue is full
		if d := a.destination("/queue/block.q"); d.Pending != 10 || d.SendsHeld != 1 {
			t.Fatalf("block.q while the 11th send waits: %+v", d)
		}
		good() // others are served meanwhile

		// One ack makes room: the held send goes in, and its receipt out.
		cons := dialClient(t, s.Stomp, client.Options{})
		sub := subscribe(t, cons, "/queue/block.q", "client-individual", "activemq.prefetchSize", "1")
		m := recv(t, sub)
		if string(m.Body) != "0" {
			t.Fatalf("first message %q, want 0", m.Body)
		}
		if err := cons.Ack(m, ""); err != nil {
			t.Fatal(err)
		}
		p.expectReceipt("held")
		// Everything arrives, in order, once.
		got := []string{"0"}
		for len(got) < 11 {
			m := recv(t, sub)
			if err := cons.Ack(m, ""); err != nil {
				t.Fatal(err)
			}
			got = append(got, string(m.Body))
		}
		if want := "0,1,2,3,4,5,6,7,8,9,10"; join(got) != want {
			t.Fatalf("received %s, want %s", join(got), want)
		}
	})

	t.Run("block timeout", func(t *testing.T) {
		c, _ := rawConnect(t, s.Stomp, "1.2")
		for i := range 5 {
			c.write(frame(stomp.SEND, "m", "destination", "/queue/timed.q", "receipt", fmt.Sprint(i)))
			c.expectReceipt(fmt.Sprint(i))
		}
		start := time.Now()
		c.write(frame(stomp.SEND, "m", "destination", "/queue/timed.q", "receipt", "late"))
		c.expectError("after waiting", "late")
		if waited := time.Since(start); waited < time.Second {
			t.Errorf("refused after %v, before the 1s block timeout", waited)
		}
		if d := a.destination("/queue/timed.q"); d.Pending != 5 {
			t.Fatalf("timed.q after the timeout: %+v", d)
		}
		good()
	})

	t.Run("flood", func(t *testing.T) {
		// A producer pipelines far more than the queue holds, without
		// waiting for receipts, while a slow consumer drains it. The
		// queue never holds more than its limit and every message
		// arrives exactly once.
		const total = 3000
		p, _ := rawConnect(t, s.Stomp, "1.2")
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range total {
				f := frame(stomp.SEND, fmt.Sprint(i), "destination", "/queue/flood.q")
				if i == total-1 {
					f.Headers = append(f.Headers, stomp.Header{Key: "receipt", Value: "last"})
				}
				if err := p.w.WriteFrame(f); err != nil {
					t.Errorf("send %d: %v", i, err)
					return
				}
			}
			p.w.Flush()
		}()
		cons := dialClient(t, s.Stomp, client.Options{})
		sub := subscribe(t, cons, "/queue/flood.q", "client-individual", "activemq.prefetchSize", "10")
		seen := make(map[string]bool)
		peak := 0
		for len(seen) < total {
			m := recv(t, sub)
			if seen[string(m.Body)] {
				t.Fatalf("message %s twice", m.Body)
			}
			seen[string(m.Body)] = true
			if err := cons.Ack(m, ""); err != nil {
				t.Fatal(err)
			}
			if len(seen)%500 == 0 {
				d := a.destination("/queue/flood.q")
				peak = max(peak, d.Pending)
				if d.Pending > 100 {
					t.Fatalf("flood.q holds %d messages (%d in flight), limit 100", d.Pending, d.InFlight)
				}
			}
		}
		wg.Wait()
		p.expectReceipt("last")
		d := a.destination("/queue/flood.q")
		t.Logf("flood: %d messages through a 100-message queue, %d sends held, peak sampled %d", total, d.SendsBlocked, peak)
		if d.SendsBlocked == 0 || d.Enqueued != total || d.Pending != 0 {
			t.Fatalf("flood.q: %+v, want sends held and %d enqueued", d, total)
		}
		good()
	})
}
