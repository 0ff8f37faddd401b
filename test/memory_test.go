package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// The memory suites run the built binary as a child process and watch its
// anonymous resident memory (RssAnon: heap, stacks, cgo allocations),
// not VmRSS, which also counts the file pages of boltdb's mmap and
// pebble's tables that the kernel may drop at will. Each names its bound
// and why; the figures are logged so they can be quoted.

const mib = 1 << 20

// anonRSS is the RssAnon of process pid, in bytes.
func anonRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "RssAnon:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no RssAnon in /proc/%d/status", pid)
}

// memSampler samples a server's memory every 50ms until stopped.
type memSampler struct {
	srv      *Server
	base     int64
	peak     atomic.Int64
	peakRSS  atomic.Int64
	samples  atomic.Int64
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func sampleMemory(t *testing.T, srv *Server) *memSampler {
	t.Helper()
	base, err := anonRSS(srv.Pid())
	if err != nil {
		t.Fatal(err)
	}
	m := &memSampler{srv: srv, base: base, stop: make(chan struct{}), done: make(chan struct{})}
	m.peak.Store(base)
	go func() {
		defer close(m.done)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tk.C:
			}
			pid := srv.Pid()
			if a, err := anonRSS(pid); err == nil {
				m.samples.Add(1)
				if a > m.peak.Load() {
					m.peak.Store(a)
				}
			}
			if r, err := srv.RSS(); err == nil && r > m.peakRSS.Load() {
				m.peakRSS.Store(r)
			}
		}
	}()
	t.Cleanup(m.finish)
	return m
}

func (m *memSampler) finish() {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
}

// check stops sampling, logs the figures and fails when the peak went over
// base+allowance.
func (m *memSampler) check(t *testing.T, what string, allowance int64) {
	t.Helper()
	m.finish()
	last, _ := anonRSS(m.srv.Pid())
	peak := m.peak.Load()
	t.Logf("%s: RssAnon baseline %.1f MiB, peak %.1f MiB (+%.1f MiB), at the end %.1f MiB; peak VmRSS %.1f MiB; %d samples; bound baseline+%d MiB",
		what, float64(m.base)/mib, float64(peak)/mib, float64(peak-m.base)/mib, float64(last)/mib,
		float64(m.peakRSS.Load())/mib, m.samples.Load(), allowance/mib)
	if peak > m.base+allowance {
		t.Errorf("%s: server memory peaked at %.1f MiB anonymous, over the bound of baseline %.1f MiB + %d MiB",
			what, float64(peak)/mib, float64(m.base)/mib, allowance/mib)
	}
}

// serverWriteTimeout returns the server flags that make it close a
// consumer that stopped reading after d, when the binary has the flag;
// otherwise none (the transport's default, 30s, applies).
func serverWriteTimeout(t *testing.T, d time.Duration) ([]string, time.Duration) {
	out, _ := exec.Command(raftmqBin, "server", "-h").CombinedOutput()
	if strings.Contains(string(out), "-write-timeout") {
		return []string{"--write-timeout", d.String()}, d
	}
	t.Logf("raftmq server has no --write-timeout flag: relying on the default 30s")
	return nil, 30 * time.Second
}

