package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

const wrongPort = "ERROR\nmessage:this port speaks TLS\n\n\x00"

// TestPlaintextOnTLS plays a TLS listener that answers a plaintext STOMP
// client with a plaintext ERROR frame, as the STOMP listener does.
func TestPlaintextOnTLS(t *testing.T) {
	p := newPKI(t, "test CA")
	srv := mustLoad(t, p.node("server", nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		err = tls.Server(c, srv.ServerConfig(tls.NoClientCert)).Handshake()
		raw, ok := PlaintextOnTLS(err)
		if !ok {
			served <- fmt.Errorf("handshake error %v not recognized as plaintext", err)
			return
		}
		if raw != c {
			served <- errors.New("PlaintextOnTLS returned another connection")
			return
		}
		_, err = io.WriteString(raw, wrongPort)
		raw.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, raw)
		served <- err
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "CONNECT\naccept-version:1.2\nhost:localhost\n\n\x00"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(wrongPort))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if string(got) != wrongPort {
		t.Errorf("client read %q, want %q", got, wrongPort)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestPlaintextOnTLSOtherErrors(t *testing.T) {
	p := newPKI(t, "test CA")
	srv := mustLoad(t, p.node("server", nil))
	c, k := newPKI(t, "other CA").issue("intruder", nil)
	intruder := mustLoad(t, Files{Cert: c, Key: k, CA: p.caPath()})

	r := handshake(t, srv.ServerConfig(tls.RequireAndVerifyClientCert), intruder.ClientConfig("127.0.0.1"))
	if r.serverErr == nil {
		t.Fatal("handshake succeeded")
	}
	for _, err := range []error{nil, r.serverErr, r.clientErr, io.EOF, tls.RecordHeaderError{Msg: "too large"}} {
		if conn, ok := PlaintextOnTLS(err); ok || conn != nil {
			t.Errorf("PlaintextOnTLS(%v) = %v, %v", err, conn, ok)
		}
	}

	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	wrapped := fmt.Errorf("accept: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake", Conn: a})
	if conn, ok := PlaintextOnTLS(wrapped); !ok || conn != a {
		t.Errorf("PlaintextOnTLS(wrapped) = %v, %v", conn, ok)
	}
}
