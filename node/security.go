package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/gossip"
	"github.com/raftmq/raftmq/transport"
	"github.com/raftmq/raftmq/transport/auth"
	"github.com/raftmq/raftmq/transport/tlsconf"
)

// This file wires security into the node: raft over mutual TLS, TLS on
// the admin and client listeners, and who may do what on the client and
// admin connections. The rules themselves live in transport/auth (users
// and rights) and transport/tlsconf (certificates).

// raftStream is raft's stream layer over mutual TLS: a peer must present a
// certificate the group's CA signed that names this group
// (tlsconf.GroupURI), and this node verifies the peer it dials the same
// way, so a node with a foreign certificate, or a node of another group
// under the same CA, neither sends nor receives a single raft message.
type raftStream struct {
	ln        net.Listener  // a TLS listener requiring client certificates
	handshake time.Duration // bounds each peer's handshake: raftHandshakeTimeout
	advertise net.Addr
	dial      func(ctx context.Context, network, addr string) (net.Conn, error) // Node.dialMember
}

// raftHandshakeTimeout bounds a peer's TLS handshake. raft serves each
// accepted connection on its own goroutine and reads it without a
// deadline (heart-beat connections idle), so a handshake that never
// completes would otherwise hold a goroutine and a descriptor for good.
const raftHandshakeTimeout = 10 * time.Second

// Accept returns the next connection; its TLS handshake runs, bounded by
// raftHandshakeTimeout, on raft's goroutine for it, at the first read or
// write, so a slow peer never holds up the accept loop.
func (s *raftStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &boundedHandshake{Conn: c.(*tls.Conn), timeout: s.handshake}, nil
}

func (s *raftStream) Close() error { return s.ln.Close() }

// boundedHandshake is a server-side TLS connection whose handshake, done
// on first use, has a deadline.
type boundedHandshake struct {
	*tls.Conn
	timeout time.Duration
	once    sync.Once
	err     error
}

func (c *boundedHandshake) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		c.err = c.Conn.HandshakeContext(ctx)
	})
	return c.err
}

func (c *boundedHandshake) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *boundedHandshake) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (s *raftStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

// Dial connects to a peer and completes the handshake within timeout, so
// a peer with the wrong certificate fails here, with a clear error, rather
// than in raft's decoding of the first reply.
func (s *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := s.dial(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft peer %s: %w", address, err)
	}
	return c, nil
}

// newTLSRaftTransport is raft's network transport over raftStream.
func (n *Node) newTLSRaftTransport(advertise net.Addr) (*raft.NetworkTransport, error) {
	ln, err := net.Listen("tcp", n.cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("node: raft listener on %s: %w", n.cfg.RaftAddr, err)
	}
	if advertise == nil {
		advertise = ln.Addr()
		if ta, ok := advertise.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
			ln.Close()
			return nil, fmt.Errorf("node: raft address %s: set an advertise address peers can dial", n.cfg.RaftAddr)
		}
	}
	stream := &raftStream{
		ln:        tls.NewListener(ln, n.cfg.TLS.MemberServerConfig(n.cfg.Group)),
		handshake: raftHandshakeTimeout,
		advertise: advertise,
		dial:      n.dialMember,
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  newHCLogger(n.log, "raft.net"),
	}), nil
}

// clientScheme is how clients and other groups reach this group's client
// listener: the scheme of the addresses the node advertises.
func (n *Node) clientScheme() string {
	if n.stompTLS() {
		return "ssl://"
	}
	return "tcp://"
}

// stompTLS reports whether the client listener speaks TLS.
func (n *Node) stompTLS() bool { return n.cfg.TLS != nil && !n.cfg.StompPlaintext }

// listenStomp opens the client listener, TLS when configured.
func (n *Node) listenStomp() (net.Listener, error) {
	ln, err := net.Listen("tcp", n.cfg.StompAddr)
	if err != nil {
		return nil, err
	}
	if n.stompTLS() {
		src := n.cfg.StompTLS
		if src == nil {
			src = n.cfg.TLS
		}
		ln = tls.NewListener(ln, src.ServerConfig(n.cfg.StompClientAuth))
	}
	return ln, nil
}

