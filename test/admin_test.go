package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/client"
)

// The admin API, driven over HTTP against real broker processes, with
// messages sent and consumed over STOMP (docs/API.md).

// api is an admin API endpoint of one server.
type api struct {
	t       *testing.T
	addr    string
	headers map[string]string // set on every request, after the defaults
	access  Access            // TLS and credentials, when the server wants them
}

// do sends one request and returns the status and body. A non-empty body
// is sent as JSON.
func (a api) do(method, uri, body string) (int, []byte) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.access.URL(a.addr, uri), rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if method != "GET" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range a.headers {
		req.Header.Set(k, v)
	}
	resp, err := a.access.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, uri, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatalf("%s %s: read: %v", method, uri, err)
	}
	return resp.StatusCode, b
}

// ok sends a request that must answer want and decodes the answer into v
// (when not nil).
func (a api) ok(want int, method, uri, body string, v any) {
	a.t.Helper()
	code, b := a.do(method, uri, body)
	if code != want {
		a.t.Fatalf("%s %s: %d %s, want %d", method, uri, code, b, want)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			a.t.Fatalf("%s %s: decode %s: %v", method, uri, b, err)
		}
	}
}

// fails sends a request that must fail with status want and a JSON error
// containing substr.
func (a api) fails(want int, method, uri, body, substr string) {
	a.t.Helper()
	code, b := a.do(method, uri, body)
	var e node.ErrorResponse
	if code != want || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, substr) {
		a.t.Errorf("%s %s %s: %d %s, want %d and a JSON error containing %q", method, uri, body, code, bytes.TrimSpace(b), want, substr)
	}
}

func (a api) destination(name string) queue.DestinationStats {
	a.t.Helper()
	var list node.DestinationList
	a.ok(200, "GET", "/api/v1/destinations", "", &list)
	for _, d := range list.Destinations {
		if d.Name == name {
			return d
		}
	}
	a.t.Fatalf("%s not among the destinations: %+v", name, list.Destinations)
	return queue.DestinationStats{}
}

func (a api) browse(name string) []node.BrowsedMessage {
	a.t.Helper()
	var page node.MessagePage
	a.ok(200, "GET", "/api/v1/queues/"+name+"/messages?limit=500", "", &page)
	return page.Messages
}

