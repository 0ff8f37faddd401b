package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/raftmq/raftmq/queue"
)

// newTestGuard returns a Guard on users (a users file's text) and acl
// ("" for none), and the path of the users file, for rewriting.
func newTestGuard(t *testing.T, users, acl string, anonymous bool) (*Guard, string) {
	t.Helper()
	dir := t.TempDir()
	o := Options{UsersFile: writeFile(t, dir, "users", users), AllowAnonymous: anonymous}
	if acl != "" {
		o.ACLFile = writeFile(t, dir, "acl", acl)
	}
	g, err := NewGuard(o)
	if err != nil {
		t.Fatal(err)
	}
	return g, o.UsersFile
}

func TestLogin(t *testing.T) {
	g, _ := newTestGuard(t, usersFile(t, "app", "secret", "producers,consumers", "solo", "pw", ""), "", false)
	if !g.Enabled() {
		t.Fatal("not enabled with a users file")
	}
	p, err := g.Login("app", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if p.User != "app" || p.Anonymous || !p.InGroup("producers") || !p.InGroup("consumers") || p.InGroup("admins") || p.String() != "app" {
		t.Errorf("principal %+v", p)
	}
	// The principal's groups are its own.
	p.Groups[0] = "admins"
	if p2, err := g.Login("app", "secret"); err != nil || p2.Groups[0] != "producers" {
		t.Errorf("second login: %+v, %v", p2, err)
	}
	if p, err := g.Login("solo", "pw"); err != nil || len(p.Groups) != 0 {
		t.Errorf("solo: %+v, %v", p, err)
	}

	// A wrong password and an unknown user fail alike.
	for _, c := range []struct{ login, pass string }{
		{"app", "wrong"},
		{"app", ""},
		{"app", "secre"},
		{"App", "secret"},
		{"nobody", "secret"},
		{"nobody", ""},
		{"app", "secret" + strings.Repeat("x", 80)},
		{"nobody", strings.Repeat("x", 80)},
		{strings.Repeat("u", maxName+1), "pw"},
	} {
		p, err := g.Login(c.login, c.pass)
		if !errors.Is(err, ErrBadCredentials) || p != nil {
			t.Errorf("Login(%q, %q) = %v, %v; want ErrBadCredentials", c.login, c.pass, p, err)
		} else if err.Error() != "bad login or passcode" {
			t.Errorf("Login(%q, %q) says %q", c.login, c.pass, err)
		}
	}
	if _, err := g.Login("", ""); !errors.Is(err, ErrAnonymousRefused) {
		t.Errorf("anonymous: %v, want ErrAnonymousRefused", err)
	}
}

// An unknown user is compared with a dummy hash at the users' cost, so
// that refusing it takes as long.
func TestLoginUnknownUserPaysBcrypt(t *testing.T) {
	h6, err := HashPassword("pw", 6)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := newTestGuard(t, "a "+h6+"\nb "+h6+"\nc "+testHash(t, "pw")+"\n", "", false)
	if c, err := bcrypt.Cost([]byte(g.rules.Load().dummy)); err != nil || c != 6 {
		t.Errorf("dummy hash cost %d, %v; want 6", c, err)
	}
	// With every bcrypt turn taken, an unknown user waits for one like a
	// known user does.
	release := fillSem(g, 10*time.Millisecond)
	defer release()
	for _, login := range []string{"a", "nobody"} {
		if _, err := g.Login(login, "pw"); !errors.Is(err, ErrBusy) {
			t.Errorf("Login(%q) with bcrypt busy: %v, want ErrBusy", login, err)
		}
	}
}

func TestLoginAnonymous(t *testing.T) {
	users := usersFile(t, "app", "pw", "producers")
	for _, c := range []struct {
		name      string
		acl       string
		anonymous bool
		login     error
		queue     bool // may read and write /queue/x
		admin     bool // may administer /queue/x
		broker    bool // may read the broker
	}{
		{"refused", "", false, ErrAnonymousRefused, false, false, false},
		// Without an ACL file, messaging on queues and topics, but no
		// administration.
		{"no ACL", "", true, nil, true, false, false},
		{"ACL without anonymous", "queue > read=* write=*\n", true, nil, false, false, false},
		{"ACL with anonymous", "queue x read=anonymous write=anonymous admin=anonymous\nbroker * read=anonymous\ntopic ActiveMQ.Scheduler.Management write=anonymous\n", true, nil, true, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, _ := newTestGuard(t, users, c.acl, c.anonymous)
			p, err := g.Login("", "")
			if !errors.Is(err, c.login) {
				t.Fatalf("Login: %v, want %v", err, c.login)
			}
			if err != nil {
				return
			}
			if !p.Anonymous || p.User != "" || !p.InGroup("anonymous") || p.String() != "anonymous" {
				t.Errorf("anonymous principal %+v", p)
			}
			for r := Read; r <= Admin; r++ {
				want := c.queue
				if r == Admin {
					want = c.admin
				}
				if got := g.Allowed(p, "/queue/x", r); got != want {
					t.Errorf("anonymous %v on /queue/x: %v, want %v", r, got, want)
				}
			}
			if got := g.Allowed(p, BrokerResource, Read); got != c.broker {
				t.Errorf("anonymous read on the broker: %v, want %v", got, c.broker)
			}
			// Sending to the scheduler's management topic administers
			// the scheduled messages: an ACL must grant it.
			if got := g.Allowed(p, queue.SchedulerManagement, Write); got != c.admin {
				t.Errorf("anonymous write on %s: %v, want %v", queue.SchedulerManagement, got, c.admin)
			}
			// A user who logs in has every right without an ACL file.
			u, err := g.Login("app", "pw")
			if err != nil {
				t.Fatal(err)
			}
			if c.acl == "" && !(g.Allowed(u, "/queue/x", Admin) && g.Allowed(u, "/topic/y", Write) && g.Allowed(u, BrokerResource, Admin)) {
				t.Error("user without an ACL file lacks a right")
			}
		})
	}
}

