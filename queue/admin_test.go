package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

func destStats(t *testing.T, e *Engine, name string) DestinationStats {
	t.Helper()
	for _, d := range e.Destinations(true) {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("%s not among the destinations %+v", name, e.Destinations(false))
	return DestinationStats{}
}

func TestStatsFollowTraffic(t *testing.T) {
	e, _ := newEngine(t, Config{MaxDeliveries: 1})
	p, _ := open(t, e, "")
	for _, b := range []string{"a", "b", "c"} {
		send(t, p, "/queue/q", b, 4)
	}
	st := destStats(t, e, "/queue/q")
	if st.Pending != 3 || st.Enqueued != 3 || st.Dequeued != 0 || st.Consumers != 0 || st.OldestAgeMs == nil {
		t.Fatalf("after 3 sends: %+v", st)
	}

	c, out := open(t, e, "cid")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 2})
	d0, d1 := out.wait(t, 0), out.wait(t, 1)
	d0.Written()
	d1.Written()
	if st := destStats(t, e, "/queue/q"); st.Pending != 3 || st.InFlight != 2 || st.Consumers != 1 {
		t.Fatalf("two in flight: %+v", st)
	}
	do(t, func(done func(error)) error { return c.Ack(AckRef{ID: d0.AckID}, "", done) })
	// MaxDeliveries 1: a NACK dead-letters.
	do(t, func(done func(error)) error { return c.Nack(AckRef{ID: d1.AckID}, "", done) })
	st = destStats(t, e, "/queue/q")
	if st.Pending != 1 || st.Dequeued != 1 || st.DeadLettered != 1 || st.InFlight != 1 {
		t.Fatalf("after an ack and a dead letter: %+v", st)
	}
	if dlq := destStats(t, e, "/queue/DLQ.q"); dlq.Pending != 1 || dlq.Enqueued != 1 {
		t.Fatalf("DLQ: %+v", dlq)
	}

	subs := e.Subscriptions()
	if len(subs) != 1 || subs[0].ClientID != "cid" || subs[0].ID != "s" || subs[0].Ack != "client-individual" ||
		subs[0].Delivered != 3 || subs[0].InFlight != 1 || !subs[0].Active {
		t.Fatalf("subscriptions: %+v", subs)
	}
}

func TestTopicStats(t *testing.T) {
	e, _ := newEngine(t, Config{})
	sub, out := open(t, e, "cid")
	subscribe(t, sub, SubscribeSpec{ID: "a", Destination: "/topic/t", Ack: AckAuto})
	subscribe(t, sub, SubscribeSpec{ID: "d", Destination: "/topic/t", Ack: AckAuto, DurableName: "dur"})
	p, _ := open(t, e, "")
	send(t, p, "/topic/t", "x", 4)
	out.wait(t, 1).Written()
	out.wait(t, 0).Written()
	st := destStats(t, e, "/topic/t")
	if st.Type != "topic" || st.Consumers != 2 || st.Enqueued != 1 || st.Dequeued != 2 || st.DurableSubscriptions != 1 {
		t.Fatalf("topic: %+v", st)
	}
	sub.Close()
	subs := e.Subscriptions()
	if len(subs) != 1 || subs[0].Active || subs[0].DurableName != "dur" || subs[0].Type != "durable" {
		t.Fatalf("offline durable: %+v", subs)
	}
	send(t, p, "/topic/t", "y", 4)
	if subs := e.Subscriptions(); subs[0].Pending != 1 {
		t.Fatalf("offline durable backlog: %+v", subs)
	}
}

