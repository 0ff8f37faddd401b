package auth

import (
	"strings"
	"testing"
)

// testACL is the package documentation's example and a few more entries.
const testACL = `
# kind   pattern      rights
queue    >            read=admins write=admins admin=admins
queue    orders.>     read=consumers write=producers
topic    prices.*     read=*  write=user:feed
broker   *            read=ops,admins admin=admins
queue    public.*     read=anonymous write=anonymous,user:app   # trailing comment
queue    a#b          write=producers
topic    >            admin=user:topicadmin
queue    orders.audit read=auditors
`

func TestParseACLErrors(t *testing.T) {
	cases := []struct {
		name, in string
		line     int
		want     string
	}{
		{"unknown kind", "# c\nqueues a read=x\n", 2, `unknown kind "queues"`},
		{"kind case", "Queue a read=x\n", 1, "unknown kind"},
		{"no pattern", "queue\n", 1, "without a pattern"},
		{"no rights", "queue a\n", 1, "no rights"},
		{"no rights but a comment", "queue a #read=x\n", 1, "no rights"},
		{"bad pattern", "queue a..b read=x\n", 1, "empty element"},
		{"bad pattern >", "topic >.a read=x\n", 1, "> must be the last element"},
		{"bad pattern *", "queue a* read=x\n", 1, "whole elements"},
		{"broker pattern", "broker a read=x\n", 1, "want * or >"},
		{"broker write", "broker * write=x\n", 1, "read and admin only"},
		{"unknown right", "queue a read=x browse=y\n", 1, `unknown right "browse"`},
		{"right case", "queue a Read=x\n", 1, "unknown right"},
		{"no equals", "queue a read\n", 1, `"read": want`},
		{"right twice", "queue a read=x read=y\n", 1, "read= given twice"},
		{"empty list", "queue a write=\n", 1, "empty principal list"},
		{"empty principal", "queue a read=x,,y\n", 1, `empty principal in "x,,y"`},
		{"trailing comma", "queue a read=x,\n", 1, "empty principal"},
		{"bad group", "queue a read=x/y\n", 1, `bad principal "x/y"`},
		{"empty user", "queue a read=user:\n", 1, `bad principal "user:"`},
		{"bad user", "queue a read=user:a:b\n", 1, `bad principal "user:a:b"`},
		{"star in a name", "queue a read=ad*\n", 1, "bad principal"},
		{"spaces in list", "queue a read=x, y\n", 1, "without spaces"},
		{"line too long", "queue a read=" + strings.Repeat("x", maxLine) + "\n", 1, "longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseACL(strings.NewReader(c.in), "acl.txt")
			checkParseError(t, err, "acl.txt", c.line, c.want)
		})
	}
}

func TestParseACL(t *testing.T) {
	a, err := parseACL(strings.NewReader(testACL), "acl")
	if err != nil {
		t.Fatal(err)
	}
	if n := [numKinds]int{len(a.entries[kindQueue]), len(a.entries[kindTopic]), len(a.entries[kindBroker])}; n != [numKinds]int{5, 2, 1} {
		t.Errorf("entries by kind %v", n)
	}
	// "a#b" is a pattern, not a comment: only a field starts one.
	if got := a.entries[kindQueue][3].pattern.String(); got != "a#b" {
		t.Errorf("entry 4 pattern %q", got)
	}
	if _, err := parseACL(strings.NewReader("broker > read=x\n"), "acl"); err != nil {
		t.Errorf("broker >: %v", err)
	}
}

