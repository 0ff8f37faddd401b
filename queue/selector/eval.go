package selector

import (
	"cmp"
	"math"
	"strconv"
	"strings"
)

type kind uint8

const (
	kNull kind = iota // a missing header, or UNKNOWN
	kBool
	kInt
	kFloat
	kString // a header value or a string literal
)

// value is what an expression evaluates to. It is small and passed by
// value, so evaluation needs no heap.
type value struct {
	k kind
	b bool
	i int64
	f float64
	s string
}

func intValue(i int64) value     { return value{k: kInt, i: i} }
func floatValue(f float64) value { return value{k: kFloat, f: f} }
func boolValue(b bool) value     { return value{k: kBool, b: b} }

// tri is SQL's three-valued truth.
type tri uint8

const (
	isFalse tri = iota
	isTrue
	isUnknown
)

func triOf(b bool) tri {
	if b {
		return isTrue
	}
	return isFalse
}

func (t tri) not() tri {
	switch t {
	case isTrue:
		return isFalse
	case isFalse:
		return isTrue
	}
	return isUnknown
}

// value turns a truth into a value; UNKNOWN is NULL, as in SQL, so that
// "(a > 1) IS NULL" holds when a is missing.
func (t tri) value() value {
	if t == isUnknown {
		return value{}
	}
	return boolValue(t == isTrue)
}

// truth reads a value as a condition: a header holding "true" or
// "false" (in any case) is a boolean, anything else is UNKNOWN.
func truth(v *value) tri {
	if b, ok := toBool(v); ok {
		return triOf(b)
	}
	return isUnknown
}

func truthOf(s string) tri {
	switch {
	case strings.EqualFold(s, "true"):
		return isTrue
	case strings.EqualFold(s, "false"):
		return isFalse
	}
	return isUnknown
}

// eval evaluates an expression to a value. Conditions are evaluated by
// test, which eval defers to: keeping the two apart keeps both frames
// small and spares AND, OR and NOT a round trip through value.
func (n *node) eval(lookup func(string) (string, bool)) value {
	switch n.op {
	case opConst:
		return n.val
	case opIdent:
		if s, ok := lookup(n.name); ok {
			return value{k: kString, s: s}
		}
		return value{}
	case opAdd, opSub, opMul, opDiv, opMod:
		a := n.kids[0].eval(lookup)
		b := n.kids[1].eval(lookup)
		return arith(n.op, &a, &b)
	case opNeg, opPlus:
		v := n.kids[0].eval(lookup)
		x, ok := toNumber(&v)
		if !ok {
			return value{}
		}
		if n.op == opNeg {
			return negate(x)
		}
		return x
	}
	return n.test(lookup).value()
}

// test evaluates an expression as a condition.
func (n *node) test(lookup func(string) (string, bool)) tri {
	switch n.op {
	case opAnd:
		// FALSE wins over UNKNOWN, so stop at the first FALSE only.
		r := isTrue
		for _, k := range n.kids {
			switch k.test(lookup) {
			case isFalse:
				return isFalse
			case isUnknown:
				r = isUnknown
			}
		}
		return r
	case opOr:
		r := isFalse
		for _, k := range n.kids {
			switch k.test(lookup) {
			case isTrue:
				return isTrue
			case isUnknown:
				r = isUnknown
			}
		}
		return r
	case opNot:
		return n.kids[0].test(lookup).not()
	case opEq, opNe, opLt, opGt, opLe, opGe:
		a := n.kids[0].eval(lookup)
		b := n.kids[1].eval(lookup)
		return compare(n.op, &a, &b)
	case opBetween, opNotBetween:
		// x BETWEEN a AND b is x >= a AND x <= b, three-valued; NOT
		// BETWEEN is its negation, which is x < a OR x > b.
		v := n.kids[0].eval(lookup)
		bound := n.kids[1].eval(lookup)
		r := compare(opGe, &v, &bound)
		if r != isFalse {
			bound = n.kids[2].eval(lookup)
			if hi := compare(opLe, &v, &bound); hi != isTrue {
				r = hi
			}
		}
		if n.op == opNotBetween {
			r = r.not()
		}
		return r
	case opLike, opNotLike:
		v := n.kids[0].eval(lookup)
		if v.k != kString {
			return isUnknown
		}
		return triOf(n.like.match(v.s) == (n.op == opLike))
	case opIn, opNotIn:
		v := n.kids[0].eval(lookup)
		if v.k != kString {
			return isUnknown
		}
		return triOf(n.in.contains(v.s) == (n.op == opIn))
	case opIsNull, opIsNotNull:
		null := n.kids[0].eval(lookup).k == kNull
		return triOf(null == (n.op == opIsNull))
	case opConst:
		return truth(&n.val)
	case opIdent:
		s, ok := lookup(n.name)
		if !ok {
			return isUnknown
		}
		return truthOf(s)
	}
	v := n.eval(lookup)
	return truth(&v)
}

