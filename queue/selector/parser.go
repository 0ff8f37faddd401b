package selector

import (
	"math"
	"unicode/utf8"
)

// The grammar, lowest precedence first (JMS 1.1 / SQL-92; see doc.go for
// where ActiveMQ's grammar differs):
//
//	selector   = [ or ] EOF
//	or         = and { OR and }
//	and        = not { AND not }
//	not        = NOT not | comparison
//	comparison = sum [ ( "=" | "<>" | "<" | ">" | "<=" | ">=" ) sum
//	                 | [ NOT ] BETWEEN sum AND sum
//	                 | [ NOT ] LIKE string [ ESCAPE string ]
//	                 | [ NOT ] IN "(" string { "," string } ")"
//	                 | IS [ NOT ] NULL ]
//	sum        = product { ( "+" | "-" ) product }
//	product    = unary { ( "*" | "/" | "%" ) unary }
//	unary      = ( "+" | "-" ) unary | primary
//	primary    = literal | identifier | "(" or ")"
//
// Comparisons do not chain: "a = b = c" is an error, "(a = b) = c" is not.

type opcode uint8

const (
	opConst opcode = iota // val
	opIdent               // name
	opAnd                 // kids, two or more
	opOr                  // kids, two or more
	opNot                 // kids[0]
	opEq                  // kids[0] op kids[1], up to opGe
	opNe
	opLt
	opGt
	opLe
	opGe
	opBetween    // kids[0] BETWEEN kids[1] AND kids[2]
	opNotBetween // likewise
	opLike       // kids[0] LIKE like
	opNotLike
	opIn // kids[0] IN in
	opNotIn
	opIsNull // kids[0]
	opIsNotNull
	opAdd // kids[0] op kids[1], up to opMod
	opSub
	opMul
	opDiv
	opMod
	opNeg  // - kids[0]
	opPlus // + kids[0]: a number, converted from a string if need be
)

// typ is what the parser knows of an expression's type before any
// message is seen; it is used only to reject selectors that could never
// mean anything, as ActiveMQ does for some of them.
type typ uint8

const (
	tyAny  typ = iota // an identifier: a header string, read by context
	tyBool            // conditions and TRUE/FALSE
	tyNum             // numeric literals and arithmetic
	tyStr             // string literals
	tyNull            // the NULL literal
)

// node is an expression tree node. A closed set of operations in one
// struct, evaluated by a switch (eval.go), lets the compiler see that
// Matches' lookup function does not escape, so calling Matches with a
// closure does not allocate.
type node struct {
	op   opcode
	typ  typ
	pos  int // byte offset of the expression in the source
	val  value
	name string
	kids []*node
	in   *inList
	like *likeMatcher
}

type parser struct {
	lx     lexer
	tok    token
	depth  int
	idents map[string]struct{}
}

func (p *parser) errorf(off int, format string, args ...any) error {
	return errAt(p.lx.src, off, format, args...)
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// found describes the current token for "expected X but found Y".
func (p *parser) found() string {
	switch p.tok.kind {
	case tEOF:
		return "end of selector"
	case tString:
		return "string " + describe(quoteString(p.tok.text))
	}
	return describe(p.lx.src[p.tok.pos:p.tok.end])
}

func (p *parser) expected(what string) error {
	return p.errorf(p.tok.pos, "expected %s but found %s", what, p.found())
}

// enter opens a nesting level; the caller closes it with p.depth--.
func (p *parser) enter(pos int) error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errorf(pos, "nesting deeper than %d levels", MaxDepth)
	}
	return nil
}

