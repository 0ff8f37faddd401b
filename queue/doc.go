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
package queue
