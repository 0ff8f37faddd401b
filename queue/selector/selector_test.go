package selector

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

var testHeaders = map[string]string{
	"type":           "order",
	"price":          "150",
	"qty":            "3",
	"ratio":          "0.25",
	"region":         "eu",
	"flag":           "true",
	"off":            "FALSE",
	"word":           "banana",
	"empty":          "",
	"neg":            "-7",
	"zero":           "0",
	"f":              "2.5",
	"sci":            "1e3",
	"big":            "9223372036854775807",
	"min":            "-9223372036854775808",
	"huge":           "99999999999999999999",
	"spaced":         " 5",
	"hex":            "0x10",
	"correlation-id": "abc-1",
	`a"b`:            "quoted",
	"quote":          "it's",
	"pct":            "100%",
	"under":          "a_b",
	"unicode":        "héllo",
	"été":            "summer",
	"JMSPriority":    "4",
}

func lookupIn(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// result evaluates a selector to "T", "F" or "U", so that tests can tell
// FALSE from UNKNOWN, which Matches cannot.
func result(t *testing.T, src string, headers map[string]string) string {
	t.Helper()
	s, err := Compile(src)
	if err != nil {
		t.Fatalf("Compile(%q): %v", src, err)
	}
	if s.root == nil {
		return "T"
	}
	r := s.root.test(lookupIn(headers))
	if got := s.Matches(lookupIn(headers)); got != (r == isTrue) {
		t.Fatalf("%q: Matches = %v but evaluates to %v", src, got, r)
	}
	return [...]string{isFalse: "F", isTrue: "T", isUnknown: "U"}[r]
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		// Comparison of strings: exact.
		{"type = 'order'", "T"},
		{"type = 'ORDER'", "F"},
		{"type <> 'order'", "F"},
		{"type <> 'x'", "T"},
		{"price = '150'", "T"},
		{"price = '150.0'", "F"},
		{"qty = price", "F"},
		{"quote = 'it''s'", "T"},
		{"empty = ''", "T"},
		{"'' = empty", "T"},
		{"'a' = 'a'", "T"},

		// Numbers, and headers converted to them.
		{"price > 100", "T"},
		{"price < 100", "F"},
		{"price >= 150", "T"},
		{"price <= 150", "T"},
		{"price <= 149", "F"},
		{"price = 150", "T"},
		{"price = 150.0", "T"},
		{"price <> 150", "F"},
		{"price <> 151", "T"},
		{"ratio > 0.2", "T"},
		{"ratio = .25", "T"},
		{"ratio = 25e-2", "T"},
		{"ratio = 25E-2", "T"},
		{"qty < price", "T"}, // numerically, though "3" > "150" as text
		{"'10' = 10", "T"},
		{"neg < 0", "T"},
		{"neg = -7", "T"},
		{"-neg = 7", "T"},
		{"+neg = -7", "T"},
		{"f = 2.5", "T"},
		{"f = 2.5f", "T"},
		{"f = 2.5D", "T"},
		{"f * 2 = 5", "T"},
		{"sci = 1000", "T"},
		{"sci = 1e3", "T"},
		{"big = 9223372036854775807", "T"},
		{"min = -9223372036854775808", "T"},
		{"-min > 0", "T"},
		{"huge > big", "T"},
		{"word > 5", "U"},
		{"NOT (word > 5)", "U"},
		{"word = 5", "U"},
		{"price > word", "U"},
		{"spaced = 5", "U"}, // blanks are not part of a number
		{"hex = 16", "U"},   // nor is hex, in a header
		{"zero = 0", "T"},

		// Literals.
		{"0x1F = 31", "T"},
		{"0X1f = 31", "T"},
		{"0x10L = 16", "T"},
		{"017 = 15", "T"},
		{"017L = 15", "T"},
		{"0 = 0", "T"},
		{"00 = 0", "T"},
		{"10L = 10", "T"},
		{"10l = 10", "T"},
		{"1.5e2 = 150", "T"},
		{"1.E2 = 100", "T"},
		{"5. = 5", "T"},
		{"09.5 = 9.5", "T"},
		{"10f = 10", "T"},
		{"1e+2 = 100", "T"},
		{"12345678901234567890 > 1", "T"}, // beyond int64
		{"18446744073709551616 > 1", "T"}, // beyond uint64
		{"-9223372036854775808 < 0", "T"}, // MinInt64 literal
		{"9223372036854775807 = 0x7FFFFFFFFFFFFFFF", "T"},

		// Arithmetic.
		{"price + qty = 153", "T"},
		{"price - qty = 147", "T"},
		{"price * qty = 450", "T"},
		{"price / qty = 50", "T"},
		{"7 / 2 = 3.5", "T"},
		{"qty % 2 = 1", "T"},
		{"7.5 % 2 = 1.5", "T"},
		{"-7 % 2 = -1", "T"},
		{"1 + 2 * 3 = 7", "T"},
		{"(1 + 2) * 3 = 9", "T"},
		{"10 - 2 - 3 = 5", "T"},
		{"24 / 4 / 2 = 3", "T"},
		{"2 * 3 % 4 = 2", "T"},
		{"- 2 * 3 = -6", "T"},
		{"-(2 + 3) = -5", "T"},
		{"- -2 = 2", "T"},
		{"--2 = 2", "T"}, // no line break follows, so not a comment (as ActiveMQ)
		{"+(qty) = 3", "T"},
		{"price / zero > 0", "U"},
		{"price / 0 IS NULL", "T"},
		{"price % zero IS NULL", "T"},
		{"price % 0.0 IS NULL", "T"},
		{"word + 1 IS NULL", "T"},
		{"missing + 1 IS NULL", "T"},
		{"-word IS NULL", "T"},
		{"9223372036854775807 + 1 = 9223372036854775808", "T"},
		{"-9223372036854775808 - 1 < 0", "T"},
		{"9223372036854775807 * 9223372036854775807 > 0", "T"},
		{"-9223372036854775808 * -1 > 0", "T"},
		{"-9223372036854775808 / -1 > 0", "T"},
		{"-9223372036854775808 % -1 = 0", "T"},
		{"big + 1 > 0", "T"},
		{"-(-9223372036854775808) > 0", "T"},
		{"1e308 * 10 > 1e308", "T"},
		{"1e308 * 10 - 1e308 * 10 IS NULL", "T"}, // Inf - Inf

		// BETWEEN.
		{"JMSPriority BETWEEN 4 AND 9", "T"},
		{"JMSPriority NOT BETWEEN 4 AND 9", "F"},
		{"JMSPriority BETWEEN 5 AND 9", "F"},
		{"JMSPriority NOT BETWEEN 5 AND 9", "T"},
		{"JMSPriority BETWEEN 0 AND 3", "F"},
		{"JMSPriority BETWEEN 4.0 AND 4", "T"},
		{"missing BETWEEN 1 AND 2", "U"},
		{"missing NOT BETWEEN 1 AND 2", "U"},
		{"JMSPriority BETWEEN missing AND 2", "F"},
		{"JMSPriority BETWEEN missing AND 9", "U"},
		{"JMSPriority NOT BETWEEN missing AND 2", "T"},
		{"JMSPriority BETWEEN 1 AND 2 + 3", "T"},
		{"JMSPriority BETWEEN 1 AND 9 AND type = 'order'", "T"},
		{"word BETWEEN 1 AND 9", "U"},

		// IN.
		{"region IN ('eu', 'us')", "T"},
		{"region IN ('us')", "F"},
		{"region NOT IN ('us', 'apac')", "T"},
		{"region NOT IN ('eu')", "F"},
		{"missing IN ('eu')", "U"},
		{"missing NOT IN ('eu')", "U"},
		{"region IN ('a','b','c','d','e','f','g','h','i','eu')", "T"},
		{"region IN ('a','b','c','d','e','f','g','h','i','j')", "F"},
		{"region NOT IN ('a','b','c','d','e','f','g','h','i','j')", "T"},
		{"'eu' IN ('eu')", "T"},
		{"price IN ('150')", "T"},
		{"region IN ('EU')", "F"},
		{"quote IN ('it''s')", "T"},

		// LIKE.
		{"type LIKE 'ord%'", "T"},
		{"type LIKE '%der'", "T"},
		{"type LIKE '%rd%'", "T"},
		{"type LIKE '%'", "T"},
		{"type LIKE '%%'", "T"},
		{"type LIKE 'o_der'", "T"},
		{"type LIKE 'o_er'", "F"},
		{"type LIKE '_____'", "T"},
		{"type LIKE '______'", "F"},
		{"type LIKE 'order'", "T"},
		{"type LIKE 'Order'", "F"},
		{"type LIKE 'order_'", "F"},
		{"type LIKE 'o%r'", "T"},
		{"type LIKE 'o%d%r'", "T"},
		{"type LIKE 'o%x%r'", "F"},
		{"type LIKE 'ord%der'", "F"}, // prefix and suffix must not overlap
		{"type LIKE 'or%der'", "T"},
		{"type LIKE '%_r_%'", "T"},
		{"type NOT LIKE 'x%'", "T"},
		{"type NOT LIKE 'o%'", "F"},
		{"missing LIKE '%'", "U"},
		{"missing NOT LIKE '%'", "U"},
		{"empty LIKE '%'", "T"},
		{"empty LIKE ''", "T"},
		{"empty LIKE '_'", "F"},
		{"word LIKE '%an%an%'", "T"},
		{"word LIKE '%an%an%an%'", "F"},
		{"word LIKE 'b%a_a%a'", "T"},
		{"under LIKE 'a__'", "T"},
		{"unicode LIKE 'h_llo'", "T"},
		{"unicode LIKE 'h__llo'", "F"},
		{"unicode LIKE '%é%'", "T"},
		{"unicode LIKE '%_é_%'", "T"},
		{"quote LIKE 'it''s'", "T"},
		{"pct LIKE '100\\%' ESCAPE '\\'", "T"},
		{"pct LIKE '100!%' ESCAPE '!'", "T"},
		{"'1000' LIKE '100!%' ESCAPE '!'", "F"},
		{"under LIKE 'a!_b' ESCAPE '!'", "T"},
		{"type LIKE 'o!_der' ESCAPE '!'", "F"},
		{"'a!b' LIKE 'a!!b' ESCAPE '!'", "T"},
		{"'a!b' LIKE 'a!b' ESCAPE '!'", "T"}, // escapes only % _ and itself
		{"'a!' LIKE 'a!' ESCAPE '!'", "T"},
		{"'100%' LIKE '100%%' ESCAPE '%'", "T"},
		{"'1000' LIKE '100%%' ESCAPE '%'", "F"},
		{"'x_y' LIKE '%!_%' ESCAPE '!'", "T"},
		{"'xy' LIKE '%!_%' ESCAPE '!'", "F"},
		{"'aé_b' LIKE '%é!_b' ESCAPE '!'", "T"},
		{"'a*b' LIKE 'a*b' ESCAPE '*'", "T"},

		// IS NULL.
		{"missing IS NULL", "T"},
		{"missing IS NOT NULL", "F"},
		{"type IS NULL", "F"},
		{"type IS NOT NULL", "T"},
		{"empty IS NULL", "F"},
		{"NULL IS NULL", "T"},
		{"(missing > 1) IS NULL", "T"},
		{"(price > 1) IS NOT NULL", "T"},

		// Booleans.
		{"flag", "T"},
		{"flag = TRUE", "T"},
		{"flag = FALSE", "F"},
		{"flag <> FALSE", "T"},
		{"off = FALSE", "T"},
		{"NOT off", "T"},
		{"word = TRUE", "U"},
		{"word = FALSE", "U"},
		{"word", "U"},
		{"NOT word", "U"},
		{"flag AND off", "F"},
		{"TRUE", "T"},
		{"FALSE", "F"},
		{"NULL", "U"},
		{"TRUE = TRUE", "T"},
		{"TRUE <> FALSE", "T"},
		{"(price > 1) = TRUE", "T"},
		{"(price > 1) = flag", "T"},
		{"(price > 1) = off", "F"},
		{"(missing > 1) = TRUE", "U"},

		// Three-valued logic.
		{"TRUE AND TRUE", "T"},
		{"TRUE AND FALSE", "F"},
		{"TRUE AND NULL", "U"},
		{"NULL AND TRUE", "U"},
		{"FALSE AND NULL", "F"},
		{"NULL AND FALSE", "F"},
		{"NULL AND NULL", "U"},
		{"TRUE OR NULL", "T"},
		{"NULL OR TRUE", "T"},
		{"FALSE OR NULL", "U"},
		{"NULL OR FALSE", "U"},
		{"FALSE OR FALSE", "F"},
		{"NULL OR NULL", "U"},
		{"NOT NULL", "U"},
		{"NOT TRUE", "F"},
		{"NOT FALSE", "T"},
		{"missing = 1", "U"},
		{"NOT (missing = 1)", "U"},
		{"missing <> 1", "U"},
		{"'x' = missing", "U"},
		{"'x' <> missing", "U"},
		{"missing = missing", "U"},
		{"missing = 1 AND type = 'order'", "U"},
		{"missing = 1 OR type = 'order'", "T"},
		{"missing = 1 AND type = 'x'", "F"},
		{"missing = 1 OR type = 'x'", "U"},
		{"NOT (missing = 1 AND type = 'x')", "T"},

		// Precedence.
		{"type = 'x' AND price > 1 OR qty = 3", "T"},
		{"type = 'x' AND (price > 1 OR qty = 3)", "F"},
		{"qty = 3 OR type = 'x' AND price < 1", "T"},
		{"(qty = 3 OR type = 'x') AND price < 1", "F"},
		{"NOT type = 'x'", "T"},
		{"NOT type = 'order' OR qty = 3", "T"},
		{"NOT (type = 'order' OR qty = 3)", "F"},
		{"NOT type = 'order' AND qty = 3", "F"},
		{"NOT NOT flag", "T"},
		{"NOT price + 1 > 150", "F"},
		{"NOT price BETWEEN 1 AND 200", "F"},
		{"NOT type LIKE 'o%'", "F"},
		{"NOT region IN ('eu')", "F"},
		{"NOT missing IS NULL", "F"},
		{"price - 50 * 2 = 50", "T"},
		{"-qty * -qty = 9", "T"},

		// Keywords in any case; identifiers case-sensitive.
		{"type = 'order' and price > 1", "T"},
		{"type like 'o%' AnD region in ('eu') oR false", "T"},
		{"price between 1 and 200", "T"},
		{"price NOT between 1 and 200", "F"},
		{"missing is null", "T"},
		{"type iS nOt NuLl", "T"},
		{"flag = true", "T"},
		{"not flag = False", "T"},
		{"type not like 'x%'", "T"},
		{"type LIKE 'o!%' escape '!'", "F"},
		{"Type = 'order'", "U"},

		// Quoted and Unicode identifiers.
		{`"correlation-id" = 'abc-1'`, "T"},
		{`"correlation-id" LIKE 'abc%'`, "T"},
		{`"a""b" = 'quoted'`, "T"},
		{`"type" = 'order'`, "T"},
		{`"AND" IS NULL`, "T"},
		{"été = 'summer'", "T"},
		{"$x IS NULL AND _y IS NULL AND a$1_ IS NULL", "T"},

		// Comments and blanks.
		{"type = 'order' /* c */ AND price > 1", "T"},
		{"type = 'order' -- comment\n AND price > 1", "T"},
		{"type = 'order' -- comment\r AND price > 1", "T"},
		{"price --comment\n > 1", "T"},
		{"price/**/>/**/1", "T"},
		{"\ttype\n=\r'order'\f", "T"},
		{"price>1AND(qty=3)", "T"},

		// Empty selectors select everything.
		{"", "T"},
		{"   ", "T"},
		{"/* nothing */", "T"},
	}
	for _, tt := range tests {
		if got := result(t, tt.src, testHeaders); got != tt.want {
			t.Errorf("%q = %s, want %s", tt.src, got, tt.want)
		}
	}
}

