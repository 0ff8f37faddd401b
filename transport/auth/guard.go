package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/raftmq/raftmq/queue"
)

// BrokerResource is the resource Allowed checks broker-wide rights on:
// the ACL file's broker entries.
const BrokerResource = "broker"

// Options say where the rules are. The package documentation says what
// each combination means.
type Options struct {
	// UsersFile is the users file; "" turns authentication off: everyone
	// is admitted and may do everything.
	UsersFile string
	// ACLFile is the ACL file; "" gives every user who logs in every
	// right. It needs a UsersFile.
	ACLFile string
	// AllowAnonymous admits connections without a login, in the group
	// "anonymous". Without an ACL file they get every right on queues
	// and topics but none on the broker.
	AllowAnonymous bool
}

// Validate refuses an ACL file without a users file: it would be ignored,
// since without users authentication is off.
func (o Options) Validate() error {
	if o.ACLFile != "" && o.UsersFile == "" {
		return errors.New("an ACL file needs a users file: without one, authentication is off")
	}
	return nil
}

// Guard authenticates connections and authorizes what they do. It is safe
// for concurrent use; Allowed takes no lock.
type Guard struct {
	opts  Options
	rules atomic.Pointer[rules] // nil when authentication is off
	v     *verifier

	reloadMu sync.Mutex // one Reload at a time
}

// rules are what the files say, swapped as a whole on Reload.
type rules struct {
	users *users
	acl   *acl // nil without an ACL file
	// dummy is a hash of a random password at users.cost that unknown
	// logins are compared with, to take as long as known ones.
	dummy string
}

// NewGuard reads the files o names.
func NewGuard(o Options) (*Guard, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	// Half the CPUs the process may use (GOMAXPROCS rather than NumCPU:
	// a container's quota can make them fewer than the machine's), at
	// least one: a flood of logins must leave raft and the delivery of
	// messages a CPU to run on.
	g := &Guard{opts: o, v: newVerifier(max(1, runtime.GOMAXPROCS(0)/2))}
	if !g.Enabled() {
		return g, nil
	}
	rs, err := g.load(nil)
	if err != nil {
		return nil, err
	}
	g.rules.Store(rs)
	return g, nil
}

// Enabled reports whether authentication is on (a users file is given).
func (g *Guard) Enabled() bool { return g.opts.UsersFile != "" }

// Reload re-reads the files. If one is bad, it returns the error (file and
// line) and the rules in force stay so. Checks running meanwhile see
// either the old rules or the new ones, never a mixture.
func (g *Guard) Reload() error {
	if !g.Enabled() {
		return nil
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	rs, err := g.load(g.rules.Load())
	if err != nil {
		return err
	}
	g.rules.Store(rs)
	return nil
}

// load reads the files into new rules; old, if not nil, are the rules in
// force, whose dummy hash is kept if the cost is the same.
func (g *Guard) load(old *rules) (*rules, error) {
	us, err := readFile(g.opts.UsersFile, parseUsers)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	rs := &rules{users: us}
	if g.opts.ACLFile != "" {
		if rs.acl, err = readFile(g.opts.ACLFile, parseACL); err != nil {
			return nil, fmt.Errorf("ACL file: %w", err)
		}
	}
	if old != nil && old.users.cost == us.cost {
		rs.dummy = old.dummy
	} else if rs.dummy, err = HashPassword(rand.Text(), us.cost); err != nil {
		return nil, fmt.Errorf("making the hash unknown logins are compared with: %w", err)
	}
	return rs, nil
}

func readFile[T any](name string, parse func(io.Reader, string) (T, error)) (T, error) {
	f, err := os.Open(name)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f, name)
}