// TestMemoryStuckConsumer: a consumer subscribes with a large prefetch and
// never reads its socket while a producer pushes 320 MiB of persistent 64
// KiB messages into its queue. What the server may hold is fixed by its
// budgets, not by what is pushed: per connection MaxOutboundBytes (4 MiB)
// of queued frames, the engine's body cache (64 MiB), pebble's memtables
// (64 MiB, two while one flushes) and block cache (64 MiB), the producers'
// windows, and Go's GC headroom (up to as much again as the live heap).
// Two checks: the peak stays under baseline + 384 MiB, the sum of those
// budgets with the GC headroom on the Go part; and it plateaus: the last
// 128 MiB pushed raise the peak by less than 64 MiB. A normal client is
// served meanwhile; the stuck consumer is closed after the write timeout,
// and what it held goes to another consumer, flagged redelivered.
func TestMemoryStuckConsumer(t *testing.T) {
	flags, writeTimeout := serverWriteTimeout(t, 3*time.Second)
	srv := StartServer(t, raftmqBin, t.TempDir(), flags...)
	k := startCanary(t, srv.Stomp, "/queue/canary")
	k.alive("start")
	mem := sampleMemory(t, srv)

	const q, size, chunk, chunks = "/queue/mem-stuck", 64 << 10, 1024, 5 // 5 x 64 MiB
	stuck := stuckConsumer(t, srv.Stomp, q, "1000000")
	subscribed := time.Now()

	start := time.Now()
	peaks := make([]int64, chunks)
	for i := range chunks {
		produce(t, srv.Stomp, q, i*chunk, chunk, size, 2)
		peaks[i] = mem.peak.Load()
		t.Logf("pushed %3d MiB: RssAnon peak so far %.1f MiB", (i+1)*chunk*size/mib, float64(peaks[i])/mib)
	}
	const n = chunk * chunks
	pushed := time.Since(start)
	t.Logf("pushed %d MiB in %v (%.0f MiB/s)", n*size/mib, pushed.Round(time.Millisecond), float64(n*size/mib)/pushed.Seconds())
	k.alive("the push")
	if growth := peaks[chunks-1] - peaks[chunks-3]; growth > 64*mib {
		t.Errorf("the last 128 MiB pushed raised the server's peak memory by %.1f MiB: it grows with what is pushed", float64(growth)/mib)
	}

	// The messages all reach another consumer, the stuck one's held ones
	// once it has been closed.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := dialClient(t, srv.Stomp, client.Options{})
	s := subscribe(t, c, q, "auto")
	got := make(map[string]*stomp.Frame, n)
	var firstRedelivered time.Duration
	for len(got) < n {
		var m *stomp.Frame
		select {
		case m = <-s.C():
		case <-ctx.Done():
			t.Fatalf("the second consumer got %d of %d messages", len(got), n)
		}
		id := string(m.Body[:6])
		if got[id] == nil {
			// Keep the headers only: 320 MiB of bodies need not stay here.
			got[id] = &stomp.Frame{Headers: m.Headers}
		}
		if m.Get("redelivered") == "true" && firstRedelivered == 0 {
			firstRedelivered = time.Since(subscribed)
		}
	}
	held, nbytes := stuck.expectGone()
	mem.check(t, "stuck consumer + 320 MiB pushed + drained", 384*mib)
	checkHeldRedelivered(t, held, got)
	k.alive("the drain")
	t.Logf("stuck consumer: received %d complete messages (%.1f MiB) before the server closed it; the first redelivered message reached the second consumer %v after the stuck one subscribed (write timeout %v)",
		len(held), float64(nbytes)/mib, firstRedelivered.Round(time.Millisecond), writeTimeout)
}

// produce sends n persistent messages of size bytes to q from producers
// connections, with receipts, a bounded window each. Bodies start with
// their number, from first, in 6 digits and a '|'.
func produce(t *testing.T, addr, q string, first, n, size, producers int) {
	t.Helper()
	pad := strings.Repeat("p", size-7)
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		conn := dialClient(t, addr, client.Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			window := make(chan *client.Receipt, 32)
			waited := make(chan error, 1)
			go func() {
				var err error
				for r := range window {
					if e := r.Wait(context.Background()); e != nil && err == nil {
						err = e
					}
				}
				waited <- err
			}()
			for i := first + p; i < first+n; i += producers {
				r, err := conn.SendAsync(q, []byte(fmt.Sprintf("%06d|%s", i, pad)))
				if err != nil {
					errs <- err
					break
				}
				window <- r
			}
			close(window)
			if err := <-waited; err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("producer: %v", err)
	}
}

