package node

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/network"
)

// Metrics: each node has its own registry (a process may run several
// nodes, in tests), served on the admin listener at /metrics. What the
// leader's engine and bridges know is read at scrape time, so the
// delivery path pays nothing for it; latencies are histograms observed
// where they happen.

type metrics struct {
	reg           *prometheus.Registry
	commit        prometheus.Histogram
	apply         prometheus.Histogram
	leaderChanges prometheus.Counter
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raftmq_raft_commit_seconds",
			Help:    "Time from handing a log entry (a batch of commands) to raft until it is committed by a majority and applied on this leader.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms to 4 s
		}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "raftmq_raft_apply_seconds",
			Help:    "Time the state machine takes to apply one batch of log entries to its store.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 14), // 50 µs to 0.4 s
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "raftmq_raft_leader_changes_total",
			Help: "Leader changes this node observed in its group (a new leader, or none).",
		}),
	}
	m.reg.MustRegister(m.commit, m.apply, m.leaderChanges, &nodeCollector{n},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	})
}

// timedFSM is the FSM as raft sees it: applying a batch is timed.
type timedFSM struct {
	*fsm.FSM
	apply prometheus.Histogram
}

func (f timedFSM) ApplyBatch(logs []*raft.Log) []any {
	start := time.Now()
	defer func() { f.apply.Observe(time.Since(start).Seconds()) }()
	return f.FSM.ApplyBatch(logs)
}