// Login checks a CONNECT's login and passcode, or an admin request's Basic
// credentials, and returns who they are. An empty login asks for
// anonymous access. The errors are ErrBadCredentials, the same for an
// unknown user as for a wrong password, ErrAnonymousRefused and ErrBusy.
// It may wait up to five seconds for a turn at bcrypt, so call it from the
// connection's own goroutine.
//
// When authentication is off, Login admits everyone and the principal
// carries the login unchecked.
func (g *Guard) Login(login, passcode string) (*Principal, error) {
	rs := g.rules.Load()
	switch {
	case login == "" && (rs == nil || g.opts.AllowAnonymous):
		return &Principal{Groups: []string{anonymousGroup}, Anonymous: true}, nil
	case login == "":
		return nil, ErrAnonymousRefused
	case rs == nil:
		return &Principal{User: login}, nil
	case len(login) > maxName || len(passcode) > maxPassword:
		// No user has such a name, and no password is so long: bcrypt
		// would compare only its first 72 bytes, and HashPassword never
		// hashes more. Refusing at once tells nothing, since it does not
		// depend on who the user is, and spares bcrypt a flood of them.
		return nil, ErrBadCredentials
	}
	u := rs.users.byName[login]
	hash := rs.dummy
	if u != nil {
		hash = u.hash
	}
	k := g.v.cacheKey(login, passcode)
	if u != nil && g.v.remembered(k, hash) {
		return &Principal{User: login, Groups: slices.Clone(u.groups), hash: hash}, nil
	}
	ok, err := g.v.compare(hash, passcode)
	if err != nil {
		return nil, err
	}
	if !ok || u == nil {
		return nil, ErrBadCredentials
	}
	g.v.remember(k, hash)
	return &Principal{User: login, Groups: slices.Clone(u.groups), hash: hash}, nil
}

// Refresh checks a login Login returned against the rules in force now,
// after a Reload: it returns the principal with the user's current groups,
// or ErrBadCredentials when the user was removed or their password changed
// (the login no longer proves anything), or ErrAnonymousRefused when
// anonymous access was turned off. Connections call it to drop what the
// new files no longer admit.
func (g *Guard) Refresh(p *Principal) (*Principal, error) {
	rs := g.rules.Load()
	switch {
	case p == nil:
		return nil, ErrBadCredentials
	case rs == nil:
		return p, nil
	case p.Anonymous:
		if !g.opts.AllowAnonymous {
			return nil, ErrAnonymousRefused
		}
		return p, nil
	}
	u := rs.users.byName[p.User]
	if u == nil || u.hash != p.hash {
		return nil, ErrBadCredentials
	}
	if slices.Equal(u.groups, p.Groups) {
		return p, nil
	}
	return &Principal{User: p.User, Groups: slices.Clone(u.groups), hash: u.hash}, nil
}

// Allowed reports whether p has right r on dest, a STOMP destination
// (/queue/NAME or /topic/NAME) or BrokerResource, under the rules in
// force. Other destinations, a nil p and the zero Right are denied when
// authentication is on. It takes no lock and does not allocate: it runs
// for every SEND.
func (g *Guard) Allowed(p *Principal, dest string, r Right) bool {
	if r < Read || r > Admin {
		return false
	}
	rs := g.rules.Load()
	if rs == nil {
		return true
	}
	if p == nil || !p.Anonymous && p.User == "" {
		return false // not a principal Login returned
	}
	k, name := kindBroker, ""
	if dest != BrokerResource {
		kn, n, ok := queue.SplitDestination(dest)
		if !ok || n == "" {
			return false // not a destination, though ">" would match it
		}
		k, name = kindQueue, n
		if kn == "topic" {
			k = kindTopic
		}
	}
	if rs.acl == nil {
		// Users alone: whoever logs in may do everything; anonymous
		// connections may send and receive, but administer nothing (see
		// the package documentation), and a SEND to the scheduler's
		// management topic administers the scheduled messages.
		return !p.Anonymous || k != kindBroker && r != Admin && dest != queue.SchedulerManagement
	}
	return rs.acl.allowed(p, k, name, r)
}
