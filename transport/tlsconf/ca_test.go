package tlsconf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki", "ca") // created on demand
	if err := NewCA(dir, "raftmq dev CA", 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	checkMode(t, keyPath, 0o600)
	certs, key, err := loadKeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	ca := certs[0]
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 || ca.Subject.CommonName != "raftmq dev CA" {
		t.Errorf("CA certificate: IsCA %v, key usage %b, name %q", ca.IsCA, ca.KeyUsage, ca.Subject.CommonName)
	}
	if k, ok := key.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key is %T, want ECDSA P-256", key)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if d := time.Until(ca.NotAfter); d < 47*time.Hour || d > 48*time.Hour {
		t.Errorf("CA expires in %v, want 48h", d)
	}

	before := mustRead(t, keyPath)
	err = NewCA(dir, "another", time.Hour)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second NewCA: %v, want a refusal to overwrite", err)
	}
	if !bytes.Equal(mustRead(t, keyPath), before) {
		t.Error("the refused NewCA changed ca.key")
	}

	// Half a pair in the way is refused too, and nothing is written.
	dir2 := t.TempDir()
	writeString(t, filepath.Join(dir2, CACertFile), "x")
	if err := NewCA(dir2, "x", time.Hour); !errors.Is(err, fs.ErrExist) {
		t.Errorf("NewCA over ca.crt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, CAKeyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a refused NewCA wrote ca.key")
	}

	for _, bad := range []struct {
		name     string
		validity time.Duration
	}{{"", time.Hour}, {"x", 0}, {"x", -time.Hour}} {
		if err := NewCA(t.TempDir(), bad.name, bad.validity); err == nil {
			t.Errorf("NewCA(%q, %v) succeeded", bad.name, bad.validity)
		}
	}
}

func TestIssueCert(t *testing.T) {
	p := newPKI(t, "test CA")
	out := filepath.Join(t.TempDir(), "node1")
	certPath, keyPath, err := IssueCert(CertRequest{
		CADir:    p.dir,
		OutDir:   out,
		Name:     "node1",
		Hosts:    []string{"10.1.2.3", "node1.example", "::1", " [fe80::1] "},
		Validity: 24 * time.Hour,
		Client:   true,
		Server:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if certPath != filepath.Join(out, "node1.crt") || keyPath != filepath.Join(out, "node1.key") {
		t.Errorf("paths %s, %s", certPath, keyPath)
	}
	checkMode(t, keyPath, 0o600)
	certs, _, err := loadKeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	c := certs[0]
	if c.Subject.CommonName != "node1" || c.IsCA {
		t.Errorf("name %q, IsCA %v", c.Subject.CommonName, c.IsCA)
	}
	if !slices.Equal(c.DNSNames, []string{"node1.example"}) {
		t.Errorf("DNS names %q", c.DNSNames)
	}
	wantIPs := []net.IP{net.ParseIP("10.1.2.3"), net.ParseIP("::1"), net.ParseIP("fe80::1")}
	if !slices.EqualFunc(c.IPAddresses, wantIPs, net.IP.Equal) {
		t.Errorf("IP addresses %v, want %v", c.IPAddresses, wantIPs)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("extended key usage %v", c.ExtKeyUsage)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
		t.Errorf("serial %x", c.SerialNumber)
	}
	if time.Until(c.NotBefore) > -clockSkew+time.Second/2 || time.Since(c.NotBefore) > clockSkew+5*time.Second {
		t.Errorf("NotBefore %v, want about a minute ago", c.NotBefore)
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(mustRead(t, p.caPath()))
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "node1.example", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for usage %v: %v", usage, err)
		}
	}

	other, _ := p.issue("node2", nil)
	certs2, err := parseCerts(mustRead(t, other))
	if err != nil {
		t.Fatal(err)
	}
	if certs2[0].SerialNumber.Cmp(c.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}

	before := mustRead(t, certPath)
	_, _, err = IssueCert(CertRequest{CADir: p.dir, OutDir: out, Name: "node1", Hosts: []string{"x"}, Validity: time.Hour, Server: true})
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("second IssueCert: %v, want a refusal to overwrite", err)
	}
	if !bytes.Equal(mustRead(t, certPath), before) {
		t.Error("the refused IssueCert changed node1.crt")
	}
}

func TestIssueCertUsage(t *testing.T) {
	p := newPKI(t, "test CA")
	c, _ := p.issue("client-only", func(r *CertRequest) { r.Server, r.Hosts = false, nil })
	certs, err := parseCerts(mustRead(t, c))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(certs[0].ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("extended key usage %v, want client only", certs[0].ExtKeyUsage)
	}

	// A client-only certificate cannot serve.
	srv := mustLoad(t, p.node("client-as-server", func(r *CertRequest) { r.Server = false }))
	cli := mustLoad(t, p.node("client", nil))
	if r := handshake(t, srv.ServerConfig(tls.NoClientCert), cli.ClientConfig("127.0.0.1")); r.clientErr == nil {
		t.Error("client accepted a server certificate without server usage")
	}
}

func TestIssueCertClampsToCA(t *testing.T) {
	dir := t.TempDir()
	if err := NewCA(dir, "short CA", time.Hour); err != nil {
		t.Fatal(err)
	}
	ca, err := parseCerts(mustRead(t, filepath.Join(dir, CACertFile)))
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := IssueCert(CertRequest{CADir: dir, OutDir: dir, Name: "n", Hosts: []string{"n"}, Validity: 100 * time.Hour, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := parseCerts(mustRead(t, c))
	if err != nil {
		t.Fatal(err)
	}
	if !certs[0].NotAfter.Equal(ca[0].NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", certs[0].NotAfter, ca[0].NotAfter)
	}
}

func TestIssueCertErrors(t *testing.T) {
	p := newPKI(t, "test CA")
	ok := CertRequest{CADir: p.dir, OutDir: t.TempDir(), Name: "n", Hosts: []string{"n"}, Validity: time.Hour, Server: true}
	tests := []struct {
		name string
		edit func(*CertRequest)
		want string
	}{
		{"empty name", func(r *CertRequest) { r.Name = "" }, "plain file name"},
		{"path in name", func(r *CertRequest) { r.Name = "../n" }, "plain file name"},
		{"no validity", func(r *CertRequest) { r.Validity = 0 }, "validity"},
		{"no usage", func(r *CertRequest) { r.Server = false }, "neither client nor server"},
		{"server without hosts", func(r *CertRequest) { r.Hosts = nil }, "at least one host"},
		{"host with port", func(r *CertRequest) { r.Hosts = []string{"node1:61613"} }, "without ports"},
		{"empty host", func(r *CertRequest) { r.Hosts = []string{""} }, "neither an IP"},
		{"no CA", func(r *CertRequest) { r.CADir = t.TempDir() }, CACertFile},
		{"not a CA", func(r *CertRequest) {
			dir := t.TempDir()
			c, k := p.issue("leaf", nil)
			copyFile(t, c, filepath.Join(dir, CACertFile))
			copyFile(t, k, filepath.Join(dir, CAKeyFile))
			r.CADir = dir
		}, "not a CA"},
	}
	for _, tt := range tests {
		r := ok
		tt.edit(&r)
		_, _, err := IssueCert(r)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		}
		if err != nil {
			if _, serr := os.Stat(filepath.Join(r.OutDir, r.Name+".key")); serr == nil && r.Name != "" {
				t.Errorf("%s: a key was written", tt.name)
			}
		}
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}
