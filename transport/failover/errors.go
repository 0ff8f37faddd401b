package failover

import (
	"errors"
	"strings"

	"github.com/raftmq/raftmq/transport/client"
)

var (
	// ErrClosed is the error of operations on a client closed by Close or
	// Disconnect, and of those still pending when it was closed.
	ErrClosed = errors.New("failover: client closed")
	// ErrUnreachable means no broker could be reached within the
	// configured attempts (startupMaxReconnectAttempts for Dial,
	// maxReconnectAttempts afterwards); the client has ended.
	ErrUnreachable = errors.New("failover: no broker reachable")
	// ErrTimeout is the error of an operation that waited longer than the
	// URL's timeout option for a connection. An unsent SEND that fails
	// with it was never written and will not be.
	ErrTimeout = errors.New("failover: not connected within the timeout")
	// ErrRefused marks a SEND or SUBSCRIBE the broker refused with an
	// ERROR frame about that very frame (bad destination, too large,
	// memory limit...). It is not retried; the error also wraps the
	// *client.ServerError.
	ErrRefused = errors.New("failover: refused by the broker")
	// ErrStaleMessage is the error of an ACK or NACK for a message that
	// arrived on a connection that has since been lost: its ack id means
	// nothing to the next connection. The broker gives the message back
	// to its queue and redelivers it (redelivered:true), unless an ACK
	// sent before the loss was processed.
	ErrStaleMessage = errors.New("failover: the connection that delivered this message was lost; it will be redelivered")
	// ErrTxRolledBack means the connection of an open transaction was lost
	// (or the broker refused one of its frames): the broker discarded the
	// transaction. Nothing of it is resent; begin again.
	ErrTxRolledBack = errors.New("failover: transaction rolled back: its connection was lost")
	// ErrTxInDoubt means the connection was lost after COMMIT was written
	// and before its receipt: the transaction may or may not have been
	// committed.
	ErrTxInDoubt = errors.New("failover: connection lost during COMMIT: the transaction may or may not have committed")
)

// notServingText is in every ERROR by which the broker says it cannot take
// anything right now (queue.ErrClosed: lost leadership, shutting down),
// rather than that it refuses a frame. The wire has only the text; a test
// keeps this in step with queue.ErrClosed.
const notServingText = "broker is not serving"

// durableInUseText is queue.ErrDurableInUse: on a resubscription it means
// the broker has not yet noticed that our previous connection is gone.
const durableInUseText = "durable subscription is already active"

// serverError returns the ERROR frame err carries, if any.
func serverError(err error) *client.ServerError {
	var se *client.ServerError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

// says reports whether the ERROR frame's message or body contains text.
func says(se *client.ServerError, text string) bool {
	return strings.Contains(se.Frame.Get("message"), text) || strings.Contains(string(se.Frame.Body), text)
}

// refusal decides whether err, the end of the frame whose receipt header
// was receipt, means the broker refused that frame: an ERROR frame that
// names receipt in its receipt-id, and that does not say the broker is
// not serving. Anything else (the connection dropped, an ERROR about
// another frame or about none, a broker losing leadership) leaves the
// frame's fate unknown, and it is resent on the next connection.
func refusal(err error, receipt string) *client.ServerError {
	se := serverError(err)
	if se == nil || receipt == "" || se.Frame.Get("receipt-id") != receipt || says(se, notServingText) {
		return nil
	}
	return se
}

// handshakeRefusal reports whether err, from dialing, is the broker
// answering CONNECT with an ERROR for a reason that would not change on
// another attempt (an unsupported version or heart-beat; credentials,
// when the broker checks them). Not serving is not such a reason.
func handshakeRefusal(err error) bool {
	se := serverError(err)
	return se != nil && !says(se, notServingText) && se.Frame.Get(RetryHeader) != "true"
}

// RetryHeader, "true" in an ERROR answering CONNECT, marks a refusal that
// may pass on another attempt (the broker was at its connection limit,
// or too busy checking passwords): the client backs off and tries again
// instead of giving up.
const RetryHeader = "raftmq-retry"
