package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
)

func inGroup(group string) func(*CertRequest) {
	return func(r *CertRequest) { r.Group = group }
}

func TestGroupURIRoundTrip(t *testing.T) {
	p := newPKI(t, "test CA")
	// Group names may hold characters a URI must escape.
	for i, group := range []string{"orders", "eu-west_1", "a:b%c?d#e"} {
		s := mustLoad(t, p.node("n"+string(rune('1'+i)), inGroup(group)))
		if got := CertGroups(s.Leaf()); !slices.Equal(got, []string{group}) {
			t.Errorf("group %q: certificate names %q", group, got)
		}
		if err := VerifyMember(s.Leaf(), group); err != nil {
			t.Errorf("group %q: %v", group, err)
		}
		if err := VerifyMember(s.Leaf(), group+"x"); !errors.Is(err, ErrNotMember) {
			t.Errorf("group %q checked as %q: %v, want ErrNotMember", group, group+"x", err)
		}
	}
	plain := mustLoad(t, p.node("plain", nil))
	if err := VerifyMember(plain.Leaf(), "orders"); err == nil || !strings.Contains(err.Error(), "names no group") {
		t.Errorf("certificate without a group: %v", err)
	}
}

func TestMemberHandshake(t *testing.T) {
	versions(t, func(t *testing.T, version uint16) {
		p := newPKI(t, "test CA")
		// Members verify each other by group, not host name: these
		// certificates name a host nobody dials.
		onlyName := func(group string) func(*CertRequest) {
			return func(r *CertRequest) { r.Group = group; r.Hosts = []string{"elsewhere.example"} }
		}
		srv := mustLoad(t, p.node("a1", onlyName("A")))
		peer := mustLoad(t, p.node("a2", onlyName("A")))
		stranger := mustLoad(t, p.node("b1", onlyName("B")))
		foreign := newPKI(t, "other CA")
		fc, fk := foreign.issue("a9", inGroup("A"))
		impostor := mustLoad(t, Files{Cert: fc, Key: fk, CA: p.caPath()})

		client := func(s *Source, group string) *tls.Config {
			cfg := s.MemberClientConfig(group)
			cfg.MaxVersion = version
			return cfg
		}
		r := handshake(t, srv.MemberServerConfig("A"), client(peer, "A"))
		if r.clientErr != nil || r.serverErr != nil {
			t.Fatalf("member of A: client %v, server %v", r.clientErr, r.serverErr)
		}
		// A node of B under the same CA, dialing A on purpose, is
		// refused by A's server.
		r = handshake(t, srv.MemberServerConfig("A"), client(stranger, "A"))
		if !errors.Is(r.serverErr, ErrNotMember) || r.clientErr == nil {
			t.Errorf("node of B dialing A: client %v, server %v", r.clientErr, r.serverErr)
		}
		// A node of B refuses a server of A when it expects B.
		r = handshake(t, peer.MemberServerConfig("A"), client(stranger, "B"))
		if r.clientErr == nil {
			t.Error("node of B accepted a server of A")
		}
		// The right group from the wrong CA: refused on the chain.
		r = handshake(t, srv.MemberServerConfig("A"), client(impostor, "A"))
		var unknown x509.UnknownAuthorityError
		if !errors.As(r.serverErr, &unknown) {
			t.Errorf("foreign CA: server %v, want an unknown authority", r.serverErr)
		}
		// The client checks the server's chain too.
		r = handshake(t, impostor.MemberServerConfig("A"), client(peer, "A"))
		if !errors.As(r.clientErr, &unknown) {
			t.Errorf("server from a foreign CA: client %v, want an unknown authority", r.clientErr)
		}
	})
}

func TestRequireGroupOnReload(t *testing.T) {
	p := newPKI(t, "test CA")
	f := p.node("n1", inGroup("A"))
	s := mustLoad(t, f)
	if err := s.RequireGroup("B"); !errors.Is(err, ErrNotMember) {
		t.Fatalf("RequireGroup(B) on a node of A: %v", err)
	}
	if err := s.RequireGroup("A"); err != nil {
		t.Fatal(err)
	}
	// Deploy a certificate of group B over the node's: the reload is
	// refused and the old certificate stays.
	c, k := p.issue("n1-b", inGroup("B"))
	copyFile(t, c, f.Cert)
	copyFile(t, k, f.Key)
	if err := s.Reload(); !errors.Is(err, ErrNotMember) {
		t.Fatalf("reload with another group's certificate: %v", err)
	}
	if got := CertGroups(s.Leaf()); !slices.Equal(got, []string{"A"}) {
		t.Errorf("after the refused reload the node is of %q", got)
	}
}

func TestExtraCA(t *testing.T) {
	nodes, clients := newPKI(t, "nodes"), newPKI(t, "clients")
	sc, sk := nodes.issue("server", inGroup("A"))
	srv := mustLoad(t, Files{Cert: sc, Key: sk, CA: clients.caPath(), ExtraCA: nodes.caPath()})
	for _, p := range []*pki{clients, nodes} {
		cli := mustLoad(t, p.node("c", nil))
		cfg := cli.ClientConfig("127.0.0.1")
		cfg.RootCAs = x509.NewCertPool()
		cfg.RootCAs.AppendCertsFromPEM(mustRead(t, nodes.caPath()))
		r := handshake(t, srv.ServerConfig(tls.RequireAndVerifyClientCert), cfg)
		if r.clientErr != nil || r.serverErr != nil {
			t.Errorf("client of %s: client %v, server %v", p.dir, r.clientErr, r.serverErr)
		}
	}
}
