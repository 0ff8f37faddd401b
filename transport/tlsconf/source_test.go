package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMutualTLS(t *testing.T) {
	versions(t, func(t *testing.T, version uint16) {
		p := newPKI(t, "test CA")
		srv := mustLoad(t, p.node("server", nil))
		cli := mustLoad(t, p.node("client", nil))

		r := handshake(t, srv.ServerConfig(tls.RequireAndVerifyClientCert), clientConfig(cli, version))
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("client error %v, server error %v", r.clientErr, r.serverErr)
		}
		if r.client.Version != version {
			t.Errorf("version %x, want %x", r.client.Version, version)
		}
		if got := r.server.PeerCertificates[0].Subject.CommonName; got != "client" {
			t.Errorf("server saw client %q, want client", got)
		}
		if len(r.server.VerifiedChains) == 0 {
			t.Error("server has no verified chain for the client")
		}
		if got := r.client.PeerCertificates[0].Subject.CommonName; got != "server" {
			t.Errorf("client saw server %q, want server", got)
		}
	})
}

func TestRejectClientFromOtherCA(t *testing.T) {
	versions(t, func(t *testing.T, version uint16) {
		p := newPKI(t, "test CA")
		srv := mustLoad(t, p.node("server", nil))
		// Same name as the real CA: the pool must match by key, not name.
		for _, name := range []string{"other CA", "test CA"} {
			other := newPKI(t, name)
			c, k := other.issue("intruder", nil)
			cli := mustLoad(t, Files{Cert: c, Key: k, CA: p.caPath()})

			r := handshake(t, srv.ServerConfig(tls.RequireAndVerifyClientCert), clientConfig(cli, version))
			var unknown x509.UnknownAuthorityError
			if !errors.As(r.serverErr, &unknown) {
				t.Errorf("CA %q: server error %v, want an unknown authority", name, r.serverErr)
			}
			if r.clientErr == nil {
				t.Errorf("CA %q: client was not told it was rejected", name)
			}
		}
	})
}

func TestRejectExpiredClient(t *testing.T) {
	versions(t, func(t *testing.T, version uint16) {
		p := newPKI(t, "test CA")
		srv := mustLoad(t, p.node("server", nil))
		cli := mustLoad(t, p.node("client", expired))

		r := handshake(t, srv.ServerConfig(tls.RequireAndVerifyClientCert), clientConfig(cli, version))
		var invalid x509.CertificateInvalidError
		if !errors.As(r.serverErr, &invalid) || invalid.Reason != x509.Expired {
			t.Errorf("server error %v, want an expired certificate", r.serverErr)
		}
		if r.clientErr == nil {
			t.Error("client was not told it was rejected")
		}
	})
}

func TestRejectExpiredServer(t *testing.T) {
	p := newPKI(t, "test CA")
	srv := mustLoad(t, p.node("server", expired))
	cli := mustLoad(t, p.node("client", nil))
	if !srv.NotAfter().Before(time.Now()) {
		t.Fatalf("NotAfter %v is not in the past", srv.NotAfter())
	}

	r := handshake(t, srv.ServerConfig(tls.NoClientCert), cli.ClientConfig("127.0.0.1"))
	var invalid x509.CertificateInvalidError
	if !errors.As(r.clientErr, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("client error %v, want an expired certificate", r.clientErr)
	}
}

func TestServerName(t *testing.T) {
	p := newPKI(t, "test CA")
	srv := mustLoad(t, p.node("server", nil))
	cli := mustLoad(t, p.node("client", nil))
	scfg := srv.ServerConfig(tls.RequireAndVerifyClientCert)

	for _, name := range []string{"127.0.0.1", "127.0.0.1:61613", "localhost", "localhost:61613"} {
		if r := handshake(t, scfg, cli.ClientConfig(name)); r.clientErr != nil || r.serverErr != nil {
			t.Errorf("%s: client error %v, server error %v", name, r.clientErr, r.serverErr)
		}
	}
	for _, name := range []string{"other.example", "10.0.0.1", "[::1]:61613"} {
		r := handshake(t, scfg, cli.ClientConfig(name))
		var mismatch x509.HostnameError
		if !errors.As(r.clientErr, &mismatch) {
			t.Errorf("%s: client error %v, want a host name mismatch", name, r.clientErr)
		}
	}
}

