package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// A node certificate names the raft group its holder belongs to with a URI
// SAN, urn:raftmq:group:NAME. Members check it on every connection between
// them (raft, joins, member-to-member HTTP), so one CA can sign the nodes
// of several groups, which bridges between those groups need, without a
// node of one group being able to speak raft to another: hashicorp/raft
// itself never asks who sent an AppendEntries.
//
// Members verify each other by that identity and the CA chain, not by host
// name: raft dials the addresses members advertise, usually IP addresses
// that change with the machine, while the group is what membership means.

const groupURNPrefix = "raftmq:group:"

// GroupURI is the URI SAN that makes a certificate a node of group.
func GroupURI(group string) *url.URL {
	return &url.URL{Scheme: "urn", Opaque: groupURNPrefix + url.PathEscape(group)}
}

// CertGroups returns the groups cert names as a node of, usually one.
func CertGroups(cert *x509.Certificate) []string {
	var groups []string
	for _, u := range cert.URIs {
		if u.Scheme != "urn" || !strings.HasPrefix(u.Opaque, groupURNPrefix) {
			continue
		}
		if g, err := url.PathUnescape(strings.TrimPrefix(u.Opaque, groupURNPrefix)); err == nil && g != "" {
			groups = append(groups, g)
		}
	}
	return groups
}

// ErrNotMember is wrapped by the errors of VerifyMember.
var ErrNotMember = errors.New("not a node of this group")

// VerifyMember checks that cert names group.
func VerifyMember(cert *x509.Certificate, group string) error {
	groups := CertGroups(cert)
	for _, g := range groups {
		if g == group {
			return nil
		}
	}
	if len(groups) == 0 {
		return fmt.Errorf("certificate %q names no group (want %s): %w", cert.Subject.CommonName, GroupURI(group), ErrNotMember)
	}
	return fmt.Errorf("certificate %q is a node of %s, not of %q: %w", cert.Subject.CommonName, strings.Join(groups, ", "), group, ErrNotMember)
}

// RequireGroup fails unless the current certificate names group, and makes
// every later Reload refuse a certificate that does not: a node started
// (or reloaded) with another group's certificate would be refused by every
// member, so it is better refused at once, with the reason.
func (s *Source) RequireGroup(group string) error {
	check := func(leaf *x509.Certificate) error {
		if err := VerifyMember(leaf, group); err != nil {
			return fmt.Errorf("tlsconf: this node's certificate: %w (issue it with `raftmq cert node -group %s`)", err, group)
		}
		return nil
	}
	if err := check(s.Leaf()); err != nil {
		return err
	}
	s.reload.Lock()
	s.check = check
	s.reload.Unlock()
	return nil
}

// MemberServerConfig is ServerConfig for connections from other members of
// group: a client certificate is required, verified against the CA pool,
// and must name group.
func (s *Source) MemberServerConfig(group string) *tls.Config {
	cfg := s.ServerConfig(tls.RequireAndVerifyClientCert)
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("tlsconf: member: no client certificate: %w", ErrNotMember)
		}
		return VerifyMember(cs.PeerCertificates[0], group)
	}
	return cfg
}

// MemberClientConfig is a config for dialing another member of group: the
// server's chain is verified against the CA pool and its certificate must
// name group; its host name is not checked (see above). The pool is fixed
// when the config is built, as with ClientConfig.
func (s *Source) MemberClientConfig(group string) *tls.Config {
	m := s.cur.Load()
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done below, against the pool, without the name
		// check that InsecureSkipVerify turns off.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyMemberChain(cs.PeerCertificates, m.pool, group)
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.cur.Load().cert, nil
		},
	}
}

// DialMember dials addr, a member of group, with a fresh MemberClientConfig.
// It has the signature of http.Transport.DialTLSContext once group is bound.
func (s *Source) DialMember(ctx context.Context, network, addr, group string) (net.Conn, error) {
	d := tls.Dialer{Config: s.MemberClientConfig(group)}
	return d.DialContext(ctx, network, addr)
}

func verifyMemberChain(chain []*x509.Certificate, pool *x509.CertPool, group string) error {
	if len(chain) == 0 {
		return fmt.Errorf("tlsconf: member: no certificate: %w", ErrNotMember)
	}
	if pool == nil {
		// The system roots would admit any publicly issued certificate.
		return ErrNoClientCA
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("tlsconf: member: %w", err)
	}
	return VerifyMember(chain[0], group)
}