func TestAdminActions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, l := newEngine(t, Config{MaxDeliveries: 1})

	if created, err := e.CreateQueue(ctx, "/queue/new"); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if created, err := e.CreateQueue(ctx, "/queue/new"); err != nil || created {
		t.Fatalf("create again: %v %v", created, err)
	}
	for _, bad := range []string{"/topic/t", "new", "/queue/"} {
		if _, err := e.CreateQueue(ctx, bad); !errors.Is(err, ErrBadDestination) {
			t.Errorf("create %q: err = %v", bad, err)
		}
	}
	if _, err := e.Purge(ctx, "/queue/none"); !errors.Is(err, ErrNoSuchQueue) {
		t.Errorf("purge unknown: %v", err)
	}

	p, _ := open(t, e, "")
	for _, b := range []string{"1", "2", "3", "4", "5"} {
		send(t, p, "/queue/q", b, 4)
	}
	page, next, err := e.Browse("/queue/q", 0, 2)
	if err != nil || len(page) != 2 || string(page[0].Msg.Body) != "1" || next != page[1].Seq+1 {
		t.Fatalf("browse first page: %d %d %v", len(page), next, err)
	}
	page, next, err = e.Browse("/queue/q", next, 10)
	if err != nil || len(page) != 3 || next != 0 || string(page[2].Msg.Body) != "5" {
		t.Fatalf("browse last page: %d %d %v", len(page), next, err)
	}
	if st := destStats(t, e, "/queue/q"); st.Pending != 5 {
		t.Fatalf("browsing consumed: %+v", st)
	}

	// Dead-letter two, then retry them: back to /queue/q, one delivery
	// counted again.
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 2})
	for i := range 2 {
		d := out.wait(t, i)
		d.Written()
		do(t, func(done func(error)) error { return c.Nack(AckRef{ID: d.AckID}, "", done) })
	}
	c.Close()
	if st := destStats(t, e, "/queue/DLQ.q"); st.Pending != 2 {
		t.Fatalf("DLQ before retry: %+v", st)
	}
	res, err := e.Move(ctx, "/queue/DLQ.q", "", nil)
	if err != nil || res != (MoveResult{Moved: 2}) {
		t.Fatalf("retry: %+v %v", res, err)
	}
	if st := destStats(t, e, "/queue/DLQ.q"); st.Pending != 0 {
		t.Fatalf("DLQ after retry: %+v", st)
	}
	page, _, _ = e.Browse("/queue/q", 0, 10)
	if len(page) != 5 {
		t.Fatalf("queue after retry has %d messages, want 5", len(page))
	}
	for _, b := range page {
		for _, h := range b.Msg.Headers {
			if h.Key == fsm.HeaderDLQCause {
				t.Fatalf("retried message kept %s", h.Key)
			}
		}
	}

	// Move two chosen ones elsewhere; an unknown seq is skipped.
	res, err = e.Move(ctx, "/queue/q", "/queue/other", []uint64{page[0].Seq, page[1].Seq, 999})
	if err != nil || res != (MoveResult{Moved: 2, Skipped: 1}) {
		t.Fatalf("move: %+v %v", res, err)
	}
	if _, err := e.Move(ctx, "/queue/q", "/queue/q", nil); !errors.Is(err, ErrBadDestination) {
		t.Fatalf("move to itself: %v", err)
	}

	n, err := e.Purge(ctx, "/queue/q")
	if err != nil || n != 3 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if page, _, _ := e.Browse("/queue/q", 0, 10); len(page) != 0 {
		t.Fatalf("%d messages after purge", len(page))
	}
	if err := e.DeleteQueue(ctx, "/queue/other"); err != nil {
		t.Fatal(err)
	}
	for _, d := range e.Destinations(false) {
		if d.Name == "/queue/other" {
			t.Fatal("deleted queue still listed")
		}
	}
	if _, _, err := e.Browse("/queue/other", 0, 1); !errors.Is(err, ErrNoSuchQueue) {
		t.Fatalf("browse deleted: %v", err)
	}

	// The store agrees: a new engine over it sees the same queues.
	e.Close()
	e2, err := NewEngine(Config{}, l, l.f)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	l.f.Detach()
	if err := l.f.Attach(e2); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range e2.Destinations(false) {
		names = append(names, fmt.Sprintf("%s:%d", d.Name, d.Pending))
	}
	want := "/queue/DLQ.q:0 /queue/new:0 /queue/q:0"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("reloaded destinations %q, want %q", got, want)
	}
}

// TestPurgeInFlight: purged messages that a consumer holds no longer
// count, and its later acks change nothing.
func TestPurgeInFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	for _, b := range []string{"1", "2", "3"} {
		send(t, p, "/queue/q", b, 4)
	}
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q", Ack: AckClientIndividual, Prefetch: 2})
	d := out.wait(t, 0)
	d.Written()
	out.wait(t, 1).Written()
	if n, err := e.Purge(ctx, "/queue/q"); err != nil || n != 3 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if st := destStats(t, e, "/queue/q"); st.Pending != 0 || st.InFlight != 0 {
		t.Fatalf("after purging held messages: %+v", st)
	}
	do(t, func(done func(error)) error { return c.Ack(AckRef{ID: d.AckID}, "", done) })
	if st := destStats(t, e, "/queue/q"); st.Pending != 0 || st.InFlight != 0 || st.Dequeued != 0 {
		t.Fatalf("after acking a purged message: %+v", st)
	}
	send(t, p, "/queue/q", "4", 4)
	if got := out.wait(t, 2); string(got.Msg.Body) != "4" {
		t.Fatalf("after the purge the consumer got %q", got.Msg.Body)
	}
	if st := destStats(t, e, "/queue/q"); st.Pending != 1 || st.InFlight != 1 {
		t.Fatalf("one new message in flight: %+v", st)
	}
}