// Without a users file, everyone is let in with every right.
func TestDisabled(t *testing.T) {
	g, err := NewGuard(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Enabled() {
		t.Error("enabled without a users file")
	}
	if err := g.Reload(); err != nil {
		t.Errorf("Reload: %v", err)
	}
	anon, err := g.Login("", "")
	if err != nil || !anon.Anonymous {
		t.Errorf("anonymous: %+v, %v", anon, err)
	}
	p, err := g.Login("whoever", "whatever")
	if err != nil || p.User != "whoever" {
		t.Errorf("login: %+v, %v", p, err)
	}
	for _, p := range []*Principal{anon, p, nil} {
		for _, d := range []string{"/queue/x", "/topic/x.y", BrokerResource, "/temp-queue/x"} {
			for r := Read; r <= Admin; r++ {
				if !g.Allowed(p, d, r) {
					t.Errorf("%v denied %v on %s", p, r, d)
				}
			}
		}
	}
	if g.Allowed(p, "/queue/x", 0) {
		t.Error("zero right allowed")
	}
}

func TestNewGuardErrors(t *testing.T) {
	dir := t.TempDir()
	users := writeFile(t, dir, "users", usersFile(t, "a", "pw", ""))
	badUsers := writeFile(t, dir, "badusers", "a b c d\n")
	badACL := writeFile(t, dir, "badacl", "queue > read=x\nqueue > write=\n")
	if _, err := NewGuard(Options{ACLFile: writeFile(t, dir, "acl", "queue > read=*\n")}); err == nil {
		t.Error("ACL file without users file accepted")
	}
	if _, err := NewGuard(Options{UsersFile: dir + "/missing"}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing users file: %v", err)
	}
	if _, err := NewGuard(Options{UsersFile: users, ACLFile: dir + "/missing"}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing ACL file: %v", err)
	}
	_, err := NewGuard(Options{UsersFile: badUsers})
	checkParseError(t, err, badUsers, 1, "users file: "+badUsers+":1: 4 fields")
	_, err = NewGuard(Options{UsersFile: users, ACLFile: badACL})
	checkParseError(t, err, badACL, 2, "ACL file: "+badACL+":2: write=: empty principal list")
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	usersPath := writeFile(t, dir, "users", usersFile(t, "app", "old", "producers"))
	aclPath := writeFile(t, dir, "acl", "queue orders.> write=producers\n")
	g, err := NewGuard(Options{UsersFile: usersPath, ACLFile: aclPath})
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.Login("app", "old")
	if err != nil {
		t.Fatal(err)
	}
	if !g.Allowed(p, "/queue/orders.eu", Write) || g.Allowed(p, "/queue/prices", Write) {
		t.Fatal("rules before reload")
	}

	// New rules apply to the principal of an existing connection.
	writeFile(t, dir, "acl", "queue prices write=producers\n")
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if g.Allowed(p, "/queue/orders.eu", Write) || !g.Allowed(p, "/queue/prices", Write) {
		t.Error("rules after reload")
	}

	// A bad file leaves the rules as they were, whichever file it is.
	writeFile(t, dir, "acl", "queue orders.> write=producers\nqueue prices wirte=producers\n")
	err = g.Reload()
	checkParseError(t, err, aclPath, 2, `unknown right "wirte"`)
	if g.Allowed(p, "/queue/orders.eu", Write) || !g.Allowed(p, "/queue/prices", Write) {
		t.Error("rules changed by a bad ACL file")
	}
	writeFile(t, dir, "acl", "queue orders.> write=producers\n")
	writeFile(t, dir, "users", usersFile(t, "app", "new", "producers")+"app "+testHash(t, "x")+"\n")
	err = g.Reload()
	checkParseError(t, err, usersPath, 2, "duplicate user")
	if g.Allowed(p, "/queue/orders.eu", Write) {
		t.Error("ACL changed with a bad users file")
	}
	if _, err := g.Login("app", "old"); err != nil {
		t.Errorf("old password after a bad reload: %v", err)
	}
	writeFile(t, dir, "users", usersFile(t, "app", "new", "producers"))
	os.Remove(aclPath)
	if err := g.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reload without the ACL file: %v", err)
	}

	if _, err := g.Login("app", "old"); err != nil {
		t.Errorf("old password after a failed reload: %v", err)
	}

	// A good reload changes both.
	writeFile(t, dir, "acl", "queue orders.> write=producers\n")
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if !g.Allowed(p, "/queue/orders.eu", Write) {
		t.Error("ACL not reloaded")
	}
	if _, err := g.Login("app", "old"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after reload: %v", err)
	}
	if _, err := g.Login("app", "new"); err != nil {
		t.Errorf("new password after reload: %v", err)
	}
}

