package node

// The admin API's JSON documents. They are exported so that the CLI (and
// tests) decode exactly what the node encodes.

// NodeInfo is one node's own view of itself and its group:
// GET /api/v1/node. Nodes also read it from each other while they wait to
// bootstrap (--bootstrap-expect) and to tell a group's status.
type NodeInfo struct {
	ID    string `json:"id"`
	Group string `json:"group"`
	// State is raft's: Leader, Follower, Candidate or Shutdown.
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	LeaderID     string `json:"leader_id,omitempty"`
	LastLogIndex uint64 `json:"last_log_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// LastContactMs is how long ago a follower last heard from its
	// leader, in milliseconds; -1 if never, 0 on the leader itself.
	LastContactMs int64 `json:"last_contact_ms"`
	// The addresses this node advertises.
	RaftAddr  string `json:"raft_addr"`
	StompAddr string `json:"stomp_addr,omitempty"`
	HTTPAddr  string `json:"http_addr"`
	// Serving is true while this node serves STOMP clients (it leads).
	Serving bool `json:"serving"`
	// Bootstrapped is true once this node has raft state: it is, or was,
	// a member of a formed group and must never bootstrap again.
	Bootstrapped    bool `json:"bootstrapped"`
	BootstrapExpect int  `json:"bootstrap_expect"`
	// Discovered lists the nodes found while waiting to bootstrap, so that
	// discovery is transitive: a node that names one other finds the rest.
	Discovered []Peer `json:"discovered,omitempty"`
}

// Peer is a node found while forming a group.
type Peer struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Member is one server of the group's raft configuration together with
// the addresses it registered: GET /api/v1/members.
type Member struct {
	ID        string `json:"id"`
	RaftAddr  string `json:"raft_addr"`
	StompAddr string `json:"stomp_addr,omitempty"`
	HTTPAddr  string `json:"http_addr,omitempty"`
	// Suffrage is raft's: Voter, Nonvoter or Staging.
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// MemberStatus is a member and what it said about itself when asked for
// a group status; Error says why it could not be asked.
type MemberStatus struct {
	Member
	// State is the member's raft state, or "unreachable".
	State         string `json:"state"`
	Term          uint64 `json:"term,omitempty"`
	LastLogIndex  uint64 `json:"last_log_index,omitempty"`
	CommitIndex   uint64 `json:"commit_index,omitempty"`
	AppliedIndex  uint64 `json:"applied_index,omitempty"`
	LastContactMs int64  `json:"last_contact_ms,omitempty"`
	Error         string `json:"error,omitempty"`
}

// GroupStatus is the group as one node sees it: GET /api/v1/status.
type GroupStatus struct {
	Group    string `json:"group"`
	LeaderID string `json:"leader_id,omitempty"`
	// Node is the answering node's own view.
	Node    NodeInfo       `json:"node"`
	Members []MemberStatus `json:"members"`
}

// JoinRequest asks the group to add a node as a voter and to record its
// addresses: POST /api/v1/members. Repeating it changes nothing.
type JoinRequest struct {
	ID        string `json:"id"`
	Group     string `json:"group"`
	RaftAddr  string `json:"raft_addr"`
	StompAddr string `json:"stomp_addr,omitempty"`
	HTTPAddr  string `json:"http_addr,omitempty"`
}

// TransferRequest asks the leader to hand leadership over:
// POST /api/v1/leader-transfer. An empty ID lets raft pick the most
// up-to-date follower.
type TransferRequest struct {
	ID string `json:"id,omitempty"`
}

// TransferResult names the leader after a transfer.
type TransferResult struct {
	LeaderID string `json:"leader_id"`
}

// ErrorResponse is the body of every error status.
type ErrorResponse struct {
	Error string `json:"error"`
}
