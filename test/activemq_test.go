package test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/failover"
	"github.com/raftmq/raftmq/transport/stomp"
)

// ActiveMQ parity (docs/ACTIVEMQ.md) through a third-party client.

// TestPythonStompActiveMQ runs testdata/activemq.py with Debian's
// python3-stomp: selectors on queues and topics, a selector syntax error,
// message groups moving whole when their consumer leaves, exclusive
// consumers and consumer priority.
func TestPythonStompActiveMQ(t *testing.T) {
	t.Parallel()
	runPythonStomp(t, "activemq.py")
}

// groupDelivery is one message of a group as a consumer got it.
type groupDelivery struct {
	consumer int
	group    string
	n        int // the message's place in its group
	after    bool
}

// TestGroupsAcrossLeaderKill: message groups keep their order through a
// SIGKILL of the leader. Two slow consumers share a queue of two groups;
// the leader is killed while messages are in flight. Before the kill and
// after it, each group's messages go to one consumer at a time, in
// order (the new leader's stream starts again where acknowledgements
// stopped, so messages may come twice, flagged redelivered, but never out
// of order), and none is lost.
func TestGroupsAcrossLeaderKill(t *testing.T) {
	t.Parallel()
	g := StartGroup(t, raftmqBin, 3)
	url := failoverURL(g)
	const dest, perGroup = "/queue/grouped", 30
	groups := []string{"A", "B"}

	var mu sync.Mutex
	var got []groupDelivery
	var killed atomic.Bool
	for i := range 2 {
		ctx := ctxT(t)
		c, err := failover.Dial(ctx, url, failover.Options{HeartBeat: [2]time.Duration{time.Second, time.Second}, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		sub, err := c.Subscribe(ctx, dest, "client-individual", stomp.Header{Key: "activemq.prefetchSize", Value: "4"})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for m := range sub.C() {
				n, _ := strconv.Atoi(strings.TrimPrefix(string(m.Body), m.Get("JMSXGroupID")))
				mu.Lock()
				// The new leader flags every message it delivers
				// redelivered (it cannot know what the old one sent);
				// what the old one still had on the wire is not.
				after := killed.Load() && m.Redelivered()
				got = append(got, groupDelivery{consumer: i, group: m.Get("JMSXGroupID"), n: n, after: after})
				mu.Unlock()
				time.Sleep(20 * time.Millisecond) // slow: messages wait in flight
				c.Ack(m, "")
			}
		}()
	}
	prod, err := failover.Dial(ctxT(t), url, failover.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	for n := range perGroup {
		for _, grp := range groups {
			if err := prod.Send(ctxT(t), dest, []byte(fmt.Sprint(grp, n)), stomp.Header{Key: "JMSXGroupID", Value: grp}); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
	}
	Eventually(t, waitLong, "a third of the messages consumed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= perGroup*len(groups)/3
	})
	killed.Store(true)
	g.Nodes[g.Leader()].Kill()
	seen := func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		s := map[string]bool{}
		for _, d := range got {
			s[fmt.Sprint(d.group, d.n)] = true
		}
		return s
	}
	Eventually(t, 2*time.Minute, "every message of both groups consumed", func() bool { return len(seen()) == perGroup*len(groups) })
	time.Sleep(500 * time.Millisecond) // late redeliveries would show now

	mu.Lock()
	defer mu.Unlock()
	for _, grp := range groups {
		for _, after := range []bool{false, true} {
			owner, last := -1, -1
			for _, d := range got {
				if d.group != grp || d.after != after {
					continue
				}
				if owner >= 0 && d.consumer != owner {
					t.Errorf("group %s (after the kill: %v) went to consumers %d and %d", grp, after, owner, d.consumer)
				}
				owner = d.consumer
				if d.n < last {
					t.Errorf("group %s (after the kill: %v): %d after %d", grp, after, d.n, last)
				}
				last = d.n
			}
		}
	}
	if t.Failed() {
		t.Logf("deliveries: %+v", got)
	}
}

// scheduledCopy is one delivery of a scheduled message.
type scheduledCopy struct {
	body, id, jobID string
	at              time.Time
	redelivered     bool
}

// TestScheduledAcrossLeaderKill: messages scheduled with
// AMQ_SCHEDULED_DELAY (and PERIOD and REPEAT) are replicated, and
// delivered once each, not before their time, and within a second of it
// or of the new leader serving, when the leader is killed with SIGKILL
// in between. A is due while the group has no leader; B after the new
// one is up; C repeats across the failover.
func TestScheduledAcrossLeaderKill(t *testing.T) {
	t.Parallel()
	g := StartGroup(t, raftmqBin, 3)
	url := failoverURL(g)
	const dest = "/queue/scheduled"
	ctx := ctxT(t)

	var mu sync.Mutex
	var got []scheduledCopy
	cons, err := failover.Dial(ctx, url, failover.Options{HeartBeat: [2]time.Duration{time.Second, time.Second}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close() })
	sub, err := cons.Subscribe(ctx, dest, "client-individual")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for m := range sub.C() {
			mu.Lock()
			got = append(got, scheduledCopy{string(m.Body), m.Get("message-id"), m.Get("scheduledJobId"), time.Now(), m.Redelivered()})
			mu.Unlock()
			cons.Ack(m, "")
		}
	}()

	prod, err := failover.Dial(ctx, url, failover.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	type scheduled struct {
		body          string
		delay, period time.Duration
		copies        int
		sent, receipt time.Time // the due time lies between sent+delay and receipt+delay
	}
	msgs := []*scheduled{
		{body: "A", delay: 1500 * time.Millisecond, copies: 1},
		{body: "B", delay: 5 * time.Second, copies: 1},
		{body: "C", delay: 2 * time.Second, period: time.Second, copies: 3},
	}
	for _, m := range msgs {
		h := []stomp.Header{{Key: "AMQ_SCHEDULED_DELAY", Value: fmt.Sprint(m.delay.Milliseconds())}}
		if m.copies > 1 {
			h = append(h, stomp.Header{Key: "AMQ_SCHEDULED_PERIOD", Value: fmt.Sprint(m.period.Milliseconds())},
				stomp.Header{Key: "AMQ_SCHEDULED_REPEAT", Value: fmt.Sprint(m.copies - 1)})
		}
		m.sent = time.Now()
		if err := prod.Send(ctx, dest, []byte(m.body), h...); err != nil {
			t.Fatalf("send %s: %v", m.body, err)
		}
		m.receipt = time.Now()
	}
	// Kill the leader just before A is due: A falls in the failover.
	time.Sleep(time.Until(msgs[0].sent.Add(msgs[0].delay - 300*time.Millisecond)))
	mu.Lock()
	early := len(got)
	mu.Unlock()
	if early != 0 {
		t.Fatalf("%d scheduled messages delivered before their time", early)
	}
	killed := time.Now()
	g.Nodes[g.Leader()].Kill()
	var up time.Time
	Eventually(t, waitLong, "a new leader", func() bool {
		if g.Leader() >= 0 {
			up = time.Now()
			return true
		}
		return false
	})
	t.Logf("leader killed %v before A was due; new leader after %v", msgs[0].sent.Add(msgs[0].delay).Sub(killed).Round(time.Millisecond), up.Sub(killed).Round(time.Millisecond))

	last := msgs[2].receipt.Add(msgs[2].delay + 2*msgs[2].period)
	Eventually(t, time.Until(last)+waitLong, "every copy delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 5
	})
	time.Sleep(1500 * time.Millisecond) // a duplicate or an extra copy would show now

	mu.Lock()
	defer mu.Unlock()
	ids := map[string]int{}
	for _, c := range got {
		ids[c.id]++
	}
	for _, m := range msgs {
		var copies []scheduledCopy
		for _, c := range got {
			if c.body == m.body {
				copies = append(copies, c)
			}
		}
		if len(copies) != m.copies {
			t.Errorf("%s: %d copies delivered, want %d: %+v", m.body, len(copies), m.copies, copies)
			continue
		}
		for i, c := range copies {
			if ids[c.id] != 1 {
				t.Errorf("%s copy %d (%s) delivered %d times", m.body, i+1, c.id, ids[c.id])
			}
			if c.jobID == "" {
				t.Errorf("%s copy %d has no scheduledJobId", m.body, i+1)
			}
			offset := m.delay + time.Duration(i)*m.period
			earliest, latest := m.sent.Add(offset), m.receipt.Add(offset)
			if up.After(latest) {
				latest = up
			}
			if c.at.Before(earliest) {
				t.Errorf("%s copy %d delivered %v before its time", m.body, i+1, earliest.Sub(c.at))
			}
			if late := c.at.Sub(latest); late > time.Second {
				t.Errorf("%s copy %d delivered %v after its time (or the new leader)", m.body, i+1, late)
			} else {
				t.Logf("%s copy %d: %v after its time (or the new leader)", m.body, i+1, late.Round(time.Millisecond))
			}
		}
	}
}

