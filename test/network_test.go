package test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/network"
	"github.com/raftmq/raftmq/transport/failover"
)

// Networks of groups: raft groups of three real processes each, linked by
// duplex bridges found by a static list or by gossip. Producers and
// consumers use the failover client on each group's failover URL, with
// persistent messages, receipts and client-individual acks; every body is
// unique, so what arrived is counted by body: missing, delivered twice,
// stored twice.

// networkWait bounds what a network should reach on its own: a bridge up
// or down, demand propagated, a backlog forwarded. It is generous: gossip
// failure detection takes seconds, and the machine is small and shared.
const networkWait = 60 * time.Second

// netDelivery is one MESSAGE a network test's consumer got.
type netDelivery struct {
	body, messageID, path string
	redelivered           bool
	at                    time.Time
}

// netConsumer receives on one group with client-individual acks, through
// failovers, and records every delivery with its time.
type netConsumer struct {
	t    *testing.T
	name string
	mu   sync.Mutex
	got  []netDelivery
	seen map[string]bool
}

func startNetConsumer(t *testing.T, name, url, dest string) *netConsumer {
	t.Helper()
	ctx := ctxT(t)
	c, err := failover.Dial(ctx, url, failover.Options{HeartBeat: [2]time.Duration{time.Second, time.Second}, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	sub, err := c.Subscribe(ctx, dest, "client-individual")
	if err != nil {
		t.Fatalf("%s: subscribe %s: %v", name, dest, err)
	}
	h := &netConsumer{t: t, name: name, seen: map[string]bool{}}
	go func() {
		for m := range sub.C() {
			d := netDelivery{string(m.Body), m.Get("message-id"), m.Get("raftmq-network-path"), m.Redelivered(), time.Now()}
			h.mu.Lock()
			h.got = append(h.got, d)
			h.seen[d.body] = true
			h.mu.Unlock()
			// An ack for a message of a lost connection fails: the
			// message comes again, flagged redelivered.
			c.Ack(m, "")
		}
	}()
	return h
}

// distinct is how many distinct bodies with prefix arrived.
func (h *netConsumer) distinct(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for b := range h.seen {
		if strings.HasPrefix(b, prefix) {
			n++
		}
	}
	return n
}

// waitDistinct waits until n distinct bodies with prefix arrived and
// returns when the last of them came.
func (h *netConsumer) waitDistinct(timeout time.Duration, prefix string, n int) time.Time {
	h.t.Helper()
	EventuallyWhy(h.t, timeout, fmt.Sprintf("%s: %d distinct %q messages", h.name, n, prefix),
		func() bool { return h.distinct(prefix) >= n },
		func() string { return fmt.Sprintf("%s has %d", h.name, h.distinct(prefix)) })
	h.mu.Lock()
	defer h.mu.Unlock()
	var last time.Time
	for _, d := range h.got {
		if strings.HasPrefix(d.body, prefix) && d.at.After(last) {
			last = d.at
		}
	}
	return last
}

func (h *netConsumer) deliveries() []netDelivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]netDelivery(nil), h.got...)
}

// netCheck is the outcome of a consumer's deliveries against what it
// should have got.
type netCheck struct {
	deliveries, distinct int
	missing, unexpected  int
	storedTwice          int // bodies delivered under more than one message-id
	redelivered          int // repeats of a message-id flagged redelivered
	unflagged            int // repeats of a message-id not flagged
}