// TestAdminAPI walks every endpoint and action of the admin API on one
// broker, with bad input.
func TestAdminAPI(t *testing.T) {
	t.Parallel()
	s := StartServer(t, raftmqBin, t.TempDir(), "--max-deliveries", "1")
	a := api{t: t, addr: s.HTTP}

	p := dialClient(t, s.Stomp, client.Options{})
	bodies := []string{"m0", "m1", "m2", "m3", "m4"}
	sendAll(t, p, "/queue/orders", bodies, "kind", "order")
	sendR(t, p, "/queue/binary", "\xff\xfe\x00x")

	// Destinations, with the type and name filters.
	d := a.destination("/queue/orders")
	if d.Type != "queue" || d.Pending != 5 || d.Enqueued != 5 || d.Consumers != 0 || d.OldestAgeMs == nil {
		t.Fatalf("orders after 5 sends: %+v", d)
	}
	var list node.DestinationList
	a.ok(200, "GET", "/api/v1/destinations?type=queue&filter=ORD", "", &list)
	if len(list.Destinations) != 1 || list.Destinations[0].Name != "/queue/orders" || list.LeaderID != "n1" || list.Since.IsZero() {
		t.Fatalf("filtered destinations: %+v", list)
	}
	a.ok(200, "GET", "/api/v1/destinations?type=topic", "", &list)
	if len(list.Destinations) != 0 {
		t.Fatalf("topics before any subscriber: %+v", list.Destinations)
	}
	a.fails(400, "GET", "/api/v1/destinations?type=queues", "", "want queue or topic")
	table := cli(t, "destinations", "--http", s.HTTP)
	if !regexp.MustCompile(`(?m)^/queue/orders +queue +5 +0 +0 +5 +0 +0 +0 +\d+s$`).MatchString(table) {
		t.Errorf("raftmq destinations:\n%s", table)
	}

	// Browse: pages, and nothing consumed.
	var page node.MessagePage
	a.ok(200, "GET", "/api/v1/queues/orders/messages?limit=2", "", &page)
	if len(page.Messages) != 2 || page.Messages[0].Body != "m0" || page.Messages[0].Headers["kind"] != "order" ||
		page.Messages[0].BodyEncoding != "text" || !page.Messages[0].Persistent || page.Next == 0 {
		t.Fatalf("first page: %+v", page)
	}
	a.ok(200, "GET", fmt.Sprintf("/api/v1/queues/orders/messages?limit=2&from=%d", page.Next), "", &page)
	if len(page.Messages) != 2 || page.Messages[0].Body != "m2" {
		t.Fatalf("second page: %+v", page)
	}
	next := page.Next
	page = node.MessagePage{}
	a.ok(200, "GET", fmt.Sprintf("/api/v1/queues/orders/messages?from=%d", next), "", &page)
	if len(page.Messages) != 1 || page.Messages[0].Body != "m4" || page.Next != 0 {
		t.Fatalf("last page: %+v", page)
	}
	bin := a.browse("binary")
	if len(bin) != 1 || bin[0].BodyEncoding != "base64" || bin[0].Body != "//4AeA==" || bin[0].BodySize != 4 {
		t.Fatalf("binary body: %+v", bin)
	}
	for _, bad := range []string{"limit=0", "limit=501", "limit=x", "from=-1", "from=x"} {
		a.fails(400, "GET", "/api/v1/queues/orders/messages?"+bad, "", strings.SplitN(bad, "=", 2)[0])
	}
	a.fails(404, "GET", "/api/v1/queues/nope/messages", "", "no such queue: /queue/nope")
	if d := a.destination("/queue/orders"); d.Pending != 5 || d.Dequeued != 0 {
		t.Fatalf("browsing consumed: %+v", d)
	}

	// Connections and subscriptions: a consumer that NACKs two messages
	// into the dead-letter queue (max-deliveries 1).
	c := dialClient(t, s.Stomp, client.Options{ClientID: "admin-test", Login: "ops"})
	sub := subscribe(t, c, "/queue/orders", "client-individual", "activemq.prefetchSize", "2")
	for range 2 {
		if err := c.NackReceipt(ctxT(t), recv(t, sub), ""); err != nil {
			t.Fatal(err)
		}
	}
	var conns []node.ConnectionStatus
	a.ok(200, "GET", "/api/v1/connections", "", &conns)
	var mine *node.ConnectionStatus
	for i := range conns {
		if conns[i].ClientID == "admin-test" {
			mine = &conns[i]
		}
	}
	if len(conns) != 2 || mine == nil || mine.Login != "ops" || mine.Version != "1.2" || mine.Subscriptions != 1 ||
		mine.FramesIn < 4 || mine.MessagesOut < 2 || mine.RemoteAddr == "" || mine.ConnectedAt.IsZero() {
		t.Fatalf("connections: %+v", conns)
	}
	var subs []queue.SubscriptionInfo
	a.ok(200, "GET", "/api/v1/subscriptions", "", &subs)
	if len(subs) != 1 || subs[0].ConnectionID != mine.ID || subs[0].Destination != "/queue/orders" ||
		subs[0].Ack != "client-individual" || subs[0].Prefetch != 2 || !subs[0].Active || subs[0].Delivered < 2 {
		t.Fatalf("subscriptions: %+v", subs)
	}
	Eventually(t, waitLong, "two dead letters", func() bool {
		return a.destination("/queue/DLQ.orders").Pending == 2
	})
	if d := a.destination("/queue/orders"); d.DeadLettered != 2 || d.Consumers != 1 {
		t.Fatalf("orders after two dead letters: %+v", d)
	}
	// The two messages it has meanwhile were delivered once, which is
	// all max-deliveries allows: closing dead-letters them too.
	c.Close()
	Eventually(t, waitLong, "four dead letters", func() bool {
		return a.destination("/queue/DLQ.orders").Pending == 4
	})

	// Retry the dead letters: back to orders, without the DLQ headers.
	dead := a.browse("DLQ.orders")
	if len(dead) != 4 || dead[0].Headers["dlqDeliveryFailureCause"] == "" || dead[0].Headers["original-destination"] != "/queue/orders" {
		t.Fatalf("dead letters: %+v", dead)
	}
	var moved node.MoveResult
	a.ok(200, "POST", "/api/v1/queues/DLQ.orders/move", "", &moved)
	if moved.Moved != 4 || moved.Skipped != 0 || moved.Remaining != 0 {
		t.Fatalf("retry: %+v", moved)
	}
	back := a.browse("orders")
	if len(back) != 5 {
		t.Fatalf("orders after the retry holds %d messages, want 5: %+v", len(back), back)
	}
	for _, m := range back {
		if _, ok := m.Headers["dlqDeliveryFailureCause"]; ok || m.Headers["kind"] != "order" {
			t.Fatalf("retried message headers: %v", m.Headers)
		}
	}

	// Move chosen messages elsewhere; bad moves.
	a.ok(200, "POST", "/api/v1/queues/orders/move",
		fmt.Sprintf(`{"to": "audit", "seqs": [%d, %d, 999999]}`, back[0].Seq, back[1].Seq), &moved)
	if moved.Moved != 2 || moved.Skipped != 1 {
		t.Fatalf("move to audit: %+v", moved)
	}
	if got := a.browse("audit"); len(got) != 2 || got[0].Destination != "/queue/audit" {
		t.Fatalf("audit: %+v", got)
	}
	a.fails(400, "POST", "/api/v1/queues/orders/move", `{"to": "orders"}`, "to itself")
	a.fails(400, "POST", "/api/v1/queues/orders/move", `{"to": "/queue/x"}`, "without /queue/")
	a.fails(400, "POST", "/api/v1/queues/orders/move", `{"too": "x"}`, "unknown field")
	a.fails(400, "POST", "/api/v1/queues/orders/move", `{"seqs": "1"}`, "bad JSON")
	a.fails(404, "POST", "/api/v1/queues/nope/move", `{"to": "x"}`, "no such queue")
	a.fails(400, "POST", "/api/v1/queues/orders/move", `{"seqs": []}`, "seqs is empty")

	// Create, purge, delete.
	var qr node.QueueResult
	a.ok(201, "POST", "/api/v1/queues", `{"name": "fresh"}`, &qr)
	if !qr.Created || qr.Queue != "/queue/fresh" {
		t.Fatalf("create: %+v", qr)
	}
	a.ok(200, "POST", "/api/v1/queues", `{"name": "fresh"}`, &qr)
	if a.destination("/queue/fresh").Pending != 0 {
		t.Fatal("a fresh queue is not empty")
	}
	a.ok(201, "POST", "/api/v1/queues", `{"name": "a/b"}`, nil)
	a.ok(200, "GET", "/api/v1/queues/a%2Fb/messages", "", nil)
	a.fails(400, "POST", "/api/v1/queues", `{"name": ""}`, "queue name")
	a.fails(400, "POST", "/api/v1/queues", `{"name": "/queue/x"}`, "without /queue/")
	a.fails(400, "POST", "/api/v1/queues", `not json`, "bad JSON")
	a.fails(400, "POST", "/api/v1/queues", `{"name": "x\u0000y"}`, "invalid destination")

	var purged node.PurgeResult
	a.ok(200, "POST", "/api/v1/queues/orders/purge", "", &purged)
	if purged.Purged != 3 {
		t.Fatalf("purge: %+v", purged)
	}
	if d := a.destination("/queue/orders"); d.Pending != 0 || d.OldestAgeMs != nil {
		t.Fatalf("orders after purge: %+v", d)
	}
	a.fails(404, "POST", "/api/v1/queues/nope/purge", "", "no such queue")
	if out := cli(t, "purge", "--http", s.HTTP, "/queue/binary"); out != "purged 1 messages from /queue/binary\n" {
		t.Errorf("raftmq purge: %q", out)
	}

	a.ok(200, "DELETE", "/api/v1/queues/audit", "", &qr)
	a.fails(404, "DELETE", "/api/v1/queues/audit", "", "no such queue")
	a.fails(404, "GET", "/api/v1/queues/audit/messages", "", "no such queue")

	// Actions another site's page could make a browser send are refused.
	plain := api{t: t, addr: s.HTTP, headers: map[string]string{"Content-Type": "text/plain"}}
	plain.fails(415, "POST", "/api/v1/queues/orders/purge", "", "Content-Type: application/json")
	evil := api{t: t, addr: s.HTTP, headers: map[string]string{"Origin": "http://evil.example"}}
	evil.fails(403, "POST", "/api/v1/queues/orders/purge", "", "origin")
	own := api{t: t, addr: s.HTTP, headers: map[string]string{"Origin": "http://" + s.HTTP}}
	own.ok(200, "POST", "/api/v1/queues/orders/purge", "", nil)

	// Paths and methods that do not exist.
	a.fails(404, "GET", "/api/v1/nothing", "", "no such API")
	a.fails(405, "GET", "/api/v1/queues/orders/purge", "", "allowed: POST")
	a.fails(405, "PUT", "/api/v1/destinations", "", "allowed: GET")

	// Probes: this lone node leads.
	if code, body := a.do("GET", "/healthz", ""); code != 200 || string(body) != "ok\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	if code, body := a.do("GET", "/readyz", ""); code != 200 || string(body) != "leader\n" {
		t.Errorf("readyz: %d %q", code, body)
	}

	// Everything the API did went through raft: a restart shows it.
	s.Terminate()
	s.Start()
	a.ok(200, "GET", "/api/v1/destinations", "", &list)
	var names []string
	for _, d := range list.Destinations {
		names = append(names, fmt.Sprintf("%s:%d", d.Name, d.Pending))
	}
	want := "/queue/DLQ.orders:0,/queue/a/b:0,/queue/binary:0,/queue/fresh:0,/queue/orders:0"
	if got := join(names); got != want {
		t.Fatalf("after restart: %s, want %s", got, want)
	}
}

