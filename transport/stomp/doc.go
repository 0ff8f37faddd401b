// Package stomp is the STOMP 1.0/1.1/1.2 wire codec: the Frame type, a
// buffered Reader and Writer that turn bytes into frames and back, header
// escaping per version, size limits that bound the memory a peer can make us
// spend, and the small pieces of version and heart-beat negotiation that both
// the server and the client need.
//
// It knows frame syntax only. What a command means, which commands are valid
// in which state, and delivery semantics belong to the server (transport) and
// the queue package.
package stomp