// aclGuard returns a Guard on acl with users with the given groups.
func aclGuard(t testing.TB, acl string, anonymous bool) *Guard {
	t.Helper()
	dir := t.TempDir()
	g, err := NewGuard(Options{
		UsersFile: writeFile(t, dir, "users", usersFile(t,
			"root", "pw", "admins",
			"app", "pw", "producers,consumers",
			"reader", "pw", "consumers",
			"feed", "pw", "",
			"ops", "pw", "ops",
			"nobody", "pw", "")),
		ACLFile:        writeFile(t, dir, "acl", acl),
		AllowAnonymous: anonymous,
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// who are principals as Login returns them (without paying bcrypt).
var who = map[string]*Principal{
	"root":        {User: "root", Groups: []string{"admins"}},
	"app":         {User: "app", Groups: []string{"producers", "consumers"}},
	"reader":      {User: "reader", Groups: []string{"consumers"}},
	"feed":        {User: "feed"},
	"ops":         {User: "ops", Groups: []string{"ops"}},
	"nobody":      {User: "nobody"},
	"auditor":     {User: "auditor", Groups: []string{"auditors"}},
	"topicadmin":  {User: "topicadmin"},
	"anonymous":   {Groups: []string{"anonymous"}, Anonymous: true},
	"user-anonym": {User: "anonymous"}, // a user named anonymous is not in the group
}

func TestAllowed(t *testing.T) {
	g := aclGuard(t, testACL, true)
	cases := []struct {
		who, dest string
		r         Right
		want      bool
	}{
		// queue > gives admins everything on queues, whatever the name.
		{"root", "/queue/x", Read, true},
		{"root", "/queue/x.y.z", Write, true},
		{"root", "/queue/orders", Admin, true},
		{"root", "/topic/x", Read, false}, // queue entries are not about topics
		{"root", "/topic/prices.eur", Read, true},
		// orders.> matches everything below orders, not orders itself
		// (ActiveMQ's prefix filters; network filters read it the same).
		{"app", "/queue/orders", Write, false},
		{"app", "/queue/orders.eu.paid", Write, true},
		{"app", "/queue/orders.eu", Read, true},
		{"app", "/queue/orders.eu", Admin, false},
		{"app", "/queue/ordersx", Write, false},
		{"app", "/queue/x.orders", Read, false},
		{"reader", "/queue/orders.eu", Read, true},
		{"reader", "/queue/orders.eu", Write, false},
		// Union: orders.audit gives auditors read, orders.> gives them nothing.
		{"auditor", "/queue/orders.audit", Read, true},
		{"auditor", "/queue/orders.audit", Write, false},
		{"auditor", "/queue/orders.eu", Read, false},
		{"reader", "/queue/orders.audit", Read, true},
		// prices.*: any logged-in user reads, one element only; user:feed writes.
		{"nobody", "/topic/prices.eur", Read, true},
		{"nobody", "/topic/prices", Read, false},
		{"nobody", "/topic/prices.eur.spot", Read, false},
		{"nobody", "/topic/prices.eur", Write, false},
		{"feed", "/topic/prices.eur", Write, true},
		{"app", "/topic/prices.eur", Write, false},
		{"anonymous", "/topic/prices.eur", Read, false}, // * is logged-in users only
		{"user-anonym", "/topic/prices.eur", Read, true},
		// A wildcard subscription needs the right on every queue it may
		// consume from: the entry must cover the pattern.
		{"app", "/queue/orders.>", Read, true},
		{"app", "/queue/orders.*", Read, true},
		{"app", "/queue/>", Read, false},
		{"auditor", "/queue/orders.*", Read, false},
		{"nobody", "/topic/prices.*", Read, true},
		{"nobody", "/topic/prices.>", Read, false},
		// Kinds do not mix: prices.* is a topic entry.
		{"feed", "/queue/prices.eur", Write, false},
		// anonymous is a group for connections without a login.
		{"anonymous", "/queue/public.x", Read, true},
		{"anonymous", "/queue/public.x", Write, true},
		{"anonymous", "/queue/public.x", Admin, false},
		{"anonymous", "/queue/orders", Read, false},
		{"user-anonym", "/queue/public.x", Read, false},
		{"app", "/queue/public.x", Write, true},
		{"app", "/queue/public.x", Read, false}, // user:app is named for write only
		// topic > admin=user:topicadmin
		{"topicadmin", "/topic/anything.at.all", Admin, true},
		{"topicadmin", "/topic/anything", Read, false},
		{"topicadmin", "/queue/anything", Admin, false},
		// a#b is a destination name.
		{"app", "/queue/a#b", Write, true},
		// Broker rights.
		{"ops", BrokerResource, Read, true},
		{"ops", BrokerResource, Admin, false},
		{"root", BrokerResource, Read, true},
		{"root", BrokerResource, Admin, true},
		{"app", BrokerResource, Read, false},
		{"anonymous", BrokerResource, Read, false},
		{"root", BrokerResource, Write, false},
		// Other destinations are denied.
		{"root", "/temp-queue/x", Read, false},
		{"root", "queue/x", Read, false},
		{"root", "/queue/", Read, false},
		{"root", "", Read, false},
		{"root", "/queue/x", Right(0), false},
		{"root", "/queue/x", Right(4), false},
	}
	for _, c := range cases {
		p := who[c.who]
		if p == nil {
			t.Fatalf("no principal %q", c.who)
		}
		if got := g.Allowed(p, c.dest, c.r); got != c.want {
			t.Errorf("Allowed(%s, %q, %v) = %v, want %v", c.who, c.dest, c.r, got, c.want)
		}
	}
	if g.Allowed(nil, "/queue/x", Read) {
		t.Error("nil principal allowed")
	}
	if g.Allowed(&Principal{Groups: []string{"admins"}}, "/queue/x", Read) {
		t.Error("principal without a user and not anonymous allowed")
	}
}

// An empty ACL file denies everything.
func TestAllowedEmptyACL(t *testing.T) {
	g := aclGuard(t, "# nothing\n", true)
	for _, p := range who {
		for _, d := range []string{"/queue/x", "/topic/x", BrokerResource} {
			for r := Read; r <= Admin; r++ {
				if g.Allowed(p, d, r) {
					t.Errorf("%s has %v on %s", p, r, d)
				}
			}
		}
	}
}

func TestRightString(t *testing.T) {
	for r, want := range map[Right]string{Read: "read", Write: "write", Admin: "admin", 0: "Right(0)", 9: "Right(9)"} {
		if got := r.String(); got != want {
			t.Errorf("Right(%d).String() = %q, want %q", r, got, want)
		}
	}
}
