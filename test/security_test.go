package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/auth"
	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/failover"
	"github.com/raftmq/raftmq/transport/stomp"
	"github.com/raftmq/raftmq/transport/tlsconf"
)

// Security through the wire (SECURITY.md): TLS on every listener, logins,
// rights per destination, and what a broker does with clients that do not
// belong. Every refusal is checked from the client's side, and after each
// the broker still serves a well-behaved client.

// pki is a development PKI for one test: the nodes' CA, a CA for client
// certificates, and a foreign CA nobody trusts.
type pki struct {
	t                    testing.TB
	dir                  string
	nodes, clients, evil string // CA directories
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{t: t, dir: dir, nodes: filepath.Join(dir, "nodes"), clients: filepath.Join(dir, "clients"), evil: filepath.Join(dir, "evil")}
	for _, ca := range []string{p.nodes, p.clients, p.evil} {
		if err := tlsconf.NewCA(ca, filepath.Base(ca)+"-ca", 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// issue makes a certificate signed by the CA in caDir; a node certificate
// (group set) names its group and serves 127.0.0.1 and localhost.
func (p *pki) issue(caDir, name, group string, notBefore time.Time, validity time.Duration) (cert, key string) {
	p.t.Helper()
	node := group != ""
	req := tlsconf.CertRequest{CADir: caDir, OutDir: caDir, Name: name, Validity: validity, NotBefore: notBefore, Client: true, Server: node, Group: group}
	if node {
		req.Hosts = []string{"127.0.0.1", "localhost"}
	}
	cert, key, err := tlsconf.IssueCert(req)
	if err != nil {
		p.t.Fatal(err)
	}
	return cert, key
}

// nodeFlags are the TLS flags of a node of group with certificate name.
func (p *pki) nodeFlags(group, name string) []string {
	cert, key := p.issue(p.nodes, name, group, time.Time{}, time.Hour)
	return []string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", filepath.Join(p.nodes, tlsconf.CACertFile)}
}

// clientTLS trusts the nodes' CA and, when cert is set, presents it.
func (p *pki) clientTLS(cert, key string) *tls.Config {
	p.t.Helper()
	return p.tlsTrusting(p.nodes, cert, key)
}

func (p *pki) tlsTrusting(caDir, cert, key string) *tls.Config {
	p.t.Helper()
	pem, err := os.ReadFile(filepath.Join(caDir, tlsconf.CACertFile))
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			p.t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{kp}
	}
	return c
}

// writeFile writes a test's configuration file and returns its path.
func writeFile(t testing.TB, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// usersFile writes a users file; users maps "name" to "password groups".
func usersFile(t testing.TB, users map[string][2]string) string {
	t.Helper()
	var b strings.Builder
	for name, pw := range users {
		h, err := auth.HashPassword(pw[0], 4) // bcrypt's minimum cost keeps tests fast
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s %s\n", name, h, pw[1])
	}
	return writeFile(t, "users", b.String())
}

// tlsRaw dials addr over TLS and returns a raw STOMP connection.
func tlsRaw(t testing.TB, addr string, conf *tls.Config) (*rawConn, error) {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: waitLong}, Config: conf}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := nc.(*tls.Conn).HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: stomp.NewReader(nc, stomp.Limits{}), w: stomp.NewWriter(nc)}, nil
}

// connectAs performs CONNECT on c with a login and returns the answer.
func (c *rawConn) connectAs(login, passcode string) *stomp.Frame {
	c.t.Helper()
	h := []string{"accept-version", "1.2", "host", "localhost"}
	if login != "" {
		h = append(h, "login", login, "passcode", passcode)
	}
	c.write(frame(stomp.CONNECT, "", h...))
	f := c.read()
	if f.Command == stomp.CONNECTED {
		c.r.SetVersion(stomp.V12)
		c.w.SetVersion(stomp.V12)
	}
	return f
}

const securityACL = `
# kind  pattern     rights
queue   >           read=admins write=admins admin=admins
topic   >           read=admins write=admins admin=admins
queue   orders.>    read=consumers write=producers
queue   public.*    read=*
topic   prices      read=anonymous
broker  *           read=admins,ops admin=admins
`