// verify checks h's deliveries: every body in want arrived, nothing else
// did except bodies extra accepts (nil: none), no body was stored twice
// (one message-id per body), and a message-id came again only flagged
// redelivered; with strict, not at all.
func (h *netConsumer) verify(want map[string]bool, extra func(string) bool, strict bool) netCheck {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var r netCheck
	r.deliveries = len(h.got)
	ids := map[string]map[string]bool{} // body -> message-ids
	seenID := map[string]bool{}
	for _, d := range h.got {
		if ids[d.body] == nil {
			ids[d.body] = map[string]bool{}
		}
		ids[d.body][d.messageID] = true
		if seenID[d.messageID] {
			if d.redelivered {
				r.redelivered++
			} else {
				r.unflagged++
			}
		}
		seenID[d.messageID] = true
	}
	r.distinct = len(ids)
	for b := range want {
		if ids[b] == nil {
			r.missing++
			if r.missing <= 5 {
				h.t.Errorf("%s: receipted message %s never consumed", h.name, b)
			}
		}
	}
	for b, set := range ids {
		if !want[b] && (extra == nil || !extra(b)) {
			r.unexpected++
			if r.unexpected <= 5 {
				h.t.Errorf("%s: consumed %s, which was never receipted", h.name, b)
			}
		}
		if len(set) > 1 {
			r.storedTwice++
			if r.storedTwice <= 5 {
				h.t.Errorf("%s: message %s stored %d times (message-ids %v)", h.name, b, len(set), set)
			}
		}
	}
	h.t.Logf("%s: %d deliveries, %d distinct, %d missing, %d unexpected, %d stored twice, %d redelivered (flagged), %d repeated without redelivered:true",
		h.name, r.deliveries, r.distinct, r.missing, r.unexpected, r.storedTwice, r.redelivered, r.unflagged)
	if r.unflagged > 0 {
		h.t.Errorf("%s: %d duplicate deliveries without redelivered:true", h.name, r.unflagged)
	}
	if strict && r.redelivered > 0 {
		h.t.Errorf("%s: %d messages delivered more than once (no failure happened)", h.name, r.redelivered)
	}
	return r
}

// pathsOf counts the raftmq-network-path values of the deliveries whose
// body has prefix.
func (h *netConsumer) pathsOf(prefix string) map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	paths := map[string]int{}
	for _, d := range h.got {
		if strings.HasPrefix(d.body, prefix) {
			paths[d.path]++
		}
	}
	return paths
}

// receiptedAt is when body was receipted (zero if not yet).
func (p *producer) receiptedAt(body string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.receipted[body]
}

// firstReceiptAfter is how long after t the first receipt after t came
// (-1 if none did).
func (p *producer) firstReceiptAfter(t time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := time.Duration(-1)
	for _, at := range p.receipted {
		if d := at.Sub(t); d > 0 && (first < 0 || d < first) {
			first = d
		}
	}
	return first
}

// wait waits for the producer to finish and checks that every message was
// receipted; it returns how long sending took.
func (p *producer) wait(t *testing.T, timeout time.Duration, total int) time.Duration {
	t.Helper()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("producer: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("producer not done after %v: %d of %d receipted", timeout, p.count(), total)
	}
	if n := p.count(); n != total {
		t.Fatalf("%d of %d messages receipted", n, total)
	}
	return time.Since(p.started)
}

// produceAll sends total messages, waits for every receipt and closes the
// producer.
func produceAll(t *testing.T, url, dest, prefix string, total int) map[string]bool {
	t.Helper()
	p := startProducer(t, url, dest, prefix, total, 64, 0)
	p.wait(t, 2*time.Minute, total)
	p.c.Close()
	return p.receiptedSet()
}

// startNetGroup starts a group of three named name with extra flags for
// every node and, if nodeExtra is not nil, per node.
func startNetGroup(t *testing.T, name string, nodeExtra func(int) []string, extra ...string) *Group {
	t.Helper()
	began := time.Now()
	g := StartGroupWith(t, raftmqBin, GroupOptions{Name: name, Size: 3, Extra: extra, NodeExtra: nodeExtra})
	t.Logf("group %s serving after %v", name, time.Since(began).Round(time.Millisecond))
	return g
}

// rate formats n messages over d as messages per second.
func rate(n int, d time.Duration) string {
	return fmt.Sprintf("%.0f msg/s", float64(n)/d.Seconds())
}

