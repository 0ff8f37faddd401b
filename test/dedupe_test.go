package test

import (
	"strings"
	"testing"

	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// Idempotent sends over the wire: a persistent SEND with a dedupe-id is
// stored once however often it is sent (within the dedupe window), and
// every copy is receipted, which is what a failover client's resends rely
// on.

// TestDedupeResendStoredOnce: the same dedupe-id twice, both receipted,
// one message delivered; another id is a message of its own.
func TestDedupeResendStoredOnce(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const q = "/queue/dedupe"
	p := b.dial(client.Options{})
	sendR(t, p, q, "first", "dedupe-id", "order-1")
	sendR(t, p, q, "resent", "dedupe-id", "order-1")
	sendR(t, p, q, "other", "dedupe-id", "order-2")

	s := subscribe(t, b.dial(client.Options{}), q, "auto")
	m := recv(t, s)
	if string(m.Body) != "first" || m.Get("dedupe-id") != "order-1" {
		t.Fatalf("first delivery: %q with dedupe-id %q, want \"first\" with order-1", m.Body, m.Get("dedupe-id"))
	}
	if m = recv(t, s); string(m.Body) != "other" {
		t.Fatalf("second delivery: %q, want \"other\"", m.Body)
	}
	noMessage(t, s)
}

// TestDedupeSurvivesRestart: the window is stored state, so a resend after
// the broker restarted (as after a failover) is still a duplicate.
func TestDedupeSurvivesRestart(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const q = "/queue/dedupe-restart"
	sendR(t, b.dial(client.Options{}), q, "before", "dedupe-id", "r-1")
	b.restart()
	p := b.dial(client.Options{})
	sendR(t, p, q, "after", "dedupe-id", "r-1")
	sendR(t, p, q, "new", "dedupe-id", "r-2")
	s := subscribe(t, b.dial(client.Options{}), q, "auto")
	if got := join(recvBodies(t, s, 2)); got != "before,new" {
		t.Fatalf("delivered %s, want before,new", got)
	}
	noMessage(t, s)
}

// TestDedupeInTransaction: each send of a transaction carries its own id;
// at COMMIT a duplicate of a stored message, or of an earlier send of the
// same transaction, is skipped and the rest is stored.
func TestDedupeInTransaction(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const q = "/queue/dedupe-tx"
	p := b.dial(client.Options{})
	sendR(t, p, q, "a", "dedupe-id", "a")
	if err := p.Begin(ctxT(t), "tx1"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ body, id string }{
		{"a again", "a"}, {"b", "b"}, {"b again", "b"}, {"c", "c"},
	} {
		sendR(t, p, q, s.body, "transaction", "tx1", "dedupe-id", s.id)
	}
	if err := p.Commit(ctxT(t), "tx1"); err != nil {
		t.Fatalf("COMMIT with duplicates: %v", err)
	}
	s := subscribe(t, b.dial(client.Options{}), q, "auto")
	if got := join(recvBodies(t, s, 3)); got != "a,b,c" {
		t.Fatalf("delivered %s, want a,b,c", got)
	}
	noMessage(t, s)
}

// TestDedupeIDTooLong: a dedupe-id over 1024 bytes is refused with an
// ERROR naming the limit; one of 1024 bytes is accepted.
func TestDedupeIDTooLong(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const q = "/queue/dedupe-long"
	id := strings.Repeat("k", 1024)
	c, _ := rawConnect(t, b.addr, "1.2")
	c.write(frame(stomp.SEND, "max", "destination", q, "dedupe-id", id, "receipt", "ok"))
	c.expectReceipt("ok")
	c.write(frame(stomp.SEND, "over", "destination", q, "dedupe-id", id+"k", "receipt", "r1"))
	c.expectError("dedupe-id longer than 1024 bytes", "r1")

	s := subscribe(t, b.dial(client.Options{}), q, "auto")
	if m := recv(t, s); string(m.Body) != "max" {
		t.Fatalf("delivered %q, want \"max\"", m.Body)
	}
	noMessage(t, s)
}