func TestVerifyClientCertIfGiven(t *testing.T) {
	p := newPKI(t, "test CA")
	srv := mustLoad(t, p.node("server", nil))
	scfg := srv.ServerConfig(tls.VerifyClientCertIfGiven)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(mustRead(t, p.caPath()))

	anonymous := &tls.Config{ServerName: "127.0.0.1", RootCAs: roots}
	if r := handshake(t, scfg, anonymous); r.clientErr != nil || r.serverErr != nil {
		t.Fatalf("anonymous client: client error %v, server error %v", r.clientErr, r.serverErr)
	}

	c, k := newPKI(t, "other CA").issue("intruder", nil)
	intruder := mustLoad(t, Files{Cert: c, Key: k, CA: p.caPath()})
	r := handshake(t, scfg, intruder.ClientConfig("127.0.0.1"))
	if r.serverErr == nil {
		t.Error("a client certificate from another CA was accepted")
	}
}

func TestNoCA(t *testing.T) {
	p := newPKI(t, "test CA")
	f := p.node("server", nil)
	f.CA = ""
	srv := mustLoad(t, f)
	cli := mustLoad(t, p.node("client", nil))

	r := handshake(t, srv.ServerConfig(tls.RequireAndVerifyClientCert), cli.ClientConfig("127.0.0.1"))
	if !errors.Is(r.serverErr, ErrNoClientCA) {
		t.Errorf("server error %v, want ErrNoClientCA", r.serverErr)
	}

	r = handshake(t, srv.ServerConfig(tls.NoClientCert), cli.ClientConfig("127.0.0.1"))
	if r.clientErr != nil || r.serverErr != nil {
		t.Fatalf("without client certificates: client error %v, server error %v", r.clientErr, r.serverErr)
	}
	if len(r.server.PeerCertificates) != 0 {
		t.Error("NoClientCert server received a client certificate")
	}

	// Without a CA the client trusts the system roots, not our dev CA.
	r = handshake(t, mustLoad(t, p.node("server2", nil)).ServerConfig(tls.NoClientCert), srv.ClientConfig("127.0.0.1"))
	if r.clientErr == nil {
		t.Error("client without a CA bundle trusted a development CA")
	}
}

func TestReloadCertificate(t *testing.T) {
	p := newPKI(t, "test CA")
	f := p.node("server", nil)
	srv := mustLoad(t, f)
	cli := mustLoad(t, p.node("client", nil))
	scfg := srv.ServerConfig(tls.RequireAndVerifyClientCert)

	r := handshake(t, scfg, cli.ClientConfig("127.0.0.1"))
	if r.clientErr != nil {
		t.Fatal(r.clientErr)
	}
	first := r.client.PeerCertificates[0].SerialNumber

	c, k := p.issue("server-renewed", func(r *CertRequest) { r.Validity = 2 * time.Hour })
	copyFile(t, c, f.Cert)
	copyFile(t, k, f.Key)
	oldNotAfter := srv.NotAfter()
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if !srv.NotAfter().After(oldNotAfter) {
		t.Errorf("NotAfter %v after reload, was %v", srv.NotAfter(), oldNotAfter)
	}

	r = handshake(t, scfg, cli.ClientConfig("127.0.0.1"))
	if r.clientErr != nil {
		t.Fatal(r.clientErr)
	}
	second := r.client.PeerCertificates[0].SerialNumber
	if second.Cmp(first) == 0 {
		t.Fatal("the server still presents the old certificate after Reload")
	}
	if second.Cmp(srv.Leaf().SerialNumber) != 0 {
		t.Errorf("server presented serial %x, Leaf is %x", second, srv.Leaf().SerialNumber)
	}

	// A client config built before a reload presents the new certificate.
	ccfg := cli.ClientConfig("127.0.0.1")
	cc, ck := p.issue("client-renewed", nil)
	copyFile(t, cc, cli.files.Cert)
	copyFile(t, ck, cli.files.Key)
	if err := cli.Reload(); err != nil {
		t.Fatal(err)
	}
	r = handshake(t, scfg, ccfg)
	if r.serverErr != nil {
		t.Fatal(r.serverErr)
	}
	if got := r.server.PeerCertificates[0].SerialNumber; got.Cmp(cli.Leaf().SerialNumber) != 0 {
		t.Errorf("client presented serial %x, want the reloaded %x", got, cli.Leaf().SerialNumber)
	}
}

