package transport

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"
)

// ConnectionInfo describes one client connection: GET /api/v1/connections.
type ConnectionInfo struct {
	ID          string    `json:"id"` // the CONNECTED frame's session header
	RemoteAddr  string    `json:"remote_addr"`
	ConnectedAt time.Time `json:"connected_at"` // when it was accepted
	// The rest is known once CONNECT arrived; Version is empty before.
	Version     string `json:"version,omitempty"`
	ClientID    string `json:"client_id,omitempty"`
	Login       string `json:"login,omitempty"`
	BridgeGroup string `json:"bridge_group,omitempty"` // the group, when a bridge from another group
	FramesIn    uint64 `json:"frames_in"`
	MessagesOut uint64 `json:"messages_out"`
}

// connStats is what a connection reports about itself. The identity
// fields are written once by the reader while connecting, under conn.mu.
type connStats struct {
	accepted    time.Time
	clientID    string
	login       string
	bridgeGroup string
	framesIn    atomic.Uint64
	messagesOut atomic.Uint64
}

// ConnectionID names the connection to the engine (queue.ConnectionIdentifier).
func (c *conn) ConnectionID() string { return c.id }

func (c *conn) info() ConnectionInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ConnectionInfo{
		ID:          c.id,
		RemoteAddr:  c.nc.RemoteAddr().String(),
		ConnectedAt: c.stats.accepted,
		Version:     string(c.version),
		ClientID:    c.stats.clientID,
		Login:       c.stats.login,
		BridgeGroup: c.stats.bridgeGroup,
		FramesIn:    c.stats.framesIn.Load(),
		MessagesOut: c.stats.messagesOut.Load(),
	}
}

// Connections describes the open connections, oldest first.
func (s *Server) Connections() []ConnectionInfo {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	out := make([]ConnectionInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.info())
	}
	slices.SortFunc(out, func(a, b ConnectionInfo) int {
		return cmp.Or(a.ConnectedAt.Compare(b.ConnectedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}
