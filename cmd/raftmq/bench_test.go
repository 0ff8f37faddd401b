package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
)

// TestBench runs a small load through a real in-process node and checks
// the counts the report rests on.
func TestBench(t *testing.T) {
	n, err := node.New(node.Config{DataDir: t.TempDir(), StompAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		RaftTimeouts: node.ShortRaftTimeouts()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.WaitServing(ctx); err != nil {
		t.Fatal(err)
	}
	c := benchConfig{addr: "tcp://" + n.StompAddr().String(), dest: "/queue/bench-test", producers: 3, consumers: 2,
		messages: 500, size: 100, window: 8, persistent: true, ack: "client-individual", timeout: time.Minute}
	res, err := bench(c)
	if err != nil {
		t.Fatal(err)
	}
	if res.sent != 500 || len(res.latencies) != 500 || res.received < 500 || len(res.e2e) < 500 {
		t.Fatalf("sent %d, %d latencies, received %d; want 500 each", res.sent, len(res.latencies), res.received)
	}
	if res.latencies[0] <= 0 || res.latencies[0] > res.latencies[len(res.latencies)-1] {
		t.Fatalf("latencies not sorted or not positive: first %v last %v", res.latencies[0], res.latencies[len(res.latencies)-1])
	}
	var out bytes.Buffer
	res.print(&out, c)
	for _, want := range []string{"500 persistent messages of 100 bytes", "send:", "receipt: p50", "receive:", "end-to-end: p50"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
