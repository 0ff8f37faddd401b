package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// TestConsole drives the web console in headless chromium against a real
// single-node broker: the queues page shows the messages sent over STOMP,
// purging through the page's confirmation empties the queue (as the API
// confirms), and the group page shows the node as leader.
func TestConsole(t *testing.T) {
	b := StartBrowser(t)
	srv := StartServer(t, raftmqBin, t.TempDir())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.Log())
		}
	})

	const dest, count = "/queue/console-test", 7
	sendPersistent(t, srv.Stomp, dest, count)

	ctx, cancel := context.WithTimeout(b.Context(), 60*time.Second)
	defer cancel()
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			b.Diagnose("console-failure")
			t.Fatalf("%s: %v", what, err)
		}
	}
	row := fmt.Sprintf(`tr[data-queue=%q]`, dest)
	pending := func(n int) chromedp.CSS {
		return chromedp.CSS(fmt.Sprintf(`%s td[data-col="pending"][data-value="%d"]`, row, n))
	}
	confirm := chromedp.CSS(`#confirm button[data-confirm]`)

	step("open the queues page", chromedp.Navigate("http://"+srv.HTTP+"/#/queues"))
	step(fmt.Sprintf("wait for %s to show %d pending", dest, count), chromedp.WaitVisible(pending(count)))
	step("purge it", chromedp.Click(chromedp.CSS(row+` button[data-action="purge"]`)))
	step("wait for the confirmation", chromedp.WaitVisible(confirm))
	step("confirm the purge", chromedp.Click(confirm))
	step(fmt.Sprintf("wait for %s to show 0 pending", dest), chromedp.WaitVisible(pending(0)))
	step("wait for the purge's notice", chromedp.WaitVisible(chromedp.CSS(`#notice[data-kind="ok"]`)))
	if text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#notice-text`))); err != nil || !strings.Contains(text, fmt.Sprintf("Purged %d messages", count)) {
		b.Diagnose("console-failure")
		t.Fatalf("notice after the purge: %q, %v", text, err)
	}

	if got := apiPending(t, srv.HTTP, dest); got != 0 {
		t.Errorf("API: %s has %d pending after the purge, want 0", dest, got)
	}
	b.Screenshot(ctx, "console-queues")

	step("open the group page", chromedp.Click(chromedp.CSS(`a[data-nav="group"]`)))
	step("wait for n1 listed as leader", chromedp.WaitVisible(chromedp.CSS(`tr[data-member="n1"][data-state="Leader"] td[data-col="state"]`)))
	b.Screenshot(ctx, "console-group")

	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page reported script errors or policy violations:\n%s", strings.Join(p, "\n"))
	}
}

// sendPersistent sends count persistent messages to dest, each confirmed
// by a RECEIPT.
func sendPersistent(t *testing.T, addr, dest string, count int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, addr, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range count {
		body := fmt.Appendf(nil, `{"n": %d}`, i)
		if err := conn.SendReceipt(ctx, dest, body, stomp.Header{Key: "persistent", Value: "true"}); err != nil {
			t.Fatalf("send %d to %s: %v", i, dest, err)
		}
	}
	if err := conn.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
}

// apiPending is dest's pending count in GET /api/v1/destinations.
func apiPending(t *testing.T, httpAddr, dest string) int {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + httpAddr + "/api/v1/destinations?type=queue")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/destinations: %s", resp.Status)
	}
	var list struct {
		Destinations []struct {
			Name    string `json:"name"`
			Pending int    `json:"pending"`
		} `json:"destinations"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("GET /api/v1/destinations: %v", err)
	}
	for _, d := range list.Destinations {
		if d.Name == dest {
			return d.Pending
		}
	}
	t.Fatalf("GET /api/v1/destinations: no %s in %+v", dest, list.Destinations)
	return -1
}
