// Package failover is the Go client with ActiveMQ-style failover: it keeps
// one connection (transport/client) to one broker of a list and, when the
// connection is lost, connects to the next broker that serves, subscribes
// again and resends what the broker had not receipted. Only a group's raft
// leader listens on the client port, so the addresses of followers refuse
// the connection and are passed over at once.
//
// # URLs
//
//	failover:(tcp://h1:61613,tcp://h2:61613)?randomize=false&maxReconnectDelay=5000
//	failover:(ssl://h1:61614,ssl://h2:61614)
//	failover:tcp://h1:61613,tcp://h2:61613
//	tcp://h1:61613
//
// The last form is one broker with the default options; the client still
// reconnects to it. Addresses take no options, and without the
// parentheses there is no place for failover options (as in ActiveMQ, a
// query there would belong to the last address).
//
// # TLS
//
// An address is plain TCP (tcp://, or stomp:// and stomp+tcp://, the
// schemes of ActiveMQ's STOMP connector) or TLS (ssl://, or stomp+ssl://);
// a list may mix them, and each address is dialled its own way. An
// address without a port gets 61613, or over TLS 61614, ActiveMQ's
// stomp+ssl port. Options.TLS, the TLS settings (roots, client
// certificate...), is the template of every TLS connection: each uses a
// copy whose ServerName, unless the template sets one, is the host of the
// address dialled, so each broker's certificate is verified against its
// own name. Without it, the system's roots are trusted. An address has no
// TLS settings of its own.
//
// A TLS handshake that fails (an untrusted or expired certificate, a host
// name mismatch, a plain server) fails that attempt like a refused
// connection: the next address is tried, then the next pass after the
// back-off. When the client gives up (ErrUnreachable), its error carries
// the cause for each address of the last pass, as in
// "dial ssl://h:61614: client: TLS handshake with h:61614: tls: failed
// to verify certificate: ...", and errors.As finds the
// *tls.CertificateVerificationError.
//
// # Options honoured
//
// These, with ActiveMQ's meaning and defaults, durations in milliseconds;
// any other option, or an option given twice or with a malformed value, is
// an error naming it. Names are case-sensitive.
//
//   - randomize (true): shuffle the addresses before every pass.
//   - initialReconnectDelay (10): the wait before the first reconnection
//     after a connection was lost, and after the first failed pass.
//   - maxReconnectDelay (30000): the cap on the wait between passes.
//   - useExponentialBackOff (true): multiply the wait by
//     reconnectDelayExponent after every failed pass (otherwise every wait
//     is initialReconnectDelay).
//   - reconnectDelayExponent (2.0): at least 1.
//   - maxReconnectAttempts (-1): after a connection was lost, how many
//     failed passes over the addresses end the client (with
//     ErrUnreachable); -1 without limit; 0 means no reconnection at all.
//   - startupMaxReconnectAttempts (-1): the same before the first
//     connection (Dial), where 0 still makes one pass; -1 means
//     maxReconnectAttempts applies.
//   - timeout (-1): how long an operation waits for a connection while the
//     client is reconnecting before failing with ErrTimeout; -1 or 0: as
//     long as its context allows. A SEND made while reconnecting waits in
//     memory that long at most before it is written; one written before
//     the connection was lost is resent whatever the timeout (bound the
//     wait with Send's context).
//   - updateURIsSupported (true): add the addresses a broker announces in
//     its CONNECTED frame (header raftmq-brokers: comma-separated client
//     URIs of every broker in the group) to the configured ones; the
//     announced ones are tried first. An announced address is a URI as in
//     a URL (tcp://h:61613, ssl://h:61614), or a bare host:port reached
//     the way the announcing broker was (TLS or not). One the client
//     cannot use is skipped: an unknown scheme, and a plain one when every
//     configured address is TLS (an announcement does not take the client
//     off TLS).
//
// Within a pass the addresses are tried one after the other with no wait;
// the address just lost is tried last. Each attempt is bounded by
// Options.ConnectTimeout (10s), which covers CONNECT and restoring the
// session. An ERROR in reply to CONNECT ends the attempts (a bad version
// or heart-beat, later credentials, would be refused by every broker),
// unless it says the broker is not serving.
//
// # Resending and ERROR frames
//
// Every SEND carries a dedupe-id header (the caller's, or a per-client
// random prefix and a counter) and asks for a receipt. The client keeps
// each SEND, body included, until its receipt arrives, and writes those
// not receipted again, in the order made and with the same dedupe-id, on
// every new connection: the broker keeps a replicated window of the ids it
// stored, so a resent SEND it already stored is receipted and not stored
// again. The window is the broker's (two minutes by default), and covers
// what goes through raft only: a SEND resent after a longer outage, or a
// non-persistent one, may be delivered twice. SendAsync lets a caller keep
// many SENDs in flight; the memory they hold until receipted is the
// caller's to bound.
//
// The broker answers a frame it refuses with an ERROR and closes the
// connection. The rule for a SEND whose connection ended before its
// receipt:
//
//   - An ERROR whose receipt-id is that SEND's receipt is about that SEND
//     (bad destination, memory limit): the SEND fails with an error
//     wrapping ErrRefused and the *client.ServerError, and is not resent.
//   - Except when the ERROR says "broker is not serving" (the broker lost
//     leadership or is shutting down, queue.ErrClosed): the SEND's fate is
//     unknown, and it is resent.
//   - Anything else (the connection dropped, a heart-beat timeout, an ERROR
//     about another frame or about none) leaves its fate unknown, and it is
//     resent.
//   - A SEND the broker cannot decode (over its frame size limit) gets an
//     ERROR without receipt-id. When the same such ERROR ends two
//     connections in a row, the next restore resends one SEND at a time,
//     and the one alone in flight when it comes again fails with
//     ErrRefused: a poison SEND is not resent for ever.
//
// # Subscriptions and acknowledgements
//
// Subscribe returns a Subscription whose channel survives failovers: on
// every new connection the client subscribes again with the same id,
// destination, ack mode and headers. Messages arrive as *Message, a
// *stomp.Frame that remembers its connection; those the broker flagged
// redelivered:true (after a failover, every unacknowledged message) pass
// through with that header (Message.Redelivered). An ACK or NACK of a
// message from a connection since lost is not sent to the next one, whose
// ack ids differ: it fails with ErrStaleMessage, and the broker redelivers
// the message.
//
// # Transactions
//
// A transaction lives on the connection that began it, since the broker
// discards it with the connection: nothing of it is resent. Commit after
// that connection was lost returns ErrTxRolledBack; a connection lost
// during COMMIT gives ErrTxInDoubt.
//
// # Goroutines
//
// A client runs one goroutine that reconnects, one per connection that
// watches receipts, and one per subscription that moves messages to its
// channel. Close ends them all.
package failover