// TestReloadCA moves the server's trust from one CA to another. Clients of
// the old CA must be refused afterwards, including those that hold a
// session ticket from before the reload.
func TestReloadCA(t *testing.T) {
	versions(t, func(t *testing.T, version uint16) {
		ca1, ca2 := newPKI(t, "CA 1"), newPKI(t, "CA 2")
		f := ca1.node("server", nil)
		trusted := filepath.Join(t.TempDir(), "trusted.pem")
		copyFile(t, ca1.caPath(), trusted)
		f.CA = trusted
		srv := mustLoad(t, f)
		scfg := srv.ServerConfig(tls.RequireAndVerifyClientCert)

		c, k := ca1.issue("client1", nil)
		cli1 := mustLoad(t, Files{Cert: c, Key: k, CA: ca1.caPath()})
		c, k = ca2.issue("client2", nil)
		cli2 := mustLoad(t, Files{Cert: c, Key: k, CA: ca1.caPath()})

		// cli1 resumes with a session cache, to prove resumption happens.
		cfg1 := clientConfig(cli1, version)
		cfg1.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		for i := range 2 {
			r := handshake(t, scfg, cfg1)
			if r.clientErr != nil || r.serverErr != nil {
				t.Fatalf("client1 before reload: client error %v, server error %v", r.clientErr, r.serverErr)
			}
			if i == 1 && !r.client.DidResume {
				t.Fatal("second handshake did not resume; the test below would prove nothing")
			}
		}
		if r := handshake(t, scfg, clientConfig(cli2, version)); r.serverErr == nil {
			t.Fatal("client2 accepted before its CA was trusted")
		}

		copyFile(t, ca2.caPath(), trusted)
		if err := srv.Reload(); err != nil {
			t.Fatal(err)
		}

		if r := handshake(t, scfg, clientConfig(cli2, version)); r.clientErr != nil || r.serverErr != nil {
			t.Errorf("client2 after reload: client error %v, server error %v", r.clientErr, r.serverErr)
		}
		r := handshake(t, scfg, cfg1)
		if r.serverErr == nil {
			t.Errorf("client1 accepted after its CA was removed (resumed: %v)", r.server.DidResume)
		}
	})
}

func TestReloadClientCA(t *testing.T) {
	ca1, ca2 := newPKI(t, "CA 1"), newPKI(t, "CA 2")
	srv := mustLoad(t, ca2.node("server", nil))
	f := ca1.node("client", nil)
	trusted := filepath.Join(t.TempDir(), "trusted.pem")
	copyFile(t, ca1.caPath(), trusted)
	f.CA = trusted
	cli := mustLoad(t, f)
	scfg := srv.ServerConfig(tls.NoClientCert)

	if r := handshake(t, scfg, cli.ClientConfig("127.0.0.1")); r.clientErr == nil {
		t.Fatal("client trusted a server from a CA not in its bundle")
	}
	copyFile(t, ca2.caPath(), trusted)
	if err := cli.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := handshake(t, scfg, cli.ClientConfig("127.0.0.1")); r.clientErr != nil {
		t.Fatalf("after reload: %v", r.clientErr)
	}
}

