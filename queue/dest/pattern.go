// Package dest reads destination names: the /queue/ and /topic/ kinds,
// and ActiveMQ's wildcards. It is a leaf, so that the FSM (durable
// wildcard subscriptions), the engine, the ACL and the network's filters
// read names alike.
package dest

import (
	"fmt"
	"strings"
)

// Pattern matches destination names with ActiveMQ's wildcards, for rules
// that name many destinations at once (authorization entries, limits):
// names are paths of elements separated by ".", "*" stands for any one
// element, and ">" as the last element for one or more of them, so
// "orders.>" matches "orders.eu" and "orders.eu.paid" but not "orders",
// as ActiveMQ's prefix filters read it (the name needs at least as many
// elements as the pattern). A pattern matches names, not destinations:
// the rule that holds it says whether it is about queues or topics.
type Pattern struct {
	src   string
	elems []string // nil for ">" alone
	rest  bool     // ends with ">"
}

// Compile parses a pattern. ">" may only be the last element, and
// no element may be empty.
func Compile(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty destination pattern")
	}
	elems := strings.Split(s, ".")
	p := Pattern{src: s}
	for i, e := range elems {
		switch {
		case e == "":
			return Pattern{}, fmt.Errorf("destination pattern %q: empty element", s)
		case e == ">" && i != len(elems)-1:
			return Pattern{}, fmt.Errorf("destination pattern %q: > must be the last element", s)
		case e == ">":
			p.rest = true
		case e != "*" && strings.ContainsAny(e, "*>"):
			return Pattern{}, fmt.Errorf("destination pattern %q: * and > stand for whole elements", s)
		default:
			p.elems = append(p.elems, e)
		}
	}
	return p, nil
}

// MustCompile is Compile for patterns known to be valid.
func MustCompile(s string) Pattern {
	p, err := Compile(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.src }

// Match reports whether name (without /queue/ or /topic/) matches p,
// element by element and without allocating. A name may itself hold
// wildcards (a wildcard subscription's): it matches only if p covers
// every name it stands for, so a right on "prices.*" is no right on
// "prices.>", which also stands for "prices.eu.paid".
func (p Pattern) Match(name string) bool {
	rest, consumed := name, false
	for _, e := range p.elems {
		if consumed {
			return false // the name has fewer elements than the pattern
		}
		el, r, more := strings.Cut(rest, ".")
		if e != "*" && e != el || e == "*" && el == ">" {
			return false
		}
		rest, consumed = r, !more
	}
	if p.rest {
		return !consumed // ">" needs one element more
	}
	return consumed
}

// Split splits a destination into its kind ("queue" or
// "topic") and name; ok is false for anything else.
func Split(d string) (kind, name string, ok bool) {
	switch {
	case strings.HasPrefix(d, "/queue/"):
		return "queue", d[len("/queue/"):], true
	case strings.HasPrefix(d, "/topic/"):
		return "topic", d[len("/topic/"):], true
	}
	return "", "", false
}

// HasWildcard reports whether the destination d (/queue/NAME or
// /topic/NAME) has a wildcard element, "*" or ">".
func HasWildcard(d string) bool {
	_, name, ok := Split(d)
	if !ok {
		return false
	}
	for rest := name; ; {
		el, r, more := strings.Cut(rest, ".")
		if el == "*" || el == ">" {
			return true
		}
		if !more {
			return false
		}
		rest = r
	}
}
