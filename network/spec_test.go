package network

import (
	"slices"
	"strings"
	"testing"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/failover"
	"github.com/raftmq/raftmq/transport/stomp"
)

func TestParseSpec(t *testing.T) {
	sp, err := ParseSpec("static:(tcp://b1:61613,tcp://b2:61613, tcp://b3:61613)?networkTTL=3&conduitSubscriptions=false" +
		"&excludedDestinations=/queue/local.>,topic://audit.*&dynamicallyIncludedDestinations=orders.>&prefetchSize=10&decreaseNetworkConsumerPriority=false")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Kind != Static || !slices.Equal(sp.URIs, []string{"tcp://b1:61613", "tcp://b2:61613", "tcp://b3:61613"}) {
		t.Errorf("kind %q uris %q", sp.Kind, sp.URIs)
	}
	o := sp.Options
	if o.NetworkTTL != 3 || o.ConduitSubscriptions || o.DecreaseNetworkConsumerPriority || o.PrefetchSize != 10 || o.DynamicOnly {
		t.Errorf("options %+v", o)
	}
	if len(o.ExcludedDestinations) != 2 || len(o.DynamicallyIncludedDestinations) != 1 {
		t.Fatalf("filters %v %v", o.ExcludedDestinations, o.DynamicallyIncludedDestinations)
	}
	for dest, want := range map[string]bool{
		"/queue/orders.eu":    true,
		"/topic/orders.eu.de": true,
		"/queue/orders":       false, // '>' needs one segment or more
		"/queue/local.orders": false, // excluded wins
		"/queue/other":        false, // not included
		"/topic/audit.x":      false,
	} {
		if got := o.Forwards(dest); got != want {
			t.Errorf("Forwards(%s) = %v, want %v", dest, got, want)
		}
	}

	sp, err = ParseSpec("gossip?excludedGroups=staging,dev&networkTTL=2")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Kind != Gossip || sp.Options.NetworkTTL != 2 || sp.LinksGroup("dev") || !sp.LinksGroup("west") {
		t.Errorf("gossip spec %+v", sp)
	}
	sp, _ = ParseSpec("gossip?includedGroups=west")
	if sp.LinksGroup("east") || !sp.LinksGroup("west") {
		t.Errorf("includedGroups: %+v", sp)
	}
	if d := DefaultOptions(); d.NetworkTTL != 1 || !d.ConduitSubscriptions || !d.DecreaseNetworkConsumerPriority || d.PrefetchSize != 1000 {
		t.Errorf("defaults %+v", d)
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, s := range []string{
		"",
		"multicast://default",
		"static:()",
		"static:(tcp://b1:61613",
		"static:(nio://b1:61613)",
		"static:(tcp://b1:61613)?networkTTL=0",
		"static:(tcp://b1:61613)?networkTtl=2",
		"static:(tcp://b1:61613)?dynamicOnly=maybe",
		"static:(tcp://b1:61613)?excludedGroups=x",
		"gossip?excludedDestinations=/queue/a.>.b",
		"gossip?excludedDestinations=/queue/a*",
		"gossip?excludedDestinations=/queue/a..b",
		"gossip?prefetchSize=-1",
	} {
		if _, err := ParseSpec(s); err == nil {
			t.Errorf("ParseSpec(%q): no error", s)
		}
	}
}

func TestFilterMatch(t *testing.T) {
	cases := []struct {
		pattern, dest string
		want          bool
	}{
		{"/queue/a.b", "/queue/a.b", true},
		{"/queue/a.b", "/topic/a.b", false},
		{"a.b", "/topic/a.b", true},
		{"/queue/a.*", "/queue/a.b", true},
		{"/queue/a.*", "/queue/a.b.c", false},
		{"/queue/a.*", "/queue/a", false},
		{"/queue/*.b", "/queue/x.b", true},
		{"/queue/a.>", "/queue/a.b.c", true},
		{"/queue/a.>", "/queue/a", false}, // '>' is one element or more, here as in the broker's other rules
		{"/queue/a.>", "/queue/ab", false},
		{"/queue/>", "/queue/anything", true},
		{"queue://a.b", "/queue/a.b", true},
		{"topic://a.>", "/queue/a.b", false},
		{"/queue/a", "/queue/ab", false},
	}
	for _, c := range cases {
		f, err := ParseFilter(c.pattern)
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", c.pattern, err)
		}
		if got := f.Match(c.dest); got != c.want {
			t.Errorf("%q matches %q = %v, want %v", c.pattern, c.dest, got, c.want)
		}
	}
}

