// Package queue owns delivery on the leader: destinations, subscriptions,
// prefetch, acknowledgements, redelivery, dead-lettering, expiry, priority
// and transactions.
//
// It mirrors the replicated state (it is the fsm.Observer of the leader)
// and turns client intents into fsm.Commands proposed through a Log. It
// does no I/O of its own: messages reach clients through Outbound, bodies
// not cached in memory are read through Store.
//
// Delivery state (which consumer holds which unacknowledged message) is
// leader memory. A new leader cannot know which stored messages its
// predecessor had dispatched, so every message it loads from the store is
// delivered with redelivered:true: a true duplicate is always flagged, at
// the price of flagging some first deliveries after a failover or restart.
//
// Sends can be made idempotent: a persistent SEND with a dedupe-id header
// is stored once however often it is sent within Config.DedupeWindow
// (dedupe.go), which makes a failover client's resends exactly-once for
// stored messages. Non-persistent messages, and persistent topic messages
// to a topic without durable subscriptions, do not go through raft and are
// not deduplicated. A dedupe-id longer than 1024 bytes is refused
// (ErrBadDedupeID).
package queue
