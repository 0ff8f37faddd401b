package network

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/failover"
)

// Kinds of link.
const (
	Static = "static" // static:(tcp://b1:61613,tcp://b2:61613)
	Gossip = "gossip" // every group found in the gossip pool
)

// Spec is one --network value: where the other groups are, and how to
// bridge to them.
type Spec struct {
	Kind string
	// URIs are a static link's member addresses (tcp://host:port, or
	// ssl://host:port for groups whose listeners speak TLS).
	URIs []string
	// IncludedGroups and ExcludedGroups narrow a gossip link: when
	// IncludedGroups is set only those groups are linked; ExcludedGroups
	// are never linked.
	IncludedGroups []string
	ExcludedGroups []string
	Options        Options
}

// Options are a bridge's settings, named as ActiveMQ's network connector
// attributes where one exists.
type Options struct {
	// NetworkTTL is how many groups a message may be stored in before it
	// stops being forwarded (1: it crosses one bridge).
	NetworkTTL int
	// DynamicOnly forwards topic messages only to groups with active
	// subscribers; by default a group's durable subscriptions count as
	// demand while their subscribers are offline, so their messages wait
	// in that group.
	DynamicOnly bool
	// ConduitSubscriptions forwards one destination through one network
	// subscription whatever the number of remote consumers (true). False
	// opens one per remote consumer, so a group with more consumers gets a
	// larger share of a queue.
	ConduitSubscriptions bool
	// DecreaseNetworkConsumerPriority gives local consumers precedence:
	// a queue's messages leave the group only when no local consumer can
	// take them (true). ActiveMQ defaults to false, which spreads messages
	// over local and remote consumers alike and strands fewer of them
	// only by luck; raftmq forwards by demand.
	DecreaseNetworkConsumerPriority bool
	// ExcludedDestinations are never forwarded; they take precedence
	// over DynamicallyIncludedDestinations, which, when set, are the only
	// destinations forwarded.
	ExcludedDestinations            []Filter
	DynamicallyIncludedDestinations []Filter
	// PrefetchSize is how many messages a network subscription may hold
	// unacknowledged: the forwarding window of one destination (1000).
	PrefetchSize int
}

// DefaultOptions are the options of a link that names none.
func DefaultOptions() Options {
	return Options{
		NetworkTTL:                      1,
		ConduitSubscriptions:            true,
		DecreaseNetworkConsumerPriority: true,
		PrefetchSize:                    1000,
	}
}

// Forwards reports whether dest may cross the bridge at all.
func (o Options) Forwards(dest string) bool {
	for _, f := range o.ExcludedDestinations {
		if f.Match(dest) {
			return false
		}
	}
	if len(o.DynamicallyIncludedDestinations) == 0 {
		return true
	}
	for _, f := range o.DynamicallyIncludedDestinations {
		if f.Match(dest) {
			return true
		}
	}
	return false
}

// ParseSpec parses a --network value:
//
//	static:(tcp://b1:61613,tcp://b2:61613,tcp://b3:61613)?networkTTL=2
//	gossip?excludedGroups=staging&excludedDestinations=/queue/local.>
//
// Unknown options are errors, so a misspelt one never goes unnoticed.
func ParseSpec(s string) (Spec, error) {
	sp := Spec{Options: DefaultOptions()}
	body, query, _ := strings.Cut(strings.TrimSpace(s), "?")
	switch {
	case body == Gossip:
		sp.Kind = Gossip
	case strings.HasPrefix(body, Static+":"):
		sp.Kind = Static
		list := strings.TrimPrefix(body, Static+":")
		if strings.HasPrefix(list, "(") {
			if !strings.HasSuffix(list, ")") {
				return Spec{}, fmt.Errorf("network %q: missing ')' after the address list", s)
			}
			list = list[1 : len(list)-1]
		}
		for _, u := range strings.Split(list, ",") {
			if u = strings.TrimSpace(u); u != "" {
				sp.URIs = append(sp.URIs, u)
			}
		}
		if len(sp.URIs) == 0 {
			return Spec{}, fmt.Errorf("network %q: static link without addresses", s)
		}
		if _, err := failover.ParseURL(sp.failoverURL()); err != nil {
			return Spec{}, fmt.Errorf("network %q: %w", s, err)
		}
	default:
		return Spec{}, fmt.Errorf("network %q: want static:(tcp://host:port,...) or gossip", s)
	}
	if query == "" {
		return sp, nil
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return Spec{}, fmt.Errorf("network %q: options: %w", s, err)
	}
	for _, key := range slices.Sorted(maps.Keys(values)) {
		v := values[key][len(values[key])-1]
		if err := sp.set(key, v); err != nil {
			return Spec{}, fmt.Errorf("network %q: option %s=%q: %w", s, key, v, err)
		}
	}
	return sp, nil
}

