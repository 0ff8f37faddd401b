package failover_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/failover"
	"github.com/raftmq/raftmq/transport/stomp"
)

// These tests run real single-node brokers in-process, each its own
// group, on fixed loopback ports so that a restarted node serves where it
// did. (Until the broker dedupes, a SEND resent to another group is a new
// message there; the tests count messages at least once.)

type testNode struct {
	t    *testing.T
	cfg  node.Config
	n    *node.Node
	addr string // host:port of the STOMP listener, the same across restarts
}

func startNode(t *testing.T, tweak func(*node.Config)) *testNode {
	t.Helper()
	b := &testNode{t: t, addr: failover.FreeAddr(t)}
	b.cfg = node.Config{
		ID:           "n1",
		DataDir:      t.TempDir(),
		StompAddr:    b.addr,
		RaftAddr:     "127.0.0.1:0",
		HTTPAddr:     "127.0.0.1:0",
		RaftTimeouts: node.ShortRaftTimeouts(),
		Logger:       failover.Logger(t),
	}
	if tweak != nil {
		tweak(&b.cfg)
	}
	b.start()
	t.Cleanup(func() {
		if b.n != nil {
			_ = b.n.Close()
		}
	})
	return b
}

func (b *testNode) start() {
	b.t.Helper()
	n, err := node.New(b.cfg)
	if err != nil {
		b.t.Fatalf("node.New: %v", err)
	}
	b.n = n
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		b.t.Fatalf("node Start: %v", err)
	}
	if err := n.WaitServing(ctx); err != nil {
		b.t.Fatalf("node WaitServing: %v", err)
	}
	if got := n.StompAddr().String(); got != b.addr {
		b.t.Fatalf("node serves on %s, want %s", got, b.addr)
	}
}

func (b *testNode) stop() {
	b.t.Helper()
	if err := b.n.Close(); err != nil {
		b.t.Fatalf("node Close: %v", err)
	}
	b.n = nil
}

func (b *testNode) restart() {
	b.t.Helper()
	b.stop()
	b.start()
}

// drain takes every message of queue from b with a plain connection and
// returns their bodies, acknowledging them.
func (b *testNode) drain(queue string) []string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failover.WaitLong)
	defer cancel()
	conn, err := client.Dial(ctx, b.addr, client.Options{})
	if err != nil {
		b.t.Fatalf("dial %s: %v", b.addr, err)
	}
	defer conn.Close()
	sub, err := conn.Subscribe(ctx, queue, "auto")
	if err != nil {
		b.t.Fatal(err)
	}
	var bodies []string
	for {
		select {
		case m := <-sub.C():
			bodies = append(bodies, string(m.Body))
		case <-time.After(500 * time.Millisecond):
			return bodies
		}
	}
}

func TestNodeFailoverToAnotherBroker(t *testing.T) {
	a, b := startNode(t, nil), startNode(t, nil)
	var mu sync.Mutex
	var lost []string
	c := failover.DialT(t, failover.TestURL(failover.Fast, a.addr, b.addr), failover.Options{
		OnDisconnect: func(addr string, err error) { mu.Lock(); lost = append(lost, addr); mu.Unlock() },
	})
	ctx := failover.TestCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "client-individual", stomp.Header{Key: "activemq.prefetchSize", Value: "10"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/q", []byte("before")); err != nil {
		t.Fatal(err)
	}
	m := failover.Receive(t, sub)
	if string(m.Body) != "before" || m.Redelivered() {
		t.Fatalf("got %q %v", m.Body, m.Headers)
	}
	if err := c.AckReceipt(ctx, m, ""); err != nil {
		t.Fatal(err)
	}

	a.stop()
	failover.WaitFor(t, "the failover to b", func() bool { return c.Addr() == b.addr })
	if c.Reconnects() != 1 {
		t.Fatalf("Reconnects() = %d", c.Reconnects())
	}
	// The same subscription, on b now.
	if err := c.Send(ctx, "/queue/q", []byte("after")); err != nil {
		t.Fatal(err)
	}
	m = failover.Receive(t, sub)
	if string(m.Body) != "after" {
		t.Fatalf("got %q", m.Body)
	}
	if err := c.AckReceipt(ctx, m, ""); err != nil {
		t.Fatal(err)
	}
	if m.Subscription() != sub || m.Get("subscription") != sub.ID() {
		t.Fatalf("message of subscription %q, want %q", m.Get("subscription"), sub.ID())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lost) != 1 || lost[0] != a.addr {
		t.Fatalf("OnDisconnect calls %v", lost)
	}
}

