package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/client"
)

// Three-node groups of real processes: who serves, and what happens when
// members come and go.

// refuses reports whether addr refuses TCP connections.
func refuses(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return true
}

// TestGroupFollowersRefuseClients: only the leader opens its client port.
func TestGroupFollowersRefuseClients(t *testing.T) {
	g := StartGroup(t, raftmqBin, 3)
	leader := g.WaitLeader(waitLong)
	for i, s := range g.Nodes {
		if i == leader {
			if refuses(s.Stomp) {
				t.Errorf("leader n%d refuses clients on %s", i+1, s.Stomp)
			}
			continue
		}
		if !refuses(s.Stomp) {
			t.Errorf("follower n%d accepted a client connection on %s", i+1, s.Stomp)
		}
	}
	// CONNECTED tells the client every member's address, once they
	// registered them.
	Eventually(t, waitLong, "three registered members", func() bool {
		ms := cliMembers(t, g)
		return len(ms) == 3 && ms[0].StompAddr != "" && ms[1].StompAddr != "" && ms[2].StompAddr != ""
	})
	c := dialClient(t, g.Nodes[leader].Stomp, client.Options{})
	got := c.Connected().Get(node.BrokersHeader)
	for _, s := range g.Nodes {
		if !strings.Contains(got, "tcp://"+s.Stomp) {
			t.Errorf("%s = %q, missing tcp://%s", node.BrokersHeader, got, s.Stomp)
		}
	}
}

// TestGroupWithoutQuorumRefusesSends: with two of three nodes down the
// group accepts nothing, and says so with an ERROR, never a RECEIPT; when
// one node returns it serves again, with every receipted message.
func TestGroupWithoutQuorumRefusesSends(t *testing.T) {
	g := StartGroup(t, raftmqBin, 3)
	leader := g.WaitLeader(waitLong)
	c := dialClient(t, g.Nodes[leader].Stomp, client.Options{})
	sendR(t, c, "/queue/q", "before")

	var down []int
	for i := range g.Nodes {
		if i != leader {
			g.Nodes[i].Kill()
			down = append(down, i)
		}
	}
	// The leader cannot commit; it steps down when its lease runs out
	// and fails the send with an ERROR. Raft may still commit the entry
	// it appended, under the next leader, so the ERROR says the outcome
	// is unknown and the send carries a dedupe-id for the resend.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := c.SendReceipt(ctx, "/queue/q", []byte("no quorum"), hdr("dedupe-id", "nq-1")...)
	var se *client.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("send without quorum: %v, want an ERROR frame", err)
	}
	t.Logf("send without quorum: ERROR after %v: %q", time.Since(start).Round(time.Millisecond), se.Message())
	if !strings.Contains(se.Message(), "may or may not have been stored") {
		t.Errorf("ERROR %q does not say the send failed", se.Message())
	}
	Eventually(t, waitLong, "the lone node closing its client port", func() bool {
		return refuses(g.Nodes[leader].Stomp)
	})
	// Nothing serves: a new connection is refused at every address.
	for i, s := range g.Nodes {
		if !refuses(s.Stomp) {
			t.Errorf("n%d accepts clients without a quorum", i+1)
		}
	}

	// One node back: a quorum again. The resend is receipted and the
	// message is stored once, whether or not the first attempt was.
	g.Nodes[down[0]].Start()
	leader = g.WaitLeader(waitLong)
	c = dialClient(t, g.Nodes[leader].Stomp, client.Options{})
	sendR(t, c, "/queue/q", "no quorum", "dedupe-id", "nq-1")
	sendR(t, c, "/queue/q", "after")
	s := subscribe(t, c, "/queue/q", "client-individual")
	var bodies []string
	for len(bodies) < 3 {
		select {
		case m, ok := <-s.C():
			if !ok {
				t.Fatalf("subscription ended: %v", c.Err())
			}
			bodies = append(bodies, string(m.Body))
			c.Ack(m, "")
		case <-time.After(waitLong):
			t.Fatalf("got %q, want before, no quorum, after", bodies)
		}
	}
	if strings.Join(bodies, ",") != "before,no quorum,after" {
		t.Errorf("bodies %q, want [before, no quorum, after]: each once", bodies)
	}
	select {
	case m := <-s.C():
		t.Errorf("unexpected message %q", m.Body)
	case <-time.After(300 * time.Millisecond):
	}
}

// cli runs the raftmq binary with args and returns its stdout.
func cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(raftmqBin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("raftmq %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func cliMembers(t *testing.T, g *Group) []node.Member {
	t.Helper()
	var ms []node.Member
	out := cli(t, "members", "--json", "--http", g.HTTPAddrs())
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("members --json: %v\n%s", err, out)
	}
	return ms
}