// TestSecurity runs one broker with TLS everywhere, users and rights,
// and walks every refusal through the wire.
func TestSecurity(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	users := usersFile(t, map[string][2]string{
		"admin":  {"admin-pw", "admins"},
		"app":    {"app-pw", "producers,consumers"},
		"writer": {"writer-pw", "producers"},
		"ops":    {"ops-pw", "ops"},
	})
	aclPath := writeFile(t, "acl", securityACL)
	flags := append(p.nodeFlags("default", "n1"), "--users", users, "--acl", aclPath)
	s := StartServer(t, raftmqBin, t.TempDir(), flags...)
	tlsOK := p.clientTLS("", "")
	admin := api{t: t, addr: s.HTTP, access: Access{Client: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsOK}}, User: "admin", Password: "admin-pw"}}

	// A well-behaved client: TLS and the right password.
	good := func() {
		t.Helper()
		c := dialClient(t, s.Stomp, client.Options{TLS: tlsOK, Login: "app", Passcode: "app-pw"})
		body := fmt.Sprintf("ok-%d", time.Now().UnixNano())
		sendR(t, c, "/queue/orders.good", body)
		sub := subscribe(t, c, "/queue/orders.good", "auto")
		if got := recv(t, sub); string(got.Body) != body {
			t.Fatalf("received %q, want %q", got.Body, body)
		}
		c.Close()
	}
	good()

	t.Run("bad credentials", func(t *testing.T) {
		for _, cred := range [][2]string{{"app", "wrong"}, {"nobody", "app-pw"}, {"", ""}} {
			c, err := tlsRaw(t, s.Stomp, tlsOK)
			if err != nil {
				t.Fatal(err)
			}
			h := []string{"accept-version", "1.2", "host", "localhost", "receipt", "c1"}
			if cred[0] != "" {
				h = append(h, "login", cred[0], "passcode", cred[1])
			}
			c.write(frame(stomp.CONNECT, "", h...))
			e := c.expectError("authentication failed", "c1")
			if cred[0] != "" && !strings.Contains(string(e.Body), "bad login or passcode") {
				t.Errorf("login %q: ERROR body %q does not say bad login or passcode", cred[0], e.Body)
			}
		}
		good()
	})

	t.Run("forbidden send enqueues nothing", func(t *testing.T) {
		c, err := tlsRaw(t, s.Stomp, tlsOK)
		if err != nil {
			t.Fatal(err)
		}
		if f := c.connectAs("app", "app-pw"); f.Command != stomp.CONNECTED {
			t.Fatalf("CONNECT: %s %q", f.Command, f.Body)
		}
		c.write(frame(stomp.SEND, "secret", "destination", "/queue/payroll", "receipt", "s1"))
		c.expectError("user app is not authorized to write to /queue/payroll", "s1")
		// Inside a transaction too: refused at the SEND.
		c2, _ := tlsRaw(t, s.Stomp, tlsOK)
		c2.connectAs("app", "app-pw")
		c2.write(frame(stomp.BEGIN, "", "transaction", "tx1"))
		c2.write(frame(stomp.SEND, "secret", "destination", "/queue/payroll", "transaction", "tx1", "receipt", "s2"))
		c2.expectError("not authorized to write", "s2")
		var list node.DestinationList
		admin.ok(200, "GET", "/api/v1/destinations", "", &list)
		for _, d := range list.Destinations {
			if d.Name == "/queue/payroll" && (d.Pending != 0 || d.Enqueued != 0) {
				t.Fatalf("payroll after refused sends: %+v", d)
			}
		}
		good()
	})

	t.Run("subscribe without read right", func(t *testing.T) {
		c, _ := tlsRaw(t, s.Stomp, tlsOK)
		c.connectAs("writer", "writer-pw")
		c.write(frame(stomp.SEND, "x", "destination", "/queue/orders.w", "receipt", "r1"))
		c.expectReceipt("r1")
		c.write(frame(stomp.SUBSCRIBE, "", "destination", "/queue/orders.w", "id", "1", "receipt", "r2"))
		c.expectError("user writer is not authorized to read from /queue/orders.w", "r2")
		// The message it could not take is still there.
		if d := admin.destination("/queue/orders.w"); d.Pending != 1 {
			t.Fatalf("orders.w after the refused SUBSCRIBE: %+v", d)
		}
		good()
	})

	t.Run("posing as a bridge", func(t *testing.T) {
		c, _ := tlsRaw(t, s.Stomp, tlsOK)
		c.write(frame(stomp.CONNECT, "", "accept-version", "1.2", "host", "localhost",
			"login", "app", "passcode", "app-pw", "raftmq-bridge-group", "other", "receipt", "b1"))
		c.expectError("user app is not authorized to connect as a bridge", "b1")
		good()
	})

	t.Run("plaintext client on the TLS port", func(t *testing.T) {
		c := rawDial(t, s.Stomp, stomp.Limits{})
		c.write(frame(stomp.CONNECT, "", "accept-version", "1.2", "host", "localhost"))
		c.expectError("this port speaks TLS", "")
		good()
	})

	t.Run("untrusted server certificate", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		_, err := failover.Dial(ctx, "failover:(ssl://"+s.Stomp+")?startupMaxReconnectAttempts=0",
			failover.Options{TLS: p.tlsTrusting(p.evil, "", ""), Login: "app", Passcode: "app-pw"})
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("dial trusting another CA: %v, want a certificate error", err)
		}
		good()
	})

	t.Run("admin API", func(t *testing.T) {
		anon := api{t: t, addr: s.HTTP, access: Access{Client: admin.access.Client}}
		code, _ := anon.do("GET", "/api/v1/destinations", "")
		if code != 401 {
			t.Errorf("no credentials: %d, want 401", code)
		}
		wrong := api{t: t, addr: s.HTTP, access: Access{Client: admin.access.Client, User: "admin", Password: "nope"}}
		wrong.fails(401, "GET", "/api/v1/destinations", "", "authentication failed")
		app := api{t: t, addr: s.HTTP, access: Access{Client: admin.access.Client, User: "app", Password: "app-pw"}}
		app.fails(403, "GET", "/api/v1/destinations", "", "user app has no read right on the broker")
		app.fails(403, "POST", "/api/v1/queues/orders.w/purge", "", "user app has no admin right on /queue/orders.w")
		ops := api{t: t, addr: s.HTTP, access: Access{Client: admin.access.Client, User: "ops", Password: "ops-pw"}}
		ops.ok(200, "GET", "/api/v1/destinations", "", nil)
		ops.fails(403, "POST", "/api/v1/queues/orders.w/purge", "", "no admin right")
		ops.fails(403, "GET", "/api/v1/queues/orders.w/messages", "", "no read right on /queue/orders.w")
		// Scheduled messages: the broker read right lists them, removing
		// one needs the admin right on its destination.
		c, _ := tlsRaw(t, s.Stomp, tlsOK)
		c.connectAs("writer", "writer-pw")
		c.write(frame(stomp.SEND, "later", "destination", "/queue/orders.w", "AMQ_SCHEDULED_DELAY", "3600000", "receipt", "sched"))
		c.expectReceipt("sched")
		var sched node.ScheduledList
		ops.ok(200, "GET", "/api/v1/scheduled?destination=/queue/orders.w", "", &sched)
		if len(sched.Messages) != 1 {
			t.Fatalf("scheduled for orders.w: %+v", sched)
		}
		job := "/api/v1/scheduled/" + url.PathEscape(sched.Messages[0].JobID)
		app.fails(403, "GET", "/api/v1/scheduled", "", "no read right on the broker")
		app.fails(403, "DELETE", job, "", "no read right on the broker") // before it looks the job up
		ops.fails(403, "DELETE", job, "", "user ops has no admin right on /queue/orders.w")
		admin.ok(200, "DELETE", job, "", nil)
		// Over STOMP it is ActiveMQ's management topic, and its write right.
		c.write(frame(stomp.SEND, "", "destination", queue.SchedulerManagement, "AMQ_SCHEDULER_ACTION", "REMOVEALL", "receipt", "m1"))
		c.expectError("user writer is not authorized to write to "+queue.SchedulerManagement, "m1")
		// Probes need no login; the console asks the browser for one.
		anon.ok(200, "GET", "/healthz", "", nil)
		code, _ = anon.do("GET", "/", "")
		if code != 401 {
			t.Errorf("console without credentials: %d, want 401", code)
		}
		// Plain HTTP on the HTTPS port.
		resp, err := http.Get("http://" + s.HTTP + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 400 {
				t.Errorf("plain HTTP on the HTTPS port: %s, want 400", resp.Status)
			}
		}
		admin.ok(200, "POST", "/api/v1/queues/orders.w/purge", "", nil)
	})

	t.Run("reload rights on SIGHUP", func(t *testing.T) {
		c, _ := tlsRaw(t, s.Stomp, tlsOK)
		c.connectAs("writer", "writer-pw")
		if err := os.WriteFile(aclPath, []byte(securityACL+"queue payroll write=producers\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := s.CountLog("users and rights reloaded")
		if err := syscall.Kill(s.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		Eventually(t, waitLong, "the reload", func() bool { return s.CountLog("users and rights reloaded") > before })
		// The connection opened before the reload gets the new right.
		c.write(frame(stomp.SEND, "now allowed", "destination", "/queue/payroll", "receipt", "p1"))
		c.expectReceipt("p1")
		// A broken file keeps the rules in force.
		if err := os.WriteFile(aclPath, []byte("queue payroll bogus=x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		failed := s.CountLog("reload on SIGHUP failed")
		syscall.Kill(s.Pid(), syscall.SIGHUP)
		Eventually(t, waitLong, "the failed reload", func() bool { return s.CountLog("reload on SIGHUP failed") > failed })
		c.write(frame(stomp.SEND, "still allowed", "destination", "/queue/payroll", "receipt", "p2"))
		c.expectReceipt("p2")
		good()
	})

	// A reload cuts what it no longer admits: a removed user's
	// connection, and a subscription whose read right was withdrawn (app
	// leaves the consumers group). Others carry on.
	t.Run("reload revokes open connections", func(t *testing.T) {
		if err := os.WriteFile(aclPath, []byte(securityACL), 0o600); err != nil {
			t.Fatal(err)
		}
		original, err := os.ReadFile(users)
		if err != nil {
			t.Fatal(err)
		}
		consumer, _ := tlsRaw(t, s.Stomp, tlsOK)
		consumer.connectAs("app", "app-pw")
		consumer.write(frame(stomp.SUBSCRIBE, "", "id", "1", "destination", "/queue/orders.revoked", "receipt", "s1"))
		consumer.expectReceipt("s1")
		removed, _ := tlsRaw(t, s.Stomp, tlsOK)
		removed.connectAs("writer", "writer-pw")
		stays, _ := tlsRaw(t, s.Stomp, tlsOK)
		stays.connectAs("admin", "admin-pw")
		// A temporary queue needs no right, before a reload or after.
		replies, _ := tlsRaw(t, s.Stomp, tlsOK)
		replies.connectAs("ops", "ops-pw")
		replies.write(frame(stomp.SUBSCRIBE, "", "id", "r", "destination", "/temp-queue/replies", "receipt", "t1"))
		replies.expectReceipt("t1")

		// The same password hashes: a changed hash is a changed
		// password, which ends a login too.
		var next strings.Builder
		for _, line := range strings.Split(strings.TrimSpace(string(original)), "\n") {
			fields := strings.Fields(line)
			switch fields[0] {
			case "writer":
				continue
			case "app":
				fields[2] = "producers"
			}
			next.WriteString(strings.Join(fields, " ") + "\n")
		}
		if err := os.WriteFile(users, []byte(next.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		before := s.CountLog("users and rights reloaded")
		if err := syscall.Kill(s.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		Eventually(t, waitLong, "the reload", func() bool { return s.CountLog("users and rights reloaded") > before })
		removed.expectError("user writer is no longer admitted", "")
		consumer.expectError("user app is no longer authorized to read from /queue/orders.revoked", "")
		stays.write(frame(stomp.SEND, "after the revocation", "destination", "/queue/orders.revoked", "receipt", "r1"))
		stays.expectReceipt("r1")
		replies.write(frame(stomp.SEND, "still here", "destination", "/temp-queue/replies"))
		if m := replies.expect(stomp.MESSAGE); string(m.Body) != "still here" {
			t.Errorf("temporary queue after the reload: %q", m.Body)
		}
		// What was sent stays for a consumer the rules admit.
		if q := admin.destination("/queue/orders.revoked"); q.Pending != 1 {
			t.Errorf("orders.revoked after the revocation: %+v, want the message pending", q)
		}
		if err := os.WriteFile(users, original, 0o600); err != nil {
			t.Fatal(err)
		}
		syscall.Kill(s.Pid(), syscall.SIGHUP)
		good()
	})
}

// TestClientCertificates requires client certificates on the STOMP
// listener: one from the clients' CA gets in, an expired one, one from
// an unknown CA and none at all do not.
func TestClientCertificates(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	flags := append(p.nodeFlags("default", "n1"), "--stomp-client-certs", "require", "--stomp-client-ca", filepath.Join(p.clients, tlsconf.CACertFile))
	s := StartServer(t, raftmqBin, t.TempDir(), flags...)

	okCert, okKey := p.issue(p.clients, "app", "", time.Time{}, time.Hour)
	expCert, expKey := p.issue(p.clients, "old", "", time.Now().Add(-48*time.Hour), 24*time.Hour)
	evilCert, evilKey := p.issue(p.evil, "intruder", "", time.Time{}, time.Hour)
	// The nodes' CA is trusted next to the clients': bridges from other
	// groups present node certificates.
	nodeCert, nodeKey := p.issue(p.nodes, "n9", "other", time.Time{}, time.Hour)

	for _, good := range []struct{ name, cert, key string }{
		{"client CA", okCert, okKey},
		{"node CA", nodeCert, nodeKey},
	} {
		c, err := tlsRaw(t, s.Stomp, p.clientTLS(good.cert, good.key))
		if err != nil {
			t.Fatalf("valid client certificate (%s): %v", good.name, err)
		}
		if f := c.connectAs("", ""); f.Command != stomp.CONNECTED {
			t.Fatalf("valid client certificate (%s): %s %q", good.name, f.Command, f.Body)
		}
	}
	for _, bad := range []struct{ name, cert, key string }{
		{"expired", expCert, expKey},
		{"unknown CA", evilCert, evilKey},
		{"no certificate", "", ""},
	} {
		c, err := tlsRaw(t, s.Stomp, p.clientTLS(bad.cert, bad.key))
		if err == nil {
			// TLS 1.3 finishes the client's side of the handshake before
			// the server judges its certificate: the refusal comes as an
			// alert on the first read.
			c.write(frame(stomp.CONNECT, "", "accept-version", "1.2", "host", "localhost"))
			c.nc.SetReadDeadline(time.Now().Add(waitLong))
			_, err = c.r.ReadFrame()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: %v, want a certificate error", bad.name, err)
		}
	}
	Eventually(t, waitLong, "the server to log 3 failed handshakes", func() bool { return s.CountLog("TLS handshake failed") >= 3 })
	c2, err := tlsRaw(t, s.Stomp, p.clientTLS(okCert, okKey))
	if err != nil {
		t.Fatal(err)
	}
	if f := c2.connectAs("", ""); f.Command != stomp.CONNECTED {
		t.Fatalf("after the refusals: %s %q", f.Command, f.Body)
	}
}

// TestTLSGroup forms a three-node group over mutual TLS, serves clients
// through an ssl:// failover list, and keeps out a node whose certificate
// another CA signed.
func TestTLSGroup(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	users := usersFile(t, map[string][2]string{"admin": {"admin-pw", "admins"}, "node": {"node-pw", "admins"}})
	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS("", "")}}
	names := []string{"n1", "n2", "n3"}
	g := StartGroupWith(t, raftmqBin, GroupOptions{
		Extra: []string{"--users", users, "--broker-user", "node", "--broker-password", "node-pw"},
		NodeExtra: func(i int) []string {
			return p.nodeFlags("g", names[i])
		},
		Access: Access{Client: httpc, User: "admin", Password: "admin-pw"},
	})
	leader := g.WaitLeader(30 * time.Second)

	// Clients through an ssl:// failover list.
	var addrs []string
	for _, s := range g.Nodes {
		addrs = append(addrs, "ssl://"+s.Stomp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	fc, err := failover.Dial(ctx, "failover:("+strings.Join(addrs, ",")+")?randomize=false",
		failover.Options{TLS: p.clientTLS("", ""), Login: "admin", Passcode: "admin-pw"})
	if err != nil {
		t.Fatalf("failover over TLS: %v", err)
	}
	defer fc.Close()
	if brokers := fc.Connected().Get(node.BrokersHeader); !strings.Contains(brokers, "ssl://") {
		t.Errorf("CONNECTED lists %q, want ssl:// addresses", brokers)
	}
	if err := fc.Send(ctx, "/queue/tls", []byte("over mutual TLS")); err != nil {
		t.Fatalf("send: %v", err)
	}

	// An intruder with a foreign certificate (and even the right
	// password) cannot join.
	evilCert, evilKey := p.issue(p.evil, "n4", "g", time.Time{}, time.Hour)
	intruder := g.newNode(3, fmt.Sprintf("127.0.0.1:%d", FreePort(t)), []string{"--join", g.Nodes[leader].HTTP,
		"--users", users, "--broker-user", "node", "--broker-password", "node-pw",
		"--tls-cert", evilCert, "--tls-key", evilKey, "--tls-ca", filepath.Join(p.evil, tlsconf.CACertFile)})
	intruder.Start()
	Eventually(t, 30*time.Second, "the intruder's join to fail on the certificate", func() bool {
		return intruder.CountLog("certificate") > 0
	})
	// Nor can a node whose certificate is right but whose raft traffic
	// comes from another CA: dial the leader's raft port directly.
	var members []node.Member
	if err := g.Access.getJSON(g.Nodes[leader].HTTP, "/api/v1/members", &members); err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Fatalf("members after the intruder tried: %+v", members)
	}
	for _, m := range members {
		conn, err := tls.Dial("tcp", m.RaftAddr, p.tlsTrusting(p.nodes, evilCert, evilKey))
		if err == nil {
			// The server's verdict on our certificate arrives on read.
			conn.SetReadDeadline(time.Now().Add(waitLong))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("raft port of %s with a foreign certificate: %v, want a certificate error", m.ID, err)
		}
	}

	// A node of another group, under the same CA, is no member either:
	// its certificate names group "other", and raft ports and joins check
	// the name. Nor does the binary start as a member of "g" with it.
	otherCert, otherKey := p.issue(p.nodes, "o1", "other", time.Time{}, time.Hour)
	for _, m := range members {
		conn, err := tls.Dial("tcp", m.RaftAddr, p.tlsTrusting(p.nodes, otherCert, otherKey))
		if err == nil {
			conn.SetReadDeadline(time.Now().Add(waitLong))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("raft port of %s with another group's certificate: %v, want a certificate error", m.ID, err)
		}
	}
	body, _ := json.Marshal(node.JoinRequest{ID: "o1", Group: "g", RaftAddr: "127.0.0.1:1", StompAddr: "127.0.0.1:2", HTTPAddr: "127.0.0.1:3"})
	req, _ := http.NewRequest(http.MethodPost, "https://"+g.Nodes[leader].HTTP+"/api/v1/members", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("node", "node-pw")
	otherHTTP := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS(otherCert, otherKey)}}
	if resp, err := otherHTTP.Do(req); err != nil {
		t.Errorf("join with another group's certificate: %v", err)
	} else {
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(msg), `node of other`) {
			t.Errorf("join with another group's certificate: %d %s, want 403 naming the group", resp.StatusCode, msg)
		}
	}
	startCtx, stop := context.WithTimeout(ctx, waitLong)
	defer stop()
	out, err := exec.CommandContext(startCtx, raftmqBin, "server", "--id", "o1", "--group", "g", "--data", t.TempDir(), "--stomp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0",
		"--tls-cert", otherCert, "--tls-key", otherKey, "--tls-ca", filepath.Join(p.nodes, tlsconf.CACertFile)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `node of other, not of "g"`) {
		t.Errorf("starting group g with another group's certificate: %v %s", err, out)
	}
	if err := g.Access.getJSON(g.Nodes[leader].HTTP, "/api/v1/members", &members); err != nil || len(members) != 3 {
		t.Errorf("members after another group's node tried: %+v %v", members, err)
	}
	if err := fc.Send(ctx, "/queue/tls", []byte("still serving")); err != nil {
		t.Fatalf("send after the intruder: %v", err)
	}
}

// TestSecureBridge links two groups that both require TLS and logins: the
// bridge authenticates as the configured broker user over TLS and moves
// messages; a bridge whose password is wrong moves none and loses none.
func TestSecureBridge(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	users := usersFile(t, map[string][2]string{
		"admin":  {"admin-pw", "admins"},
		"bridge": {"bridge-pw", "bridges"},
		"app":    {"app-pw", "apps"},
	})
	acl := writeFile(t, "acl", `
queue   >          read=admins,bridges,apps write=admins,bridges,apps admin=admins
topic   raftmq.>   read=bridges
broker  *          read=admins admin=admins,bridges
`)
	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: p.clientTLS("", "")}}
	access := Access{Client: httpc, User: "admin", Password: "admin-pw"}
	common := []string{"--users", users, "--acl", acl, "--broker-user", "bridge"}
	start := func(name, password string, extra ...string) *Group {
		return StartGroupWith(t, raftmqBin, GroupOptions{
			Name: name, Size: 1, Access: access,
			Extra:     append(append(append([]string{}, common...), "--broker-password", password), extra...),
			NodeExtra: func(int) []string { return p.nodeFlags(name, name) },
		})
	}
	b := start("B", "bridge-pw")
	link := "static:(ssl://" + b.Nodes[0].Stomp + ")"
	a := start("A", "bridge-pw", "--network", link)
	a.WaitBridge(networkWait, "B", "outbound", nil)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := failover.Options{TLS: p.clientTLS("", ""), Login: "app", Passcode: "app-pw"}
	cons, err := failover.Dial(ctx, "ssl://"+b.Nodes[0].Stomp, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	sub, err := cons.Subscribe(ctx, "/queue/bridged", "client-individual")
	if err != nil {
		t.Fatal(err)
	}
	prod, err := failover.Dial(ctx, "ssl://"+a.Nodes[0].Stomp, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range 20 {
		if err := prod.Send(ctx, "/queue/bridged", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		select {
		case m := <-sub.C():
			if err := cons.Ack(m, ""); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("received %d of 20 on B across the bridge", i)
		}
	}

	// A third group whose bridge logs in with the wrong password.
	c := start("C", "wrong-pw", "--network", link)
	Eventually(t, networkWait, "C's bridge to fail on its login", func() bool {
		st, err := c.NetworkStatus()
		if err != nil {
			return false
		}
		br := FindBridge(st, "", "outbound")
		return br != nil && strings.Contains(br.LastError, "authentication failed")
	})
	cprod, err := failover.Dial(ctx, "ssl://"+c.Nodes[0].Stomp, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cprod.Close()
	if err := cprod.Send(ctx, "/queue/bridged", []byte("kept on C")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(quiet)
	var list node.DestinationList
	if err := access.getJSON(c.Nodes[0].HTTP, "/api/v1/destinations", &list); err != nil {
		t.Fatal(err)
	}
	for _, d := range list.Destinations {
		if d.Name == "/queue/bridged" && d.Pending != 1 {
			t.Fatalf("C's queue behind a refused bridge: %+v, want the message kept", d)
		}
	}
}
