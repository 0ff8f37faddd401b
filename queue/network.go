package queue

import (
	"slices"
	"strings"

	"github.com/raftmq/raftmq/fsm"
)

// Networks of groups. A bridge from this group to group G forwards
// messages by demand: it opens network subscriptions (SubscribeSpec.Network)
// where G has consumers, sends what they receive to G with the message's
// path (fsm.HeaderNetworkPath) extended by this group, and acks it here
// once G has stored it. The engine's part:
//
//   - Loop prevention. A network subscription for G gets a message only if
//     G is not in the message's path and the path names fewer than TTL
//     groups (eligible).
//   - Replay. A queue with no local consumer at all gives its messages to
//     network subscriptions whatever their path: the consumers moved to
//     another group, and the messages must follow them rather than be
//     stranded here. Local consumers take anything.
//   - Priority. A LowPriority network subscription gets a queue's messages
//     only when no other consumer that may have them can take one now, so
//     local consumers are served first (dispatchNetwork).
//   - No blocking. A queue message that the consumers able to take one now
//     may not have does not hold up the ones behind it. If no network
//     consumer of the queue may have it, it is parked for the local
//     consumers and not looked at again until the network consumers
//     change; otherwise it is stepped over, at most maxSetAside per
//     dispatch.
//   - Topics have no replay: a topic message is a copy for each subscriber,
//     and one that may not be forwarded is not queued for the bridge at all
//     (fanout). Durable subscriptions are always local.
//   - Demand tells bridges which destinations have local consumers, and
//     DemandChanged when that may have changed.
//   - Topics under SystemTopicPrefix carry the broker's own messages (the
//     bridges' demand): clients may subscribe to them but not send to them,
//     and the broker publishes with PublishSystem.

// SystemTopicPrefix starts the topics reserved for the broker.
const SystemTopicPrefix = "/topic/raftmq."

// reserved reports whether dest is reserved for the broker.
func reserved(dest string) bool { return strings.HasPrefix(dest, SystemTopicPrefix) }

// checkNetwork validates a network subscription, and returns it with its
// defaults filled in (nil for a local subscription). The group must be
// one element of a path: no commas, no surrounding spaces.
func checkNetwork(spec SubscribeSpec) (*NetworkSpec, error) {
	if spec.Network == nil {
		return nil, nil
	}
	if spec.DurableName != "" {
		return nil, ErrNetworkDurable
	}
	n := *spec.Network
	if n.Group == "" || strings.ContainsRune(n.Group, ',') || strings.TrimSpace(n.Group) != n.Group {
		return nil, ErrBadNetworkGroup
	}
	if n.TTL <= 0 {
		n.TTL = 1
	}
	return &n, nil
}

// eligible reports whether a message with the network path may be
// forwarded to n.Group: the group must not have stored it before, and it
// must have been stored in fewer than TTL groups before this one. Empty
// elements are ignored and elements are trimmed, so that a sloppy path
// neither hides a group nor counts a hop twice. It does not allocate.
func (n *NetworkSpec) eligible(path string) bool {
	hops := 0
	for rest := path; rest != ""; {
		var g string
		g, rest, _ = strings.Cut(rest, ",")
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		if g == n.Group {
			return false
		}
		hops++
	}
	return hops < n.TTL
}

// Demand is one destination with local consumers.
type Demand struct {
	Destination string // /queue/NAME or /topic/NAME
	Consumers   int    // active local subscriptions (network subscriptions excluded)
	Durables    int    // topics: durable subscriptions, active or not
}

// Demand lists the destinations with local consumers, sorted by
// destination: queues with local consumers, topics with local
// subscriptions or durable subscriptions (active or not: a durable
// subscription keeps its topic's messages while its client is away).
// Reserved destinations are left out, and so is everything once the
// engine is closed.
func (e *Engine) Demand() []Demand {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	var out []Demand
	for name, q := range e.queues {
		// Durable subscriptions' store queues are counted with their topics.
		if q.local > 0 && strings.HasPrefix(name, "/queue/") {
			out = append(out, Demand{Destination: name, Consumers: q.local})
		}
	}
	active := make(map[string]int)
	for _, ds := range e.durables {
		if ds.active != nil {
			active[ds.d.Topic]++
		}
	}
	for name, t := range e.topics {
		// Wildcard topics are not asked of other groups: a bridge
		// forwards to the destination it subscribed to, and a
		// wildcard is no destination to send to (wildcard.go).
		if _, _, temp := tempDest(name); reserved(name) || temp || wildcard(name) {
			continue
		}
		n := active[name]
		for s := range t.subs {
			if s.net == nil {
				n++
			}
		}
		if n > 0 || t.durables > 0 {
			out = append(out, Demand{Destination: name, Consumers: n, Durables: t.durables})
		}
	}
	slices.SortFunc(out, func(a, b Demand) int { return strings.Compare(a.Destination, b.Destination) })
	return out
}

// DemandChanged is signalled whenever the result of Demand may have
// changed: a local subscription came or went, a durable subscription was
// created or removed, the engine loaded its state or closed. It holds one
// signal at most, so a bridge that reads Demand after each signal misses
// no change.
func (e *Engine) DemandChanged() <-chan struct{} { return e.demand }

// demandChanged signals DemandChanged without blocking.
func (e *Engine) demandChanged() {
	select {
	case e.demand <- struct{}{}:
	default:
	}
}

// demandOf reports whether sub counts in Demand, so that its coming and
// going must be signalled.
func demandOf(sub *subscription) bool {
	_, _, temp := tempDest(sub.dest)
	return sub.net == nil && !reserved(sub.dest) && !temp // temp.go: never forwarded
}

// PublishSystem publishes a non-persistent message to a reserved topic's
// current subscribers, as the broker (nothing goes through raft). The
// message keeps headers and body: the caller must not change them
// afterwards.
func (e *Engine) PublishSystem(dest string, headers []fsm.Header, body []byte) error {
	if !reserved(dest) {
		return ErrBadDestination
	}
	if _, err := parseDest(dest); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	m := &fsm.Message{
		ID:          e.nextMessageID(),
		Destination: dest,
		Headers:     headers,
		Body:        body,
		Priority:    4,
		Timestamp:   e.nowMs(),
	}
	e.fanout(e.topics[dest], m, nil)
	return nil
}