// TestGroupGrowsAndShrinks adds a fourth and fifth node with -join, then
// removes a dead one with `raftmq remove-node`, checking with
// `raftmq members` and `raftmq status`.
func TestGroupGrowsAndShrinks(t *testing.T) {
	g := StartGroup(t, raftmqBin, 3)
	leader := g.WaitLeader(waitLong)
	c := dialClient(t, g.Nodes[leader].Stomp, client.Options{})
	sendR(t, c, "/queue/grow", "one")

	g.AddNode()
	g.AddNode()
	Eventually(t, waitLong, "five registered voters", func() bool {
		ms := cliMembers(t, g)
		if len(ms) != 5 {
			return false
		}
		for _, m := range ms {
			if m.Suffrage != "Voter" || m.HTTPAddr == "" || m.StompAddr == "" {
				return false
			}
		}
		return true
	})
	// The new nodes hold the log: the group's status shows every member
	// at the leader's applied index.
	Eventually(t, waitLong, "every member caught up", func() bool {
		var st node.GroupStatus
		if json.Unmarshal([]byte(cli(t, "status", "--json", "--http", g.HTTPAddrs())), &st) != nil || len(st.Members) != 5 {
			return false
		}
		for _, m := range st.Members {
			if m.State != "Leader" && m.State != "Follower" || m.AppliedIndex < st.Node.AppliedIndex-1 {
				return false
			}
		}
		return true
	})

	// Kill a follower and drop it.
	victim := (leader + 1) % len(g.Nodes)
	g.Nodes[victim].Kill()
	out := cli(t, "remove-node", "--http", g.HTTPAddrs(), fmt.Sprintf("n%d", victim+1))
	if !strings.Contains(out, "now has 4 members") {
		t.Errorf("remove-node said:\n%s", out)
	}
	ms := cliMembers(t, g)
	if len(ms) != 4 {
		t.Fatalf("%d members after remove-node, want 4", len(ms))
	}
	for _, m := range ms {
		if m.ID == fmt.Sprintf("n%d", victim+1) {
			t.Errorf("removed n%d still listed", victim+1)
		}
	}
	// Removing it again is a clear error.
	cmd := exec.Command(raftmqBin, "remove-node", "--http", g.HTTPAddrs(), fmt.Sprintf("n%d", victim+1))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "no member") {
		t.Errorf("second remove-node: %v\n%s", err, out)
	}
	// The status table names the leader and the four members.
	table := cli(t, "status", "--http", g.HTTPAddrs())
	if !strings.Contains(table, "leader:") || strings.Count(table, "Voter") != 4 {
		t.Errorf("status table:\n%s", table)
	}

	// The group of four still serves, with the earlier message.
	leader = g.WaitLeader(waitLong)
	c = dialClient(t, g.Nodes[leader].Stomp, client.Options{})
	s := subscribe(t, c, "/queue/grow", "auto")
	select {
	case m := <-s.C():
		if string(m.Body) != "one" {
			t.Errorf("body %q, want one", m.Body)
		}
	case <-time.After(waitLong):
		t.Fatal("no message after shrinking")
	}
}

// TestCLISendReceive drives `raftmq send` and `raftmq receive` through a
// failover URL of a group.
func TestCLISendReceive(t *testing.T) {
	g := StartGroup(t, raftmqBin, 3)
	url := failoverURL(g)
	if out := cli(t, "send", "--url", url, "--dest", "/queue/cli", "--header", "kind:greeting", "hello there"); !strings.HasPrefix(out, "sent 1 message to /queue/cli (receipted by 127.0.0.1:") {
		t.Errorf("send printed %q", out)
	}
	if out := cli(t, "send", "--url", url, "--dest", "/queue/cli", "--count", "50", "--size", "10"); !strings.Contains(out, "sent 50 messages to /queue/cli") {
		t.Errorf("send --count printed %q", out)
	}
	out := cli(t, "receive", "--url", url, "--dest", "/queue/cli", "--count", "51", "--headers")
	if !strings.Contains(out, "kind:greeting\n") || !strings.Contains(out, "\nhello there\n") || strings.Count(out, "xxxxxxxxxx\n") != 50 {
		t.Errorf("receive printed:\n%s", out)
	}
	// Everything was acked: nothing is left.
	cmd := exec.Command(raftmqBin, "receive", "--url", url, "--dest", "/queue/cli", "--count", "1", "--timeout", "500ms")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "received 0 of 1") {
		t.Errorf("receive from the drained queue: %v\n%s", err, out)
	}
	// A bad URL option is an error, not ignored.
	cmd = exec.Command(raftmqBin, "send", "--url", url+"&bogus=1", "--dest", "/queue/cli", "x")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), `unknown option "bogus"`) {
		t.Errorf("send with an unknown URL option: %v\n%s", err, out)
	}
}
