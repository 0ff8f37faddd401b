// Package fsm is raftmq's replicated state machine: the store queues, their
// entries and the durable topic subscriptions of one group, kept in pebble
// and changed only by commands that came through the raft log.
//
// It owns the command encoding (EncodeBatch, DecodeBatch), applying
// committed entries (FSM implements raft.FSM and raft.BatchingFSM), the
// pebble key layout (keys.go), the applied index that lets a restart skip
// what is already applied, and snapshots (Snapshot, Restore). It does no
// network I/O and knows nothing about delivery: the leader's delivery
// engine mirrors the state through an Observer and reads bodies back with
// Message.
//
// Durability: pebble writes without fsync because the raft log is the
// durable record; Snapshot syncs pebble before raft may truncate that log.
package fsm
