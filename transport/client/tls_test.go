package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/tlsconf"
)

// testServerTLS returns a server configuration presenting a certificate for
// names (IP addresses or DNS names) from a CA of its own, made with the
// project's development PKI (tlsconf), and a pool that trusts that CA.
func testServerTLS(t *testing.T, names ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	if err := tlsconf.NewCA(dir, "client test CA", time.Hour); err != nil {
		t.Fatal(err)
	}
	cert, key, err := tlsconf.IssueCert(tlsconf.CertRequest{CADir: dir, OutDir: dir, Name: "broker",
		Hosts: names, Validity: time.Hour, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(dir, tlsconf.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{Certificates: []tls.Certificate{pair}}, pool
}

// newTLSBroker is the fake broker behind a TLS listener.
func newTLSBroker(t *testing.T, cfg *tls.Config) *fakeBroker {
	b := newFakeBroker(t)
	b.ln = tls.NewListener(b.ln, cfg)
	return b.start()
}

func TestDialTLS(t *testing.T) {
	srv, pool := testServerTLS(t, "127.0.0.1")
	b := newTLSBroker(t, srv)
	cfg := &tls.Config{RootCAs: pool}
	c, err := Dial(testCtx(t), b.addr(), Options{TLS: cfg})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if cfg.ServerName != "" {
		t.Errorf("Dial changed the caller's config: ServerName %q", cfg.ServerName)
	}
	if err := c.SendReceipt(testCtx(t), "/queue/q", []byte("x")); err != nil {
		t.Fatalf("SendReceipt: %v", err)
	}
	b.next(t) // CONNECT
	if f := b.next(t); f.Get("destination") != "/queue/q" || string(f.Body) != "x" {
		t.Fatalf("broker received %v %q", f.Headers, f.Body)
	}
}

func TestDialTLSServerName(t *testing.T) {
	// A certificate for a name, dialled by IP: the config's ServerName is
	// the name verified.
	srv, pool := testServerTLS(t, "broker.example")
	b := newTLSBroker(t, srv)
	c, err := Dial(testCtx(t), b.addr(), Options{TLS: &tls.Config{RootCAs: pool, ServerName: "broker.example"}})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	_ = c.Close()

	_, err = Dial(testCtx(t), b.addr(), Options{TLS: &tls.Config{RootCAs: pool}})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("Dial by IP to a certificate for a name: %v, want a host name error", err)
	}
}

func TestDialTLSHandshakeErrors(t *testing.T) {
	srv, _ := testServerTLS(t, "127.0.0.1")
	_, otherPool := testServerTLS(t, "127.0.0.1")
	b := newTLSBroker(t, srv)
	_, err := Dial(testCtx(t), b.addr(), Options{TLS: &tls.Config{RootCAs: otherPool}})
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) {
		t.Fatalf("Dial: %v, want a *tls.CertificateVerificationError", err)
	}
	want := "client: TLS handshake with " + b.addr() + ": tls: failed to verify certificate: x509: certificate signed by unknown authority"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("Dial: %q, want it to contain %q", err, want)
	}

	// A plain server answers the ClientHello with an ERROR frame.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = nc.Write([]byte("ERROR\nmessage:malformed frame\n\n\x00"))
		_ = nc.Close()
	}()
	_, err = Dial(testCtx(t), ln.Addr().String(), Options{TLS: &tls.Config{RootCAs: otherPool}})
	if err == nil || !strings.Contains(err.Error(), "client: TLS handshake with "+ln.Addr().String()+": ") {
		t.Fatalf("Dial to a plain server over TLS: %v, want a TLS handshake error", err)
	}
}
