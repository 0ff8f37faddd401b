package client

import (
	"errors"
	"strings"

	"github.com/raftmq/raftmq/transport/stomp"
)

var (
	// ErrClosed is the error of a connection closed by Close or Disconnect,
	// and of operations attempted after that.
	ErrClosed = errors.New("client: connection closed")
	// ErrProtocol marks a server that broke the protocol (an unexpected
	// frame, a bad CONNECTED); the connection is closed.
	ErrProtocol = errors.New("client: protocol error")
)

// ServerError is an ERROR frame from the server. The server closes the
// connection after sending one, so it ends the Conn and fails every pending
// operation.
type ServerError struct {
	Frame *stomp.Frame
}

// Message is the ERROR frame's message header, or failing that the first
// line of its body.
func (e *ServerError) Message() string {
	if m := e.Frame.Get("message"); m != "" {
		return m
	}
	line, _, _ := strings.Cut(string(e.Frame.Body), "\n")
	const limit = 200
	if len(line) > limit {
		line = line[:limit]
	}
	return line
}

func (e *ServerError) Error() string {
	return "client: server error: " + e.Message()
}
