package failover

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/stomp"
	"github.com/raftmq/raftmq/transport/tlsconf"
)

// testCert is a certificate and the CA that signed it, made for one test.
type testCert struct {
	server *tls.Config    // a server presenting it
	pool   *x509.CertPool // trusts it
}

// newTestCert makes a certificate for names (IP addresses or DNS names),
// valid from notBefore to notAfter (a zero notAfter: for the next hour),
// signed by a CA of its own made with the project's development PKI
// (tlsconf).
func newTestCert(t testing.TB, notBefore, notAfter time.Time, names ...string) testCert {
	t.Helper()
	dir := t.TempDir()
	if err := tlsconf.NewCA(dir, "failover test CA", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	req := tlsconf.CertRequest{CADir: dir, OutDir: dir, Name: "broker", Hosts: names, Validity: time.Hour, Server: true}
	if !notAfter.IsZero() {
		req.NotBefore, req.Validity = notBefore, notAfter.Sub(notBefore)
	}
	cert, key, err := tlsconf.IssueCert(req)
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
	return testCert{server: &tls.Config{Certificates: []tls.Certificate{pair}}, pool: pool}
}

// loopbackCert is a certificate for 127.0.0.1, where the fakes listen.
func loopbackCert(t testing.TB) testCert {
	return newTestCert(t, time.Time{}, time.Time{}, "127.0.0.1")
}

func sslURL(opts string, addrs ...string) string {
	return strings.ReplaceAll(failoverURL(opts, addrs...), "tcp://", "ssl://")
}

func TestTLSConnect(t *testing.T) {
	cert := loopbackCert(t)
	a := newFakeTLS(t, "", cert.server)
	template := &tls.Config{RootCAs: cert.pool}
	c := dialT(t, sslURL(fast, a.addr), Options{TLS: template})
	if c.Addr() != a.addr || c.Connected() == nil {
		t.Fatalf("Addr() = %q, Connected() = %v", c.Addr(), c.Connected())
	}
	if template.ServerName != "" {
		t.Errorf("the caller's template was changed: ServerName %q", template.ServerName)
	}
	ctx := testCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "auto")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/q", []byte("over TLS")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, sub); string(m.Body) != "over TLS" {
		t.Fatalf("received %q", m.Body)
	}
}

// TestTLSHandshakeFailures checks that a certificate that does not verify
// fails the attempt, and that the error the caller gets says why, for
// every address of the pass.
func TestTLSHandshakeFailures(t *testing.T) {
	good := loopbackCert(t)
	hourAgo := time.Now().Add(-time.Hour)
	expired := newTestCert(t, hourAgo.Add(-time.Hour), hourAgo, "127.0.0.1")
	named := newTestCert(t, time.Time{}, time.Time{}, "broker.example")
	tests := []struct {
		name   string
		server testCert
		client *tls.Config // Options.TLS
		want   string
	}{
		{"untrusted", good, &tls.Config{RootCAs: loopbackCert(t).pool}, "x509: certificate signed by unknown authority"},
		{"system roots", good, nil, "x509: certificate signed by unknown authority"},
		{"expired", expired, &tls.Config{RootCAs: expired.pool}, "certificate has expired"},
		{"host name", named, &tls.Config{RootCAs: named.pool}, "doesn't contain any IP SANs"},
		{"template ServerName", good, &tls.Config{RootCAs: good.pool, ServerName: "broker.example"}, "wanted to match broker.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newFakeTLS(t, "", tt.server.server)
			dead := freeAddr(t)
			// The refused address is tried last: the TLS cause must not
			// be lost behind the last error.
			url := "failover:(ssl://" + a.addr + ",tcp://" + dead + ")?randomize=false&startupMaxReconnectAttempts=1"
			_, err := Dial(testCtx(t), url, Options{TLS: tt.client, Logger: testLogger(t)})
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Dial: %v, want ErrUnreachable", err)
			}
			var cve *tls.CertificateVerificationError
			if !errors.As(err, &cve) {
				t.Errorf("Dial: %v, want a *tls.CertificateVerificationError in it", err)
			}
			for _, want := range []string{
				"dial ssl://" + a.addr + ": ",
				"tls: failed to verify certificate: ",
				tt.want,
				"dial tcp://" + dead + ": ",
				"connection refused",
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Dial: %q does not contain %q", err, want)
				}
			}
			if a.numAccepts() != 1 {
				t.Errorf("%d connections to the TLS broker, want 1", a.numAccepts())
			}
			checkGoroutines(t)
		})
	}
}

