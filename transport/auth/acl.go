package auth

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/raftmq/raftmq/queue"
)

// kind is what an ACL entry is about.
type kind uint8

const (
	kindQueue kind = iota
	kindTopic
	kindBroker
	numKinds
)

var kindNames = [numKinds]string{kindQueue: "queue", kindTopic: "topic", kindBroker: "broker"}

// grant is the principals an entry gives one right to.
type grant struct {
	any    bool     // "*": every user who logged in
	users  []string // user:NAME
	groups []string // group names, "anonymous" included
}

// admits reports whether p is one of g's principals.
func (g *grant) admits(p *Principal) bool {
	if !p.Anonymous {
		if g.any {
			return true
		}
		for _, u := range g.users {
			if u == p.User {
				return true
			}
		}
	}
	for _, want := range g.groups {
		if p.InGroup(want) {
			return true
		}
	}
	return false
}

// entry is a line of the ACL file.
type entry struct {
	pattern queue.Pattern // unused for broker entries, which are about the whole broker
	grants  [numRights]grant
}

// acl is a parsed ACL file: its entries by kind, in file order.
type acl struct {
	entries [numKinds][]entry
}

// allowed reports whether an entry of kind k matching name gives r to p.
// Entries only add rights, so the first one that gives r decides.
func (a *acl) allowed(p *Principal, k kind, name string, r Right) bool {
	for i := range a.entries[k] {
		e := &a.entries[k][i]
		if e.grants[r-1].admits(p) && (k == kindBroker || e.pattern.Match(name)) {
			return true
		}
	}
	return false
}

// parseACL reads an ACL file (see the package documentation); file names
// it in errors.
func parseACL(r io.Reader, file string) (*acl, error) {
	a := &acl{}
	err := parseLines(r, file, func(f []string) error {
		k, err := parseKind(f[0])
		if err != nil {
			return err
		}
		if len(f) < 2 {
			return fmt.Errorf("%s entry without a pattern", f[0])
		}
		e := entry{}
		if k == kindBroker {
			if f[1] != "*" && f[1] != ">" {
				return fmt.Errorf("broker pattern %q: want * or >, broker rights are about the whole broker", f[1])
			}
		} else if e.pattern, err = queue.CompilePattern(f[1]); err != nil {
			return err
		}
		if len(f) < 3 {
			return fmt.Errorf("%s %s: no rights given (read=, write= or admin=)", f[0], f[1])
		}
		var seen [numRights]bool
		for _, kv := range f[2:] {
			key, list, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("%q: want read=, write= or admin= and principals", kv)
			}
			r, err := parseRight(key)
			if err != nil {
				return err
			}
			if k == kindBroker && r == Write {
				return errors.New("broker entries give read and admin only")
			}
			if seen[r-1] {
				return fmt.Errorf("%s= given twice", key)
			}
			seen[r-1] = true
			if e.grants[r-1], err = parseGrant(list); err != nil {
				return fmt.Errorf("%s=: %w", key, err)
			}
		}
		a.entries[k] = append(a.entries[k], e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func parseKind(s string) (kind, error) {
	for k, name := range kindNames {
		if s == name {
			return kind(k), nil
		}
	}
	return 0, fmt.Errorf("unknown kind %q: want queue, topic or broker", s)
}

func parseRight(s string) (Right, error) {
	for r := Read; r <= Admin; r++ {
		if s == r.String() {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown right %q: want read, write or admin", s)
}

// parseGrant parses a comma-separated list of principals.
func parseGrant(list string) (grant, error) {
	var g grant
	if list == "" {
		return g, errors.New("empty principal list")
	}
	for _, p := range strings.Split(list, ",") {
		switch name, isUser := strings.CutPrefix(p, "user:"); {
		case p == "":
			return g, fmt.Errorf("empty principal in %q (principals are separated by commas without spaces)", list)
		case p == "*":
			g.any = true
		case isUser:
			if err := checkName("user", name); err != nil {
				return g, fmt.Errorf("bad principal %q: %w", p, err)
			}
			g.users = append(g.users, name)
		default:
			// "anonymous" is a group like any other here: the one every
			// anonymous connection is in.
			if err := checkName("group", p); err != nil {
				return g, fmt.Errorf("bad principal %q: %w", p, err)
			}
			g.groups = append(g.groups, p)
		}
	}
	return g, nil
}
