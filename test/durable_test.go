package test

import (
	"strconv"
	"testing"

	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// TestDurableSubscription: a durable topic subscription (client-id on
// CONNECT plus activemq.subscriptionName) keeps what is published while its
// subscriber is away, across a disconnect and across a broker restart; a
// second subscriber to an active durable gets an ERROR; UNSUBSCRIBE with
// activemq.subscriptionName removes it, so later publishes are not kept.
func TestDurableSubscription(t *testing.T) {
	t.Parallel()
	b := startBroker(t, nil)
	const topic, name, clientID = "/topic/events", "audit", "dur-client"
	durable := func() (*client.Conn, *client.Subscription) {
		c := b.dial(client.Options{ClientID: clientID})
		return c, subscribe(t, c, topic, "client-individual", "id", "d1", "activemq.subscriptionName", name)
	}
	ackAll := func(c *client.Conn, s *client.Subscription, want ...string) {
		t.Helper()
		for _, body := range want {
			m := recv(t, s)
			if string(m.Body) != body {
				t.Fatalf("durable got %q, want %q", m.Body, body)
			}
			if m.Get("destination") != topic || m.Get("subscription") != "d1" {
				t.Errorf("durable MESSAGE destination=%q subscription=%q", m.Get("destination"), m.Get("subscription"))
			}
			if err := c.AckReceipt(ctxT(t), m, ""); err != nil {
				t.Fatal(err)
			}
		}
		noMessage(t, s)
	}

	p := b.dial(client.Options{})
	c, s := durable()
	sendR(t, p, topic, "e1")
	ackAll(c, s, "e1")

	// A second subscriber to the same durable, while it is active.
	c2, _ := rawConnect(t, b.addr, "1.2", "client-id", clientID)
	c2.write(frame(stomp.SUBSCRIBE, "", "id", "dup", "destination", topic, "activemq.subscriptionName", name, "receipt", "r-dup"))
	c2.expectError("durable subscription is already active", "r-dup")
	// And a durable subscription without client-id.
	c3, _ := rawConnect(t, b.addr, "1.2")
	c3.write(frame(stomp.SUBSCRIBE, "", "id", "x", "destination", topic, "activemq.subscriptionName", "other", "receipt", "r-noid"))
	c3.expectError("durable subscription requires client-id", "r-noid")

	// Away (disconnected): publishes are kept.
	if err := c.Disconnect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// A non-durable subscriber meanwhile sees only what follows it.
	nd := subscribe(t, b.dial(client.Options{}), topic, "auto")
	sendR(t, p, topic, "e2")
	sendR(t, p, topic, "e3", "x-kind", "away")
	c, s = durable()
	ackAll(c, s, "e2", "e3")
	if got := join(recvBodies(t, nd, 2)); got != "e2,e3" {
		t.Errorf("non-durable subscriber got %s, want e2,e3", got)
	}

	// Away across a broker restart: kept too, and still durable after it.
	c.Close()
	sendR(t, p, topic, "e4")
	sendR(t, p, topic, "e5", "priority", "7")
	b.restart()
	p = b.dial(client.Options{})
	sendR(t, p, topic, "e6") // published after the restart, subscriber still away
	c, s = durable()
	// e5 has priority 7: it waited with e4 and e6 and comes out first.
	got := []*stomp.Frame{recv(t, s), recv(t, s), recv(t, s)}
	var bodies []string
	for _, m := range got {
		bodies = append(bodies, string(m.Body))
		if err := c.AckReceipt(ctxT(t), m, ""); err != nil {
			t.Fatal(err)
		}
	}
	if join(bodies) != "e5,e4,e6" {
		t.Errorf("after restart durable got %s, want e5,e4,e6", join(bodies))
	}
	noMessage(t, s)

	// UNSUBSCRIBE with the subscription name removes it.
	if err := s.Unsubscribe(ctxT(t), stomp.Header{Key: "activemq.subscriptionName", Value: name}); err != nil {
		t.Fatal(err)
	}
	if err := c.Disconnect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	sendR(t, p, topic, "e7-not-kept")
	c, s = durable()
	noMessage(t, s)
	sendR(t, p, topic, "e8")
	ackAll(c, s, "e8")

	// The removal survives a restart too: gone for good once removed
	// while the subscriber is away.
	if err := s.Unsubscribe(ctxT(t), stomp.Header{Key: "activemq.subscriptionName", Value: name}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	b.restart()
	p = b.dial(client.Options{})
	for i := range 3 {
		sendR(t, p, topic, "gone-"+strconv.Itoa(i))
	}
	_, s = durable()
	noMessage(t, s)
}
