package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names of the development CA in its directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// clockSkew back-dates NotBefore of new certificates, so a node whose clock
// is a little behind the CA's accepts them at once.
const clockSkew = time.Minute

// NewCA makes a development CA: an ECDSA P-256 key and a self-signed
// certificate with CommonName name, valid for validity, written to
// dir/ca.key (mode 0600) and dir/ca.crt. dir is created if missing. Existing
// files are never overwritten: replacing a CA would orphan every
// certificate it signed.
func NewCA(dir, name string, validity time.Duration) error {
	if name == "" {
		return errors.New("tlsconf: new CA: empty name")
	}
	if validity <= 0 {
		return fmt.Errorf("tlsconf: new CA: validity %v is not positive", validity)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	if err := refuseExisting(certPath, keyPath); err != nil {
		return fmt.Errorf("tlsconf: new CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("tlsconf: new CA: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return fmt.Errorf("tlsconf: new CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// It signs leaves only; no intermediates below a development CA.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("tlsconf: new CA: create certificate: %w", err)
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return fmt.Errorf("tlsconf: new CA: %w", err)
	}
	return nil
}

// CertRequest describes a certificate for IssueCert.
type CertRequest struct {
	// CADir holds ca.crt and ca.key, as written by NewCA.
	CADir string
	// OutDir receives <Name>.crt and <Name>.key. It is created if missing.
	OutDir string
	// Name is the files' base name and the certificate's CommonName.
	Name string
	// Hosts are the DNS names and IP addresses the certificate is valid
	// for. A server certificate needs at least one: TLS clients match the
	// name they dialed against these, never against the CommonName.
	Hosts []string
	// Validity is how long the certificate is valid from NotBefore (or now,
	// when NotBefore is zero). It is cut short to the CA's own expiry, after
	// which the certificate could not be verified anyway.
	Validity time.Duration
	// NotBefore is zero for now minus a minute of clock skew. Tests set
	// dates in the past to make expired certificates.
	NotBefore time.Time
	// Client and Server select the extended key usages; a node
	// certificate, used for both sides of raft and HTTP, has both.
	Client, Server bool
	// Group, for a node certificate, is the raft group the node belongs
	// to, written as the URI SAN GroupURI(Group) that members check.
	Group string
}

// IssueCert makes an ECDSA P-256 key and a certificate for it signed by the
// CA in r.CADir, and writes them to r.OutDir as <Name>.crt and <Name>.key
// (mode 0600). Existing files are never overwritten.
func IssueCert(r CertRequest) (certPath, keyPath string, err error) {
	tmpl, err := r.template()
	if err != nil {
		return "", "", fmt.Errorf("tlsconf: issue %q: %w", r.Name, err)
	}
	certPath = filepath.Join(r.OutDir, r.Name+".crt")
	keyPath = filepath.Join(r.OutDir, r.Name+".key")
	if err := refuseExisting(certPath, keyPath); err != nil {
		return "", "", fmt.Errorf("tlsconf: issue %q: %w", r.Name, err)
	}
	caChain, caKey, err := loadKeyPair(filepath.Join(r.CADir, CACertFile), filepath.Join(r.CADir, CAKeyFile))
	if err != nil {
		return "", "", fmt.Errorf("tlsconf: issue %q: CA: %w", r.Name, err)
	}
	ca := caChain[0]
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return "", "", fmt.Errorf("tlsconf: issue %q: %s is not a CA certificate", r.Name, filepath.Join(r.CADir, CACertFile))
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("tlsconf: issue %q: generate key: %w", r.Name, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return "", "", fmt.Errorf("tlsconf: issue %q: create certificate: %w", r.Name, err)
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return "", "", fmt.Errorf("tlsconf: issue %q: %w", r.Name, err)
	}
	return certPath, keyPath, nil
}

// template validates r and turns it into a certificate template, without
// the signing CA's constraints.
func (r *CertRequest) template() (*x509.Certificate, error) {
	if r.Name == "" || r.Name == "." || r.Name == ".." || strings.ContainsAny(r.Name, `/\`) {
		return nil, errors.New("name must be a plain file name")
	}
	if r.Validity <= 0 {
		return nil, fmt.Errorf("validity %v is not positive", r.Validity)
	}
	if !r.Client && !r.Server {
		return nil, errors.New("neither client nor server usage requested")
	}
	if r.Server && len(r.Hosts) == 0 {
		return nil, errors.New("a server certificate needs at least one host name or IP address")
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	start := r.NotBefore
	notBefore := start
	if start.IsZero() {
		start = time.Now()
		notBefore = start.Add(-clockSkew)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: r.Name},
		NotBefore:    notBefore,
		NotAfter:     start.Add(r.Validity),
		// ECDSA keys sign; they do not encipher keys.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	if r.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if r.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	if r.Group != "" {
		tmpl.URIs = []*url.URL{GroupURI(r.Group)}
	}
	for _, h := range r.Hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if h == "" || strings.ContainsAny(h, ":/ \t") {
			return nil, fmt.Errorf("host %q is neither an IP address nor a DNS name (give hosts without ports)", h)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	return tmpl, nil
}

// newSerial returns a random positive 128-bit serial number. Random serials
// keep two certificates from one CA distinct without a counter on disk.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// refuseExisting fails if any of paths exists, before anything is written,
// so a refused request leaves no half of a pair behind.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		_, err := os.Lstat(p)
		if err == nil {
			return fmt.Errorf("refusing to overwrite %s: %w", p, fs.ErrExist)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	return nil
}

// writePair writes a certificate and its key, the key first and private to
// its owner. If the certificate cannot be written the key is removed again.
func writePair(certPath, keyPath string, der []byte, key crypto.Signer) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	// The directory of a CA or node key should not be listable by others.
	for _, dir := range []string{filepath.Dir(certPath), filepath.Dir(keyPath)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create directory %s: %w", dir, err)
		}
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := writeNew(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	return nil
}

// writeNew creates path with perm and writes data to it. O_EXCL makes the
// no-overwrite promise hold even against a file created since
// refuseExisting looked.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