// TestNetworkStaticLink links group A to group B with a static list on A
// only, and moves 10,000 persistent messages from a producer on A to a
// consumer on B: all arrive, none twice, each with the path "A". The
// admin API then shows the outbound bridge on A, with its count, and the
// inbound one on B; `raftmq status` prints it.
func TestNetworkStaticLink(t *testing.T) {
	b := startNetGroup(t, "B", nil)
	a := startNetGroup(t, "A", nil, "--network", StaticLink(b, ""))
	LogNetworkOnFailure(t, a, b)
	up := a.WaitBridge(networkWait, "B", "outbound", nil)
	t.Logf("A's bridge to B connected to %s", up.RemoteLeader)

	const total, dest = 10000, "/queue/orders"
	cons := startNetConsumer(t, "consumer on B", failoverURL(b), dest)
	prod := startProducer(t, failoverURL(a), dest, "m", total, 64, 0)
	sendTook := prod.wait(t, 3*time.Minute, total)
	last := cons.waitDistinct(2*time.Minute, "m-", total)
	took := last.Sub(prod.started)
	t.Logf("%d messages: sent and receipted on A in %v (%s); all consumed on B %v after the first send (%s end to end)",
		total, sendTook.Round(time.Millisecond), rate(total, sendTook), took.Round(time.Millisecond), rate(total, took))
	time.Sleep(quiet) // late duplicates, if any, would show now
	cons.verify(prod.receiptedSet(), nil, true)
	if paths := cons.pathsOf("m-"); paths["A"] != len(cons.deliveries()) {
		t.Errorf("raftmq-network-path of the deliveries on B: %v, want every one \"A\"", paths)
	}

	out := a.WaitBridge(waitLong, "B", "outbound", func(bs network.BridgeStatus) bool { return bs.ForwardedOut >= total })
	t.Logf("A: outbound bridge to B: link %s, remote leader %s, forwarded out %d, in %d, demand out %v",
		out.Link, out.RemoteLeader, out.ForwardedOut, out.ForwardedIn, out.DemandOut)
	if !strings.HasPrefix(out.Link, "static:(") {
		t.Errorf("A's bridge link is %q, want the static link", out.Link)
	}
	if !HasDemand(out.DemandOut, dest) {
		t.Errorf("A's bridge to B: demand out %v, want %s (B's consumer)", out.DemandOut, dest)
	}
	in := b.WaitBridge(waitLong, "A", "inbound", nil)
	t.Logf("B: inbound bridge from A (%s) since %v", in.Link, in.Since.Format(time.RFC3339))

	// The bridge's traffic is in A's leader's metrics.
	m := scrape(t, a.Nodes[a.Leader()].HTTP)
	if l := "{direction=outbound,remote_group=B}"; m["raftmq_bridge_up"+l] != 1 || m["raftmq_bridge_forwarded_out_total"+l] < total {
		t.Errorf("A's bridge metrics: up %v, forwarded out %v, want 1 and %d", m["raftmq_bridge_up"+l], m["raftmq_bridge_forwarded_out_total"+l], total)
	}

	status := cli(t, "status", "--http", a.HTTPAddrs())
	for _, want := range []string{"group:    A", "REMOTE GROUP", "outbound", "connected"} {
		if !strings.Contains(status, want) {
			t.Errorf("raftmq status on A lacks %q:\n%s", want, status)
		}
	}
	if !t.Failed() {
		t.Logf("raftmq status on A:\n%s", status)
	}
}

// TestNetworkDuplexReverse configures the link on A only and moves
// messages the other way, from a producer on B to a consumer on A: one
// bridge carries both directions.
func TestNetworkDuplexReverse(t *testing.T) {
	b := startNetGroup(t, "B", nil)
	a := startNetGroup(t, "A", nil, "--network", StaticLink(b, ""))
	LogNetworkOnFailure(t, a, b)
	a.WaitBridge(networkWait, "B", "outbound", nil)

	const total, dest = 2000, "/queue/replies"
	cons := startNetConsumer(t, "consumer on A", failoverURL(a), dest)
	prod := startProducer(t, failoverURL(b), dest, "r", total, 64, 0)
	prod.wait(t, 2*time.Minute, total)
	last := cons.waitDistinct(2*time.Minute, "r-", total)
	took := last.Sub(prod.started)
	t.Logf("%d messages B→A over A's bridge: all consumed on A %v after the first send (%s)",
		total, took.Round(time.Millisecond), rate(total, took))
	time.Sleep(quiet)
	cons.verify(prod.receiptedSet(), nil, true)
	if paths := cons.pathsOf("r-"); paths["B"] != len(cons.deliveries()) {
		t.Errorf("raftmq-network-path of the deliveries on A: %v, want every one \"B\"", paths)
	}
	br := a.WaitBridge(waitLong, "B", "outbound", func(bs network.BridgeStatus) bool { return bs.ForwardedIn >= total })
	t.Logf("A: bridge to B forwarded in %d, out %d, demand in %v", br.ForwardedIn, br.ForwardedOut, br.DemandIn)
	if !HasDemand(br.DemandIn, dest) {
		t.Errorf("A's bridge: demand in %v, want %s (A's consumer)", br.DemandIn, dest)
	}
}