func TestPumpsFor(t *testing.T) {
	o := DefaultOptions()
	cases := []struct {
		o    func(*Options)
		d    queue.Demand
		want int
	}{
		{nil, queue.Demand{Destination: "/queue/a", Consumers: 3}, 1},
		{func(o *Options) { o.ConduitSubscriptions = false }, queue.Demand{Destination: "/queue/a", Consumers: 3}, 3},
		{func(o *Options) { o.ConduitSubscriptions = false }, queue.Demand{Destination: "/topic/a", Consumers: 3}, 1},
		{nil, queue.Demand{Destination: "/queue/a"}, 0},
		{nil, queue.Demand{Destination: "/topic/a", Durables: 1}, 1},
		{func(o *Options) { o.DynamicOnly = true }, queue.Demand{Destination: "/topic/a", Durables: 1}, 0},
		{nil, queue.Demand{Destination: DemandTopic, Consumers: 1}, 0},
		{func(o *Options) { o.ExcludedDestinations, _ = ParseFilters("/queue/a") }, queue.Demand{Destination: "/queue/a", Consumers: 1}, 0},
	}
	for i, c := range cases {
		oo := o
		if c.o != nil {
			c.o(&oo)
		}
		if got := oo.pumpsFor(c.d); got != c.want {
			t.Errorf("case %d: pumpsFor(%+v) = %d, want %d", i, c.d, got, c.want)
		}
	}
}

func TestForwardHeaders(t *testing.T) {
	msg := &stomp.Frame{Command: stomp.MESSAGE, Headers: []stomp.Header{
		{Key: "destination", Value: "/queue/a"},
		{Key: "message-id", Value: "ID:A-n1-x-7"},
		{Key: "subscription", Value: "s1"},
		{Key: "ack", Value: "3"},
		{Key: "redelivered", Value: "true"},
		{Key: "timestamp", Value: "1"},
		{Key: "persistent", Value: "true"},
		{Key: "priority", Value: "7"},
		{Key: failover.DedupeHeader, Value: "client-1"},
		{Key: fsm.HeaderNetworkPath, Value: "C"},
		{Key: "order", Value: "42"},
	}}
	f := stomp.Frame{Headers: forwardHeaders(msg, "A")}
	if got := f.Get(fsm.HeaderNetworkPath); got != "C,A" {
		t.Errorf("path %q, want C,A", got)
	}
	if got := f.Get(failover.DedupeHeader); got != "net:ID:A-n1-x-7" {
		t.Errorf("dedupe-id %q", got)
	}
	for _, k := range []string{"destination", "message-id", "subscription", "ack", "redelivered", "timestamp"} {
		if _, ok := f.Lookup(k); ok {
			t.Errorf("forwarded header %s", k)
		}
	}
	for k, v := range map[string]string{"persistent": "true", "priority": "7", "order": "42"} {
		if f.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, f.Get(k), v)
		}
	}
	if n := strings.Count(stompHeaders(f.Headers), failover.DedupeHeader+"="); n != 1 {
		t.Errorf("%d dedupe-id headers", n)
	}
	first := stomp.Frame{Headers: forwardHeaders(&stomp.Frame{Headers: []stomp.Header{{Key: "message-id", Value: "m"}}}, "B")}
	if got := first.Get(fsm.HeaderNetworkPath); got != "B" {
		t.Errorf("path of a message that never crossed a bridge: %q", got)
	}
}

func stompHeaders(hs []stomp.Header) string {
	var b strings.Builder
	for _, h := range hs {
		b.WriteString(h.Key + "=" + h.Value + "\n")
	}
	return b.String()
}
