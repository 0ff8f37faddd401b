package queue

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/raftmq/raftmq/fsm"
)

func TestTemporaryQueue(t *testing.T) {
	e, l := newEngine(t, Config{})
	owner, ownerOut := open(t, e, "")
	other, _ := open(t, e, "")
	const own, remote = "/temp-queue/c1.replies", "/remote-temp-queue/c1.replies"

	// Nobody may send to it before its owner made it.
	if err := other.Send(&fsm.Message{Destination: remote, Body: []byte("x")}, "", func(error) {}); !errors.Is(err, ErrTempDeleted) {
		t.Fatalf("send before the owner made it: %v", err)
	}
	subscribe(t, owner, SubscribeSpec{ID: "r", Destination: own, Ack: AckAuto})
	// Persistent or not, it stays in leader memory: nothing is proposed.
	proposals := func() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.props) }
	before := proposals()
	sendH(t, other, remote, "reply")
	if got := ownerOut.wait(t, 0); string(got.Msg.Body) != "reply" || got.Msg.Persistent || got.Destination != own {
		t.Fatalf("owner got %+v", got)
	}
	if proposals() != before {
		t.Error("a message to a temporary queue went through raft")
	}
	// Only the owner subscribes.
	err := other.Subscribe(SubscribeSpec{ID: "x", Destination: remote}, func(error) {})
	if !errors.Is(err, ErrTempNotOwner) {
		t.Errorf("another session subscribing: %v", err)
	}
	if err := owner.Subscribe(SubscribeSpec{ID: "d", Destination: own, DurableName: "d"}, func(error) {}); !errors.Is(err, ErrTempDurable) {
		t.Errorf("durable on a temporary destination: %v", err)
	}
	// Messages sent in a transaction that commits after the owner left
	// are refused, and the queue does not come back.
	if err := other.Begin("t"); err != nil {
		t.Fatal(err)
	}
	do(t, func(done func(error)) error {
		return other.Send(&fsm.Message{Destination: remote, Body: []byte("late")}, "t", done)
	})
	owner.Close()
	ch := make(chan error, 1)
	if err := other.Commit("t", func(err error) { ch <- err }); err != nil {
		ch <- err
	}
	if err := <-ch; !errors.Is(err, ErrTempDeleted) {
		t.Errorf("commit to a deleted temporary queue: %v", err)
	}
	if err := other.Send(&fsm.Message{Destination: remote, Body: []byte("x")}, "", func(error) {}); !errors.Is(err, ErrTempDeleted) {
		t.Errorf("send after the owner left: %v", err)
	}
	e.mu.Lock()
	_, q := e.queues[own]
	n := len(e.temps)
	e.mu.Unlock()
	if q || n != 0 {
		t.Errorf("after the owner left: queue kept %v, %d temporary destinations", q, n)
	}
	if got := bodies(ownerOut); !slices.Equal(got, []string{"reply"}) {
		t.Errorf("owner got %q", got)
	}
}

func TestAutoCreateForbiddenInEngine(t *testing.T) {
	e, _ := newEngine(t, Config{ForbidAutoCreate: true})
	s, out := open(t, e, "")
	if err := s.Send(pmsg("/queue/none", "x"), "", func(error) {}); !errors.Is(err, ErrNoSuchQueue) {
		t.Fatalf("send to a queue not made: %v", err)
	}
	if err := s.Subscribe(SubscribeSpec{ID: "a", Destination: "/queue/none"}, func(error) {}); !errors.Is(err, ErrNoSuchQueue) {
		t.Fatalf("subscribe to a queue not made: %v", err)
	}
	if _, err := e.CreateQueue(context.Background(), "/queue/made"); err != nil {
		t.Fatal(err)
	}
	subscribe(t, s, SubscribeSpec{ID: "b", Destination: "/queue/made", Ack: AckAuto})
	send(t, s, "/queue/made", "ok", 4)
	out.wait(t, 0)
	subscribe(t, s, SubscribeSpec{ID: "c", Destination: "/topic/free", Ack: AckAuto})
}

func TestTemporaryDestinationsBounded(t *testing.T) {
	e, _ := newEngine(t, Config{MaxSubscriptions: 2})
	s, _ := open(t, e, "")
	for _, name := range []string{"/temp-queue/c.a", "/temp-topic/c.b"} {
		if err := s.Send(&fsm.Message{Destination: name, Body: []byte("x")}, "", func(error) {}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if err := s.Send(&fsm.Message{Destination: "/temp-queue/c.c", Body: []byte("x")}, "", func(error) {}); !errors.Is(err, ErrTooManyTemps) {
		t.Fatalf("third temporary destination: %v", err)
	}
	// Using one it has already is fine.
	if err := s.Send(&fsm.Message{Destination: "/temp-queue/c.a", Body: []byte("y")}, "", func(error) {}); err != nil {
		t.Fatal(err)
	}
}
