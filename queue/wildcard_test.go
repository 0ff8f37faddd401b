package queue

import (
	"errors"
	"slices"
	"testing"
)

func TestWildcardTopicSubscription(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	one, oneOut := open(t, e, "")
	all, allOut := open(t, e, "")
	subscribe(t, one, SubscribeSpec{ID: "1", Destination: "/topic/prices.*", Ack: AckAuto})
	subscribe(t, all, SubscribeSpec{ID: "2", Destination: "/topic/prices.>", Ack: AckAuto, Selector: "cur <> 'XXX'"})
	// A durable subscription on one of the matching topics makes its
	// publishes go through raft: they reach the wildcards as they apply.
	d, _ := open(t, e, "app")
	subscribe(t, d, SubscribeSpec{ID: "d", Destination: "/topic/prices.eu", Ack: AckAuto, DurableName: "d"})
	sendH(t, p, "/topic/prices.eu", "eu", "cur", "EUR")
	sendH(t, p, "/topic/prices.eu.paid", "eu-paid", "cur", "EUR")
	sendH(t, p, "/topic/prices", "none")
	sendH(t, p, "/topic/prices.us", "us-xxx", "cur", "XXX")
	sendH(t, p, "/topic/other.eu", "other")
	oneOut.wait(t, 1)
	allOut.wait(t, 1)
	settle()
	if got := bodies(oneOut); !slices.Equal(got, []string{"eu", "us-xxx"}) {
		t.Errorf("prices.* got %q", got)
	}
	if got := bodies(allOut); !slices.Equal(got, []string{"eu", "eu-paid"}) {
		t.Errorf("prices.> with selector got %q", got)
	}
	if d := allOut.wait(t, 1); d.Destination != "/topic/prices.eu.paid" {
		t.Errorf("a wildcard delivery shows destination %q, want the topic it was published to", d.Destination)
	}
	// Wildcards are not demand other groups' bridges follow.
	for _, dm := range e.Demand() {
		if wildcard(dm.Destination) {
			t.Errorf("demand lists %s", dm.Destination)
		}
	}
	if err := p.Send(pmsg("/topic/prices.>", "x"), "", func(error) {}); !errors.Is(err, ErrWildcardSend) {
		t.Errorf("send to a wildcard: %v", err)
	}
	// The pattern goes with its last subscriber.
	one.Close()
	all.Close()
	e.mu.Lock()
	n := len(e.wild)
	e.mu.Unlock()
	if n != 0 {
		t.Errorf("%d wildcard patterns left", n)
	}
}

// TestWildcardDurable: a durable subscription to a wildcard topic keeps
// what is published to every matching topic while its client is away,
// persistent publishes to topics nobody else subscribes to included.
func TestWildcardDurable(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	d, dOut := open(t, e, "app")
	subscribe(t, d, SubscribeSpec{ID: "d", Destination: "/topic/prices.>", Ack: AckAuto, DurableName: "all", Selector: "cur = 'EUR'"})
	sendH(t, p, "/topic/prices.eu", "live", "cur", "EUR")
	if got := dOut.wait(t, 0); got.Destination != "/topic/prices.eu" {
		t.Errorf("delivery shows %q, want the topic published to", got.Destination)
	}
	written(dOut)
	d.Close()
	sendH(t, p, "/topic/prices.eu.paid", "away-eur", "cur", "EUR")
	sendH(t, p, "/topic/prices.us", "away-usd", "cur", "USD")
	sendH(t, p, "/topic/other", "elsewhere", "cur", "EUR")
	back, backOut := open(t, e, "app")
	subscribe(t, back, SubscribeSpec{ID: "d", Destination: "/topic/prices.>", Ack: AckAuto, DurableName: "all", Selector: "cur = 'EUR'"})
	backOut.wait(t, 0)
	settle()
	if got := bodies(backOut); !slices.Equal(got, []string{"away-eur"}) {
		t.Errorf("after coming back: %q", got)
	}
}