// TestNetworkGossipLink forms the network by gossip alone: every node
// joins one pool, B's nodes through one of A's gossip addresses, and both
// groups link with --network gossip. 10,000 messages cross from A to B.
func TestNetworkGossipLink(t *testing.T) {
	gpA, gpB := NewGossipPorts(t, 3), NewGossipPorts(t, 3)
	a := startNetGroup(t, "A", gpA.Flags(""), "--network", "gossip")
	formed := time.Now()
	b := startNetGroup(t, "B", gpB.Flags(gpA[1]), "--network", "gossip")
	bServing := time.Now()
	LogNetworkOnFailure(t, a, b)

	// Of two groups that find each other, the one with the smaller name
	// keeps the bridge.
	up := a.WaitBridge(networkWait, "B", "outbound", nil)
	t.Logf("bridge A→B found by gossip and connected %v after B served (%v after A served), link %q",
		time.Since(bServing).Round(time.Millisecond), time.Since(formed).Round(time.Millisecond), up.Link)
	b.WaitBridge(waitLong, "A", "inbound", nil)
	Eventually(t, waitLong, "six members in the gossip pool, seen from B", func() bool {
		ms, err := b.GossipMembers(2)
		if err != nil || len(ms) != 6 {
			return false
		}
		for _, m := range ms {
			if m.Meta.Group != "A" && m.Meta.Group != "B" {
				return false
			}
		}
		return true
	})

	const total, dest = 10000, "/queue/gossiped"
	cons := startNetConsumer(t, "consumer on B", failoverURL(b), dest)
	prod := startProducer(t, failoverURL(a), dest, "g", total, 64, 0)
	prod.wait(t, 3*time.Minute, total)
	last := cons.waitDistinct(2*time.Minute, "g-", total)
	took := last.Sub(prod.started)
	t.Logf("%d messages A→B over a gossip-found bridge: all consumed %v after the first send (%s)",
		total, took.Round(time.Millisecond), rate(total, took))
	time.Sleep(quiet)
	cons.verify(prod.receiptedSet(), nil, true)
}

// TestNetworkLeaderKills moves a steady flow from A to B over a static
// link and kills A's leader, then B's, with SIGKILL. Every receipted
// message reaches the consumer on B, none is stored twice, and a repeat
// is only an at-least-once redelivery flagged redelivered:true. It
// reports how long forwarding stalled after each kill.
func TestNetworkLeaderKills(t *testing.T) {
	b := startNetGroup(t, "B", nil)
	a := startNetGroup(t, "A", nil, "--network", StaticLink(b, ""))
	LogNetworkOnFailure(t, a, b)
	a.WaitBridge(networkWait, "B", "outbound", nil)

	const total, dest = 5000, "/queue/steady"
	const every = 4 * time.Millisecond // 250 msg/s
	cons := startNetConsumer(t, "consumer on B", failoverURL(b), dest)
	prod := startProducer(t, failoverURL(a), dest, "s", total, 32, every)

	// resumed reports whether a message receipted after kill reached the
	// consumer, and when the first did.
	resumed := func(kill time.Time) (time.Time, bool) {
		for _, d := range cons.deliveries() {
			if at := prod.receiptedAt(d.body); !at.IsZero() && at.After(kill) {
				return d.at, true
			}
		}
		return time.Time{}, false
	}
	var killedAt []int
	for round, g := range []*Group{a, b} {
		at := 1000 + round*1500
		Eventually(t, time.Minute, fmt.Sprintf("%d messages consumed on B", at), func() bool { return cons.distinct("s-") >= at })
		victim := g.Leader()
		if victim < 0 {
			victim = g.WaitLeader(waitLong)
		}
		kill := time.Now()
		g.Nodes[victim].Kill()
		killedAt = append(killedAt, cons.distinct("s-"))
		var first time.Time
		EventuallyWhy(t, networkWait, fmt.Sprintf("traffic after killing %s's leader", g.Name), func() bool {
			var ok bool
			first, ok = resumed(kill)
			return ok
		}, func() string {
			return fmt.Sprintf("%d receipted, %d consumed", prod.count(), cons.distinct("s-"))
		})
		g.WaitLeader(waitLong)
		lastBefore, firstAfter, longest := stalls(cons.deliveries(), kill, first)
		t.Logf("kill %d: %s's leader n%d killed with %d consumed on B; last delivery %v before the kill, next %v after it (gap %v); longest pause in deliveries until recovery %v; producer on A receipted again after %v; first message receipted after the kill consumed %v after the kill",
			round+1, g.Name, victim+1, killedAt[round], kill.Sub(lastBefore).Round(time.Millisecond),
			firstAfter.Sub(kill).Round(time.Millisecond), firstAfter.Sub(lastBefore).Round(time.Millisecond),
			longest.Round(time.Millisecond), prod.firstReceiptAfter(kill).Round(time.Millisecond), first.Sub(kill).Round(time.Millisecond))
	}
	prod.wait(t, 3*time.Minute, total)
	cons.waitDistinct(2*time.Minute, "s-", total)
	time.Sleep(time.Second) // late duplicates, if any, would show now
	r := cons.verify(prod.receiptedSet(), nil, false)
	t.Logf("at-least-once redeliveries after the kills: %d (flagged redelivered:true)", r.redelivered)
	st, err := a.NetworkStatus()
	if err == nil {
		if br := FindBridge(st, "B", "outbound"); br != nil {
			t.Logf("A's new leader: bridge to B %s, forwarded out %d since it began", br.State, br.ForwardedOut)
		}
	}
}

