// Package client is a plain STOMP client over one connection: Dial (TCP,
// or TLS with Options.TLS), CONNECT, then SEND, SUBSCRIBE, ACK/NACK,
// transactions and receipts, with heart-beats negotiated per STOMP 1.1.
// Tests, `raftmq bench` and the CLI use it, and transport/failover builds
// reconnection on top of it; it has no failover logic of its own.
//
// One goroutine reads: it routes MESSAGE frames to their subscription,
// RECEIPT frames to whoever waits for them, and an ERROR frame ends the
// connection, failing everything pending with a *ServerError. Writes from
// any number of goroutines are serialized, and a burst of them shares one
// flush.
package client
