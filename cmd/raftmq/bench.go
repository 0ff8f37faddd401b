package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftmq/raftmq/transport/failover"
	"github.com/raftmq/raftmq/transport/stomp"
)

// benchConfig is what `raftmq bench` measures.
type benchConfig struct {
	addr       string
	consumeURL string // consumers' URL when not addr: another group of a network
	dest       string
	producers  int
	consumers  int
	messages   int
	size       int
	window     int
	persistent bool
	ack        string
	timeout    time.Duration
	// conn holds the login and TLS settings of every connection.
	conn failover.Options
}

func runBench(args []string) error {
	var c benchConfig
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&c.addr, "url", "tcp://127.0.0.1:61613", "broker URL: tcp://host:port, host:port, or failover:(tcp://h1:61613,...)?options")
	fs.StringVar(&c.consumeURL, "consume-url", "", "consumers connect here instead of -url: another group of a network, to measure forwarding across a bridge")
	fs.StringVar(&c.dest, "dest", "/queue/bench", "destination")
	var sec clientSecurity
	sec.register(fs)
	fs.IntVar(&c.producers, "producers", 16, "concurrent producer connections")
	fs.IntVar(&c.consumers, "consumers", 1, "concurrent consumer connections (0: produce only)")
	fs.IntVar(&c.messages, "messages", 100000, "messages to send in total")
	fs.IntVar(&c.size, "size", 1024, "body size in bytes")
	fs.IntVar(&c.window, "window", 64, "unreceipted sends each producer keeps in flight")
	fs.BoolVar(&c.persistent, "persistent", true, "send persistent messages")
	fs.StringVar(&c.ack, "ack", "client-individual", "consumer ack mode: auto, client or client-individual")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: raftmq bench [flags]\n\nSends messages with receipts from several producers while consumers drain\nthe destination; prints throughput, send-to-receipt latency and\nsend-to-receive (end-to-end) latency. Clients are the failover client, so\nevery SEND carries a dedupe-id, as an application's would.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	conf, err := sec.tlsConfig()
	if err != nil {
		return err
	}
	c.conn.Login, c.conn.Passcode = sec.login()
	c.conn.TLS, c.conn.Host = conf, sec.vhost
	if c.producers < 1 || c.messages < 1 || c.window < 1 || c.size < 0 {
		return usageError{errors.New("producers, messages and window must be positive")}
	}
	if !strings.Contains(c.addr, "://") {
		c.addr = "tcp://" + c.addr
	}
	if c.consumeURL != "" && !strings.Contains(c.consumeURL, "://") {
		c.consumeURL = "tcp://" + c.consumeURL
	}
	res, err := bench(c)
	if err != nil {
		return err
	}
	res.print(os.Stdout, c)
	return nil
}

type benchResult struct {
	sent, received int64
	sendTime       time.Duration   // first send to last receipt
	recvTime       time.Duration   // first send to last message received
	latencies      []time.Duration // send to receipt, sorted
	e2e            []time.Duration // send to receive, sorted
}

