package queue

import (
	"errors"
	"strings"

	"github.com/raftmq/raftmq/fsm"
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
// Not yet: wildcard subscriptions to queues (consuming from every
// matching queue) and wildcard durable subscriptions (the FSM would have
// to match patterns when it stores a publish). Both are refused.

var (
	// ErrWildcardSend: a SEND names a wildcard destination.
	ErrWildcardSend = errors.New("cannot send to a wildcard destination")
	// ErrWildcardUnsupported: a wildcard subscription raftmq does not do
	// yet.
	ErrWildcardUnsupported = errors.New("wildcard subscriptions are supported on non-durable topic subscriptions only")
)

// wildcard reports whether dest (a /queue/ or /topic/ destination) has a
// wildcard element.
func wildcard(dest string) bool {
	_, name, ok := SplitDestination(dest)
	if !ok {
		return false
	}
	for _, e := range strings.Split(name, ".") {
		if e == "*" || e == ">" {
			return true
		}
	}
	return false
}

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