// Allowed and Reload run concurrently without locks or races, and a check
// sees one rule set or the other, never none.
func TestReloadConcurrent(t *testing.T) {
	dir := t.TempDir()
	usersPath := writeFile(t, dir, "users", usersFile(t, "app", "pw", "producers"))
	aclPath := writeFile(t, dir, "acl", "queue a write=producers\nqueue b write=producers\n")
	g, err := NewGuard(Options{UsersFile: usersPath, ACLFile: aclPath})
	if err != nil {
		t.Fatal(err)
	}
	p := &Principal{User: "app", Groups: []string{"producers"}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !g.Allowed(p, "/queue/a", Write) {
					t.Error("a denied during reloads")
					return
				}
			}
		})
	}
	for i := range 20 {
		other := []string{"b", "c"}[i%2]
		writeFile(t, dir, "acl", "queue a write=producers\nqueue "+other+" write=producers\n")
		if err := g.Reload(); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	if g.Allowed(p, "/queue/b", Write) || !g.Allowed(p, "/queue/c", Write) {
		t.Error("last rules not in force")
	}
}

func TestLoginCache(t *testing.T) {
	g, usersPath := newTestGuard(t, usersFile(t, "app", "pw", "producers"), "", false)
	now := time.Now()
	g.v.now = func() time.Time { return now }

	// A failure is not remembered: a second try still needs bcrypt.
	if _, err := g.Login("app", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	release := fillSem(g, 10*time.Millisecond)
	if _, err := g.Login("app", "wrong"); !errors.Is(err, ErrBusy) {
		t.Errorf("failure remembered: %v", err)
	}
	release()

	if _, err := g.Login("app", "pw"); err != nil {
		t.Fatal(err)
	}
	// Remembered: no bcrypt needed.
	release = fillSem(g, 10*time.Millisecond)
	if p, err := g.Login("app", "pw"); err != nil || p.User != "app" || !p.InGroup("producers") {
		t.Errorf("remembered login: %+v, %v", p, err)
	}
	// Only the same password.
	if _, err := g.Login("app", "pw2"); !errors.Is(err, ErrBusy) {
		t.Errorf("other password: %v, want ErrBusy (bcrypt needed)", err)
	}
	// Until the TTL.
	now = now.Add(cacheTTL)
	if _, err := g.Login("app", "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("after the TTL: %v, want ErrBusy (bcrypt needed)", err)
	}
	release()
	if _, err := g.Login("app", "pw"); err != nil {
		t.Fatal(err)
	}

	// A new hash for the user (even of the same password) forgets it.
	h, err := HashPassword("pw", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(usersPath, []byte("app "+h+" producers\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	release = fillSem(g, 10*time.Millisecond)
	if _, err := g.Login("app", "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("after a new hash: %v, want ErrBusy (bcrypt needed)", err)
	}
	release()

	// A user removed from the file cannot log in on what was remembered.
	if _, err := g.Login("app", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(usersPath, []byte("other "+h+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Login("app", "pw"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("removed user: %v", err)
	}
}

func TestCacheBound(t *testing.T) {
	v := newVerifier(1)
	now := time.Now()
	v.now = func() time.Time { return now }
	for i := range cacheSize * 3 {
		v.remember(v.cacheKey("u", string(rune(i))), "h")
		if len(v.cache) > cacheSize {
			t.Fatalf("%d entries", len(v.cache))
		}
	}
	// Expired entries go first.
	now = now.Add(cacheTTL)
	k := v.cacheKey("new", "pw")
	v.remember(k, "h")
	if len(v.cache) != 1 || !v.remembered(k, "h") {
		t.Errorf("%d entries after expiry", len(v.cache))
	}
	// Keys do not collide across the user/password boundary.
	if v.cacheKey("ab", "c") == v.cacheKey("a", "bc") {
		t.Error("cache keys collide")
	}
	// Keys are per process.
	if newVerifier(1).cacheKey("a", "b") == v.cacheKey("a", "b") {
		t.Error("cache keys are the same in two verifiers")
	}
}

// Logins wait for a bcrypt turn, and give up with ErrBusy.
func TestLoginConcurrency(t *testing.T) {
	g, _ := newTestGuard(t, usersFile(t, "app", "pw", ""), "", false)
	g.v.sem = make(chan struct{}, 2)

	// More logins than turns all succeed: they wait.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			pass := "pw"
			if i%2 == 1 {
				pass = "wrong"
			}
			_, err := g.Login("app", pass)
			if i%2 == 0 && err != nil || i%2 == 1 && !errors.Is(err, ErrBadCredentials) {
				t.Errorf("Login %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if len(g.v.sem) != 0 {
		t.Errorf("%d turns not given back", len(g.v.sem))
	}

	// A login waits wait, no longer.
	release := fillSem(g, 50*time.Millisecond)
	start := time.Now()
	if _, err := g.Login("app", "other"); !errors.Is(err, ErrBusy) {
		t.Errorf("full: %v, want ErrBusy", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("waited %v", d)
	}
	// A turn given back in time is taken.
	g.v.wait = 5 * time.Second
	go func() {
		time.Sleep(20 * time.Millisecond)
		<-g.v.sem
	}()
	if _, err := g.Login("app", "other"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("after a turn came: %v", err)
	}
	g.v.sem <- struct{}{} // put back the token the goroutine took
	release()
	if g.v.sem == nil || cap(g.v.sem) != 2 {
		t.Fatal("sem replaced")
	}
}

// TestRefresh: after a reload, a login lives on with the user's new
// groups, and ends when the user is gone or their password changed.
func TestRefresh(t *testing.T) {
	ann, bob := testHash(t, "ann-pw"), testHash(t, "bob-pw")
	g, path := newTestGuard(t, "ann "+ann+" a\nbob "+bob+" b\n", "", true)
	a, err := g.Login("ann", "ann-pw")
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Login("bob", "bob-pw")
	if err != nil {
		t.Fatal(err)
	}
	anon, err := g.Login("", "")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := g.Refresh(a); err != nil || p != a {
		t.Errorf("refresh without a change: %+v, %v", p, err)
	}
	// ann changes group and keeps her password; bob's password changes.
	writeFile(t, filepath.Dir(path), "users", "ann "+ann+" c\nbob "+testHash(t, "new-pw")+" b\n")
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if p, err := g.Refresh(a); err != nil || p.User != "ann" || !p.InGroup("c") || p.InGroup("a") {
		t.Errorf("ann after the reload: %+v, %v", p, err)
	}
	if _, err := g.Refresh(b); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("bob with a changed password: %v, want ErrBadCredentials", err)
	}
	if p, err := g.Refresh(anon); err != nil || !p.Anonymous {
		t.Errorf("anonymous: %+v, %v", p, err)
	}
	// ann removed.
	writeFile(t, filepath.Dir(path), "users", "bob "+bob+" b\n")
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Refresh(a); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("removed ann: %v, want ErrBadCredentials", err)
	}
}
