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
//
// Queues may be limited in messages and bytes, and the store in bytes
// (limits.go): a send that does not fit is refused (ErrDestinationFull)
// or held until there is room, ActiveMQ's producer flow control
// (flow.go). Topics are not limited there: their subscribers' backlogs
// are bounded instead.
//
// Networks of groups (network.go): a bridge to another group opens network
// subscriptions (SubscribeSpec.Network) and forwards what they receive. The
// engine gives them only messages that have not been to that group and
// are within the network TTL, except that a queue without local consumers
// lets its messages follow the consumers wherever they went; low-priority
// network subscriptions get a queue's messages only when local consumers
// cannot take them. Demand and DemandChanged tell the bridges where local
// consumers are. Topics under SystemTopicPrefix are the broker's own:
// clients may subscribe to them but not send to them (PublishSystem).
package queue