func TestNodeRestartOnSamePort(t *testing.T) {
	a := startNode(t, nil)
	c := failover.DialT(t, "tcp://"+a.addr, failover.Options{})
	ctx := failover.TestCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "client-individual")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/q", []byte("m1")); err != nil {
		t.Fatal(err)
	}
	old := failover.Receive(t, sub)
	if old.Redelivered() {
		t.Fatal("first delivery flagged redelivered")
	}

	a.restart()
	failover.WaitFor(t, "the reconnection", func() bool { return c.Reconnects() == 1 && c.Addr() == a.addr })
	if err := c.Ack(old, ""); !errors.Is(err, failover.ErrStaleMessage) {
		t.Fatalf("Ack of the message from before the restart: %v, want failover.ErrStaleMessage", err)
	}
	again := failover.Receive(t, sub)
	if string(again.Body) != "m1" || !again.Redelivered() || again.Get("redelivered") != "true" {
		t.Fatalf("after the restart got %q %v, want m1 redelivered", again.Body, again.Headers)
	}
	if err := c.AckReceipt(ctx, again, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/q", []byte("m2")); err != nil {
		t.Fatal(err)
	}
	if m := failover.Receive(t, sub); string(m.Body) != "m2" || m.Redelivered() {
		t.Fatalf("got %q %v", m.Body, m.Headers)
	}
}

func TestNodeRefusedAddressesSkippedAtOnce(t *testing.T) {
	a := startNode(t, nil)
	url := failover.TestURL("randomize=false&initialReconnectDelay=5000", failover.FreeAddr(t), failover.FreeAddr(t), a.addr)
	start := time.Now()
	c := failover.DialT(t, url, failover.Options{})
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("failover.Dial took %v past two refusing addresses (reconnect delay 5s)", d)
	}
	if c.Addr() != a.addr {
		t.Fatalf("connected to %q", c.Addr())
	}
}

func TestNodeNoLossAcrossFailover(t *testing.T) {
	a, b := startNode(t, nil), startNode(t, nil)
	c := failover.DialT(t, failover.TestURL(failover.Fast, a.addr, b.addr), failover.Options{})
	ctx := failover.TestCtx(t)

	const senders, each = 4, 150
	var receipted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for g := range senders {
		wg.Go(func() {
			// Pipelined: up to 20 in flight per sender.
			var window []*failover.Receipt
			wait := func(r *failover.Receipt) {
				if err := r.Wait(ctx); err != nil {
					errs <- err
				}
				receipted.Add(1)
			}
			for i := range each {
				r, err := c.SendAsync("/queue/load", fmt.Appendf(nil, "%d-%d", g, i))
				if err != nil {
					errs <- err
					return
				}
				window = append(window, r)
				if len(window) == 20 {
					wait(window[0])
					window = window[1:]
				}
			}
			for _, r := range window {
				wait(r)
			}
		})
	}
	failover.WaitFor(t, "some receipts", func() bool { return receipted.Load() >= 100 })
	a.stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.Addr() != b.addr {
		t.Fatalf("client on %q, want %q", c.Addr(), b.addr)
	}

	seen := map[string]int{}
	for _, body := range b.drain("/queue/load") {
		seen[body]++
	}
	a.start()
	for _, body := range a.drain("/queue/load") {
		seen[body]++
	}
	dups := 0
	for g := range senders {
		for i := range each {
			n := seen[fmt.Sprintf("%d-%d", g, i)]
			if n == 0 {
				t.Fatalf("message %d-%d lost", g, i)
			}
			dups += n - 1
		}
	}
	t.Logf("%d messages stored twice (no dedupe across groups)", dups)
}