func TestTLSServerNameFromTemplate(t *testing.T) {
	// A certificate for a name only: the template's ServerName says which.
	cert := newTestCert(t, time.Time{}, time.Time{}, "broker.example")
	a := newFakeTLS(t, "", cert.server)
	c := dialT(t, sslURL(fast, a.addr), Options{TLS: &tls.Config{RootCAs: cert.pool, ServerName: "broker.example"}})
	if c.Addr() != a.addr {
		t.Fatalf("connected to %q", c.Addr())
	}
}

func TestTLSServerNamePerAddress(t *testing.T) {
	// Two brokers with certificates for different names: each is
	// verified against the host it is dialled by.
	first := newTestCert(t, time.Time{}, time.Time{}, "127.0.0.1")
	second := newTestCert(t, time.Time{}, time.Time{}, "localhost")
	pool := first.pool.Clone()
	pool.AddCert(second.server.Certificates[0].Leaf)
	a := newFakeTLS(t, "", first.server)
	b := newFakeTLS(t, "", second.server)
	_, port, _ := net.SplitHostPort(b.addr)
	url := "failover:(ssl://" + a.addr + ",ssl://localhost:" + port + ")?" + fast
	c := dialT(t, url, Options{TLS: &tls.Config{RootCAs: pool}})
	if c.Addr() != a.addr {
		t.Fatalf("connected to %q", c.Addr())
	}
	a.stop()
	waitFor(t, "a connection to localhost", func() bool { return c.Addr() == "localhost:"+port })
}

func TestTLSFailoverList(t *testing.T) {
	cert := loopbackCert(t)
	untrusted := newFakeTLS(t, "", loopbackCert(t).server)
	plain, plainAccepts := plainServer(t) // on an ssl:// address
	good := newFakeTLS(t, "", cert.server)
	url := sslURL(fast, freeAddr(t), untrusted.addr, plain, good.addr)
	c := dialT(t, url, Options{TLS: &tls.Config{RootCAs: cert.pool}})
	if c.Addr() != good.addr {
		t.Fatalf("connected to %q, want %q", c.Addr(), good.addr)
	}
	if untrusted.numAccepts() != 1 || plainAccepts.get() != 1 {
		t.Fatalf("%d and %d attempts on the bad servers, want 1 each", untrusted.numAccepts(), plainAccepts.get())
	}
}

// plainServer is a plain STOMP server that does not understand what it
// is sent, here a TLS ClientHello: it answers ERROR and hangs up, at
// once. (The fake server would wait for the end of a frame that never
// comes, as long as the client lets it.)
func plainServer(t *testing.T) (addr string, accepts *counter) {
	ln, err := net.Listen("tcp", freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	accepts = new(counter)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.inc()
			_, _ = nc.Write([]byte("ERROR\nmessage:malformed frame\n\n\x00"))
			_ = nc.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String(), accepts
}

func TestTLSMixedList(t *testing.T) {
	// Each address dials its own way: plain first, then TLS after a
	// failover, and plain again.
	cert := loopbackCert(t)
	a := newFake(t, "")
	b := newFakeTLS(t, "", cert.server)
	url := "failover:(tcp://" + a.addr + ",ssl://" + b.addr + ")?" + fast
	c := dialT(t, url, Options{TLS: &tls.Config{RootCAs: cert.pool}})
	if c.Addr() != a.addr {
		t.Fatalf("connected to %q", c.Addr())
	}
	ctx := testCtx(t)
	sub, err := c.Subscribe(ctx, "/queue/q", "auto")
	if err != nil {
		t.Fatal(err)
	}
	a.stop()
	waitFor(t, "a connection to the TLS broker", func() bool { return c.Addr() == b.addr })
	b.next(t, stomp.SUBSCRIBE)
	if err := c.Send(ctx, "/queue/q", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, sub); string(m.Body) != "x" {
		t.Fatalf("received %q", m.Body)
	}
	a.restart()
	b.stop()
	waitFor(t, "a connection to the plain broker", func() bool { return c.Addr() == a.addr })
}

func TestTLSPlainAddressNeverUsesTLS(t *testing.T) {
	// A TLS server behind a tcp:// address: the plain CONNECT fails, TLS
	// settings notwithstanding.
	cert := loopbackCert(t)
	a := newFakeTLS(t, "", cert.server)
	url := failoverURL("startupMaxReconnectAttempts=1", a.addr)
	_, err := Dial(testCtx(t), url, Options{TLS: &tls.Config{RootCAs: cert.pool}, Logger: testLogger(t)})
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Dial: %v, want ErrUnreachable", err)
	}
	checkGoroutines(t)
}

