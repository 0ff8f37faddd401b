package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
)

// Group is a raft group of `raftmq server` processes on loopback, formed
// with -bootstrap-expect. Nodes[i] keeps its ports and data across
// restarts.
type Group struct {
	t      testing.TB
	bin    string
	Name   string
	Nodes  []*Server
	joins  []string
	Access Access
}

// Access is how a test reaches admin APIs that require TLS or a login.
// The zero value is plain HTTP without credentials.
type Access struct {
	// Client, when set, makes the requests over HTTPS with its TLS
	// settings.
	Client         *http.Client
	User, Password string
}

// URL is the admin API's URL of uri at addr.
func (a Access) URL(addr, uri string) string {
	if a.Client != nil {
		return "https://" + addr + uri
	}
	return "http://" + addr + uri
}

// Do sends req, with the credentials.
func (a Access) Do(req *http.Request) (*http.Response, error) {
	if a.User != "" {
		req.SetBasicAuth(a.User, a.Password)
	}
	c := a.Client
	if c == nil {
		c = http.DefaultClient
	}
	return c.Do(req)
}

// StartGroup starts size processes that form one group, and waits until
// one of them serves clients. Extra flags go to every node.
func StartGroup(t testing.TB, bin string, size int, extra ...string) *Group {
	t.Helper()
	return StartGroupWith(t, bin, GroupOptions{Size: size, Extra: extra})
}

// GroupOptions describe a group for StartGroupWith.
type GroupOptions struct {
	// Name is the group's --group name ("g" when empty); the groups of a
	// network need distinct names.
	Name string
	// Size is the number of nodes (3 when 0).
	Size int
	// Extra flags go to every node.
	Extra []string
	// NodeExtra, when set, gives flags for node i alone (after Extra),
	// such as its own --gossip address.
	NodeExtra func(i int) []string
	// Access reaches the nodes' admin APIs, when they use TLS or logins.
	Access Access
}

// StartGroupWith starts the group o describes, and waits until one of its
// nodes serves clients.
func StartGroupWith(t testing.TB, bin string, o GroupOptions) *Group {
	t.Helper()
	if o.Name == "" {
		o.Name = "g"
	}
	if o.Size == 0 {
		o.Size = 3
	}
	g := &Group{t: t, bin: bin, Name: o.Name, Access: o.Access}
	for range o.Size {
		g.joins = append(g.joins, fmt.Sprintf("127.0.0.1:%d", FreePort(t)))
	}
	for i := range o.Size {
		var flags []string
		if o.Size > 1 { // a single node forms its group alone
			flags = []string{"--bootstrap-expect", fmt.Sprint(o.Size), "--join", strings.Join(g.joins, ",")}
		}
		flags = append(flags, o.Extra...)
		if o.NodeExtra != nil {
			flags = append(flags, o.NodeExtra(i)...)
		}
		g.Nodes = append(g.Nodes, g.newNode(i, g.joins[i], flags))
	}
	for _, s := range g.Nodes {
		s.Start()
	}
	g.WaitLeader(30 * time.Second)
	return g
}

// newNode prepares node i (not started) with its own ports and data.
func (g *Group) newNode(i int, httpAddr string, extra []string) *Server {
	dir := filepath.Join(g.t.TempDir(), fmt.Sprintf("n%d", i+1))
	s := &Server{
		t:       g.t,
		bin:     g.bin,
		DataDir: dir,
		Stomp:   fmt.Sprintf("127.0.0.1:%d", FreePort(g.t)),
		HTTP:    httpAddr,
		ready:   adminRE,
	}
	s.args = append([]string{"server",
		"--id", fmt.Sprintf("n%d", i+1),
		"--group", g.Name,
		"--data", dir,
		"--stomp", s.Stomp,
		"--raft", fmt.Sprintf("127.0.0.1:%d", FreePort(g.t)),
		"--http", s.HTTP,
	}, extra...)
	g.t.Cleanup(s.Stop)
	return s
}

// AddNode starts one more node that joins the group through the first
// node's admin address (any member would do), and returns it.
func (g *Group) AddNode(extra ...string) *Server {
	g.t.Helper()
	i := len(g.Nodes)
	s := g.newNode(i, fmt.Sprintf("127.0.0.1:%d", FreePort(g.t)), append([]string{"--join", g.joins[0]}, extra...))
	g.Nodes = append(g.Nodes, s)
	s.Start()
	return s
}

// Info asks node i about itself.
func (g *Group) Info(i int) (node.NodeInfo, error) {
	var info node.NodeInfo
	err := g.Access.getJSON(g.Nodes[i].HTTP, "/api/v1/node", &info)
	return info, err
}

// Leader returns the index of the node that serves clients, or -1.
func (g *Group) Leader() int {
	for i, s := range g.Nodes {
		if !s.Running() {
			continue
		}
		if info, err := g.Info(i); err == nil && info.Serving && info.State == "Leader" {
			return i
		}
	}
	return -1
}

// WaitLeader waits until a node serves clients and returns its index.
func (g *Group) WaitLeader(timeout time.Duration) int {
	g.t.Helper()
	leader := -1
	Eventually(g.t, timeout, "a serving leader", func() bool {
		leader = g.Leader()
		return leader >= 0
	})
	return leader
}

// URL is a failover URL listing every node's client address, with opts
// (such as "randomize=false") as its query.
func (g *Group) URL(opts string) string {
	addrs := make([]string, len(g.Nodes))
	for i, s := range g.Nodes {
		addrs[i] = "tcp://" + s.Stomp
	}
	u := "failover:(" + strings.Join(addrs, ",") + ")"
	if opts != "" {
		u += "?" + opts
	}
	return u
}

// HTTPAddrs lists the admin addresses, comma-separated, for the CLI.
func (g *Group) HTTPAddrs() string {
	addrs := make([]string, len(g.Nodes))
	for i, s := range g.Nodes {
		addrs[i] = s.HTTP
	}
	return strings.Join(addrs, ",")
}

func getJSON(addr, uri string, v any) error { return Access{}.getJSON(addr, uri, v) }

func (a Access) getJSON(addr, uri string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL(addr, uri), nil)
	if err != nil {
		return err
	}
	resp, err := a.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s%s: %s", addr, uri, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