func (f timedFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

var (
	descRaftState    = prometheus.NewDesc("raftmq_raft_state", "1 for this node's raft state (Leader, Follower, Candidate, Shutdown), 0 for the others.", []string{"state"}, nil)
	descRaftTerm     = prometheus.NewDesc("raftmq_raft_term", "This node's raft term.", nil, nil)
	descCommitIndex  = prometheus.NewDesc("raftmq_raft_commit_index", "Highest log index this node knows to be committed.", nil, nil)
	descAppliedIndex = prometheus.NewDesc("raftmq_raft_applied_index", "Highest log index applied to this node's state.", nil, nil)
	descLastContact  = prometheus.NewDesc("raftmq_raft_last_contact_seconds", "Time since a follower last heard from its leader (0 on the leader).", nil, nil)
	descServing      = prometheus.NewDesc("raftmq_serving", "1 while this node serves STOMP clients (it leads its group).", nil, nil)
	descConnections  = prometheus.NewDesc("raftmq_connections", "Open client connections (on the leader).", nil, nil)

	destLabels       = []string{"destination", "type"}
	descPending      = prometheus.NewDesc("raftmq_destination_pending_messages", "Messages not yet acknowledged, in flight included.", destLabels, nil)
	descInFlight     = prometheus.NewDesc("raftmq_destination_in_flight_messages", "Messages delivered and not yet acknowledged.", destLabels, nil)
	descConsumers    = prometheus.NewDesc("raftmq_destination_consumers", "Local subscriptions.", destLabels, nil)
	descNetConsumers = prometheus.NewDesc("raftmq_destination_network_consumers", "Bridges to other groups consuming the destination.", destLabels, nil)
	descEnqueued     = prometheus.NewDesc("raftmq_destination_enqueued_total", "Messages stored in a queue, or published to a topic, since this leader took over.", destLabels, nil)
	descDequeued     = prometheus.NewDesc("raftmq_destination_dequeued_total", "Messages acknowledged by consumers since this leader took over.", destLabels, nil)
	descDeadLettered = prometheus.NewDesc("raftmq_destination_dead_lettered_total", "Messages sent to the dead-letter queue after too many deliveries.", destLabels, nil)
	descExpired      = prometheus.NewDesc("raftmq_destination_expired_total", "Messages that expired.", destLabels, nil)
	descOldest       = prometheus.NewDesc("raftmq_destination_oldest_message_age_seconds", "Age of a queue's oldest stored message (absent when it has none).", destLabels, nil)

	bridgeLabels     = []string{"remote_group", "direction"}
	descBridgeUp     = prometheus.NewDesc("raftmq_bridge_up", "1 while the bridge to the remote group is connected.", bridgeLabels, nil)
	descForwardedOut = prometheus.NewDesc("raftmq_bridge_forwarded_out_total", "Messages this group forwarded to the remote group, acknowledged at the source.", bridgeLabels, nil)
	descForwardedIn  = prometheus.NewDesc("raftmq_bridge_forwarded_in_total", "Messages forwarded from the remote group into this one.", bridgeLabels, nil)
	descBridgeDemand = prometheus.NewDesc("raftmq_bridge_destinations", "Destinations the bridge forwards, by way (out, in).", []string{"remote_group", "direction", "way"}, nil)
	descRefused      = prometheus.NewDesc("raftmq_connections_refused_total", "Client connections refused past --max-connections, since this leader took over.", nil, nil)
	descTLSFailures  = prometheus.NewDesc("raftmq_tls_handshake_failures_total", "Failed TLS handshakes on the client listener (bad or missing certificates, plaintext clients), since this leader took over.", nil, nil)
	descAuthFailures = prometheus.NewDesc("raftmq_auth_failures_total", "CONNECT frames refused for their credentials, since this leader took over.", nil, nil)
	descDenials      = prometheus.NewDesc("raftmq_authorization_denials_total", "SEND and SUBSCRIBE frames refused for want of a right, since this leader took over.", nil, nil)
	descStoreBytes   = prometheus.NewDesc("raftmq_store_bytes", "Bytes counted against --store-limit: stored persistent messages, 256 bytes of bookkeeping each included.", nil, nil)
	descStoreLimit   = prometheus.NewDesc("raftmq_store_limit_bytes", "The store limit (absent without one).", nil, nil)
	descHeld         = prometheus.NewDesc("raftmq_destination_sends_held", "Sends waiting for room in a full queue (producer flow control).", destLabels, nil)
	descBlocked      = prometheus.NewDesc("raftmq_destination_sends_blocked_total", "Sends that had to wait for room in a full queue.", destLabels, nil)
	descFailed       = prometheus.NewDesc("raftmq_destination_sends_failed_total", "Sends refused because the queue or the store was full.", destLabels, nil)
	descScheduled    = prometheus.NewDesc("raftmq_scheduled_messages", "Scheduled messages stored and waiting to fire (one per message, however many copies it has left).", nil, nil)
	descSchedBytes   = prometheus.NewDesc("raftmq_scheduled_bytes", "What the scheduled messages' copies still to fire weigh; they count against --store-limit.", nil, nil)
	descSchedFired   = prometheus.NewDesc("raftmq_scheduled_fired_total", "Copies of scheduled messages fired since this leader took over.", nil, nil)
	descSchedNextDue = prometheus.NewDesc("raftmq_scheduled_next_due_timestamp_seconds", "When the next scheduled copy is due (Unix time; absent when none is).", nil, nil)
	descCertExpiry   = prometheus.NewDesc("raftmq_tls_certificate_expiry_timestamp_seconds", "When this node's TLS certificate expires (Unix time).", nil, nil)
	raftStates       = []raft.RaftState{raft.Leader, raft.Follower, raft.Candidate, raft.Shutdown}

	descAllForCollect = []*prometheus.Desc{descRaftState, descRaftTerm, descCommitIndex, descAppliedIndex, descLastContact,
		descServing, descConnections, descPending, descInFlight, descConsumers, descNetConsumers, descEnqueued,
		descDequeued, descDeadLettered, descExpired, descOldest, descBridgeUp, descForwardedOut, descForwardedIn, descBridgeDemand,
		descRefused, descTLSFailures, descAuthFailures, descDenials, descStoreBytes, descStoreLimit, descHeld, descBlocked,
		descFailed, descCertExpiry, descScheduled, descSchedBytes, descSchedFired, descSchedNextDue}
)

// nodeCollector reads the node's state at scrape time.
type nodeCollector struct{ n *Node }

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descAllForCollect {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	// A label value that cannot be exposed (names are checked to be
	// UTF-8, but stores may hold older ones) skips its sample rather than
	// end the scrape.
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		if m, err := prometheus.NewConstMetric(d, t, v, labels...); err == nil {
			ch <- m
		}
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) { emit(d, prometheus.GaugeValue, v, labels...) }
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		emit(d, prometheus.CounterValue, float64(v), labels...)
	}
	if r := n.Raft(); r != nil {
		state := r.State()
		for _, s := range raftStates {
			gauge(descRaftState, b2f(s == state), s.String())
		}
		gauge(descRaftTerm, float64(r.CurrentTerm()))
		gauge(descCommitIndex, float64(r.CommitIndex()))
		gauge(descAppliedIndex, float64(r.AppliedIndex()))
		if state == raft.Leader {
			gauge(descLastContact, 0)
		} else if last := r.LastContact(); !last.IsZero() {
			gauge(descLastContact, time.Since(last).Seconds())
		}
	}
	if n.cfg.TLS != nil {
		gauge(descCertExpiry, float64(n.cfg.TLS.NotAfter().Unix()))
	}
	t := n.servingTerm()
	gauge(descServing, b2f(t != nil))
	if t == nil {
		return
	}
	gauge(descConnections, float64(t.srv.NumConns()))
	sec := t.srv.SecurityStats()
	counter(descRefused, sec.Refused)
	counter(descTLSFailures, sec.TLSFailures)
	counter(descAuthFailures, sec.AuthFailures)
	counter(descDenials, sec.Denials)
	gauge(descStoreBytes, float64(t.engine.StoreBytes()))
	if l := n.cfg.Queue.StoreLimit; l > 0 {
		gauge(descStoreLimit, float64(l))
	}
	sched := t.engine.Scheduled()
	gauge(descScheduled, float64(sched.Pending))
	gauge(descSchedBytes, float64(sched.Bytes))
	counter(descSchedFired, sched.Fired)
	if sched.NextDueMs != 0 {
		gauge(descSchedNextDue, float64(sched.NextDueMs)/1000)
	}
	for _, d := range t.engine.Destinations(true) {
		l := []string{d.Name, d.Type}
		gauge(descPending, float64(d.Pending), l...)
		gauge(descInFlight, float64(d.InFlight), l...)
		gauge(descConsumers, float64(d.Consumers), l...)
		gauge(descNetConsumers, float64(d.NetworkConsumers), l...)
		counter(descEnqueued, d.Enqueued, l...)
		counter(descDequeued, d.Dequeued, l...)
		counter(descDeadLettered, d.DeadLettered, l...)
		counter(descExpired, d.Expired, l...)
		if d.OldestAgeMs != nil {
			gauge(descOldest, float64(*d.OldestAgeMs)/1000, l...)
		}
		if d.Type == "queue" {
			gauge(descHeld, float64(d.SendsHeld), l...)
			counter(descBlocked, d.SendsBlocked, l...)
			counter(descFailed, d.SendsFailed, l...)
		}
	}
	for _, b := range n.NetworkStatus().Bridges {
		l := []string{b.RemoteGroup, b.Direction}
		gauge(descBridgeUp, b2f(b.State == network.StateConnected), l...)
		counter(descForwardedOut, b.ForwardedOut, l...)
		counter(descForwardedIn, b.ForwardedIn, l...)
		gauge(descBridgeDemand, float64(len(b.DemandOut)), append(l, "out")...)
		gauge(descBridgeDemand, float64(len(b.DemandIn)), append(l, "in")...)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// countLeaderChanges counts the group's leader changes as raft reports
// them to this node, until Close.
func (n *Node) countLeaderChanges(r *raft.Raft) {
	defer n.bg.Done()
	ch := make(chan raft.Observation, 16)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(obs)
	defer r.DeregisterObserver(obs)
	for {
		select {
		case <-ch:
			n.metrics.leaderChanges.Inc()
		case <-n.shutdown:
			return
		}
	}
}
