package selector

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	"",
	"type = 'order' AND price > 100 AND region IN ('eu','us')",
	"a = 1 OR b <> 'x' AND NOT c",
	"price BETWEEN 1 AND 1e3 OR price NOT BETWEEN -5 AND +5",
	"name LIKE 'a%b_c' ESCAPE '!' OR name NOT LIKE '%!%%' ESCAPE '!'",
	"x IS NULL OR y IS NOT NULL",
	"(a + b) * c / d % e - -f >= 0x1F",
	"017 = 15 AND 10L = 10 AND 1.5f = 1.5d AND .5 = 5e-1",
	`"correlation-id" = 'abc' AND "a""b" IS NULL`,
	"a = 'it''s' /* comment */ -- line\n AND b",
	"--1\n a",
	"NOT NOT NOT (TRUE AND NULL OR FALSE)",
	"9223372036854775807 + 1 > -9223372036854775808 - 1",
	"a / 0 IS NULL AND a % 0 IS NULL",
	"((((((((((a))))))))))",
	"a IN ('a','b','c','d','e','f','g','h','i','j','k')",
	"'x' LIKE '%_%_%_%_%_%_%_%_%_%_x'",
	"é = 'ü' AND $_ > 0",
	"XPATH '//a'",
	"a = 1 AND",
	"a LIKE 'x' ESCAPE 'ab'",
	"'unterminated",
}

// FuzzCompile compiles anything; what compiles must evaluate without
// panicking, and what does not must fail with a sensible SyntaxError.
func FuzzCompile(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	headers := map[string]string{
		"a": "1", "b": "x", "c": "true", "d": "0", "e": "-9223372036854775808",
		"f": "2.5", "x": "", "name": "a%b_c", "price": "150", "type": "order",
		"region": "eu", "correlation-id": "abc", "é": "ü",
	}
	lookup := lookupIn(headers)
	f.Fuzz(func(t *testing.T, src string) {
		// The fuzzer has no time limit per input: turn a hang into a
		// crash, which it reports with the input.
		watchdog := time.AfterFunc(5*time.Second, func() {
			panic(fmt.Sprintf("selector %q took more than 5s", src))
		})
		defer watchdog.Stop()
		s, err := Compile(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Compile(%q) = %v, not a *SyntaxError", src, err)
			}
			if se.Pos < 1 || se.Pos > utf8.RuneCountInString(src)+1 || se.Msg == "" {
				t.Fatalf("Compile(%q): bad error %v", src, err)
			}
			return
		}
		if s.String() != src {
			t.Fatalf("String() = %q, want %q", s.String(), src)
		}
		ids := s.Identifiers()
		if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Fatalf("Identifiers() = %q: not sorted and distinct", ids)
		}
		got := s.Matches(lookup)
		// Matching the same message twice gives the same answer.
		if s.Matches(lookup) != got {
			t.Fatalf("%q: Matches is not deterministic", src)
		}
		s.Matches(nil)
		s.Matches(func(string) (string, bool) { return "", true })
		s.Matches(func(name string) (string, bool) { return strings.Repeat(name, 3), true })
		// Matches is the three-valued result read as TRUE or not.
		if s.root != nil {
			r := s.root.test(lookup)
			if (r == isTrue) != got {
				t.Fatalf("%q: Matches = %v, evaluates to %v", src, got, r)
			}
		}
	})
}

// FuzzLike checks the LIKE matcher against the reference matcher.
func FuzzLike(f *testing.F) {
	f.Add("a%b_c", "axxbyc", true)
	f.Add("%a_a%", "banana", false)
	f.Add("100!%", "100%", true)
	f.Add("%é_%", "xéyz", false)
	f.Fuzz(func(t *testing.T, pattern, value string, hasEsc bool) {
		if !utf8.ValidString(pattern) || !utf8.ValidString(value) || len(pattern) > 64 || len(value) > 256 {
			return
		}
		got := compileLike(pattern, '!', hasEsc).match(value)
		if want := refLike(pattern, '!', hasEsc, value); got != want {
			t.Fatalf("%q LIKE %q (escape %v) = %v, want %v", value, pattern, hasEsc, got, want)
		}
	})
}