func TestReloadBrokenKeepsOld(t *testing.T) {
	p := newPKI(t, "test CA")
	f := p.node("server", nil)
	srv := mustLoad(t, f)
	cli := mustLoad(t, p.node("client", nil))
	scfg := srv.ServerConfig(tls.RequireAndVerifyClientCert)
	serial, notAfter := srv.Leaf().SerialNumber, srv.NotAfter()
	_, otherKey := p.issue("other", nil)

	breakages := []struct {
		name, file, want string
		replace          func(path string)
	}{
		{"garbage certificate", f.Cert, "no PEM data", func(path string) { writeString(t, path, "garbage") }},
		{"missing key", f.Key, "no such file", func(path string) { os.Remove(path) }},
		{"mismatched key", f.Key, "does not match", func(path string) { copyFile(t, otherKey, path) }},
		{"key in the CA file", f.CA, "is this the key file", func(path string) { copyFile(t, otherKey, path) }},
	}
	for _, b := range breakages {
		saved := mustRead(t, b.file)
		b.replace(b.file)
		err := srv.Reload()
		if err == nil || !strings.Contains(err.Error(), b.file) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: Reload error %v, want one naming %s and saying %q", b.name, err, b.file, b.want)
		}
		if srv.Leaf().SerialNumber.Cmp(serial) != 0 || !srv.NotAfter().Equal(notAfter) {
			t.Errorf("%s: the failed reload replaced the certificate", b.name)
		}
		r := handshake(t, scfg, cli.ClientConfig("127.0.0.1"))
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("%s: client error %v, server error %v", b.name, r.clientErr, r.serverErr)
		}
		if got := r.client.PeerCertificates[0].SerialNumber; got.Cmp(serial) != 0 {
			t.Errorf("%s: server presented serial %x, want the old %x", b.name, got, serial)
		}
		writeString(t, b.file, string(saved))
	}
	if err := srv.Reload(); err != nil {
		t.Errorf("reload of the restored files: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	p := newPKI(t, "test CA")
	c, k := p.issue("node", nil)
	_, otherKey := p.issue("other", nil)
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	writeString(t, junk, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
	encrypted := filepath.Join(dir, "encrypted.key")
	writeString(t, encrypted, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n")
	missing := filepath.Join(dir, "missing.pem")
	text := filepath.Join(dir, "text.pem")
	writeString(t, text, "hello\n")

	tests := []struct {
		name string
		f    Files
		want []string
	}{
		{"no key", Files{Cert: c}, []string{"key file"}},
		{"missing certificate", Files{Cert: missing, Key: k}, []string{"load certificate", missing, "no such file"}},
		{"missing key", Files{Cert: c, Key: missing}, []string{"load key", missing, "no such file"}},
		{"missing CA", Files{Cert: c, Key: k, CA: missing}, []string{"load CA bundle", missing, "no such file"}},
		{"swapped", Files{Cert: k, Key: c}, []string{"load certificate", k, "is this the key file"}},
		{"key is a certificate", Files{Cert: c, Key: c}, []string{"load key", c, "is this the certificate file"}},
		{"not a certificate", Files{Cert: junk, Key: k}, []string{junk, "certificate 1"}},
		{"mismatch", Files{Cert: c, Key: otherKey}, []string{otherKey, "does not match", c}},
		{"encrypted", Files{Cert: c, Key: encrypted}, []string{encrypted, "encrypted"}},
		{"CA not PEM", Files{Cert: c, Key: k, CA: text}, []string{"load CA bundle", text, "no PEM data"}},
	}
	for _, tt := range tests {
		_, err := Load(tt.f)
		if err == nil {
			t.Errorf("%s: Load succeeded", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tt.name, err, w)
			}
		}
	}
	if _, err := Load(Files{Cert: missing, Key: k}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v is not fs.ErrNotExist", err)
	}
}

func TestDialContext(t *testing.T) {
	p := newPKI(t, "test CA")
	srv := mustLoad(t, p.node("server", nil))
	cli := mustLoad(t, p.node("client", nil))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.ServerConfig(tls.RequireAndVerifyClientCert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("hi"))
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cli.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hi" {
		t.Errorf("read %q, %v", b, err)
	}
	if _, err := cli.DialContext(ctx, "tcp", "no-port"); err == nil {
		t.Error("dialing an address without a port succeeded")
	}
}

// TestConcurrentReload handshakes while reloading, for the race detector.
func TestConcurrentReload(t *testing.T) {
	p := newPKI(t, "test CA")
	srv := mustLoad(t, p.node("server", nil))
	cli := mustLoad(t, p.node("client", nil))
	scfg := srv.ServerConfig(tls.RequireAndVerifyClientCert)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := srv.Reload(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 10 {
		if r := handshake(t, scfg, cli.ClientConfig("127.0.0.1")); r.clientErr != nil || r.serverErr != nil {
			t.Errorf("client error %v, server error %v", r.clientErr, r.serverErr)
		}
	}
	close(stop)
	wg.Wait()
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"node1":           "node1",
		"node1:61613":     "node1",
		"10.0.0.1:7000":   "10.0.0.1",
		"::1":             "::1",
		"[::1]":           "::1",
		"[fe80::1]:61613": "fe80::1",
		"":                "",
	} {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeString(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