func TestSyntaxErrors(t *testing.T) {
	tests := []struct {
		src string
		pos int
		msg string
	}{
		{"type = 'order", 8, "unterminated string literal"},
		{"type = ", 8, "expected an expression but found end of selector"},
		{"type = AND b", 8, `expected an expression but found "AND"`},
		{"type =", 7, "expected an expression but found end of selector"},
		{"AND", 1, `expected an expression but found "AND"`},
		{"(type = 'a'", 12, "expected ')' but found end of selector"},
		{"(type = 'a' AND", 16, "expected an expression but found end of selector"},
		{"((a = 1)", 9, "expected ')' but found end of selector"},
		{"type = 'a')", 11, "unmatched ')'"},
		{"type = 'a' b", 12, `expected AND, OR or end of selector but found "b"`},
		{"(a = 1 b)", 8, `expected ')' but found "b"`},
		{"a = 1 'x'", 7, `expected AND, OR or end of selector but found string "'x'"`},
		{"()", 2, `expected an expression but found ")"`},
		{"a LIKE 'x' ESCAPE 'ab'", 19, "ESCAPE must be one character"},
		{"a LIKE 'x' ESCAPE ''", 19, "ESCAPE must be one character"},
		{"a LIKE 'x' ESCAPE x", 19, "expected a string literal after ESCAPE"},
		{"a LIKE b", 8, "expected a string literal after LIKE"},
		{"a IN (1, 2)", 7, `expected a string literal but found "1"`},
		{"a IN ('x' 'y')", 11, "expected ',' or ')'"},
		{"a IN ('x',)", 11, "expected a string literal"},
		{"a IN ()", 7, "expected a string literal"},
		{"a IN 'x'", 6, "expected '(' after IN"},
		{"a BETWEEN 1 OR 2", 13, "expected AND in BETWEEN"},
		{"a BETWEEN 1", 12, "expected AND in BETWEEN"},
		{"a IS 5", 6, "expected NULL"},
		{"a IS NOT TRUE", 10, "expected NULL"},
		{"a NOT 5", 7, "expected BETWEEN, LIKE or IN after NOT"},
		{"a = NULL", 5, "cannot compare with NULL"},
		{"NULL <> a", 1, "cannot compare with NULL"},
		{"a > 'x'", 5, "compares numbers only"},
		{"'x' < a", 1, "compares numbers only"},
		{"a >= TRUE", 6, "compares numbers only"},
		{"(a = 1) < 2", 1, "compares numbers only"},
		{"a BETWEEN 'a' AND 'z'", 11, "compares numbers only"},
		{"a + 'x' = 1", 5, "needs numbers"},
		{"-'x' = a", 2, "needs numbers"},
		{"-TRUE = a", 2, "needs numbers"},
		{"a * NULL = 1", 5, "needs numbers"},
		{"(a > 1) + 1 = 2", 1, "needs numbers"},
		{"TRUE = 1", 8, "cannot compare TRUE with number"},
		{"'x' = FALSE", 7, "cannot compare"},
		{"(a = 1) = 5", 11, "cannot compare a condition with number"},
		{"a + 1", 1, "expected a condition but found a numeric expression"},
		{"'abc'", 1, "expected a condition but found string"},
		{"5", 1, "expected a condition but found number"},
		{"a AND 5", 7, "expected a condition"},
		{"5 OR a", 1, "expected a condition"},
		{"NOT 5", 5, "expected a condition"},
		{"NOT (a + 1)", 5, "expected a condition"},
		{"a = NOT b", 5, `expected an expression but found "NOT"`},
		{"a = b = c", 7, `expected AND, OR or end of selector but found "="`},
		{"a < b < c", 7, `expected AND, OR or end of selector but found "<"`},
		{"a IS NULL IS NULL", 11, `found "IS"`},
		{"5 LIKE '5'", 1, "LIKE applies to strings"},
		{"(a = 1) IN ('x')", 1, "IN applies to strings"},
		{"a != 1", 3, `use "<>"`},
		{"a == 1", 4, `expected an expression but found "="`},
		{"a # 1", 3, "unexpected character"},
		{"a = 1 é# ", 7, `expected AND, OR or end of selector but found "é"`},
		{"10abc = a", 3, `expected AND, OR or end of selector but found "abc"`},
		{"a = 1.2.3", 8, `found ".3"`},
		{"a = 10L5", 8, `found "5"`},
		{"a = 0x1FG", 9, `found "G"`},
		{"a = 09", 5, "bad octal literal"},
		{"a = 0x", 5, "bad hexadecimal literal"},
		{"a = 0xG", 5, "bad hexadecimal literal"},
		{"a = 0xFFFFFFFFFFFFFFFF", 5, "bad hexadecimal literal"},
		{"a = 01777777777777777777777", 5, "bad octal literal"},
		{"a = 1e", 5, "bad exponent"},
		{"a = 1e+", 5, "bad exponent"},
		{"a = 1e400", 5, "out of range"},
		{`"" = 1`, 1, "empty quoted identifier"},
		{`"abc = 1`, 1, "unterminated quoted identifier"},
		{"a = 1 /* x", 7, "unterminated comment"},
		{"XPATH '//a'", 1, "not supported"},
		{"xquery '//a'", 1, "not supported"},
		{"a = 1 AND regex(a, 'x')", 11, "function calls are not supported"},
		{"AND = 1", 1, `expected an expression but found "AND"`},
		{"é = 'x' AND", 12, "expected an expression but found end of selector"},
		{"'ééé' = 'x' AND", 16, "expected an expression"},
	}
	for _, tt := range tests {
		_, err := Compile(tt.src)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Compile(%q) = %v, want a *SyntaxError", tt.src, err)
			continue
		}
		if se.Pos != tt.pos || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("Compile(%q): %v; want position %d and %q", tt.src, err, tt.pos, tt.msg)
		}
	}
}

