package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// TestKillDuringSendLosesNothing is the durability promise of a
// single-node group: 4 producers send 10,000 persistent 1 KiB messages
// with receipts, the broker is SIGKILLed mid-stream and restarted on the
// same data, and a consumer then gets every receipted message, nothing
// that was never sent, and the ones it held unacknowledged before the kill
// come back with redelivered:true.
func TestKillDuringSendLosesNothing(t *testing.T) {
	const (
		producers = 4
		perProd   = 2500
		total     = producers * perProd
		dest      = "/queue/durability"
	)
	srv := StartServer(t, raftmqBin, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// A consumer that holds some messages unacknowledged when the broker
	// dies: it acks every second message it gets (with a receipt).
	cons, err := client.Dial(ctx, srv.Stomp, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := cons.Subscribe(ctx, dest, "client-individual", stomp.Header{Key: "activemq.prefetchSize", Value: "100"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	// An ack sent before the kill may have been committed even if its
	// receipt never arrived: such a message may be gone for good.
	ackSent := map[string]bool{}
	heldBeforeKill := map[string]bool{} // delivered, never acked
	consDone := make(chan struct{})
	go func() {
		defer close(consDone)
		n := 0
		for m := range sub.C() {
			body := string(m.Body[:strings.IndexByte(string(m.Body), '|')])
			n++
			if n%2 == 0 {
				mu.Lock()
				heldBeforeKill[body] = true
				mu.Unlock()
				continue
			}
			mu.Lock()
			ackSent[body] = true
			mu.Unlock()
			if err := cons.AckReceipt(ctx, m, ""); err != nil {
				return // the broker died
			}
		}
	}()

	// Producers: pipelined sends with receipts.
	var receipted sync.Map // body id → true
	var nReceipted atomic.Int64
	attempted := make(map[string]bool, total)
	for p := 0; p < producers; p++ {
		for i := 0; i < perProd; i++ {
			attempted[fmt.Sprintf("p%d-%d", p, i)] = true
		}
	}
	pad := strings.Repeat("x", 1024-16)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := client.Dial(ctx, srv.Stomp, client.Options{})
			if err != nil {
				t.Errorf("producer %d: %v", p, err)
				return
			}
			defer conn.Close()
			type sent struct {
				id string
				r  *client.Receipt
			}
			window := make(chan sent, 32)
			go func() {
				defer close(window)
				for i := 0; i < perProd; i++ {
					id := fmt.Sprintf("p%d-%d", p, i)
					r, err := conn.SendAsync(dest, []byte(id+"|"+pad))
					if err != nil {
						return
					}
					window <- sent{id, r}
				}
			}()
			for s := range window {
				if s.r.Wait(ctx) == nil {
					receipted.Store(s.id, true)
					nReceipted.Add(1)
				}
			}
		}()
	}

	Eventually(t, time.Minute, "half the messages receipted", func() bool { return nReceipted.Load() >= total/2 })
	srv.Kill()
	wg.Wait()
	<-consDone
	cons.Close()
	t.Logf("killed after %d of %d sends were receipted; consumer sent %d acks, held %d", nReceipted.Load(), total, len(ackSent), len(heldBeforeKill))

	srv.Start()
	conn, err := client.Dial(ctx, srv.Stomp, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sub2, err := conn.Subscribe(ctx, dest, "client-individual")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	redelivered := map[string]bool{}
	for {
		var m *stomp.Frame
		select {
		case m = <-sub2.C():
		case <-time.After(3 * time.Second):
		}
		if m == nil {
			break
		}
		body := string(m.Body)
		id := body[:strings.IndexByte(body, '|')]
		if got[id] {
			t.Errorf("message %s delivered twice after restart", id)
		}
		got[id] = true
		if m.Get("redelivered") == "true" {
			redelivered[id] = true
		}
		if !attempted[id] {
			t.Errorf("message %q was never sent", id)
		}
		if err := conn.Ack(m, ""); err != nil {
			t.Fatal(err)
		}
	}
	missing := 0
	receipted.Range(func(k, _ any) bool {
		id := k.(string)
		if !got[id] && !ackSent[id] {
			missing++
			if missing <= 10 {
				t.Errorf("receipted message %s lost", id)
			}
		}
		return true
	})
	if missing > 0 {
		t.Errorf("%d receipted messages lost", missing)
	}
	for id := range heldBeforeKill {
		if got[id] && !redelivered[id] {
			t.Errorf("message %s was delivered before the kill but came back without redelivered:true", id)
		}
		if !got[id] {
			t.Errorf("message %s, delivered and unacknowledged before the kill, did not come back", id)
		}
	}
	t.Logf("after restart: %d messages consumed (%d receipted before the kill, %d acks sent before it)", len(got), nReceipted.Load(), len(ackSent))
}