// TestMemoryStalledFrames: 50 connections send a header line just short of
// the 64 KiB limit and stall, 50 announce a 95 MiB body, send 512 KiB of
// it and stall, and 50 send an endless header line (refused at the limit).
// The server holds about what the stalled ones sent, not what they
// announced (4.6 GiB): per connection its 64 KiB read and write buffers, a
// line of at most the 64 KiB limit, or a body buffer that starts at 1 MiB
// and grows with the data to at most twice it. That is about 75 MiB for
// the 100 stalled connections; the bound is baseline + 128 MiB, against
// the ~28 MiB actually sent. Meanwhile a normal client is served.
func TestMemoryStalledFrames(t *testing.T) {
	srv := StartServer(t, raftmqBin, t.TempDir())
	k := startCanary(t, srv.Stomp, "/queue/canary")
	k.alive("start")
	mem := sampleMemory(t, srv)

	const conns = 50
	var sent atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	connect := func() (net.Conn, bool) {
		nc, err := net.DialTimeout("tcp", srv.Stomp, waitLong)
		if err != nil {
			fail(err)
			return nil, false
		}
		mu.Lock()
		open = append(open, nc)
		mu.Unlock()
		nc.SetDeadline(time.Now().Add(waitLong))
		if _, err := nc.Write([]byte("CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\x00")); err != nil {
			fail(err)
			return nil, false
		}
		buf := make([]byte, 512)
		if n, err := nc.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "CONNECTED") {
			fail(fmt.Errorf("CONNECT: %q %v", buf[:n], err))
			return nil, false
		}
		return nc, true
	}
	for i := range conns {
		wg.Add(3)
		go func() { // a long header line, then silence
			defer wg.Done()
			nc, ok := connect()
			if !ok {
				return
			}
			line := "SEND\ndestination:/queue/stall\nx-long:" + strings.Repeat("h", 60<<10)
			if _, err := nc.Write([]byte(line)); err != nil {
				fail(err)
			}
			sent.Add(int64(len(line)))
		}()
		go func() { // a huge content-length, part of the body, then silence
			defer wg.Done()
			nc, ok := connect()
			if !ok {
				return
			}
			head := "SEND\ndestination:/queue/stall\ncontent-length:" + strconv.Itoa(95*mib) + "\n\n"
			if _, err := nc.Write([]byte(head + strings.Repeat("b", 512<<10))); err != nil {
				fail(err)
			}
			sent.Add(int64(len(head) + 512<<10))
		}()
		go func() { // an endless header line: refused at the limit
			defer wg.Done()
			nc, ok := connect()
			if !ok {
				return
			}
			chunk := []byte(strings.Repeat("e", 16<<10))
			nc.Write([]byte("SEND\nx-endless:"))
			for j := 0; j < 64; j++ { // 1 MiB, well past the limit
				if _, err := nc.Write(chunk); err != nil {
					break // the server closed it
				}
			}
			nc.SetReadDeadline(time.Now().Add(waitLong))
			buf := make([]byte, 4096)
			n, _ := nc.Read(buf)
			if !strings.Contains(string(buf[:n]), "header line too long") {
				fail(fmt.Errorf("endless header line %d: got %q, want an ERROR", i, buf[:n]))
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	// Hold the stalled connections open a while; memory is sampled.
	k.alive("100 connections stalled mid-frame")
	time.Sleep(time.Second)
	k.alive("100 connections stalled mid-frame, a second later")
	mem.check(t, fmt.Sprintf("%d stalled mid-frame connections (%.1f MiB sent)", 2*conns, float64(sent.Load())/mib), 128*mib)
	for _, nc := range open {
		nc.Close()
	}
	k.alive("the stalled connections closed")
}

// TestMemoryReceiptFlood: a client floods small SEND frames, each asking
// for a receipt, and never reads. The server stops reading from it once
// its unread receipts reach MaxOutboundBytes (4 MiB) or its operations in
// flight MaxPendingOps (1024), so TCP pushes back on the client, and
// closes it once its writes to it stall for the write timeout. A normal
// client is served meanwhile.
//
// "nothing-stored": the SENDs go to a topic nobody subscribes to, so the
// flood itself is all the server could accumulate: the receipts queued up
// to MaxOutboundBytes, counted in encoded bytes (4 MiB) but costing about
// five times that in heap (a *stomp.Frame, its header slice and the
// receipt-id keeping the SEND's header block alive: ~20 MiB live in a
// heap profile), the frames being decoded, and GC headroom doubling it:
// the bound is baseline + 80 MiB.
//
// "stored": persistent SENDs to a queue. Each one is a stored message the
// engine mirrors in memory (its index entry, and its body within the
// 64 MiB cache), so here memory grows with the number of messages stored,
// by design (docs/ARCHITECTURE.md: the engine loads every entry's index).
// The bound is the budgets (64 MiB cache, 2 x 64 MiB memtables, GC
// headroom: 256 MiB) plus 256 bytes per stored message; the per-message
// figure is logged.
func TestMemoryReceiptFlood(t *testing.T) {
	for _, tc := range []struct {
		name, dest string
		allowance  func(frames int64) int64
	}{
		{"nothing-stored", "/topic/flood-nobody", func(int64) int64 { return 80 * mib }},
		{"stored", "/queue/flood", func(frames int64) int64 { return 256*mib + 256*frames }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flood(t, tc.dest, tc.allowance)
		})
	}
}

func flood(t *testing.T, dest string, allowance func(frames int64) int64) {
	flags, writeTimeout := serverWriteTimeout(t, 3*time.Second)
	srv := StartServer(t, raftmqBin, t.TempDir(), flags...)
	k := startCanary(t, srv.Stomp, "/queue/canary")
	k.alive("start")
	mem := sampleMemory(t, srv)

	c := rawDialSmallWindow(t, srv.Stomp)
	c.write(frame(stomp.CONNECT, "", "accept-version", "1.2", "host", "localhost", "heart-beat", "0,0"))
	c.expect(stomp.CONNECTED)
	c.w.SetVersion(stomp.V12)

	// Frames of about 90 bytes, written 500 at a time, until the server
	// stops taking them for a second (backpressure), closes the connection
	// (the write timeout: we read none of its receipts), or 8 seconds pass.
	var batch bytes.Buffer
	var sent, frames int64
	start := time.Now()
	blocked, closed := false, false
	for i := 0; time.Since(start) < 8*time.Second && !blocked && !closed; i++ {
		batch.Reset()
		for j := range 500 {
			fmt.Fprintf(&batch, "SEND\ndestination:%s\nreceipt:%d-%d\n\n%040d\x00", dest, i, j, j)
		}
		per := int64(batch.Len() / 500)
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := c.nc.Write(batch.Bytes())
		sent += int64(n)
		frames += int64(n) / per
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			blocked = true
		default:
			closed = true // reset by the server
		}
	}
	if !blocked && !closed {
		t.Errorf("the server took %.1f MiB of frames in 8s from a client that reads no receipt: no backpressure", float64(sent)/mib)
	}
	t.Logf("flood to %s: %.1f MiB (~%d frames) written in %v; then the server stopped reading (%v) or closed the connection (%v)",
		dest, float64(sent)/mib, frames, time.Since(start).Round(time.Millisecond), blocked, closed)
	k.alive("the flood")
	if blocked {
		// The server's writes to us stalled long ago (we read nothing), so
		// the write timeout closes the connection; reading then gets what
		// was in flight, and the end.
		time.Sleep(writeTimeout)
		if got, ok := readToEnd(c.nc, c.nc, waitLong); !ok {
			t.Errorf("the flooding client is still connected %v after it stopped reading (read %d bytes)", writeTimeout+waitLong, got)
		}
	}
	peak := mem.peak.Load() - mem.base
	mem.check(t, "receipt flood to "+dest, allowance(frames))
	t.Logf("flood to %s: %.0f bytes of server memory per frame sent", dest, float64(peak)/float64(max(frames, 1)))
	k.alive("the flooder was closed")
}

// readToEnd reads r (nc, or a reader on it) until nc ends, or until d
// passes (ok false).
func readToEnd(r io.Reader, nc net.Conn, d time.Duration) (int64, bool) {
	var total int64
	buf := make([]byte, 256<<10)
	nc.SetReadDeadline(time.Now().Add(d))
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err != nil {
			var ne net.Error
			return total, !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}