func bench(c benchConfig) (*benchResult, error) {
	if c.consumeURL == "" {
		c.consumeURL = c.addr
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	var received atomic.Int64
	allReceived := make(chan struct{}) // closed by the consumer that takes the last message
	consumersDone := make(chan error, c.consumers)
	var lastRecv atomic.Int64
	var consumerConns []*failover.Client
	e2e := make([][]time.Duration, c.consumers)
	for i := 0; i < c.consumers; i++ {
		conn, err := failover.Dial(ctx, c.consumeURL, c.conn)
		if err != nil {
			return nil, fmt.Errorf("consumer %d: %w", i, err)
		}
		consumerConns = append(consumerConns, conn)
		sub, err := conn.Subscribe(ctx, c.dest, c.ack)
		if err != nil {
			return nil, fmt.Errorf("consumer %d subscribe: %w", i, err)
		}
		go func() {
			var err error
			e2e[i], err = consume(ctx, conn, sub, c, &received, &lastRecv, allReceived)
			consumersDone <- err
		}()
	}
	defer func() {
		for _, conn := range consumerConns {
			conn.Close()
		}
	}()

	body := make([]byte, c.size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	persistent := stomp.Header{Key: "persistent", Value: strconv.FormatBool(c.persistent)}
	lat := make([][]time.Duration, c.producers)
	errs := make(chan error, c.producers)
	var wg sync.WaitGroup
	start := time.Now()
	for p := 0; p < c.producers; p++ {
		n := c.messages / c.producers
		if p < c.messages%c.producers {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := produce(ctx, c, n, body, persistent)
			lat[p] = l
			if err != nil {
				errs <- fmt.Errorf("producer %d: %w", p, err)
			}
		}()
	}
	wg.Wait()
	sendTime := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	res := &benchResult{sendTime: sendTime}
	for _, l := range lat {
		res.latencies = append(res.latencies, l...)
		res.sent += int64(len(l))
	}
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	for i := 0; i < c.consumers; i++ {
		if err := <-consumersDone; err != nil {
			return nil, err
		}
	}
	for _, l := range e2e {
		res.e2e = append(res.e2e, l...)
	}
	sort.Slice(res.e2e, func(i, j int) bool { return res.e2e[i] < res.e2e[j] })
	res.received = received.Load()
	if c.consumers > 0 {
		res.recvTime = time.Duration(lastRecv.Load() - start.UnixNano())
	}
	return res, nil
}

// produce sends n messages on one connection, keeping up to c.window
// receipts outstanding, and returns each send-to-receipt latency.
func produce(ctx context.Context, c benchConfig, n int, body []byte, hdr stomp.Header) ([]time.Duration, error) {
	conn, err := failover.Dial(ctx, c.addr, c.conn)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	type inflight struct {
		r     *failover.Receipt
		start time.Time
	}
	pending := make(chan inflight, c.window)
	lat := make([]time.Duration, 0, n)
	waitErr := make(chan error, 1)
	go func() {
		for f := range pending {
			if err := f.r.Wait(ctx); err != nil {
				waitErr <- err
				for range pending {
				}
				return
			}
			lat = append(lat, time.Since(f.start))
		}
		waitErr <- nil
	}()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		r, err := conn.SendAsync(c.dest, body, hdr, stomp.Header{Key: sentAtHeader, Value: strconv.FormatInt(t0.UnixNano(), 10)})
		if err != nil {
			close(pending)
			<-waitErr
			return lat, err
		}
		pending <- inflight{r, t0}
	}
	close(pending)
	if err := <-waitErr; err != nil {
		return lat, err
	}
	return lat, conn.Disconnect(ctx)
}

// sentAtHeader carries a message's send time, for end-to-end latency.
const sentAtHeader = "bench-sent-at"

func consume(ctx context.Context, conn *failover.Client, sub *failover.Subscription, c benchConfig, received, last *atomic.Int64, all chan struct{}) ([]time.Duration, error) {
	var e2e []time.Duration
	for {
		select {
		case <-all:
			return e2e, nil
		case <-ctx.Done():
			return e2e, fmt.Errorf("consumer: %d of %d messages received: %w", received.Load(), c.messages, ctx.Err())
		case <-conn.Done():
			return e2e, fmt.Errorf("consumer connection: %w", conn.Err())
		case m, ok := <-sub.C():
			if !ok {
				return e2e, fmt.Errorf("consumer subscription ended after %d messages: %w", received.Load(), sub.Err())
			}
			now := time.Now()
			if ns, err := strconv.ParseInt(m.Get(sentAtHeader), 10, 64); err == nil {
				e2e = append(e2e, now.Sub(time.Unix(0, ns)))
			}
			if c.ack != "auto" {
				if err := conn.Ack(m, ""); err != nil && !errors.Is(err, failover.ErrStaleMessage) {
					return e2e, err
				}
			}
			last.Store(now.UnixNano())
			if received.Add(1) == int64(c.messages) {
				close(all)
				return e2e, nil
			}
		}
	}
}

func (r *benchResult) print(w io.Writer, c benchConfig) {
	q := func(p float64) time.Duration { return quantile(r.latencies, p) }
	mode := "persistent"
	if !c.persistent {
		mode = "non-persistent"
	}
	fmt.Fprintf(w, "%d %s messages of %d bytes, %d producers (window %d), %d consumers (%s)\n",
		r.sent, mode, c.size, c.producers, c.window, c.consumers, c.ack)
	fmt.Fprintf(w, "send:    %.0f msgs/s  (%.2fs)\n", float64(r.sent)/r.sendTime.Seconds(), r.sendTime.Seconds())
	fmt.Fprintf(w, "receipt: p50 %v  p99 %v  max %v\n",
		q(0.50).Round(time.Microsecond), q(0.99).Round(time.Microsecond), q(1).Round(time.Microsecond))
	if c.consumers > 0 {
		fmt.Fprintf(w, "receive: %.0f msgs/s  (%d messages in %.2fs)\n",
			float64(r.received)/r.recvTime.Seconds(), r.received, r.recvTime.Seconds())
		fmt.Fprintf(w, "end-to-end: p50 %v  p99 %v  max %v\n",
			quantile(r.e2e, 0.5).Round(time.Microsecond), quantile(r.e2e, 0.99).Round(time.Microsecond), quantile(r.e2e, 1).Round(time.Microsecond))
	}
}

// quantile of sorted durations.
func quantile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}
