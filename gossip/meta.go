package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/memberlist"
)

// Roles a node advertises in Meta.Role.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"
)

// ErrMetaTooLarge is returned when an encoded Meta does not fit in
// memberlist's node metadata (memberlist.MetaMaxSize bytes); memberlist
// itself would panic on it.
var ErrMetaTooLarge = errors.New("gossip: meta too large")

// Meta is what a node advertises to the pool. It travels in memberlist's
// node metadata, so it is small: addresses, not state.
type Meta struct {
	Group   string `json:"group"`         // raft group name
	ID      string `json:"id"`            // node id within the group
	Role    string `json:"role"`          // RoleLeader, RoleFollower, or "" while starting / without a group leader
	Term    uint64 `json:"term"`          // raft term of the role: a higher term wins when two claim leadership
	Stomp   string `json:"stomp_addr"`    // client (STOMP) address, host:port, as clients dial it
	TLS     bool   `json:"stomp_tls"`     // the client address speaks TLS (ssl://)
	Raft    string `json:"raft_addr"`     // raft address
	HTTP    string `json:"http_addr"`     // admin HTTP address
	Network bool   `json:"network_links"` // this node's group links to the other groups it finds by gossip (--network gossip)
}

// wireMeta is Meta with short JSON keys, to stay far below MetaMaxSize.
// Unknown keys are ignored on decode, so fields can be added.
type wireMeta struct {
	Group   string `json:"g"`
	ID      string `json:"i"`
	Role    string `json:"r,omitempty"`
	Term    uint64 `json:"t,omitempty"`
	Stomp   string `json:"s,omitempty"`
	TLS     bool   `json:"x,omitempty"`
	Raft    string `json:"a,omitempty"`
	HTTP    string `json:"h,omitempty"`
	Network bool   `json:"n,omitempty"`
}

// Name is the member name of the node: Group+"/"+ID, unique in the pool.
func (m Meta) Name() string { return m.Group + "/" + m.ID }

// validate checks what naming needs: a group and an id, and a group
// without "/" so that names split back unambiguously.
func (m Meta) validate() error {
	if m.Group == "" || m.ID == "" {
		return fmt.Errorf("gossip meta: group and id are required (have %q, %q)", m.Group, m.ID)
	}
	if strings.Contains(m.Group, "/") {
		return fmt.Errorf("gossip meta: group %q must not contain '/'", m.Group)
	}
	return nil
}

// Encode returns the compact form carried in memberlist's node metadata.
// It fails with ErrMetaTooLarge beyond memberlist.MetaMaxSize bytes.
func (m Meta) Encode() ([]byte, error) {
	b, err := json.Marshal(wireMeta(m))
	if err != nil {
		return nil, fmt.Errorf("gossip meta encode: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// DecodeMeta parses what Encode produced. Metadata without a group or id
// is an error: it is not one of our nodes.
func DecodeMeta(b []byte) (Meta, error) {
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("gossip meta decode: %w", err)
	}
	m := Meta(w)
	if err := m.validate(); err != nil {
		return Meta{}, err
	}
	return m, nil
}
