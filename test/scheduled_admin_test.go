package test

import (
	"net/url"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/failover"
	"github.com/raftmq/raftmq/transport/stomp"
)

// TestAdminScheduled lists scheduled messages through the admin API and
// removes one, against a broker process: the removed one never arrives,
// the other does, and the metrics follow.
func TestAdminScheduled(t *testing.T) {
	t.Parallel()
	s := StartServer(t, raftmqBin, t.TempDir())
	a := api{t: t, addr: s.HTTP}
	p := dialClient(t, s.Stomp, client.Options{})
	sendR(t, p, "/queue/later", "kept", "AMQ_SCHEDULED_DELAY", "2500")
	sendR(t, p, "/queue/later", "removed", "AMQ_SCHEDULED_DELAY", "1500", "AMQ_SCHEDULED_PERIOD", "100", "AMQ_SCHEDULED_REPEAT", "3")
	sendR(t, p, "/topic/elsewhere", "other", "AMQ_SCHEDULED_DELAY", "60000")

	var list node.ScheduledList
	a.ok(200, "GET", "/api/v1/scheduled", "", &list)
	if list.Total != 3 || len(list.Messages) != 3 || list.Stats.Pending != 3 {
		t.Fatalf("scheduled: %+v", list)
	}
	removed := list.Messages[0] // due first
	if removed.Destination != "/queue/later" || removed.Remaining != 3 || removed.PeriodMs != 100 {
		t.Fatalf("first due: %+v", removed)
	}
	a.ok(200, "GET", "/api/v1/scheduled?destination=/queue/later&limit=1", "", &list)
	if list.Total != 2 || len(list.Messages) != 1 || list.Messages[0].JobID != removed.JobID {
		t.Fatalf("filtered, limit 1: %+v", list)
	}
	a.fails(400, "GET", "/api/v1/scheduled?limit=0", "", "want 1 to 1000")

	var res node.ScheduledRemoved
	a.ok(200, "DELETE", "/api/v1/scheduled/"+url.PathEscape(removed.JobID), "", &res)
	if !res.Removed || res.Destination != "/queue/later" {
		t.Fatalf("remove: %+v", res)
	}
	a.fails(404, "DELETE", "/api/v1/scheduled/"+url.PathEscape(removed.JobID), "", "no such scheduled message")
	m := scrape(t, s.HTTP)
	if m["raftmq_scheduled_messages"] != 2 || m["raftmq_scheduled_next_due_timestamp_seconds"] == 0 {
		t.Errorf("metrics after the removal: messages %v, next due %v", m["raftmq_scheduled_messages"], m["raftmq_scheduled_next_due_timestamp_seconds"])
	}

	// The kept one fires at 2.5 s; the removed one, due at 1.5 s with
	// three repeats, never does.
	sub := subscribe(t, dialClient(t, s.Stomp, client.Options{}), "/queue/later", "auto")
	if got := recv(t, sub); string(got.Body) != "kept" || got.Get("scheduledJobId") == removed.JobID {
		t.Fatalf("got %q (job %s)", got.Body, got.Get("scheduledJobId"))
	}
	time.Sleep(500 * time.Millisecond)
	noMessage(t, sub)
	if m := scrape(t, s.HTTP); m["raftmq_scheduled_messages"] != 1 || m["raftmq_scheduled_fired_total"] != 1 {
		t.Errorf("metrics after the fire: messages %v, fired %v", m["raftmq_scheduled_messages"], m["raftmq_scheduled_fired_total"])
	}
}

// TestUnscheduledAcrossLeaderKill: a scheduled message removed through
// the admin API stays removed when the leader that removed it is killed
// with SIGKILL right after answering: the new leader, loading the
// scheduled messages from its replicated store, never fires it, and
// fires the one that was kept.
func TestUnscheduledAcrossLeaderKill(t *testing.T) {
	t.Parallel()
	g := StartGroup(t, raftmqBin, 3)
	brokers := failoverURL(g)
	const dest = "/queue/unscheduled"
	ctx := ctxT(t)

	cons, err := failover.Dial(ctx, brokers, failover.Options{HeartBeat: [2]time.Duration{time.Second, time.Second}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close() })
	sub, err := cons.Subscribe(ctx, dest, "auto")
	if err != nil {
		t.Fatal(err)
	}
	prod, err := failover.Dial(ctx, brokers, failover.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	sent := time.Now()
	for _, m := range []struct {
		body string
		h    []stomp.Header
	}{
		{"removed", []stomp.Header{{Key: "AMQ_SCHEDULED_DELAY", Value: "3000"}, {Key: "AMQ_SCHEDULED_PERIOD", Value: "300"}, {Key: "AMQ_SCHEDULED_REPEAT", Value: "3"}}},
		{"kept", []stomp.Header{{Key: "AMQ_SCHEDULED_DELAY", Value: "3500"}}},
	} {
		if err := prod.Send(ctx, dest, []byte(m.body), m.h...); err != nil {
			t.Fatalf("send %s: %v", m.body, err)
		}
	}

	leader := g.Nodes[g.Leader()]
	a := api{t: t, addr: leader.HTTP}
	var list node.ScheduledList
	a.ok(200, "GET", "/api/v1/scheduled?destination="+dest, "", &list)
	if len(list.Messages) != 2 || list.Messages[0].Remaining != 3 {
		t.Fatalf("scheduled: %+v", list.Messages)
	}
	a.ok(200, "DELETE", "/api/v1/scheduled/"+url.PathEscape(list.Messages[0].JobID), "", nil)
	leader.Kill()
	Eventually(t, waitLong, "a new leader", func() bool { return g.Leader() >= 0 })

	// Past every due time of both, with room for the failover.
	deadline := sent.Add(3000*time.Millisecond + 3*300*time.Millisecond + 3*time.Second)
	var got []string
	for time.Now().Before(deadline) {
		select {
		case m := <-sub.C():
			got = append(got, string(m.Body))
		case <-time.After(time.Until(deadline)):
		}
	}
	if len(got) != 1 || got[0] != "kept" {
		t.Fatalf("delivered %q after the removal and a leader kill, want only kept", got)
	}
	var after node.ScheduledList
	api{t: t, addr: g.Nodes[g.Leader()].HTTP}.ok(200, "GET", "/api/v1/scheduled", "", &after)
	if after.Total != 0 {
		t.Errorf("the new leader still has %d scheduled: %+v", after.Total, after.Messages)
	}
}