// authenticate checks a client's CONNECT credentials (transport.Config's
// Authenticate).
func (n *Node) authenticate(login, passcode string) (transport.Principal, error) {
	p, err := n.cfg.Guard.Login(login, passcode)
	if errors.Is(err, auth.ErrBusy) {
		// A reconnect storm after a leader change: tell clients to
		// come back rather than give up.
		return nil, fmt.Errorf("%w (%w)", err, transport.ErrRetryLater)
	}
	if err != nil {
		return nil, err
	}
	return clientPrincipal{n.cfg.Guard, p}, nil
}

// refreshPrincipal is the transport's view of Guard.Refresh: the
// connection's login under the reloaded users file.
func (n *Node) refreshPrincipal(tp transport.Principal) (transport.Principal, error) {
	c, ok := tp.(clientPrincipal)
	if !ok {
		return tp, nil
	}
	p, err := c.g.Refresh(c.p)
	if err != nil {
		return nil, err
	}
	return clientPrincipal{c.g, p}, nil
}

// clientPrincipal is an authenticated client as the transport sees it. Its
// rights are read from the guard's current rules on every frame, so a
// reload applies to connections already open; its groups are those of its
// login until Reload refreshes them (refreshPrincipal).
type clientPrincipal struct {
	g *auth.Guard
	p *auth.Principal
}

func (c clientPrincipal) Name() string {
	if c.p.Anonymous {
		return "anonymous"
	}
	return c.p.User
}
func (c clientPrincipal) MaySend(dest string) bool    { return c.g.Allowed(c.p, dest, auth.Write) }
func (c clientPrincipal) MayReceive(dest string) bool { return c.g.Allowed(c.p, dest, auth.Read) }

// MayBridge needs the broker admin right: a bridge connection makes this
// group's own bridge to the other group stand by.
func (c clientPrincipal) MayBridge() bool { return c.g.Allowed(c.p, auth.BrokerResource, auth.Admin) }

// Scope puts a user's durable subscriptions in a namespace of their own;
// anonymous connections share one.
func (c clientPrincipal) Scope() string {
	if c.p.Anonymous {
		return ""
	}
	return c.p.User
}

// Admin API access. Every request but the probes carries HTTP Basic
// credentials of a user in the users file once authentication is on; the
// route says which right it needs (see newAdmin), and the queue actions
// check the queue's own rights.

type principalKey struct{}

// authenticated checks the credentials of every request but the health
// probes, which orchestrators call without any.
func (a *admin) authenticated(next http.Handler) http.Handler {
	g := a.n.cfg.Guard
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g == nil || !g.Enabled() || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			unauthorized(w, "this broker requires a login: send HTTP Basic credentials of a user in its users file")
			return
		}
		p, err := g.Login(user, pass)
		if err != nil {
			a.n.log.Warn("admin API login failed", "user", user, "remote", r.RemoteAddr, "err", err)
			unauthorized(w, "authentication failed: "+err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// unauthorized asks for credentials. The realm makes a browser opening the
// console show its login dialog.
func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="raftmq", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, msg)
}

// allowed reports whether the request's user holds right on resource (a
// destination, or auth.BrokerResource), and answers 403 when not.
func (a *admin) allowed(w http.ResponseWriter, r *http.Request, resource string, right auth.Right) bool {
	g := a.n.cfg.Guard
	if g == nil || !g.Enabled() {
		return true
	}
	p, _ := r.Context().Value(principalKey{}).(*auth.Principal)
	if p != nil && g.Allowed(p, resource, right) {
		return true
	}
	name := "anonymous"
	if p != nil && !p.Anonymous {
		name = p.User
	}
	what := resource
	if resource == auth.BrokerResource {
		what = "the broker"
	}
	writeError(w, http.StatusForbidden, fmt.Sprintf("user %s has no %s right on %s", name, right, what))
	return false
}

// brokerRight wraps a route that needs a broker-wide right.
func (a *admin) brokerRight(right auth.Right, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.allowed(w, r, auth.BrokerResource, right) {
			h(w, r)
		}
	}
}