func TestNodeTransactionRolledBackOnFailover(t *testing.T) {
	a, b := startNode(t, nil), startNode(t, nil)
	c := failover.DialT(t, failover.TestURL(failover.Fast, a.addr, b.addr), failover.Options{})
	ctx := failover.TestCtx(t)
	if err := c.Begin(ctx, "tx"); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/tx", []byte("in tx"), stomp.Header{Key: "transaction", Value: "tx"}); err != nil {
		t.Fatal(err)
	}
	a.stop()
	failover.WaitFor(t, "the failover to b", func() bool { return c.Addr() == b.addr })
	if err := c.Commit(ctx, "tx"); !errors.Is(err, failover.ErrTxRolledBack) {
		t.Fatalf("Commit: %v, want failover.ErrTxRolledBack", err)
	}
	// Not resent to b, and a discarded it.
	if got := b.drain("/queue/tx"); len(got) != 0 {
		t.Fatalf("b has %q", got)
	}
	a.start()
	if got := a.drain("/queue/tx"); len(got) != 0 {
		t.Fatalf("a kept %q", got)
	}
	// A transaction on the new connection commits.
	if err := c.Begin(ctx, "tx"); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/tx", []byte("committed"), stomp.Header{Key: "transaction", Value: "tx"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx, "tx"); err != nil {
		t.Fatal(err)
	}
	if got := b.drain("/queue/tx"); len(got) != 1 || got[0] != "committed" {
		t.Fatalf("b has %q", got)
	}
}

func TestNodeRefusedSend(t *testing.T) {
	a := startNode(t, nil)
	c := failover.DialT(t, failover.TestURL(failover.Fast, a.addr), failover.Options{})
	ctx := failover.TestCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "auto")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Send(ctx, "/bogus/q", []byte("x"))
	var se *client.ServerError
	if !errors.Is(err, failover.ErrRefused) || !errors.As(err, &se) || se.Message() != "invalid destination" {
		t.Fatalf("SEND to a bad destination: %v, want failover.ErrRefused with the broker's ERROR", err)
	}
	// Every ERROR closes the connection: the client reconnects and
	// resubscribes, and does not send the refused SEND again.
	failover.WaitFor(t, "the reconnection", func() bool { return c.Reconnects() == 1 && c.Addr() != "" })
	if err := c.Send(ctx, "/queue/q", []byte("fine")); err != nil {
		t.Fatal(err)
	}
	if m := failover.Receive(t, sub); string(m.Body) != "fine" {
		t.Fatalf("got %q", m.Body)
	}
	if _, err := c.Subscribe(ctx, "/bogus/q", "auto"); !errors.Is(err, failover.ErrRefused) {
		t.Fatalf("SUBSCRIBE to a bad destination: %v, want failover.ErrRefused", err)
	}
	failover.WaitFor(t, "the reconnection", func() bool { return c.Reconnects() == 2 && c.Addr() != "" })
	if c.Reconnects() != 2 {
		t.Fatalf("Reconnects() = %d", c.Reconnects())
	}
}

func TestNodeDurableSubscriptionAcrossRestart(t *testing.T) {
	a := startNode(t, nil)
	c := failover.DialT(t, failover.TestURL(failover.Fast, a.addr), failover.Options{ClientID: "app"})
	ctx := failover.TestCtx(t)
	durable := stomp.Header{Key: "activemq.subscriptionName", Value: "d1"}
	sub, err := c.Subscribe(ctx, "/topic/t", "client-individual", durable)
	if err != nil {
		t.Fatal(err)
	}
	a.restart()
	failover.WaitFor(t, "the reconnection", func() bool { return c.Reconnects() == 1 && c.Addr() == a.addr })
	// Resubscribed as the same durable subscription: it gets what is
	// published now.
	if err := c.Send(ctx, "/topic/t", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	m := failover.Receive(t, sub)
	if string(m.Body) != "kept" {
		t.Fatalf("got %q", m.Body)
	}
	if err := c.AckReceipt(ctx, m, ""); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(ctx, durable); err != nil {
		t.Fatalf("Unsubscribe of the durable subscription: %v", err)
	}
	// Removed from the broker: a message published now is kept for no one.
	if err := c.Send(ctx, "/topic/t", []byte("dropped")); err != nil {
		t.Fatal(err)
	}
	again, err := c.Subscribe(ctx, "/topic/t", "auto", durable)
	if err != nil {
		t.Fatal(err)
	}
	failover.NoMessage(t, again, 300*time.Millisecond)
}
