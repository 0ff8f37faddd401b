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
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// benchConfig is what `raftmq bench` measures.
type benchConfig struct {
	addr       string
	dest       string
	producers  int
	consumers  int
	messages   int
	size       int
	window     int
	persistent bool
	ack        string
	timeout    time.Duration
}

func runBench(args []string) error {
	var c benchConfig
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&c.addr, "url", "127.0.0.1:61613", "broker address (host:port or tcp://host:port)")
	fs.StringVar(&c.dest, "dest", "/queue/bench", "destination")
	fs.IntVar(&c.producers, "producers", 16, "concurrent producer connections")
	fs.IntVar(&c.consumers, "consumers", 1, "concurrent consumer connections (0: produce only)")
	fs.IntVar(&c.messages, "messages", 100000, "messages to send in total")
	fs.IntVar(&c.size, "size", 1024, "body size in bytes")
	fs.IntVar(&c.window, "window", 64, "unreceipted sends each producer keeps in flight")
	fs.BoolVar(&c.persistent, "persistent", true, "send persistent messages")
	fs.StringVar(&c.ack, "ack", "client-individual", "consumer ack mode: auto, client or client-individual")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: raftmq bench [flags]\n\nSends messages with receipts from several producers while consumers drain\nthe destination; prints throughput and send-to-receipt latency.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.producers < 1 || c.messages < 1 || c.window < 1 || c.size < 0 {
		return errors.New("bench: producers, messages and window must be positive")
	}
	c.addr = trimScheme(c.addr)
	res, err := bench(c)
	if err != nil {
		return err
	}
	res.print(os.Stdout, c)
	return nil
}

func trimScheme(addr string) string {
	const p = "tcp://"
	if len(addr) > len(p) && addr[:len(p)] == p {
		return addr[len(p):]
	}
	return addr
}

type benchResult struct {
	sent, received int64
	sendTime       time.Duration // first send to last receipt
	recvTime       time.Duration // first send to last message received
	latencies      []time.Duration
}

func bench(c benchConfig) (*benchResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	var received atomic.Int64
	allReceived := make(chan struct{}) // closed by the consumer that takes the last message
	consumersDone := make(chan error, c.consumers)
	var lastRecv atomic.Int64
	var consumerConns []*client.Conn
	for i := 0; i < c.consumers; i++ {
		conn, err := client.Dial(ctx, c.addr, client.Options{})
		if err != nil {
			return nil, fmt.Errorf("consumer %d: %w", i, err)
		}
		consumerConns = append(consumerConns, conn)
		sub, err := conn.Subscribe(ctx, c.dest, c.ack)
		if err != nil {
			return nil, fmt.Errorf("consumer %d subscribe: %w", i, err)
		}
		go func() {
			consumersDone <- consume(ctx, conn, sub, c, &received, &lastRecv, allReceived)
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
	res.received = received.Load()
	if c.consumers > 0 {
		res.recvTime = time.Duration(lastRecv.Load() - start.UnixNano())
	}
	return res, nil
}

// produce sends n messages on one connection, keeping up to c.window
// receipts outstanding, and returns each send-to-receipt latency.
func produce(ctx context.Context, c benchConfig, n int, body []byte, hdr stomp.Header) ([]time.Duration, error) {
	conn, err := client.Dial(ctx, c.addr, client.Options{})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	type inflight struct {
		r     *client.Receipt
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
		r, err := conn.SendAsync(c.dest, body, hdr)
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

func consume(ctx context.Context, conn *client.Conn, sub *client.Subscription, c benchConfig, received, last *atomic.Int64, all chan struct{}) error {
	for {
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("consumer: %d of %d messages received: %w", received.Load(), c.messages, ctx.Err())
		case <-conn.Done():
			return fmt.Errorf("consumer connection: %w", conn.Err())
		case m, ok := <-sub.C():
			if !ok {
				return fmt.Errorf("consumer subscription ended after %d messages: %w", received.Load(), conn.Err())
			}
			if c.ack != "auto" {
				if err := conn.Ack(m, ""); err != nil {
					return err
				}
			}
			last.Store(time.Now().UnixNano())
			if received.Add(1) == int64(c.messages) {
				close(all)
				return nil
			}
		}
	}
}

func (r *benchResult) print(w io.Writer, c benchConfig) {
	q := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[int(p*float64(len(r.latencies)-1))]
	}
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
	}
}
