package test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/failover"
)

// Failover of real processes: leaders killed with SIGKILL, or stopped with
// SIGSTOP, while a producer and a consumer use the failover client.

// failoverURL is the URL the tests' clients use: every node, in order,
// retrying fast.
func failoverURL(g *Group) string {
	return g.URL("randomize=false&initialReconnectDelay=10&maxReconnectDelay=100")
}

// delivery is one MESSAGE the consumer got.
type delivery struct {
	body, messageID string
	redelivered     bool
}

// haConsumer receives with client-individual acks through failovers and
// records every delivery.
type haConsumer struct {
	t   *testing.T
	c   *failover.Client
	mu  sync.Mutex
	got []delivery
	err error
}

func startHAConsumer(t *testing.T, url, dest string) *haConsumer {
	t.Helper()
	ctx := ctxT(t)
	c, err := failover.Dial(ctx, url, failover.Options{HeartBeat: [2]time.Duration{time.Second, time.Second}, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("consumer dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	sub, err := c.Subscribe(ctx, dest, "client-individual")
	if err != nil {
		t.Fatalf("consumer subscribe: %v", err)
	}
	h := &haConsumer{t: t, c: c}
	go func() {
		for m := range sub.C() {
			h.mu.Lock()
			h.got = append(h.got, delivery{string(m.Body), m.Get("message-id"), m.Redelivered()})
			h.mu.Unlock()
			// An ack for a message of a lost connection fails: the
			// message comes again, flagged redelivered.
			c.Ack(m, "")
		}
		h.mu.Lock()
		h.err = sub.Err()
		h.mu.Unlock()
	}()
	return h
}

// distinct returns how many distinct bodies were delivered.
func (h *haConsumer) distinct() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, d := range h.got {
		seen[d.body] = true
	}
	return len(seen)
}

// check verifies the consumer got every body in want, each stored once
// (one message-id per body), and saw duplicates only flagged redelivered.
func (h *haConsumer) check(want map[string]bool) {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := map[string]map[string]bool{} // body -> message-ids
	seenID := map[string]bool{}
	dups, unflagged := 0, 0
	for _, d := range h.got {
		if ids[d.body] == nil {
			ids[d.body] = map[string]bool{}
		}
		ids[d.body][d.messageID] = true
		if seenID[d.messageID] {
			dups++
			if !d.redelivered {
				unflagged++
			}
		}
		seenID[d.messageID] = true
	}
	missing := 0
	for b := range want {
		if ids[b] == nil {
			missing++
			if missing <= 5 {
				h.t.Errorf("receipted message %s never consumed", b)
			}
		}
	}
	twice := 0
	for b, set := range ids {
		if !want[b] {
			h.t.Errorf("consumed %s, which was never receipted", b)
		}
		if len(set) > 1 {
			twice++
			if twice <= 5 {
				h.t.Errorf("message %s enqueued %d times (message-ids %v)", b, len(set), set)
			}
		}
	}
	h.t.Logf("consumer: %d deliveries, %d distinct messages, %d redeliveries (%d not flagged), %d missing, %d enqueued twice",
		len(h.got), len(ids), dups, unflagged, missing, twice)
	if unflagged > 0 {
		h.t.Errorf("%d duplicate deliveries without redelivered:true", unflagged)
	}
	if missing > 0 || twice > 0 {
		h.t.Errorf("%d receipted messages missing, %d enqueued twice", missing, twice)
	}
}

// producer sends numbered persistent messages prefix-00000,
// prefix-00001, ... with the failover client, keeping a window of sends in
// flight, optionally paced, and records when each receipt came and when
// the client reconnected.
type producer struct {
	c          *failover.Client
	mu         sync.Mutex
	receipted  map[string]time.Time
	receipts   []time.Time // completion times, in order
	reconnects []time.Time
	done       chan error
	started    time.Time
}

// startProducer sends total messages to dest; every, when not zero, paces
// them at one per every (missed ticks are dropped, so a stall does not
// end in a burst).
func startProducer(t *testing.T, url, dest, prefix string, total, window int, every time.Duration) *producer {
	t.Helper()
	p := &producer{receipted: map[string]time.Time{}, done: make(chan error, 1)}
	opts := failover.Options{
		HeartBeat: [2]time.Duration{time.Second, time.Second},
		Logger:    testLogger(t),
		OnConnect: func(string) {
			p.mu.Lock()
			p.reconnects = append(p.reconnects, time.Now())
			p.mu.Unlock()
		},
	}
	c, err := failover.Dial(ctxT(t), url, opts)
	if err != nil {
		t.Fatalf("producer dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	p.c = c
	p.started = time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var tick <-chan time.Time
		if every > 0 {
			tk := time.NewTicker(every)
			defer tk.Stop()
			tick = tk.C
		}
		type sent struct {
			body string
			r    *failover.Receipt
		}
		inflight := make(chan sent, window)
		waited := make(chan error, 1)
		go func() {
			for s := range inflight {
				if err := s.r.Wait(ctx); err != nil {
					waited <- fmt.Errorf("receipt for %s: %w", s.body, err)
					for range inflight {
					}
					return
				}
				now := time.Now()
				p.mu.Lock()
				p.receipted[s.body] = now
				p.receipts = append(p.receipts, now)
				p.mu.Unlock()
			}
			waited <- nil
		}()
		for i := range total {
			if tick != nil {
				<-tick
			}
			body := fmt.Sprintf("%s-%05d", prefix, i)
			r, err := c.SendAsync(dest, []byte(body))
			if err != nil {
				close(inflight)
				<-waited
				p.done <- fmt.Errorf("send %s: %w", body, err)
				return
			}
			inflight <- sent{body, r}
		}
		close(inflight)
		p.done <- <-waited
	}()
	return p
}

func (p *producer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.receipted)
}

// recoveredAfter is the time from kill to the first receipt that came on a
// connection made after kill: the group serving again.
func (p *producer) recoveredAfter(kill time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var reconnect time.Time
	for _, r := range p.reconnects {
		if r.After(kill) {
			reconnect = r
			break
		}
	}
	if reconnect.IsZero() {
		return 0, false
	}
	for _, r := range p.receipts {
		if !r.Before(reconnect) {
			return r.Sub(kill), true
		}
	}
	return 0, false
}

func (p *producer) receiptedSet() map[string]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]bool, len(p.receipted))
	for b := range p.receipted {
		out[b] = true
	}
	return out
}

