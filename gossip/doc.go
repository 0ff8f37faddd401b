// Package gossip keeps the one memberlist pool (github.com/hashicorp/memberlist)
// that every node of every raft group joins, so that groups find each other
// without multicast.
//
// It owns the pool and nothing that is done with it: the node metadata each
// member advertises (Meta: group, id, raft role and term, STOMP, raft and
// admin addresses), joining the seeds in the background with retries, the
// encryption key, and a coalesced notification when membership or metadata
// changes (Pool.Changed). Deciding which groups to bridge is network's job.
//
// Members are named Group+"/"+ID, which must be unique in the pool. A node
// that restarts under its old name at the same gossip address takes its
// place back at once (it refutes the stale state with a higher
// incarnation). At a different address it is refused while the old entry
// is alive or suspect; a graceful Close (leave) frees the name at once, a
// crash frees it once the old entry has been dead for DeadNodeReclaimTime
// (10 s LAN, 1 s Fast) and the new address reaches the others by gossip or
// the next push/pull (every 30 s LAN).
//
// A member that leaves (Close) is gone from the others within a gossip
// round or two (0.1-0.4 s). One that crashes is found by failure
// detection: one probe round, then a suspicion timeout that shrinks as
// other members confirm it. Measured on loopback with 2-5 nodes, the
// default LAN timing drops a crashed member after 5.6-7 s, Fast timing
// (tests) after 0.9-1.2 s. A suspicion nobody confirms (say, a node that
// learned of the crashed one late, when the others had already dropped
// it) runs the full timeout instead: up to 24 s with LAN timing.
package gossip