// TestAdminAPIOnFollowers: followers answer reads of the leader's state
// and forward actions to it; only the leader is ready.
func TestAdminAPIOnFollowers(t *testing.T) {
	t.Parallel()
	g := StartGroup(t, raftmqBin, 3)
	leader := g.WaitLeader(20 * time.Second)
	follower := (leader + 1) % 3
	la, fa := api{t: t, addr: g.Nodes[leader].HTTP}, api{t: t, addr: g.Nodes[follower].HTTP}

	p := dialClient(t, g.Nodes[leader].Stomp, client.Options{})
	sendAll(t, p, "/queue/jobs", []string{"a", "b", "c"})

	// A new leader registers its admin address through raft; until then
	// followers cannot forward to it.
	Eventually(t, waitLong, "a follower forwards to the leader", func() bool {
		code, _ := fa.do("GET", "/api/v1/destinations", "")
		return code == 200
	})
	var list node.DestinationList
	fa.ok(200, "GET", "/api/v1/destinations", "", &list)
	if len(list.Destinations) != 1 || list.Destinations[0].Pending != 3 || list.LeaderID != fmt.Sprintf("n%d", leader+1) {
		t.Fatalf("destinations through a follower: %+v", list)
	}
	if got := fa.browse("jobs"); len(got) != 3 {
		t.Fatalf("browse through a follower: %d messages", len(got))
	}
	var conns []node.ConnectionStatus
	fa.ok(200, "GET", "/api/v1/connections", "", &conns)
	if len(conns) != 1 {
		t.Fatalf("connections through a follower: %+v", conns)
	}
	var purged node.PurgeResult
	fa.ok(200, "POST", "/api/v1/queues/jobs/purge", "", &purged)
	if purged.Purged != 3 || la.destination("/queue/jobs").Pending != 0 {
		t.Fatalf("purge through a follower: %+v", purged)
	}
	fa.ok(201, "POST", "/api/v1/queues", `{"name": "made-on-a-follower"}`, nil)
	la.destination("/queue/made-on-a-follower")
	fa.fails(404, "DELETE", "/api/v1/queues/nope", "", "no such queue")

	// The follower answers about itself from its own state.
	var info node.NodeInfo
	fa.ok(200, "GET", "/api/v1/node", "", &info)
	if info.ID != fmt.Sprintf("n%d", follower+1) || info.State != "Follower" {
		t.Fatalf("follower's node: %+v", info)
	}
	if code, _ := fa.do("GET", "/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("follower readyz = %d, want 503", code)
	}
	if code, _ := fa.do("GET", "/healthz", ""); code != 200 {
		t.Errorf("follower healthz = %d, want 200", code)
	}
	if code, _ := la.do("GET", "/readyz", ""); code != 200 {
		t.Errorf("leader readyz = %d, want 200", code)
	}
}
