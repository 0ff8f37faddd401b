package fsm

import "fmt"

// The member directory: every node of the group with its raft, STOMP and
// admin HTTP addresses, so that any node can name the group's brokers to
// a client and a follower can find the leader's admin API. It is
// replicated state (key 'n', see keys.go) changed by OpSetMember and
// OpRemoveMember, and reported to no Observer: delivery does not use it.

func (a *applier) setMember(c *Command) Result {
	if c.Member == nil || c.Member.ID == "" {
		return invalid("set member without an ID")
	}
	a.val = appendMember(a.val[:0], c.Member)
	a.set(memberKey(c.Member.ID), a.val)
	return Result{}
}

func (a *applier) removeMember(c *Command) Result {
	if c.Member == nil || c.Member.ID == "" {
		return invalid("remove member without an ID")
	}
	// Deleting a member that is not there is fine: a retried removal.
	a.del(memberKey(c.Member.ID))
	return Result{}
}

// Members returns every member of the group's directory, sorted by ID. It
// reads the store as committed when it is called, so it may run on any
// node, from any goroutine, while batches are applied.
func (f *FSM) Members() ([]Member, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.st == nil {
		return nil, ErrClosed
	}
	var ms []Member
	err := scan(f.st.db, kindMember, func(k, v []byte) error {
		m, err := decodeMember(v)
		if err != nil {
			return fmt.Errorf("member %q: %w", k[1:], err)
		}
		ms = append(ms, *m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fsm: list members: %w", err)
	}
	return ms, nil
}