func (sp *Spec) set(key, v string) error {
	o := &sp.Options
	var err error
	switch key {
	case "networkTTL":
		o.NetworkTTL, err = positive(v)
	case "prefetchSize":
		o.PrefetchSize, err = positive(v)
	case "dynamicOnly":
		o.DynamicOnly, err = strconv.ParseBool(v)
	case "conduitSubscriptions":
		o.ConduitSubscriptions, err = strconv.ParseBool(v)
	case "decreaseNetworkConsumerPriority":
		o.DecreaseNetworkConsumerPriority, err = strconv.ParseBool(v)
	case "excludedDestinations":
		o.ExcludedDestinations, err = ParseFilters(v)
	case "dynamicallyIncludedDestinations":
		o.DynamicallyIncludedDestinations, err = ParseFilters(v)
	case "includedGroups", "excludedGroups":
		if sp.Kind != Gossip {
			return fmt.Errorf("only gossip links choose groups (a static link reaches the group its addresses name)")
		}
		groups := splitList(v)
		if key == "includedGroups" {
			sp.IncludedGroups = groups
		} else {
			sp.ExcludedGroups = groups
		}
	default:
		return fmt.Errorf("unknown option (known: networkTTL, dynamicOnly, conduitSubscriptions, " +
			"decreaseNetworkConsumerPriority, excludedDestinations, dynamicallyIncludedDestinations, " +
			"prefetchSize, includedGroups, excludedGroups)")
	}
	return err
}

func positive(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("want a whole number of at least 1")
	}
	return n, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// failoverURL is the client URL of a static link's group: its members in
// the order given (the first is tried first), reconnecting quickly and
// for ever, learning the group's other members from CONNECTED.
func (sp Spec) failoverURL() string {
	return failoverURL(sp.URIs)
}

// failoverURL builds a bridge's client URL for uris. Once connected it
// reconnects for ever; a first connection gives up after a few passes,
// so the bridge reports why (status last_error) and starts over.
func failoverURL(uris []string) string {
	return "failover:(" + strings.Join(uris, ",") + ")?randomize=false&initialReconnectDelay=50&maxReconnectDelay=1000&startupMaxReconnectAttempts=5"
}

// LinksGroup reports whether a gossip link connects to group.
func (sp Spec) LinksGroup(group string) bool {
	if slices.Contains(sp.ExcludedGroups, group) {
		return false
	}
	return len(sp.IncludedGroups) == 0 || slices.Contains(sp.IncludedGroups, group)
}

// String renders the spec as given, for status and logs.
func (sp Spec) String() string {
	if sp.Kind == Static {
		return Static + ":(" + strings.Join(sp.URIs, ",") + ")"
	}
	return sp.Kind
}

// Filter matches destinations with ActiveMQ's wildcards (queue.Pattern:
// '.'-separated elements, '*' one element, '>' last for one or more of
// them, as the broker's authorization and limit rules read them). A pattern written /queue/... or queue://... matches queues only,
// /topic/... or topic://... topics only, and a bare name both.
type Filter struct {
	kind    string // "/queue/", "/topic/" or "" for both
	pattern queue.Pattern
}

// ParseFilters parses a comma-separated list of patterns.
func ParseFilters(v string) ([]Filter, error) {
	var fs []Filter
	for _, p := range splitList(v) {
		f, err := ParseFilter(p)
		if err != nil {
			return nil, err
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// ParseFilter parses one destination pattern.
func ParseFilter(p string) (Filter, error) {
	var f Filter
	name := p
	for prefix, kind := range map[string]string{"/queue/": "/queue/", "queue://": "/queue/", "/topic/": "/topic/", "topic://": "/topic/"} {
		if strings.HasPrefix(p, prefix) {
			f.kind, name = kind, strings.TrimPrefix(p, prefix)
			break
		}
	}
	if name == "" {
		return Filter{}, fmt.Errorf("destination pattern %q names nothing", p)
	}
	pat, err := queue.CompilePattern(name)
	if err != nil {
		return Filter{}, fmt.Errorf("destination pattern %q: %w", p, err)
	}
	f.pattern = pat
	return f, nil
}

// Match reports whether dest (/queue/NAME or /topic/NAME) matches.
func (f Filter) Match(dest string) bool {
	kind, name, ok := queue.SplitDestination(dest)
	if !ok || f.kind != "" && f.kind != "/"+kind+"/" {
		return false
	}
	return f.pattern.Match(name)
}

// String renders the pattern.
func (f Filter) String() string {
	return f.kind + f.pattern.String()
}
