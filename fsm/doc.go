// Package fsm is raftmq's replicated state machine: the store queues, their
// entries, the durable topic subscriptions, the dedupe window and the
// member directory of one group, kept in pebble and changed only by
// commands that came through the raft log.
//
// It owns the command encoding (EncodeBatch, DecodeBatch), applying
// committed entries (FSM implements raft.FSM and raft.BatchingFSM), the
// pebble key layout (keys.go), the applied index that lets a restart skip
// what is already applied, and snapshots (Snapshot, Restore). It does no
// network I/O and knows nothing about delivery: the leader's delivery
// engine mirrors the state through an Observer and reads bodies back with
// Message.
//
// The dedupe window (dedupe.go) makes OpEnqueue and OpPublish idempotent:
// a command whose DedupeID was seen stores nothing and reports
// Result.Duplicate. Ids are global to the group, not per destination, and
// are forgotten only by OpExpireDedupe, whose Before the leader computes:
// applying never reads a clock. The member directory (members.go) holds
// each node's raft, STOMP and admin HTTP addresses; FSM.Members reads it
// on any node. An entry's index record (Meta) carries the message's network
// path (HeaderNetworkPath), so the leader knows which groups a message went
// through without reading its body.
//
// Scheduled delivery (schedule.go): a scheduled message is an entry of
// ScheduledQueue whose HeaderSchedule records, once and for all, when it
// is due; its index record carries the due time (Meta.Due). OpFire, which
// the leader proposes at that time, delivers a copy and reschedules or
// removes the entry from the stored state alone, and is a no-op for an
// entry that fired already.
//
// Durability: pebble writes without fsync because the raft log is the
// durable record; Snapshot syncs pebble before raft may truncate that log.
package fsm