// TestAutoCreateForbidden: with --auto-create=false a SEND or SUBSCRIBE
// to a queue the group does not have is an ERROR, and nothing is
// created; once an operator creates the queue both work. Topics are still
// made on first use.
func TestAutoCreateForbidden(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, raftmqBin, t.TempDir(), "--auto-create=false")
	admin := api{t: t, addr: srv.HTTP}

	c, _ := rawConnect(t, srv.Stomp, "1.2")
	c.write(frame(stomp.SEND, "x", "destination", "/queue/unmade", "receipt", "s1"))
	c.expectError("no such queue", "s1")
	c, _ = rawConnect(t, srv.Stomp, "1.2")
	c.write(frame(stomp.SUBSCRIBE, "", "id", "1", "destination", "/queue/unmade", "receipt", "r1"))
	c.expectError("no such queue", "r1")
	var list node.DestinationList
	admin.ok(200, "GET", "/api/v1/destinations", "", &list)
	for _, d := range list.Destinations {
		if d.Name == "/queue/unmade" {
			t.Fatalf("the refused queue exists: %+v", d)
		}
	}

	admin.ok(201, "POST", "/api/v1/queues", `{"name": "unmade"}`, nil)
	cons, _ := rawConnect(t, srv.Stomp, "1.2")
	cons.write(frame(stomp.SUBSCRIBE, "", "id", "1", "destination", "/queue/unmade", "receipt", "r2"))
	cons.expectReceipt("r2")
	c, _ = rawConnect(t, srv.Stomp, "1.2")
	c.write(frame(stomp.SEND, "made", "destination", "/queue/unmade", "receipt", "s2"))
	c.expectReceipt("s2")
	if m := cons.expect(stomp.MESSAGE); string(m.Body) != "made" {
		t.Errorf("got %q", m.Body)
	}
	c.write(frame(stomp.SEND, "news", "destination", "/topic/anything", "receipt", "s3"))
	c.expectReceipt("s3")
}
