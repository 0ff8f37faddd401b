package test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// TestHeartBeats: the broker sends heart-beats at the negotiated rate; a
// client that promised heart-beats and goes silent is closed with an ERROR
// after twice the interval, one that keeps its promise is not, and the
// other clients are not disturbed.
func TestHeartBeats(t *testing.T) {
	t.Parallel()
	const every = 100 * time.Millisecond
	b := startBroker(t, func(c *node.Config) {
		c.Transport.HeartBeat = [2]time.Duration{every, every}
	})

	t.Run("server-sends", func(t *testing.T) {
		// We want heart-beats every 150ms and promise none: the server
		// sends every max(100, 150) = 150ms and never times us out.
		nc, rd := connectBytes(t, b.addr, "0,150")
		var beats []time.Time
		start := time.Now()
		nc.SetReadDeadline(start.Add(1200 * time.Millisecond))
		for {
			c, err := rd.ReadByte()
			if err != nil {
				break
			}
			if c != '\n' {
				t.Fatalf("byte %q after CONNECTED, want only heart-beats", c)
			}
			beats = append(beats, time.Now())
		}
		// Timestamps are taken as we read, so two beats read in one go
		// look simultaneous: judge the count and the mean interval.
		if len(beats) < 4 || len(beats) > 10 {
			t.Fatalf("%d heart-beats in 1.2s, want about 8 (one per 150ms)", len(beats))
		}
		mean := beats[len(beats)-1].Sub(beats[0]) / time.Duration(len(beats)-1)
		if mean < 120*time.Millisecond || mean > 300*time.Millisecond {
			t.Errorf("heart-beats every %v on average, want about 150ms", mean)
		}
		t.Logf("%d heart-beats in 1.2s, every %v on average", len(beats), mean.Round(time.Millisecond))
	})

	t.Run("silent-client-closed", func(t *testing.T) {
		// We promise a heart-beat every 100ms (the server wants 100ms)
		// and send nothing: closed after 2 x 100ms.
		c, f := rawConnect(t, b.addr, "1.2", "heart-beat", "100,0")
		if got := f.Get("heart-beat"); got != "100,100" {
			t.Errorf("CONNECTED heart-beat %q, want 100,100", got)
		}
		start := time.Now()
		c.expectError("no heart-beat from the client within 200ms", "")
		if el := time.Since(start); el < 150*time.Millisecond || el > 3*time.Second {
			t.Errorf("silent client closed after %v, want about 200ms", el)
		}
	})

	t.Run("keeping-promise-stays", func(t *testing.T) {
		// The Go client sends heart-beats on its own: it stays connected
		// for many timeouts and works.
		c := b.dial(client.Options{HeartBeat: [2]time.Duration{every, every}})
		hbSend, hbRecv := c.HeartBeat()
		if hbSend != every || hbRecv != every {
			t.Errorf("negotiated heart-beats send=%v recv=%v, want %v both", hbSend, hbRecv, every)
		}
		// A raw client that sends a bare EOL every 50ms, too.
		nc, rd := connectBytes(t, b.addr, "100,0")
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			tk := time.NewTicker(50 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
					if _, err := nc.Write([]byte("\n")); err != nil {
						return
					}
				}
			}
		}()
		time.Sleep(time.Second) // 5 timeouts
		select {
		case <-c.Done():
			t.Fatalf("client with heart-beats closed: %v", c.Err())
		default:
		}
		s := subscribe(t, c, "/queue/hb", "auto")
		sendR(t, c, "/queue/hb", "alive")
		if m := recv(t, s); string(m.Body) != "alive" {
			t.Errorf("got %q", m.Body)
		}
		close(stop)
		<-done
		// The raw client got no ERROR: only heart-beats (the server sends
		// none to it: it asked for none).
		nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if bs, _ := rd.Peek(1); len(bs) > 0 {
			t.Errorf("raw client with heart-beats got %q", bs)
		}
	})
}

// connectBytes connects with STOMP 1.2 and the given heart-beat header and
// returns the socket with a byte reader positioned after CONNECTED.
func connectBytes(t *testing.T, addr, heartBeat string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	w := stomp.NewWriter(nc)
	if err := w.WriteFrame(frame(stomp.CONNECT, "", "accept-version", "1.2", "host", "localhost", "heart-beat", heartBeat)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(waitLong))
	connected, err := rd.ReadBytes(0)
	if err != nil {
		t.Fatalf("reading CONNECTED: %v", err)
	}
	if !bytes.HasPrefix(connected, []byte("CONNECTED\n")) || !strings.Contains(string(connected), "\nheart-beat:") {
		t.Fatalf("CONNECT answered with %q", connected)
	}
	return nc, rd
}