// compare applies a comparison operator; any NULL operand, or operands
// that cannot be brought to a common type, make it UNKNOWN.
func compare(op opcode, a, b *value) tri {
	if a.k == kNull || b.k == kNull {
		return isUnknown
	}
	if op == opEq || op == opNe {
		eq, ok := equal(a, b)
		if !ok {
			return isUnknown
		}
		return triOf(eq == (op == opEq))
	}
	c, ok := order(a, b)
	if !ok {
		return isUnknown
	}
	switch op {
	case opLt:
		return triOf(c < 0)
	case opGt:
		return triOf(c > 0)
	case opLe:
		return triOf(c <= 0)
	}
	return triOf(c >= 0)
}

// equal: two strings compare exactly; against a boolean the other side
// must read as a boolean; otherwise both must read as numbers.
func equal(a, b *value) (eq, ok bool) {
	switch {
	case a.k == kString && b.k == kString:
		return a.s == b.s, true
	case a.k == kBool || b.k == kBool:
		x, ok1 := toBool(a)
		y, ok2 := toBool(b)
		return x == y, ok1 && ok2
	}
	c, ok := order(a, b)
	return c == 0, ok
}

// order compares two values as numbers, promoting to float64 unless
// both are integers.
func order(a, b *value) (int, bool) {
	x, ok := toNumber(a)
	if !ok {
		return 0, false
	}
	y, ok := toNumber(b)
	if !ok {
		return 0, false
	}
	if x.k == kInt && y.k == kInt {
		return cmp.Compare(x.i, y.i), true
	}
	fx, fy := asFloat(x), asFloat(y)
	if math.IsNaN(fx) || math.IsNaN(fy) {
		return 0, false
	}
	return cmp.Compare(fx, fy), true
}

func toBool(v *value) (b, ok bool) {
	switch v.k {
	case kBool:
		return v.b, true
	case kString:
		t := truthOf(v.s)
		return t == isTrue, t != isUnknown
	}
	return false, false
}

func toNumber(v *value) (value, bool) {
	switch v.k {
	case kInt, kFloat:
		return *v, true
	case kString:
		return parseNumber(v.s)
	}
	return value{}, false
}

func asFloat(v value) float64 {
	if v.k == kInt {
		return float64(v.i)
	}
	return v.f
}

