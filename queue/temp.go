package queue

import (
	"errors"
	"strings"
)

// Temporary destinations, as ActiveMQ has them for request/reply: a
// /temp-queue/NAME or /temp-topic/NAME belongs to the session that first
// used it and is deleted with it. The transport gives each connection its
// own names (it prefixes the connection's id) and writes them into a
// SEND's reply-to header in the remote form, /remote-temp-queue/NAME,
// which any connection may send to. The engine therefore sees the owner's
// names in the /temp- form, which creates the destination for the
// session, and everyone else's in the /remote-temp- form, which only
// reaches one that exists.
//
// Their messages live in leader memory only (they are non-persistent
// whatever the SEND says): a temporary destination lives no longer than
// its connection, and connections end with the leader's term, so storing
// them through raft would keep nothing a client could still read. They
// are bounded by Config.NonPersistentBytes like other non-persistent
// messages, and are never scheduled, forwarded to other groups or kept
// by durable subscriptions.

// Prefixes of temporary destinations: the owner's form and the form a
// reply-to gives everyone else.
const (
	TempQueuePrefix       = "/temp-queue/"
	TempTopicPrefix       = "/temp-topic/"
	RemoteTempQueuePrefix = "/remote-temp-queue/"
	RemoteTempTopicPrefix = "/remote-temp-topic/"
)

var (
	// ErrTempDeleted: a SEND or SUBSCRIBE names a temporary destination
	// whose connection is gone (or never used it).
	ErrTempDeleted = errors.New("temporary destination does not exist: its connection has closed")
	// ErrTempNotOwner: only the connection that created a temporary
	// destination may subscribe to it.
	ErrTempNotOwner = errors.New("only the connection that created a temporary destination may subscribe to it")
	// ErrTempDurable: a temporary topic has no durable subscriptions.
	ErrTempDurable = errors.New("a temporary topic cannot have durable subscriptions")
	// ErrTooManyTemps: a session may create as many temporary
	// destinations as it may have subscriptions (Config.MaxSubscriptions).
	ErrTooManyTemps = errors.New("too many temporary destinations on this connection")
	// ErrTempScheduled: messages to temporary destinations cannot be
	// scheduled; they would outlive their destination.
	ErrTempScheduled = errors.New("messages to temporary destinations cannot be scheduled")
)

// tempDest reads a temporary destination: the engine's name for it (the
// /temp- form), and whether dest is the owner's form. ok is false for
// other destinations.
func tempDest(dest string) (name string, own, ok bool) {
	switch {
	case strings.HasPrefix(dest, TempQueuePrefix), strings.HasPrefix(dest, TempTopicPrefix):
		return dest, true, true
	case strings.HasPrefix(dest, RemoteTempQueuePrefix):
		return TempQueuePrefix + dest[len(RemoteTempQueuePrefix):], false, true
	case strings.HasPrefix(dest, RemoteTempTopicPrefix):
		return TempTopicPrefix + dest[len(RemoteTempTopicPrefix):], false, true
	}
	return dest, false, false
}

// useTemp checks that s may use the temporary destination name (own: in
// its owner's form), creating it for s on its owner's first use; a
// subscription needs to be the owner's. Called with e.mu held.
func (e *Engine) useTemp(s *Session, name string, own, subscribe bool) error {
	owner := e.temps[name]
	switch {
	case owner == nil && own && len(s.temps) >= e.cfg.MaxSubscriptions:
		return ErrTooManyTemps
	case owner == nil && own:
		e.temps[name] = s
		s.temps = append(s.temps, name)
		return nil
	case owner == nil:
		return ErrTempDeleted
	case subscribe && owner != s:
		return ErrTempNotOwner
	}
	return nil
}

// dropTemps deletes the temporary destinations s created, with whatever
// messages they still hold. Called with e.mu held, once s's
// subscriptions are gone.
func (e *Engine) dropTemps(s *Session) {
	for _, dest := range s.temps {
		delete(e.temps, dest)
		if q := e.queues[dest]; q != nil {
			e.purge(q)
			delete(e.queues, dest)
		}
		if t := e.topics[dest]; t != nil {
			e.gcTopic(t)
		}
	}
	s.temps = nil
}
