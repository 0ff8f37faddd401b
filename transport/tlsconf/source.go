package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoClientCA fails a handshake on a server config that verifies client
// certificates when Files.CA is empty. crypto/tls would verify them against
// the system roots, which would let anyone with a certificate from a public
// CA in as a raft peer.
var ErrNoClientCA = errors.New("tlsconf: client certificate verification needs a CA bundle (Files.CA)")

// Files names the PEM files of a Source.
type Files struct {
	// Cert is this node's certificate, followed by any intermediates.
	Cert string
	// Key is the private key of the first certificate in Cert.
	Key string
	// CA is a bundle of the CAs trusted to sign peers' and clients'
	// certificates. Empty means the system roots verify servers, and client
	// certificates cannot be verified at all (see ErrNoClientCA).
	CA string
	// ExtraCA is a second bundle trusted alongside CA, in the same pool:
	// a client listener that verifies client certificates also trusts
	// the nodes' CA, whose certificates other groups' bridges present.
	ExtraCA string
}

// material is one consistent snapshot of the files. It is never modified
// after it is built, so handshakes read it without a lock.
type material struct {
	cert *tls.Certificate
	pool *x509.CertPool // nil when Files.CA is empty
	leaf *x509.Certificate
}

// Source is the current TLS material of a node. It is safe for concurrent
// use; Reload swaps the material atomically.
type Source struct {
	files  Files
	reload sync.Mutex // serializes Reload, so two SIGHUPs cannot swap out of order
	cur    atomic.Pointer[material]
	check  func(leaf *x509.Certificate) error // set by RequireGroup; under reload
}

// Load reads f and returns a Source holding it.
func Load(f Files) (*Source, error) {
	m, err := load(f)
	if err != nil {
		return nil, err
	}
	s := &Source{files: f}
	s.cur.Store(m)
	return s, nil
}

func load(f Files) (*material, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("tlsconf: both a certificate file and a key file are needed")
	}
	certs, key, err := loadKeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: %w", err)
	}
	m := &material{
		cert: &tls.Certificate{PrivateKey: key, Leaf: certs[0]},
		leaf: certs[0],
	}
	for _, c := range certs {
		m.cert.Certificate = append(m.cert.Certificate, c.Raw)
	}
	for _, bundle := range []string{f.CA, f.ExtraCA} {
		if bundle == "" {
			continue
		}
		if m.pool, err = loadPool(m.pool, bundle); err != nil {
			return nil, fmt.Errorf("tlsconf: %w", err)
		}
	}
	return m, nil
}

// Reload reads the files again. New handshakes use the new material;
// established connections are not touched. On error the old material stays
// in use and the error says which file is wrong.
func (s *Source) Reload() error {
	s.reload.Lock()
	defer s.reload.Unlock()
	m, err := load(s.files)
	if err != nil {
		return err
	}
	if s.check != nil {
		if err := s.check(m.leaf); err != nil {
			return err
		}
	}
	s.cur.Store(m)
	return nil
}

// NotAfter is when the current certificate expires.
func (s *Source) NotAfter() time.Time {
	return s.cur.Load().leaf.NotAfter
}

// Leaf is the current certificate, parsed. It must not be modified.
func (s *Source) Leaf() *x509.Certificate {
	return s.cur.Load().leaf
}

// verifiesClients reports whether crypto/tls verifies client certificates
// (against ClientCAs) under auth.
func verifiesClients(auth tls.ClientAuthType) bool {
	return auth == tls.VerifyClientCertIfGiven || auth == tls.RequireAndVerifyClientCert
}

// ServerConfig returns a config for a TLS listener that presents the
// current certificate and, with clientAuth tls.VerifyClientCertIfGiven or
// tls.RequireAndVerifyClientCert, verifies client certificates against the
// current CA pool. Both are read at every handshake, so a listener built
// once follows every Reload.
//
// The returned config is a template: each handshake runs on a clone of it
// with the current material filled in. Fields set on it before it is first
// used (VerifyConnection, Time, ...) apply; fields set on a copy of it (as
// http.Server makes to add "h2") do not, because the clone is taken of the
// original. Without Files.CA, a verifying server fails every handshake with
// ErrNoClientCA.
func (s *Source) ServerConfig(clientAuth tls.ClientAuthType) *tls.Config {
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: clientAuth,
		// Only consulted if GetConfigForClient is removed from a copy;
		// it keeps such a copy serving the current certificate.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
	}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.cur.Load()
		cfg := base.Clone()
		cfg.GetConfigForClient = nil
		cfg.GetCertificate = nil
		cfg.Certificates = []tls.Certificate{*m.cert}
		if verifiesClients(cfg.ClientAuth) {
			if m.pool == nil {
				return nil, ErrNoClientCA
			}
			cfg.ClientCAs = m.pool
		}
		return cfg, nil
	}
	return base
}

// ClientConfig returns a config for dialing a server named serverName (a
// host name or IP address; a trailing :port is dropped). The server's chain
// is verified against the CA pool (the system roots without Files.CA) and
// its name against the certificate's SANs, IP SANs for an IP. With an empty
// serverName the caller must set ServerName, as transport/client and
// http.Transport do with the host they dial.
//
// This node's certificate is presented whenever the server asks for one,
// even if the server's list of acceptable CAs does not name its issuer, so
// that a server which distrusts it logs why. The certificate is read at each
// handshake; the CA pool is fixed when ClientConfig is called, so call it
// per dial (or use DialContext) to follow CA reloads.
func (s *Source) ClientConfig(serverName string) *tls.Config {
	m := s.cur.Load()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: hostOnly(serverName),
		RootCAs:    m.pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
	}
}

// DialContext dials addr ("host:port") with TLS, using a fresh ClientConfig
// for host, so each connection sees the current material. It has the
// signature of http.Transport.DialTLSContext.
func (s *Source) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: dial %s: %w", addr, err)
	}
	d := tls.Dialer{Config: s.ClientConfig(host)}
	return d.DialContext(ctx, network, addr)
}

// hostOnly strips a port and IPv6 brackets: callers often have an address
// at hand rather than a host, and a name with a port never matches a SAN.
func hostOnly(name string) string {
	if host, _, err := net.SplitHostPort(name); err == nil {
		return host
	}
	return strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
}
