// Package network links raft groups into a network of brokers, the way
// ActiveMQ's network connectors link brokers, without their weak spots.
//
// A bridge connects two groups, not two nodes. It is owned by the leader
// of the group that dials (the one configured with --network, or the one
// with the smaller name when both find each other by gossip), reaches the
// other group through a failover list of its members, and carries traffic
// both ways over that one connection: configuring one side is enough.
// When either side's leader changes, the bridge follows (the local side
// restarts with the new leader; the remote side is a failover client).
//
// Messages move by demand. Every leader publishes which destinations have
// local consumers on the system topic /topic/raftmq.network.demand. A
// bridge reads both sides' demand and, for each destination the other
// side consumes, opens a network subscription on this side (a STOMP
// SUBSCRIBE marked with raftmq-network-* headers). The engine gives such a
// subscription a queue's messages only when no local consumer can take
// them (decreaseNetworkConsumerPriority), and never a message that was
// already stored in the target group or that crossed networkTTL groups.
// Each message received is sent to the other group with a dedupe-id
// derived from its message-id and acknowledged at its source only after
// the other group's RECEIPT: it is committed there (through raft) before
// it is removed here (through raft), and a resend after a leader change
// on either side is dropped by the receiver's dedupe window.
package network
