// Package transport is the server side of client connections: it accepts
// TCP (or TLS) connections, speaks STOMP 1.0/1.1/1.2 on them with the codec
// in transport/stomp, and translates frames into calls on a Session of the
// delivery engine (package queue) and the engine's deliveries into MESSAGE
// frames.
//
// It owns the wire: connection lifecycle, CONNECT and version negotiation,
// heart-beats, receipts, ERROR frames, per-connection memory bounds and
// backpressure. It does not decide delivery semantics; those belong to the
// engine behind the Broker and Session interfaces.
//
// Each connection has two goroutines: a reader that decodes frames and calls
// the Session (protocol.go, one method per command), and a writer that
// drains the connection's outbound queue to the socket, coalescing frames
// into one flush (conn.go).
//
// MESSAGE frames carry, in this order: message-id, destination (the
// subscribed one), subscription, ack (STOMP 1.2 only; 1.0 and 1.1 clients
// acknowledge by message-id), redelivered:true when the message was
// delivered before, delivery-count (raftmq's own header: 1 on the first
// delivery), priority, expires (when set), timestamp, persistent, then the
// sender's own headers and content-length. The broker's headers come first
// because a repeated header counts at its first occurrence; SEND drops
// these names from the sender's headers anyway, along with receipt and
// transaction, which concern one frame only.
package transport
