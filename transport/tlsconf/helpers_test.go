package tlsconf

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// pki is a development CA in a temporary directory.
type pki struct {
	t   *testing.T
	dir string
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	dir := t.TempDir()
	if err := NewCA(dir, name, 30*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	return &pki{t: t, dir: dir}
}

func (p *pki) caPath() string { return filepath.Join(p.dir, CACertFile) }

// issue writes a certificate for name into p's directory, valid for
// 127.0.0.1 and localhost as both client and server; edit, if not nil,
// adjusts the request first.
func (p *pki) issue(name string, edit func(*CertRequest)) (certPath, keyPath string) {
	p.t.Helper()
	r := CertRequest{
		CADir:    p.dir,
		OutDir:   p.dir,
		Name:     name,
		Hosts:    []string{"127.0.0.1", "localhost"},
		Validity: time.Hour,
		Client:   true,
		Server:   true,
	}
	if edit != nil {
		edit(&r)
	}
	certPath, keyPath, err := IssueCert(r)
	if err != nil {
		p.t.Fatal(err)
	}
	return certPath, keyPath
}

// node issues a certificate and returns Files for it that trust p.
func (p *pki) node(name string, edit func(*CertRequest)) Files {
	p.t.Helper()
	c, k := p.issue(name, edit)
	return Files{Cert: c, Key: k, CA: p.caPath()}
}

func mustLoad(t *testing.T, f Files) *Source {
	t.Helper()
	s, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// expired makes a certificate that expired a day ago.
func expired(r *CertRequest) {
	r.NotBefore = time.Now().Add(-48 * time.Hour)
	r.Validity = 24 * time.Hour
}

// copyFile replaces dst with src's content the way an operator would
// deploy a new file: write aside, then rename over the old one.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

type result struct {
	client, server       tls.ConnectionState
	clientErr, serverErr error
}

// handshake connects a client using ccfg to a server using scfg over
// loopback TCP. After a successful handshake the server writes one byte
// that the client reads: in TLS 1.3 the client completes its handshake
// before the server has verified the client's certificate, so the server's
// verdict reaches the client only on its first read.
func handshake(t *testing.T, scfg, ccfg *tls.Config) result {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(10 * time.Second)

	type served struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan served, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- served{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		tc := tls.Server(c, scfg)
		if err := tc.Handshake(); err != nil {
			done <- served{err: err}
			return
		}
		_, err = tc.Write([]byte{'x'})
		done <- served{state: tc.ConnectionState(), err: err}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(deadline)
	tc := tls.Client(c, ccfg)
	var r result
	r.clientErr = tc.Handshake()
	if r.clientErr == nil {
		_, r.clientErr = io.ReadFull(tc, make([]byte, 1))
	}
	r.client = tc.ConnectionState()
	c.Close()
	s := <-done
	r.server, r.serverErr = s.state, s.err
	return r
}

// versions runs f once with TLS 1.2 and once with TLS 1.3, which reject a
// client certificate at different points of the handshake.
func versions(t *testing.T, f func(t *testing.T, version uint16)) {
	t.Run("TLS1.2", func(t *testing.T) { f(t, tls.VersionTLS12) })
	t.Run("TLS1.3", func(t *testing.T) { f(t, tls.VersionTLS13) })
}

// clientConfig is s.ClientConfig for 127.0.0.1, pinned to version.
func clientConfig(s *Source, version uint16) *tls.Config {
	cfg := s.ClientConfig("127.0.0.1")
	cfg.MaxVersion = version
	return cfg
}