// stalls measures deliveries around kill: the last before it, the first
// after it, and the longest pause between consecutive deliveries from
// the last before kill to until.
func stalls(ds []netDelivery, kill, until time.Time) (lastBefore, firstAfter time.Time, longest time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i].at.Before(ds[j].at) })
	prev := time.Time{}
	for _, d := range ds {
		if !d.at.After(kill) {
			lastBefore = d.at
			prev = d.at
			continue
		}
		if firstAfter.IsZero() {
			firstAfter = d.at
		}
		if d.at.After(until) {
			break
		}
		if !prev.IsZero() && d.at.Sub(prev) > longest {
			longest = d.at.Sub(prev)
		}
		prev = d.at
	}
	return lastBefore, firstAfter, longest
}

// TestNetworkTopicMesh links three groups in a full mesh (static links
// A→B, A→C, B→C) with one subscriber to a topic in each group; messages
// published in every group reach every subscriber exactly once: no loop
// brings a message back, no second path delivers it twice.
func TestNetworkTopicMesh(t *testing.T) {
	c := startNetGroup(t, "C", nil)
	b := startNetGroup(t, "B", nil, "--network", StaticLink(c, ""))
	a := startNetGroup(t, "A", nil, "--network", StaticLink(b, ""), "--network", StaticLink(c, ""))
	LogNetworkOnFailure(t, a, b, c)
	groups := []*Group{a, b, c}

	const dest, perGroup = "/topic/prices", 100
	subs := make([]*netConsumer, len(groups))
	for i, g := range groups {
		subs[i] = startNetConsumer(t, "subscriber on "+g.Name, failoverURL(g), dest)
	}
	// Topics are not stored for absent subscribers: wait until every
	// bridge carries the topic's demand both ways...
	for _, pair := range [][2]*Group{{a, b}, {a, c}, {b, c}} {
		pair[0].WaitBridge(networkWait, pair[1].Name, "outbound", func(bs network.BridgeStatus) bool {
			return HasDemand(bs.DemandOut, dest) && HasDemand(bs.DemandIn, dest)
		})
	}
	// ...and until the network subscriptions behind it are in place: a
	// probe from every group reaches every subscriber.
	probes := map[string]int{}
	EventuallyWhy(t, networkWait, "a probe from every group at every subscriber", func() bool {
		for _, s := range subs {
			for _, g := range groups {
				if s.distinct("probe-"+g.Name+"-") == 0 {
					body := fmt.Sprintf("probe-%s-%d", g.Name, probes[g.Name])
					probes[g.Name]++
					publishOne(t, g, dest, body)
					return false
				}
			}
		}
		return true
	}, func() string { return fmt.Sprintf("probes sent %v", probes) })
	t.Logf("mesh carries the topic: probes sent per group %v", probes)

	began := time.Now()
	var prods []*producer
	for _, g := range groups {
		prods = append(prods, startProducer(t, failoverURL(g), dest, "p-"+g.Name, perGroup, 16, 0))
	}
	want := map[string]bool{}
	for _, p := range prods {
		p.wait(t, time.Minute, perGroup)
		for body := range p.receiptedSet() {
			want[body] = true
		}
	}
	total := perGroup * len(groups)
	for _, s := range subs {
		s.waitDistinct(networkWait, "p-", total)
	}
	t.Logf("%d messages (%d published in each group) at all 3 subscribers %v after the first publish",
		total, perGroup, time.Since(began).Round(time.Millisecond))
	time.Sleep(time.Second) // a loop or a second path would deliver again by now
	isProbe := func(body string) bool { return strings.HasPrefix(body, "probe-") }
	for i, s := range subs {
		s.verify(want, isProbe, true)
		paths := s.pathsOf("p-")
		// A message published in this group is delivered with no path,
		// one from another group with that group's name only.
		wantPaths := map[string]int{"": perGroup}
		for j, g := range groups {
			if j != i {
				wantPaths[g.Name] = perGroup
			}
		}
		if fmt.Sprint(paths) != fmt.Sprint(wantPaths) {
			t.Errorf("%s: network paths %v, want %v", s.name, paths, wantPaths)
		}
	}
}

