package tlsconf

import (
	"crypto/tls"
	"errors"
	"net"
)

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
