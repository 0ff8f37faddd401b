package selector

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// refLike is an obviously correct LIKE: dynamic programming over the
// pattern's elements and the value's characters.
func refLike(pattern string, esc rune, hasEsc bool, s string) bool {
	const (
		lit = iota
		one
		many
	)
	type elem struct {
		kind int
		r    rune
	}
	var elems []elem
	pr := []rune(pattern)
	for i := 0; i < len(pr); i++ {
		r := pr[i]
		if hasEsc && r == esc && i+1 < len(pr) && (pr[i+1] == '%' || pr[i+1] == '_' || pr[i+1] == esc) {
			elems = append(elems, elem{lit, pr[i+1]})
			i++
			continue
		}
		switch r {
		case '%':
			elems = append(elems, elem{kind: many})
		case '_':
			elems = append(elems, elem{kind: one})
		default:
			elems = append(elems, elem{lit, r})
		}
	}
	sr := []rune(s)
	// m[j] reports whether the elements so far match sr[:j].
	m := make([]bool, len(sr)+1)
	m[0] = true
	for _, e := range elems {
		next := make([]bool, len(sr)+1)
		for j := range next {
			switch e.kind {
			case many:
				next[j] = m[j] || j > 0 && next[j-1]
			case one:
				next[j] = j > 0 && m[j-1]
			default:
				next[j] = j > 0 && m[j-1] && sr[j-1] == e.r
			}
		}
		m = next
	}
	return m[len(sr)]
}

func TestLikeAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("ab%_!é")
	randString := func(n int, chars []rune) string {
		var b strings.Builder
		for range rng.IntN(n + 1) {
			b.WriteRune(chars[rng.IntN(len(chars))])
		}
		return b.String()
	}
	for range 200000 {
		pattern := randString(8, alphabet)
		value := randString(10, []rune("ab%_!é"))
		hasEsc := rng.IntN(2) == 0
		want := refLike(pattern, '!', hasEsc, value)
		if got := compileLike(pattern, '!', hasEsc).match(value); got != want {
			t.Fatalf("%q LIKE %q (escape %v) = %v, want %v", value, pattern, hasEsc, got, want)
		}
	}
}

func TestLikeLongSegments(t *testing.T) {
	// Segments with '_' longer than one 64-bit word of automaton state.
	for _, n := range []int{63, 64, 65, 127, 128, 129, 200} {
		seg := strings.Repeat("a_", n/2) + strings.Repeat("b", n%2)
		pattern := "%" + seg + "%x"
		value := strings.Repeat("a", 300) + strings.Repeat("ab", n/2) + strings.Repeat("b", n%2) + "zzx"
		want := refLike(pattern, 0, false, value)
		if got := compileLike(pattern, 0, false).match(value); got != want || !want {
			t.Errorf("n=%d: got %v, want %v", n, got, want)
		}
		// One character short.
		short := strings.Repeat("a", 300) + strings.Repeat("ab", n/2-1) + "x"
		if got, want := compileLike(pattern, 0, false).match(short), refLike(pattern, 0, false, short); got != want {
			t.Errorf("n=%d short: got %v, want %v", n, got, want)
		}
	}
}

// TestLikeCost checks that patterns which make a backtracking matcher
// take exponential (or merely quadratic) time are fast here.
func TestLikeCost(t *testing.T) {
	value := strings.Repeat("a", 1<<20)
	patterns := []string{
		strings.Repeat("%a", 30) + "%b",
		strings.Repeat("%_a", 30) + "%b",
		"%" + strings.Repeat("a_", 1000) + "b%",
		"%" + strings.Repeat("a", 2000) + "b%",
		strings.Repeat("_", 2000) + "%b",
		"%" + strings.Repeat("_", 2000) + "b",
	}
	for _, p := range patterns {
		src := "v LIKE '" + p + "'"
		s, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if s.Matches(func(string) (string, bool) { return value, true }) {
			t.Errorf("%.30q... matched", p)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%.30q... took %v on a 1 MiB value", p, d)
		}
	}
}

func TestLikeInvalidUTF8(t *testing.T) {
	// Bytes that are not UTF-8 count as one character each and do not
	// break anything.
	m := compileLike("a_b%", 0, false)
	if !m.match("a\xffb") || !m.match("a\xffbxyz") || m.match("a\xff\xfeb") {
		t.Error("invalid UTF-8 mishandled")
	}
	if !compileLike("%_\xff", 0, false).match("x\xff") {
		t.Error("invalid UTF-8 in pattern mishandled")
	}
	if utf8.ValidString("a\xffb") {
		t.Fatal("test string is valid")
	}
}