func TestErrorString(t *testing.T) {
	_, err := Compile("a IN ('x' AND b = 1")
	want := `selector: at position 11: expected ',' or ')' but found "AND"`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestLimits(t *testing.T) {
	nest := func(n int) string {
		return strings.Repeat("(", n) + "a = 1" + strings.Repeat(")", n)
	}
	if _, err := Compile(nest(MaxDepth)); err != nil {
		t.Errorf("%d levels: %v", MaxDepth, err)
	}
	checkErr := func(src string, pos int, msg string) {
		t.Helper()
		_, err := Compile(src)
		var se *SyntaxError
		if !errors.As(err, &se) || se.Pos != pos || !strings.Contains(se.Msg, msg) {
			t.Errorf("Compile(%.40q...) = %v, want %q at %d", src, err, msg, pos)
		}
	}
	checkErr(nest(MaxDepth+1), MaxDepth+1, "nesting deeper than 64")
	checkErr(strings.Repeat("NOT ", MaxDepth+1)+"a", 4*MaxDepth+1, "nesting deeper")
	checkErr("a = "+strings.Repeat("- ", MaxDepth+1)+"1", 4+2*MaxDepth+1, "nesting deeper")
	if _, err := Compile(strings.Repeat("NOT ", MaxDepth) + "a"); err != nil {
		t.Error(err)
	}
	checkErr(strings.Repeat("(", 1000), MaxDepth+1, "nesting deeper")
	// A long source is refused before it is parsed, however it nests.
	checkErr(strings.Repeat("(", 1<<20), MaxLength+1, "longer than 4096 bytes")
	checkErr(strings.Repeat("é", MaxLength), MaxLength/2+1, "longer than 4096 bytes")
	long := "a IN (" + strings.Repeat("'x',", (MaxLength-20)/4) + "'y')"
	if len(long) > MaxLength {
		t.Fatal("test selector too long")
	}
	if _, err := Compile(long); err != nil {
		t.Error(err)
	}
	// Long chains of binary operators do not nest.
	chain := "a = 1" + strings.Repeat(" AND a = 1", (MaxLength-10)/10)
	if got := result(t, chain, map[string]string{"a": "1"}); got != "T" {
		t.Errorf("chain = %s", got)
	}
	sum := "a" + strings.Repeat("+a", (MaxLength-10)/2) + " > 0"
	if got := result(t, sum, map[string]string{"a": "1"}); got != "T" {
		t.Errorf("sum = %s", got)
	}
}

func TestIdentifiers(t *testing.T) {
	s, err := Compile(`b = 1 AND a = 2 OR b IS NULL AND "c-d" LIKE 'x' AND 'lit' = 'lit' AND TRUE`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b", "c-d"}
	got := s.Identifiers()
	if !slices.Equal(got, want) {
		t.Errorf("Identifiers = %q, want %q", got, want)
	}
	got[0] = "changed"
	if s.Identifiers()[0] != "a" {
		t.Error("Identifiers shares its slice")
	}
	if e, _ := Compile(""); len(e.Identifiers()) != 0 {
		t.Error("empty selector has identifiers")
	}
}

func TestString(t *testing.T) {
	for _, src := range []string{"a = 1", "  type LIKE 'x%'  -- c\n", ""} {
		s, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		if s.String() != src {
			t.Errorf("String() = %q, want %q", s.String(), src)
		}
	}
}

func TestNilLookup(t *testing.T) {
	s, _ := Compile("a IS NULL")
	if !s.Matches(nil) {
		t.Error("nil lookup: a IS NULL should match")
	}
}

func TestHeaderNumbers(t *testing.T) {
	tests := []struct {
		s    string
		want value
		ok   bool
	}{
		{"0", intValue(0), true},
		{"42", intValue(42), true},
		{"+42", intValue(42), true},
		{"-42", intValue(-42), true},
		{"007", intValue(7), true},
		{"9223372036854775807", intValue(9223372036854775807), true},
		{"-9223372036854775808", intValue(-9223372036854775808), true},
		{"9223372036854775808", floatValue(9223372036854775808), true},
		{"99999999999999999999999", floatValue(1e23), true},
		{"1.5", floatValue(1.5), true},
		{"-.5", floatValue(-.5), true},
		{"5.", floatValue(5), true},
		{"1e3", floatValue(1000), true},
		{"1E-3", floatValue(0.001), true},
		{"1.5e+3", floatValue(1500), true},
		{"", value{}, false},
		{"-", value{}, false},
		{".", value{}, false},
		{"e3", value{}, false},
		{"1e", value{}, false},
		{"1e+", value{}, false},
		{" 1", value{}, false},
		{"1 ", value{}, false},
		{"0x10", value{}, false},
		{"10L", value{}, false},
		{"1.5f", value{}, false},
		{"NaN", value{}, false},
		{"Inf", value{}, false},
		{"1_000", value{}, false},
		{"1e999", value{}, false},
		{"--1", value{}, false},
	}
	for _, tt := range tests {
		got, ok := parseNumber(tt.s)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseNumber(%q) = %+v, %v; want %+v, %v", tt.s, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	selectors := []string{
		"type = 'order' AND price > 100 AND region IN ('eu','us')",
		"type LIKE 'o_d%' AND word LIKE '%a_a%' AND NOT (missing IS NOT NULL)",
		"region NOT IN ('a','b','c','d','e','f','g','h','i','j')",
		"(price * 2 + qty) / 3 BETWEEN 0 AND 1000 OR flag",
		"f * 2.5 > ratio AND -neg = 7 AND big + 1 > 0",
	}
	lookup := lookupIn(testHeaders)
	for _, src := range selectors {
		s, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Matches(lookup) {
			t.Errorf("%q does not match", src)
		}
		if n := testing.AllocsPerRun(100, func() { s.Matches(lookup) }); n != 0 {
			t.Errorf("%q: %v allocations per Matches", src, n)
		}
	}
}

func TestSyntaxErrorPositionsInRange(t *testing.T) {
	// Every error position is within the source or just past its end.
	for _, src := range []string{"'", "\"", "é'", "a = 1 é", "/*", "((é", "a = 0x"} {
		_, err := Compile(src)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("Compile(%q) = %v", src, err)
		}
		if se.Pos < 1 || se.Pos > utf8.RuneCountInString(src)+1 {
			t.Errorf("Compile(%q): position %d out of range", src, se.Pos)
		}
	}
}