// nodeCertified reports whether the request came with a client
// certificate the CA signed for a node of this group: what a node must
// show to join the group once TLS is on, so that a password alone cannot
// add a member whose raft traffic the others would then refuse (a voter
// that never votes).
func (a *admin) nodeCertified(w http.ResponseWriter, r *http.Request) bool {
	if a.n.cfg.TLS == nil {
		return true
	}
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		writeError(w, http.StatusForbidden, "joining a group that uses TLS needs a node certificate signed by the group's CA")
		return false
	}
	if err := tlsconf.VerifyMember(r.TLS.VerifiedChains[0][0], a.n.cfg.Group); err != nil {
		writeError(w, http.StatusForbidden, "joining: "+err.Error())
		return false
	}
	return true
}

// dialMember dials another member of this group over TLS.
func (n *Node) dialMember(ctx context.Context, network, addr string) (net.Conn, error) {
	return n.cfg.TLS.DialMember(ctx, network, addr, n.cfg.Group)
}

// adminScheme is the scheme of the admin API's URLs.
func (n *Node) adminScheme() string {
	if n.cfg.TLS != nil {
		return "https://"
	}
	return "http://"
}

// newAdminClient is the client of calls to other members' admin APIs: TLS
// with this node's certificate when TLS is on, dialled with the current
// certificates each time, so a reload applies to the next connection.
func (n *Node) newAdminClient() *http.Client {
	if n.cfg.TLS == nil {
		return &http.Client{Timeout: forwardTimeout}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Every call goes to a member of this group (joins and discovery
	// included), verified as such rather than by host name.
	tr.DialTLSContext = n.dialMember
	// Members talk directly: through a proxy, HTTPS would bypass
	// DialTLSContext and with it the nodes' CA and this node's certificate.
	tr.Proxy = nil
	return &http.Client{Timeout: forwardTimeout, Transport: tr}
}

// setCredentials puts the credentials of a call to another member on req:
// the caller's own when the call relays its request (the leader checks
// them again), the node's when the node calls for itself (joining).
func (n *Node) setCredentials(req *http.Request, relayed *http.Request) {
	if relayed != nil {
		if h := relayed.Header.Get("Authorization"); h != "" {
			req.Header.Set("Authorization", h)
		}
		return
	}
	if n.cfg.BrokerUser != "" {
		req.SetBasicAuth(n.cfg.BrokerUser, n.cfg.BrokerPassword)
	}
}

// bridgeTLS is the network's source of TLS settings for bridges: this
// node's certificate, presented to brokers that ask for one, and the CA
// that verifies theirs. The failover client sets each address's server
// name.
func (n *Node) bridgeTLS() func() *tls.Config {
	if n.cfg.TLS == nil {
		return nil
	}
	return func() *tls.Config { return n.cfg.TLS.ClientConfig("") }
}

// Reload reads again what the node was configured with from files, for
// SIGHUP: the TLS certificates and CAs, the users and rights, and the
// gossip keyring. Each part that fails keeps what it had and is reported;
// the others still apply. Connections already open keep their TLS
// session; their next frames are checked against the new rights, and those
// whose user is gone, whose password changed, or whose subscriptions the
// new rights no longer allow are closed.
func (n *Node) Reload() error {
	var errs []error
	if n.cfg.TLS != nil {
		if err := n.cfg.TLS.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("reload TLS: %w", err))
		} else {
			n.log.Info("TLS certificates reloaded", "not_after", n.cfg.TLS.NotAfter())
		}
	}
	if n.cfg.StompTLS != nil {
		if err := n.cfg.StompTLS.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("reload client listener TLS: %w", err))
		}
	}
	if n.cfg.Guard != nil {
		if err := n.cfg.Guard.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("reload users and rights: %w", err))
		} else {
			closed := 0
			if t := n.servingTerm(); t != nil && t.srv != nil {
				closed = t.srv.Recheck(n.refreshPrincipal)
			}
			n.log.Info("users and rights reloaded", "connections_closed", closed)
		}
	}
	if n.cfg.GossipKeyring != "" && n.pool != nil {
		keys, err := gossip.LoadKeyring(n.cfg.GossipKeyring)
		if err == nil {
			err = n.pool.SetKeys(keys)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reload gossip keyring: %w", err))
		}
	}
	return errors.Join(errs...)
}