// publishOne sends one persistent message to g and waits for its receipt.
func publishOne(t *testing.T, g *Group, dest, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := failover.Dial(ctx, failoverURL(g), failover.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("dial %s: %v", g.Name, err)
	}
	defer c.Close()
	if err := c.Send(ctx, dest, []byte(body)); err != nil {
		t.Fatalf("send %s to %s: %v", body, g.Name, err)
	}
}

// TestNetworkDiscoveryLateAndDeadGroup starts group A alone in a gossip
// pool, then group C joining it, and measures how soon they link. It
// stores messages in C, kills every node of C with SIGKILL, waits for A to
// drop the bridge once gossip declares C's nodes dead, restarts C on the
// same data, and checks the bridge comes back and C's stored messages
// reach a consumer on A, each exactly once.
func TestNetworkDiscoveryLateAndDeadGroup(t *testing.T) {
	gpA, gpC := NewGossipPorts(t, 3), NewGossipPorts(t, 3)
	a := startNetGroup(t, "A", gpA.Flags(""), "--network", "gossip")
	c := startNetGroup(t, "C", gpC.Flags(gpA[0]), "--network", "gossip")
	cServing := time.Now()
	LogNetworkOnFailure(t, a, c)
	a.WaitBridge(networkWait, "C", "outbound", nil)
	linked := time.Since(cServing)
	c.WaitBridge(waitLong, "A", "inbound", nil)
	t.Logf("late group C linked: A's bridge to C connected %v after C's leader served", linked.Round(time.Millisecond))

	const total, dest = 500, "/queue/late"
	want := produceAll(t, failoverURL(c), dest, "l", total)
	kill := time.Now()
	for _, s := range c.Nodes {
		s.Kill()
	}
	EventuallyWhy(t, networkWait, "A to unlink the dead group C", func() bool {
		st, err := a.NetworkStatus()
		return err == nil && FindBridge(st, "C", "") == nil
	}, func() string {
		st, err := a.NetworkStatus()
		return fmt.Sprintf("A's network: %+v, err %v", st, err)
	})
	t.Logf("C's three nodes killed with %d messages stored; A dropped its bridge %v later", total, time.Since(kill).Round(time.Millisecond))

	// Demand on A while C is away: it is what pulls C's messages once C
	// is back.
	cons := startNetConsumer(t, "consumer on A", failoverURL(a), dest)
	restart := time.Now()
	for _, s := range c.Nodes {
		s.Start()
	}
	c.WaitLeader(networkWait)
	cServing = time.Now()
	a.WaitBridge(networkWait, "C", "outbound", nil)
	t.Logf("C restarted: serving %v after the restart began; A's bridge to C connected again %v after C's leader served",
		cServing.Sub(restart).Round(time.Millisecond), time.Since(cServing).Round(time.Millisecond))
	last := cons.waitDistinct(networkWait, "l-", total)
	t.Logf("C's %d stored messages consumed on A %v after C's leader served", total, last.Sub(cServing).Round(time.Millisecond))
	time.Sleep(quiet)
	cons.verify(want, nil, true)
	if paths := cons.pathsOf("l-"); paths["C"] != len(cons.deliveries()) {
		t.Errorf("raftmq-network-path of the deliveries on A: %v, want every one \"C\"", paths)
	}
}
