// Package node is one raftmq broker process: a member of one raft group
// that serves STOMP clients while it is the group's leader.
//
// It owns the raft setup (raft-boltdb log and stable store with fsync on,
// the file snapshot store, the TCP transport), bootstrapping a new group,
// following leadership changes (leader.go: the one place leader-only work
// starts and stops), group commit of the engine's proposals into raft log
// entries (proposer.go), and the wiring of fsm, queue and transport. It
// knows neither frame syntax nor queue rules.
//
// Raft's own logs go through an hclog adapter (hclog.go) to the node's
// log/slog logger, so one process writes one structured stream.
package node