// parseNumber reads a header value as a number: an optional sign, then
// decimal digits with an optional fraction and exponent ("10", "-3",
// "10.5", ".5", "1e3"). Nothing else (no blanks, hex, suffixes, Inf or
// NaN): a header is a number only if it plainly is one. Integers that
// fit are int64, the rest float64.
func parseNumber(s string) (value, bool) {
	if s == "" {
		return value{}, false
	}
	i, neg := 0, false
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		i++
	}
	var u uint64
	overflow := false
	start := i
	for i < len(s) && isDigit(s[i]) {
		d := uint64(s[i] - '0')
		if u > (math.MaxUint64-d)/10 {
			overflow = true
		} else {
			u = u*10 + d
		}
		i++
	}
	intDigits := i - start
	if i == len(s) && intDigits > 0 && !overflow {
		switch {
		case !neg && u <= math.MaxInt64:
			return intValue(int64(u)), true
		case neg && u <= 1<<63:
			return intValue(int64(-u)), true // wraps to MinInt64 for 1<<63
		}
	}
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			fracDigits++
		}
	}
	if intDigits+fracDigits == 0 {
		return value{}, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		expStart := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == expStart {
			return value{}, false
		}
	}
	if i != len(s) {
		return value{}, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil { // out of float64's range
		return value{}, false
	}
	return floatValue(f), true
}

// arith applies + - * / %. Integers stay integers while they fit and
// become float64 when they would overflow (Java would wrap). Division
// gives a float, as in ActiveMQ (7 / 2 = 3.5). Dividing by zero, and
// results that are not numbers (Inf - Inf), are NULL.
func arith(op opcode, a, b *value) value {
	x, ok := toNumber(a)
	if !ok {
		return value{}
	}
	y, ok := toNumber(b)
	if !ok {
		return value{}
	}
	if x.k == kInt && y.k == kInt {
		switch op {
		case opAdd:
			if r, ok := addInt(x.i, y.i); ok {
				return intValue(r)
			}
		case opSub:
			if r, ok := subInt(x.i, y.i); ok {
				return intValue(r)
			}
		case opMul:
			if r, ok := mulInt(x.i, y.i); ok {
				return intValue(r)
			}
		case opMod:
			if y.i == 0 {
				return value{}
			}
			return intValue(x.i % y.i) // MinInt64 % -1 is 0 in Go, no trap
		}
	}
	fx, fy := asFloat(x), asFloat(y)
	var r float64
	switch op {
	case opAdd:
		r = fx + fy
	case opSub:
		r = fx - fy
	case opMul:
		r = fx * fy
	case opDiv:
		if fy == 0 {
			return value{}
		}
		r = fx / fy
	case opMod:
		if fy == 0 {
			return value{}
		}
		r = math.Mod(fx, fy)
	}
	if math.IsNaN(r) {
		return value{}
	}
	return floatValue(r)
}

func addInt(a, b int64) (int64, bool) {
	if b > 0 && a > math.MaxInt64-b || b < 0 && a < math.MinInt64-b {
		return 0, false
	}
	return a + b, true
}

func subInt(a, b int64) (int64, bool) {
	if b < 0 && a > math.MaxInt64+b || b > 0 && a < math.MinInt64+b {
		return 0, false
	}
	return a - b, true
}

func mulInt(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	if a == -1 && b == math.MinInt64 || b == -1 && a == math.MinInt64 {
		return 0, false
	}
	r := a * b
	if r/b != a {
		return 0, false
	}
	return r, true
}

func negate(v value) value {
	switch v.k {
	case kInt:
		if v.i == math.MinInt64 {
			return floatValue(-float64(v.i))
		}
		return intValue(-v.i)
	case kFloat:
		return floatValue(-v.f)
	}
	return value{}
}

// inList is the right side of IN. Short lists are scanned; long ones
// are hashed, so that IN costs one lookup whatever its length.
type inList struct {
	list []string
	set  map[string]struct{}
}

const inListScanMax = 8

func newInList(list []string) *inList {
	l := &inList{list: list}
	if len(list) > inListScanMax {
		l.set = make(map[string]struct{}, len(list))
		for _, s := range list {
			l.set[s] = struct{}{}
		}
	}
	return l
}

func (l *inList) contains(s string) bool {
	if l.set != nil {
		_, ok := l.set[s]
		return ok
	}
	for _, e := range l.list {
		if e == s {
			return true
		}
	}
	return false
}
