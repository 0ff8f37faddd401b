package transport

import (
	"errors"
	"fmt"
	"strings"

	"github.com/raftmq/raftmq/transport/stomp"
)

// clientErr is a client's mistake, or a refusal, that ends its connection
// with an ERROR frame. STOMP closes the connection after every ERROR, so
// unlike NSQ's split fatal does not decide whether the connection survives;
// it says whether the stream itself broke (undecodable bytes, a timeout, a
// command out of place), which is worth a warning in the log, or whether a
// well-formed frame was refused (a missing header, an engine refusal), which
// is routine and logged at debug level.
type clientErr struct {
	fatal   bool
	msg     string // the ERROR frame's message header: short, one line
	detail  string // the ERROR frame's body; msg when empty
	receipt string // receipt-id: the offending frame's receipt header
	extra   []stomp.Header
	err     error // the cause, if any
}

func (e *clientErr) Error() string {
	if e.detail != "" {
		return e.msg + ": " + e.detail
	}
	return e.msg
}

func (e *clientErr) Unwrap() error { return e.err }

// frameErr refuses frame f: a missing or invalid header.
func frameErr(f *stomp.Frame, format string, args ...any) *clientErr {
	return &clientErr{msg: fmt.Sprintf(format, args...), receipt: f.Get("receipt")}
}

// protocolErr reports a broken stream. f is the offending frame, or nil
// when there is none (a decoding error, a timeout).
func protocolErr(f *stomp.Frame, msg, detail string) *clientErr {
	e := &clientErr{fatal: true, msg: msg, detail: detail}
	if f != nil {
		e.receipt = f.Get("receipt")
	}
	return e
}

// engineErr reports an operation the engine refused or failed. The engine's
// errors (queue.Err*) are written for clients, so their text is the message.
func engineErr(receipt string, err error) *clientErr {
	return &clientErr{msg: err.Error(), receipt: receipt, err: err}
}

// codecErr turns a decoding error into an ERROR that names the limit the
// frame broke, so a client author sees what to change.
func codecErr(e *stomp.Error, lim stomp.Limits) *clientErr {
	var msg string
	switch e.Kind {
	case stomp.ErrFrameTooLarge:
		msg = fmt.Sprintf("frame too large: limit %d bytes", lim.MaxFrameSize)
	case stomp.ErrTooManyHeaders:
		msg = fmt.Sprintf("too many headers: limit %d", lim.MaxHeaders)
	case stomp.ErrHeaderTooLong:
		msg = fmt.Sprintf("header line too long: limit %d bytes", lim.MaxHeaderLine)
	default:
		msg = "malformed frame"
	}
	return &clientErr{fatal: true, msg: msg, detail: e.Msg, err: e}
}

// frame renders e as the ERROR frame the client receives.
func (e *clientErr) frame() *stomp.Frame {
	return errorFrame(e.msg, e.detail, e.receipt, e.extra...)
}

// errorFrame builds an ERROR frame. message is the short header, detail
// the text/plain body (message again when empty).
func errorFrame(message, detail, receipt string, extra ...stomp.Header) *stomp.Frame {
	f := &stomp.Frame{Command: stomp.ERROR}
	f.Add("message", oneLine(message))
	if receipt != "" {
		f.Add("receipt-id", receipt)
	}
	f.Headers = append(f.Headers, extra...)
	f.Add("content-type", "text/plain")
	if detail == "" {
		detail = message
	}
	f.Body = []byte(detail + "\n")
	return f
}

// maxMessageLen bounds the ERROR message header: it is for a person or a
// log line, and it may quote client input.
const maxMessageLen = 256

// oneLine makes s fit in a header of any STOMP version: STOMP 1.0 cannot
// escape line ends, and a header should be short.
func oneLine(s string) string {
	if len(s) > maxMessageLen {
		s = s[:maxMessageLen] + "..."
	}
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	}
	return s
}

// errStop ends a connection's reader without an ERROR: the connection is
// already shutting down (DISCONNECT, Server.Close, a failed write).
var errStop = errors.New("connection shutting down")