// waitRecovered waits until the producer is served again after kill and
// returns how long that took.
func waitRecovered(t *testing.T, p *producer, kill time.Time) time.Duration {
	t.Helper()
	var d time.Duration
	Eventually(t, 60*time.Second, "a receipt from the new leader", func() bool {
		var ok bool
		d, ok = p.recoveredAfter(kill)
		return ok
	})
	return d
}

// TestKillLeaderTwice is the group's durability promise under failover:
// 20,000 persistent messages sent through a failover URL while a consumer
// takes them with client-individual acks; the leader is killed with
// SIGKILL twice (the first victim restarted before the second kill).
// Every receipted message is consumed, none is missing, none is stored
// twice, and duplicates are flagged redelivered.
func TestKillLeaderTwice(t *testing.T) {
	g := StartGroup(t, raftmqBin, 3)
	url := failoverURL(g)
	const total, dest = 20000, "/queue/ha"
	cons := startHAConsumer(t, url, dest)
	prod := startProducer(t, url, dest, "m", total, 64, 0)

	var gaps []time.Duration
	for round, at := range []int{total / 4, total * 5 / 8} {
		Eventually(t, 2*time.Minute, fmt.Sprintf("%d receipts", at), func() bool { return prod.count() >= at })
		victim := g.Leader()
		if victim < 0 {
			victim = g.WaitLeader(waitLong)
		}
		kill := time.Now()
		g.Nodes[victim].Kill()
		gap := waitRecovered(t, prod, kill)
		gaps = append(gaps, gap)
		t.Logf("kill %d: leader n%d killed at %d receipts; next receipt from the new leader after %v",
			round+1, victim+1, prod.count(), gap.Round(time.Millisecond))
		// The victim comes back as a follower and catches up before
		// the next kill, so the group has a quorum without it... and
		// with it.
		g.Nodes[victim].Start()
		Eventually(t, waitLong, fmt.Sprintf("n%d following again", victim+1), func() bool {
			info, err := g.Info(victim)
			return err == nil && info.State == "Follower" && info.LeaderID != ""
		})
	}
	select {
	case err := <-prod.done:
		if err != nil {
			t.Fatalf("producer: %v", err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("producer not done: %d of %d receipted", prod.count(), total)
	}
	want := prod.receiptedSet()
	if len(want) != total {
		t.Fatalf("%d of %d messages receipted", len(want), total)
	}
	Eventually(t, 2*time.Minute, "every message consumed", func() bool { return cons.distinct() >= total })
	time.Sleep(500 * time.Millisecond) // late duplicates, if any, would show now
	cons.check(want)

	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	strs := make([]string, len(gaps))
	for i, d := range gaps {
		strs[i] = d.Round(time.Millisecond).String()
	}
	median := (gaps[(len(gaps)-1)/2] + gaps[len(gaps)/2]) / 2
	t.Logf("kill to next receipt: %s (median %v, max %v)", strings.Join(strs, ", "),
		median.Round(time.Millisecond), gaps[len(gaps)-1].Round(time.Millisecond))
}

// TestPausedLeaderNeverReceipts stops the leader with SIGSTOP, as a long
// pause or a partition would: the others elect a new leader, the
// producer fails over and resends what had no receipt (deduplicated by
// the group), and when the old leader resumes it writes no RECEIPT, only
// an ERROR, for a SEND that reached it while it was paused.
func TestPausedLeaderNeverReceipts(t *testing.T) {
	g := StartGroup(t, raftmqBin, 3)
	url := failoverURL(g)
	const total, dest = 6000, "/queue/paused"
	old := g.WaitLeader(waitLong)
	// An observer on the old leader, without heart-beats: it never
	// gives up on its own, so whatever the old leader writes, it sees.
	obs := dialClient(t, g.Nodes[old].Stomp, client.Options{})
	prod := startProducer(t, url, dest, "m", total, 64, 0)
	Eventually(t, time.Minute, "1000 receipts", func() bool { return prod.count() >= 1000 })

	pause := time.Now()
	g.Nodes[old].Pause()
	newLeader := -1
	Eventually(t, waitLong, "a new leader", func() bool {
		for i := range g.Nodes {
			if i == old {
				continue
			}
			if info, err := g.Info(i); err == nil && info.State == "Leader" && info.Serving {
				newLeader = i
				return true
			}
		}
		return false
	})
	elected := time.Since(pause)
	// This SEND sits in the paused node's socket buffer.
	stale, err := obs.SendAsync(dest, []byte("stale"), hdr("dedupe-id", "stale-1")...)
	if err != nil {
		t.Fatalf("observer send: %v", err)
	}
	gap := waitRecovered(t, prod, pause)
	t.Logf("leader n%d paused; n%d elected after %v; producer served again after %v",
		old+1, newLeader+1, elected.Round(time.Millisecond), gap.Round(time.Millisecond))

	g.Nodes[old].Resume()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	err = stale.Wait(ctx)
	if err == nil {
		t.Fatal("the deposed leader receipted a SEND after a new leader was elected")
	}
	t.Logf("deposed leader answered the observer's SEND with: %v", err)
	Eventually(t, waitLong, "the old leader following", func() bool {
		info, err := g.Info(old)
		return err == nil && info.State == "Follower" && info.LeaderID == fmt.Sprintf("n%d", newLeader+1)
	})
	if !refuses(g.Nodes[old].Stomp) {
		t.Error("the deposed leader still accepts clients")
	}

	select {
	case err := <-prod.done:
		if err != nil {
			t.Fatalf("producer: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("producer not done: %d of %d receipted", prod.count(), total)
	}
	want := prod.receiptedSet()
	if len(want) != total {
		t.Fatalf("%d of %d receipted", len(want), total)
	}
	cons := startHAConsumer(t, url, dest)
	Eventually(t, time.Minute, "every message consumed", func() bool { return cons.distinct() >= total })
	time.Sleep(300 * time.Millisecond)
	// "stale" was never receipted, and never committed: the deposed
	// leader's entry lost to the new leader's log.
	cons.check(want)
}
