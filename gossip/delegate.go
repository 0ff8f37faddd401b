package gossip

import (
	"fmt"

	"github.com/hashicorp/memberlist"
)

// delegate is what memberlist calls back: memberlist.Delegate for our meta
// and memberlist.EventDelegate for membership. memberlist calls the event
// methods holding its node lock, with pointers into its own state, so
// they copy what they need into Pool.members (Members then never reads
// memberlist's nodes, which it rewrites under that lock) and never call
// back into memberlist.
type delegate struct{ p *Pool }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
)

// NodeMeta returns our encoded meta; Encode keeps it within limit.
func (d delegate) NodeMeta(limit int) []byte {
	d.p.metaMu.Lock()
	defer d.p.metaMu.Unlock()
	if len(d.p.metaBytes) > limit {
		return nil
	}
	return d.p.metaBytes
}

// NotifyMsg ignores user messages: the pool carries membership only.
func (d delegate) NotifyMsg([]byte) {}

// GetBroadcasts has nothing to piggyback: the pool carries membership only.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState has no application state to push: everything is in node meta.
func (d delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState has nothing to merge, see LocalState.
func (d delegate) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin records a member that became alive.
func (d delegate) NotifyJoin(n *memberlist.Node) { d.p.upsert(n) }

// NotifyUpdate records a member's new meta.
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.p.upsert(n) }

// NotifyLeave forgets a member that left or was declared dead.
func (d delegate) NotifyLeave(n *memberlist.Node) {
	d.p.mu.Lock()
	delete(d.p.members, n.Name)
	d.p.mu.Unlock()
	d.p.log.Debug("gossip member gone", "name", n.Name, "addr", n.Address())
	d.p.notify()
}

// upsert stores n if its meta decodes and matches its name; otherwise the
// member is dropped and logged, once per meta it announces.
func (p *Pool) upsert(n *memberlist.Node) {
	meta, err := DecodeMeta(n.Meta)
	if err == nil && meta.Name() != n.Name {
		err = fmt.Errorf("meta names %s, not this member", meta.Name())
	}
	p.mu.Lock()
	if err != nil {
		delete(p.members, n.Name)
	} else {
		p.members[n.Name] = Member{Name: n.Name, Addr: n.Address(), Meta: meta}
	}
	p.mu.Unlock()
	if err != nil {
		p.log.Warn("gossip member skipped: bad meta", "name", n.Name, "addr", n.Address(), "err", err)
	} else {
		p.log.Debug("gossip member", "name", n.Name, "addr", n.Address(), "role", meta.Role, "term", meta.Term)
	}
	p.notify()
}
