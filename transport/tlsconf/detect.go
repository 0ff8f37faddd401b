package tlsconf

import (
	"crypto/tls"
	"errors"
	"net"
)

// recordTypeHandshake is the content type of the TLS record that carries a
// ClientHello, the first thing a TLS client sends.
const recordTypeHandshake = 0x16

// IsTLSHandshake reports whether first, the first bytes read from a
// connection, start a TLS handshake: a plaintext STOMP listener can then
// tell a TLS client it is on the wrong port. One byte is enough to decide
// (no STOMP frame starts with 0x16); with two or more, the second must also
// be 3, the major version of every TLS record.
func IsTLSHandshake(first []byte) bool {
	if len(first) == 0 || first[0] != recordTypeHandshake {
		return false
	}
	return len(first) == 1 || first[1] == 3
}

// PlaintextOnTLS reports whether err, from a TLS server handshake, means
// the client did not speak TLS at all: its first bytes were not a TLS
// record. It returns the underlying connection, on which the server can
// write a plaintext reply ("this port speaks TLS") before closing it.
// crypto/tls sets tls.RecordHeaderError.Conn in exactly that case.
//
// The client's first frame may be partly unread when the handshake gives
// up. Closing a TCP socket with unread input makes the kernel send a reset,
// which can destroy the reply before the client reads it; so after writing
// the reply, close the write side and read until EOF or a short deadline
// before closing.
func PlaintextOnTLS(err error) (net.Conn, bool) {
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) && rhe.Conn != nil {
		return rhe.Conn, true
	}
	return nil, false
}
