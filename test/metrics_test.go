package test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/raftmq/raftmq/transport/client"
)

// scrape reads a server's /metrics: each sample's value by its name and
// labels, "name{k=v,...}" in the labels' sorted order.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	out := make(map[string]float64)
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name
			if len(m.GetLabel()) > 0 {
				key += "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						key += ","
					}
					key += l.GetName() + "=" + l.GetValue()
				}
				key += "}"
			}
			out[key] = value(f.GetType(), m)
		}
	}
	return out
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

// TestMetricsFollowTraffic scrapes /metrics before and after traffic: the
// destination counters, the raft histograms and the connection gauge
// move with it.
func TestMetricsFollowTraffic(t *testing.T) {
	t.Parallel()
	s := StartServer(t, raftmqBin, t.TempDir())
	before := scrape(t, s.HTTP)
	for _, name := range []string{"raftmq_raft_term", "raftmq_raft_commit_index", "raftmq_raft_leader_changes_total",
		"raftmq_serving", "raftmq_raft_state{state=Leader}", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := before[name]; !ok {
			t.Errorf("%s missing from /metrics", name)
		}
	}
	if before["raftmq_serving"] != 1 || before["raftmq_raft_state{state=Leader}"] != 1 {
		t.Errorf("a lone node leads: serving %v, leader %v", before["raftmq_serving"], before["raftmq_raft_state{state=Leader}"])
	}

	const sent, acked = 20, 8
	p := dialClient(t, s.Stomp, client.Options{})
	bodies := make([]string, sent)
	for i := range bodies {
		bodies[i] = fmt.Sprint("m", i)
	}
	sendAll(t, p, "/queue/metered", bodies)
	c := dialClient(t, s.Stomp, client.Options{})
	sub := subscribe(t, c, "/queue/metered", "client-individual", "activemq.prefetchSize", "1")
	for range acked {
		if err := c.AckReceipt(ctxT(t), recv(t, sub), ""); err != nil {
			t.Fatal(err)
		}
	}

	l := "{destination=/queue/metered,type=queue}"
	var after map[string]float64
	Eventually(t, waitLong, "metrics to count the traffic", func() bool {
		after = scrape(t, s.HTTP)
		return after["raftmq_destination_dequeued_total"+l] == acked
	})
	checks := []struct {
		name string
		want float64
	}{
		{"raftmq_destination_enqueued_total" + l, sent},
		{"raftmq_destination_dequeued_total" + l, acked},
		{"raftmq_destination_pending_messages" + l, sent - acked},
		{"raftmq_destination_in_flight_messages" + l, 1},
		{"raftmq_destination_consumers" + l, 1},
		{"raftmq_connections", 2},
	}
	for _, c := range checks {
		if got := after[c.name]; got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if after["raftmq_destination_oldest_message_age_seconds"+l] <= 0 {
		t.Errorf("oldest message age = %v, want > 0", after["raftmq_destination_oldest_message_age_seconds"+l])
	}
	// 20 sends and 8 acks went through raft: at least one entry each
	// way, fewer when group commit batched them.
	for _, h := range []string{"raftmq_raft_commit_seconds", "raftmq_raft_apply_seconds"} {
		if after[h] <= before[h] {
			t.Errorf("%s observed %v entries, before traffic %v", h, after[h], before[h])
		}
	}
	if after["raftmq_raft_commit_index"] <= before["raftmq_raft_commit_index"] {
		t.Errorf("commit index did not move: %v → %v", before["raftmq_raft_commit_index"], after["raftmq_raft_commit_index"])
	}
}
