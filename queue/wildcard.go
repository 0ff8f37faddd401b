package queue

import (
	"errors"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue/dest"
)

// Wildcard subscriptions, ActiveMQ's syntax: a topic subscription whose
// name has a "*" element (any one element) or ends in ">" (one or more)
// gets what is published to every topic the pattern matches, as it is
// published. The engine keeps such a subscription on a topic named by
// the pattern, and fanout looks at the patterns beside the topic itself.
//
// Deliveries show the topic a message was published to. Wildcard topics
// are local: they are not part of the demand other groups' bridges
// follow, so a wildcard subscriber gets what is published in its own
// group only.
//
// Durable subscriptions may name a wildcard topic too: the FSM stores a
// publish in every durable subscription whose pattern matches its topic,
// so a persistent publish goes through raft when any does (wildDurable).
//
// Wildcard subscriptions to queues are in wildqueue.go.

var (
	// ErrWildcardSend: a SEND names a wildcard destination.
	ErrWildcardSend = errors.New("cannot send to a wildcard destination")
	// ErrWildcardBrowse: browser:true on a wildcard queue.
	ErrWildcardBrowse = errors.New("cannot browse a wildcard destination: browse one queue at a time")
	// ErrWildcardNetwork: a network subscription to a wildcard queue.
	ErrWildcardNetwork = errors.New("network subscriptions name one queue, not a wildcard")
)

// wildcard reports whether dest has a wildcard element.
func wildcard(d string) bool { return dest.HasWildcard(d) }

// addWildcard records the pattern of a wildcard topic subscription's
// topic. Called with e.mu held.
func (e *Engine) addWildcard(dest string) error {
	if _, ok := e.wild[dest]; ok {
		return nil
	}
	_, name, _ := SplitDestination(dest)
	p, err := CompilePattern(name)
	if err != nil {
		return errors.Join(ErrBadDestination, err)
	}
	e.wild[dest] = p
	return nil
}

// fanoutWildcard gives m, published to its topic, to the subscribers of
// every wildcard topic whose pattern matches it.
func (e *Engine) fanoutWildcard(m *fsm.Message, touched map[*destQueue]struct{}) {
	if len(e.wild) == 0 {
		return
	}
	// The broker's own topics reach only those who name them.
	_, name, ok := SplitDestination(m.Destination)
	if !ok || reserved(m.Destination) {
		return
	}
	for dest, p := range e.wild {
		if t := e.topics[dest]; t != nil && p.Match(name) {
			e.fanoutTo(t, m, touched)
		}
	}
}

// wildDurable is a wildcard topic with durable subscriptions.
type wildDurable struct {
	pat Pattern
	n   int // its durable subscriptions
}

// addWildDurable counts a durable subscription to topic if it is a
// wildcard. Called with e.mu held.
func (e *Engine) addWildDurable(topic string) {
	if !wildcard(topic) {
		return
	}
	w, ok := e.wildDurs[topic]
	if !ok {
		_, name, _ := SplitDestination(topic)
		p, err := CompilePattern(name)
		if err != nil {
			return // the FSM refuses such a subscription
		}
		w.pat = p
	}
	w.n++
	e.wildDurs[topic] = w
}

// removeWildDurable undoes addWildDurable.
func (e *Engine) removeWildDurable(topic string) {
	w, ok := e.wildDurs[topic]
	if !ok {
		return
	}
	if w.n--; w.n <= 0 {
		delete(e.wildDurs, topic)
		return
	}
	e.wildDurs[topic] = w
}

// wildDurable reports whether a durable subscription to a wildcard topic
// takes what is published to topic. Called with e.mu held.
func (e *Engine) wildDurable(topic string) bool {
	if len(e.wildDurs) == 0 {
		return false
	}
	_, name, ok := SplitDestination(topic)
	if !ok {
		return false
	}
	for _, w := range e.wildDurs {
		if w.pat.Match(name) {
			return true
		}
	}
	return false
}