func TestTLSCauseAfterLosingTheConnection(t *testing.T) {
	// The client gives up after maxReconnectAttempts: Err keeps the TLS
	// cause.
	a := newFake(t, "")
	b := newFakeTLS(t, "", loopbackCert(t).server)
	url := "failover:(tcp://" + a.addr + ",ssl://" + b.addr + ")?" + fast + "&maxReconnectAttempts=2"
	c := dialT(t, url, Options{})
	a.stop()
	select {
	case <-c.Done():
	case <-time.After(waitLong):
		t.Fatal("the client did not give up")
	}
	err := c.Err()
	var cve *tls.CertificateVerificationError
	if !errors.Is(err, ErrUnreachable) || !errors.As(err, &cve) {
		t.Fatalf("Err() = %v, want ErrUnreachable and a *tls.CertificateVerificationError", err)
	}
	if want := "dial ssl://" + b.addr + ": "; !strings.Contains(err.Error(), want) {
		t.Fatalf("Err() = %q, does not contain %q", err, want)
	}
}

func TestTLSLearnedAddresses(t *testing.T) {
	cert := loopbackCert(t)
	opts := Options{TLS: &tls.Config{RootCAs: cert.pool}}

	t.Run("scheme", func(t *testing.T) {
		// A plain broker announces a TLS one.
		a := newFake(t, "")
		b := newFakeTLS(t, "", cert.server)
		a.brokers = "tcp://" + a.addr + ",ssl://" + b.addr
		c := dialT(t, "tcp://"+a.addr, opts)
		a.stop()
		waitFor(t, "a connection to the announced TLS broker", func() bool { return c.Addr() == b.addr })
	})
	t.Run("bare over TLS", func(t *testing.T) {
		// A bare host:port announced over TLS is TLS.
		a := newFakeTLS(t, "", cert.server)
		b := newFakeTLS(t, "", cert.server)
		a.brokers = a.addr + "," + b.addr
		c := dialT(t, "ssl://"+a.addr, opts)
		a.stop()
		waitFor(t, "a connection to the announced TLS broker", func() bool { return c.Addr() == b.addr })
	})
	t.Run("bare over TCP", func(t *testing.T) {
		a, b := newFake(t, ""), newFake(t, "")
		a.brokers = a.addr + "," + b.addr
		c := dialT(t, "tcp://"+a.addr, opts)
		a.stop()
		waitFor(t, "a connection to the announced broker", func() bool { return c.Addr() == b.addr })
	})
	t.Run("no plain address for a TLS-only client", func(t *testing.T) {
		a := newFakeTLS(t, "", cert.server)
		plain := newFake(t, "")
		b := newFakeTLS(t, "", cert.server)
		a.brokers = "tcp://" + plain.addr + ",ssl://" + b.addr
		c := dialT(t, sslURL("initialReconnectDelay=5", a.addr), opts)
		a.stop()
		waitFor(t, "a connection to the announced TLS broker", func() bool { return c.Addr() == b.addr })
		if n := plain.numAccepts(); n != 0 {
			t.Fatalf("a TLS-only client tried an announced plain address %d time(s)", n)
		}
	})
}

func TestTLSCauseWhenDialContextEnds(t *testing.T) {
	// Without an attempt limit, Dial ends with its context: the error
	// still says why the broker could not be used.
	a := newFakeTLS(t, "", loopbackCert(t).server)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, sslURL("initialReconnectDelay=20", a.addr), Options{Logger: testLogger(t)})
	var cve *tls.CertificateVerificationError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &cve) {
		t.Fatalf("Dial: %v, want the context's deadline and a *tls.CertificateVerificationError", err)
	}
	checkGoroutines(t)
}
