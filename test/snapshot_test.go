package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/client"
)

// TestKillRightAfterSnapshot covers the window DESIGN.md warns about:
// pebble applies without fsync, and raft truncates its log after a
// snapshot. If the snapshot did not first make the state durable, a crash
// right after the truncation would lose messages nobody can replay. The
// broker snapshots every few entries keeping one trailing entry; we send,
// wait for a log compaction that follows the last receipt, SIGKILL, restart
// and expect every message.
func TestKillRightAfterSnapshot(t *testing.T) {
	srv := StartServer(t, raftmqBin, t.TempDir(),
		"--snapshot-threshold", "4", "--snapshot-interval", "100ms", "--trailing-logs", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const dest, n = "/queue/snap", 3000

	conn, err := client.Dial(ctx, srv.Stomp, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rs []*client.Receipt
	for i := 0; i < n; i++ {
		r, err := conn.SendAsync(dest, []byte(fmt.Sprintf("m%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
		if i%100 == 99 { // several log entries, so several snapshots
			for _, r := range rs {
				if err := r.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			rs = rs[:0]
		}
	}
	conn.Close()
	compactions := srv.CountLog("compacting logs")
	Eventually(t, 30*time.Second, "a log compaction after the last receipt", func() bool {
		return srv.CountLog("compacting logs") > compactions
	})
	srv.Kill()
	t.Logf("killed after %d log compactions", srv.CountLog("compacting logs"))

	srv.Start()
	conn, err = client.Dial(ctx, srv.Stomp, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sub, err := conn.Subscribe(ctx, dest, "auto")
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]bool, n)
	for len(got) < n {
		select {
		case m := <-sub.C():
			got[string(m.Body)] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d receipted messages survived the kill after a snapshot", len(got), n)
		}
	}
}
