package failover_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/failover"
)

// startGroup starts size in-process nodes that form one raft group
// (bootstrap-expect, each joining through all the others).
func startGroup(t *testing.T, size int) []*node.Node {
	t.Helper()
	https := make([]string, size)
	for i := range https {
		https[i] = failover.FreeAddr(t)
	}
	nodes := make([]*node.Node, size)
	for i := range nodes {
		cfg := node.Config{
			ID:              fmt.Sprintf("n%d", i+1),
			Group:           "g",
			DataDir:         t.TempDir(),
			StompAddr:       failover.FreeAddr(t),
			RaftAddr:        failover.FreeAddr(t),
			HTTPAddr:        https[i],
			BootstrapExpect: size,
			Join:            https,
			RaftTimeouts:    node.ShortRaftTimeouts(),
			Logger:          failover.Logger(t).With("node", fmt.Sprintf("n%d", i+1)),
		}
		n, err := node.New(cfg)
		if err != nil {
			t.Fatalf("node.New %s: %v", cfg.ID, err)
		}
		t.Cleanup(func() { _ = n.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = n.Start(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Start %s: %v", cfg.ID, err)
		}
		nodes[i] = n
	}
	return nodes
}

// servingLeader waits until exactly one of nodes (nil ones skipped)
// serves clients and returns its index.
func servingLeader(t *testing.T, nodes []*node.Node) int {
	t.Helper()
	leader := -1
	failover.WaitFor(t, "one serving leader", func() bool {
		leader = -1
		for i, n := range nodes {
			if n != nil && n.StompAddr() != nil {
				if leader >= 0 {
					return false
				}
				leader = i
			}
		}
		return leader >= 0
	})
	return leader
}

// TestGroupLeaderFailover: a client given only the leader's address
// learns the other members from CONNECTED, follows the leadership when
// the leader goes, resends what was not receipted, and the group's
// dedupe window stores each message once.
func TestGroupLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node group")
	}
	nodes := startGroup(t, 3)
	li := servingLeader(t, nodes)
	leaderAddr := nodes[li].StompAddr().String()

	// Every member is registered (and announced) shortly after the group
	// forms.
	failover.WaitFor(t, "the leader to announce three brokers", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := client.Dial(ctx, leaderAddr, client.Options{})
		if err != nil {
			return false
		}
		defer conn.Close()
		return strings.Count(conn.Connected().Get(failover.BrokersHeader), "tcp://") == 3
	})

	c := failover.DialT(t, failover.TestURL(failover.Fast, leaderAddr), failover.Options{HeartBeat: [2]time.Duration{time.Second, time.Second}})
	ctx := failover.TestCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/g", "client-individual")
	if err != nil {
		t.Fatal(err)
	}

	const total, window = 400, 32
	sent := make(chan error, 1)
	var receipted atomic.Int64
	go func() {
		var inflight []*failover.Receipt
		for i := range total {
			r, err := c.SendAsync("/queue/g", fmt.Appendf(nil, "m-%d", i))
			if err != nil {
				sent <- err
				return
			}
			inflight = append(inflight, r)
			if len(inflight) == window {
				if err := inflight[0].Wait(ctx); err != nil {
					sent <- err
					return
				}
				receipted.Add(1)
				inflight = inflight[1:]
			}
		}
		for _, r := range inflight {
			if err := r.Wait(ctx); err != nil {
				sent <- err
				return
			}
			receipted.Add(1)
		}
		sent <- nil
	}()

	failover.WaitFor(t, "some receipts", func() bool { return receipted.Load() >= 100 })
	old := nodes[li]
	nodes[li] = nil
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("producer: %v", err)
	}
	ni := servingLeader(t, nodes)
	newAddr := nodes[ni].StompAddr().String()
	failover.WaitFor(t, "the client on the new leader", func() bool { return c.Addr() == newAddr })

	// Each body stored once: a message the group stored twice would come
	// with two message-ids (a redelivery keeps its id).
	ids := map[string]map[string]bool{}
	deadline := time.After(30 * time.Second)
	for len(ids) < total {
		select {
		case m := <-sub.C():
			body := string(m.Body)
			if ids[body] == nil {
				ids[body] = map[string]bool{}
			}
			ids[body][m.Get("message-id")] = true
			_ = c.Ack(m, "") // a stale one comes again
		case <-deadline:
			t.Fatalf("received %d of %d messages", len(ids), total)
		}
	}
	quiet := time.After(500 * time.Millisecond)
drain:
	for {
		select {
		case m := <-sub.C():
			ids[string(m.Body)][m.Get("message-id")] = true
			_ = c.Ack(m, "")
		case <-quiet:
			break drain
		}
	}
	for body, set := range ids {
		if len(set) != 1 {
			t.Errorf("%s stored %d times", body, len(set))
		}
	}
	t.Logf("reconnects %d", c.Reconnects())
}