func (p *parser) parse() (*node, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind == tEOF {
		return nil, nil // empty selector: no selection at all
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	switch p.tok.kind {
	case tEOF:
	case tRParen:
		return nil, p.errorf(p.tok.pos, "unmatched ')'")
	default:
		return nil, p.expected("AND, OR or end of selector")
	}
	if err := p.wantBool(n); err != nil {
		return nil, err
	}
	return n, nil
}

func (p *parser) parseOr() (*node, error) {
	return p.parseLogic(tOr, opOr, (*parser).parseAnd)
}

func (p *parser) parseAnd() (*node, error) {
	return p.parseLogic(tAnd, opAnd, (*parser).parseNot)
}

// parseLogic parses a run of operands joined by AND or OR into one node
// with many children, so that long runs do not make deep trees.
func (p *parser) parseLogic(kw tokKind, op opcode, operand func(*parser) (*node, error)) (*node, error) {
	first, err := operand(p)
	if err != nil || p.tok.kind != kw {
		return first, err
	}
	n := &node{op: op, typ: tyBool, pos: first.pos}
	add := func(k *node) error {
		if err := p.wantBool(k); err != nil {
			return err
		}
		if k.op == op {
			n.kids = append(n.kids, k.kids...)
		} else {
			n.kids = append(n.kids, k)
		}
		return nil
	}
	if err := add(first); err != nil {
		return nil, err
	}
	for p.tok.kind == kw {
		if err := p.advance(); err != nil {
			return nil, err
		}
		k, err := operand(p)
		if err != nil {
			return nil, err
		}
		if err := add(k); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (p *parser) parseNot() (*node, error) {
	if p.tok.kind != tNot {
		return p.parseComparison()
	}
	pos := p.tok.pos
	if err := p.enter(pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	k, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	if err := p.wantBool(k); err != nil {
		return nil, err
	}
	p.depth--
	return &node{op: opNot, typ: tyBool, pos: pos, kids: []*node{k}}, nil
}

var comparisons = map[tokKind]opcode{
	tEq: opEq, tNe: opNe, tLt: opLt, tGt: opGt, tLe: opLe, tGe: opGe,
}

func (p *parser) parseComparison() (*node, error) {
	left, err := p.parseSum()
	if err != nil {
		return nil, err
	}
	if op, ok := comparisons[p.tok.kind]; ok {
		sym := p.tok.text
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := p.parseSum()
		if err != nil {
			return nil, err
		}
		if op == opEq || op == opNe {
			err = p.checkEquality(sym, left, right)
		} else {
			err = p.wantOrdered(sym, left, right)
		}
		if err != nil {
			return nil, err
		}
		return &node{op: op, typ: tyBool, pos: left.pos, kids: []*node{left, right}}, nil
	}

	negated := false
	switch p.tok.kind {
	case tIs:
		if err := p.advance(); err != nil {
			return nil, err
		}
		op := opIsNull
		if p.tok.kind == tNot {
			op = opIsNotNull
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		if p.tok.kind != tNull {
			return nil, p.expected("NULL")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		return &node{op: op, typ: tyBool, pos: left.pos, kids: []*node{left}}, nil
	case tNot:
		negated = true
		if err := p.advance(); err != nil {
			return nil, err
		}
		if k := p.tok.kind; k != tBetween && k != tLike && k != tIn {
			return nil, p.expected("BETWEEN, LIKE or IN after NOT")
		}
	}
	switch p.tok.kind {
	case tBetween:
		return p.parseBetween(left, negated)
	case tLike:
		return p.parseLike(left, negated)
	case tIn:
		return p.parseIn(left, negated)
	}
	return left, nil
}

func (p *parser) parseBetween(left *node, negated bool) (*node, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	low, err := p.parseSum()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tAnd {
		return nil, p.expected("AND in BETWEEN")
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	high, err := p.parseSum()
	if err != nil {
		return nil, err
	}
	if err := p.wantOrdered("BETWEEN", left, low, high); err != nil {
		return nil, err
	}
	op := opBetween
	if negated {
		op = opNotBetween
	}
	return &node{op: op, typ: tyBool, pos: left.pos, kids: []*node{left, low, high}}, nil
}

func (p *parser) parseLike(left *node, negated bool) (*node, error) {
	if err := p.wantText("LIKE", left); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tString {
		return nil, p.expected("a string literal after LIKE")
	}
	pattern := p.tok.text
	if err := p.advance(); err != nil {
		return nil, err
	}
	esc, hasEsc := rune(0), false
	if p.tok.kind == tEscape {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tString {
			return nil, p.expected("a string literal after ESCAPE")
		}
		if utf8.RuneCountInString(p.tok.text) != 1 {
			return nil, p.errorf(p.tok.pos, "ESCAPE must be one character, not %s", describe(quoteString(p.tok.text)))
		}
		esc, _ = utf8.DecodeRuneInString(p.tok.text)
		hasEsc = true
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	op := opLike
	if negated {
		op = opNotLike
	}
	m := compileLike(pattern, esc, hasEsc)
	return &node{op: op, typ: tyBool, pos: left.pos, kids: []*node{left}, like: m}, nil
}

func (p *parser) parseIn(left *node, negated bool) (*node, error) {
	if err := p.wantText("IN", left); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tLParen {
		return nil, p.expected("'(' after IN")
	}
	var list []string
	for {
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind != tString {
			return nil, p.expected("a string literal")
		}
		list = append(list, p.tok.text)
		if err := p.advance(); err != nil {
			return nil, err
		}
		if p.tok.kind == tRParen {
			break
		}
		if p.tok.kind != tComma {
			return nil, p.expected("',' or ')'")
		}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	op := opIn
	if negated {
		op = opNotIn
	}
	return &node{op: op, typ: tyBool, pos: left.pos, kids: []*node{left}, in: newInList(list)}, nil
}

var (
	sumOps     = map[tokKind]opcode{tPlus: opAdd, tMinus: opSub}
	productOps = map[tokKind]opcode{tStar: opMul, tSlash: opDiv, tPercent: opMod}
)

func (p *parser) parseSum() (*node, error) {
	return p.parseArith(sumOps, (*parser).parseProduct)
}

func (p *parser) parseProduct() (*node, error) {
	return p.parseArith(productOps, (*parser).parseUnary)
}

// parseArith parses a left-associative run of binary arithmetic.
func (p *parser) parseArith(ops map[tokKind]opcode, operand func(*parser) (*node, error)) (*node, error) {
	left, err := operand(p)
	if err != nil {
		return nil, err
	}
	for {
		op, ok := ops[p.tok.kind]
		if !ok {
			return left, nil
		}
		sym := p.tok.text
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := operand(p)
		if err != nil {
			return nil, err
		}
		if err := p.wantNumeric(sym, left, right); err != nil {
			return nil, err
		}
		left = &node{op: op, typ: tyNum, pos: left.pos, kids: []*node{left, right}}
	}
}

func (p *parser) parseUnary() (*node, error) {
	if p.tok.kind != tPlus && p.tok.kind != tMinus {
		return p.parsePrimary()
	}
	pos, sym := p.tok.pos, p.tok.text
	if err := p.enter(pos); err != nil {
		return nil, err
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	// -9223372036854775808 is an int64, though its magnitude is not.
	if sym == "-" && p.tok.kind == tInt && p.tok.u == 1<<63 {
		if err := p.advance(); err != nil {
			return nil, err
		}
		p.depth--
		return &node{op: opConst, typ: tyNum, pos: pos, val: intValue(math.MinInt64)}, nil
	}
	k, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	if err := p.wantNumeric(sym, k); err != nil {
		return nil, err
	}
	p.depth--
	if k.op == opConst { // fold, so that -5 costs nothing per message
		if sym == "-" {
			k.val = negate(k.val)
		}
		k.pos = pos
		return k, nil
	}
	op := opPlus
	if sym == "-" {
		op = opNeg
	}
	return &node{op: op, typ: tyNum, pos: pos, kids: []*node{k}}, nil
}

func (p *parser) parsePrimary() (*node, error) {
	t := p.tok
	var n *node
	switch t.kind {
	case tInt:
		v := intValue(int64(t.u))
		if t.u > math.MaxInt64 {
			v = floatValue(float64(t.u))
		}
		n = &node{op: opConst, typ: tyNum, val: v}
	case tFloat:
		n = &node{op: opConst, typ: tyNum, val: floatValue(t.f)}
	case tString:
		n = &node{op: opConst, typ: tyStr, val: value{k: kString, s: t.text}}
	case tTrue, tFalse:
		n = &node{op: opConst, typ: tyBool, val: boolValue(t.kind == tTrue)}
	case tNull:
		n = &node{op: opConst, typ: tyNull}
	case tIdent:
		n = &node{op: opIdent, typ: tyAny, name: t.text}
		p.idents[t.text] = struct{}{}
	case tXPath:
		return nil, p.errorf(t.pos, "%s selectors are not supported", describe(t.text))
	case tLParen:
		if err := p.enter(t.pos); err != nil {
			return nil, err
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		inner, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tRParen {
			return nil, p.expected("')'")
		}
		p.depth--
		inner.pos = t.pos
		return inner, p.advance()
	default:
		return nil, p.expected("an expression")
	}
	n.pos = t.pos
	if err := p.advance(); err != nil {
		return nil, err
	}
	if t.kind == tIdent && p.tok.kind == tLParen {
		// ActiveMQ 5 has functions (REGEX, INLIST...); say so rather
		// than "expected end of selector".
		return nil, p.errorf(t.pos, "function calls are not supported")
	}
	return n, nil
}

// Type checks. They reject only what could never make sense: a literal
// of the wrong type, or an operator's result where it cannot be used.
// Identifiers pass them all, and are judged per message.

func what(n *node) string {
	if n.op == opConst {
		switch n.typ {
		case tyStr:
			return "string " + describe(quoteString(n.val.s))
		case tyNull:
			return "NULL"
		case tyBool:
			if n.val.b {
				return "TRUE"
			}
			return "FALSE"
		}
		return "number"
	}
	switch n.typ {
	case tyBool:
		return "a condition"
	case tyNum:
		return "a numeric expression"
	}
	return "an identifier"
}

func (p *parser) wantBool(n *node) error {
	if n.typ == tyNum || n.typ == tyStr {
		return p.errorf(n.pos, "expected a condition but found %s", what(n))
	}
	return nil
}

func (p *parser) wantNumeric(sym string, ns ...*node) error {
	for _, n := range ns {
		if n.typ != tyNum && n.typ != tyAny {
			return p.errorf(n.pos, "%s needs numbers but found %s", describe(sym), what(n))
		}
	}
	return nil
}

// wantOrdered: JMS orders numbers only; strings and booleans have just
// = and <> (ActiveMQ rejects the same literals).
func (p *parser) wantOrdered(sym string, ns ...*node) error {
	for _, n := range ns {
		if n.typ != tyNum && n.typ != tyAny {
			return p.errorf(n.pos, "%s compares numbers only but found %s", describe(sym), what(n))
		}
	}
	return nil
}

func (p *parser) wantText(sym string, n *node) error {
	if n.typ != tyStr && n.typ != tyAny {
		return p.errorf(n.pos, "%s applies to strings but found %s", sym, what(n))
	}
	return nil
}

func (p *parser) checkEquality(sym string, left, right *node) error {
	for _, n := range []*node{left, right} {
		if n.typ == tyNull {
			return p.errorf(n.pos, "cannot compare with NULL using %s; use IS NULL or IS NOT NULL", describe(sym))
		}
	}
	a, b := left.typ, right.typ
	if a == tyAny || b == tyAny || a == b || a != tyBool && b != tyBool {
		return nil
	}
	return p.errorf(right.pos, "cannot compare %s with %s", what(left), what(right))
}
