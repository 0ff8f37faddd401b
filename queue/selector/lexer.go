package selector

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // bare or double-quoted identifier; text is the name
	tString         // text is the literal's value, '' already undone
	tInt            // exact numeric; u is its magnitude
	tFloat          // approximate numeric; f is its value

	// Keywords, matched without regard to case.
	tAnd
	tOr
	tNot
	tBetween
	tLike
	tEscape
	tIn
	tIs
	tNull
	tTrue
	tFalse
	tXPath // XPATH and XQUERY: reserved by ActiveMQ, not supported here

	tLParen
	tRParen
	tComma
	tEq
	tNe
	tLt
	tGt
	tLe
	tGe
	tPlus
	tMinus
	tStar
	tSlash
	tPercent
)

// token is one lexical element. pos and end are byte offsets into the
// source; errors convert them to character positions.
type token struct {
	kind tokKind
	pos  int
	end  int
	text string
	u    uint64
	f    float64
}

var keywords = []struct {
	word string
	kind tokKind
}{
	{"AND", tAnd}, {"OR", tOr}, {"NOT", tNot}, {"BETWEEN", tBetween},
	{"LIKE", tLike}, {"ESCAPE", tEscape}, {"IN", tIn}, {"IS", tIs},
	{"NULL", tNull}, {"TRUE", tTrue}, {"FALSE", tFalse},
	{"XPATH", tXPath}, {"XQUERY", tXPath},
}

type lexer struct {
	src string
	off int
}

func (l *lexer) errorf(off int, format string, args ...any) error {
	return errAt(l.src, off, format, args...)
}

// next returns the token at the current offset and moves past it.
func (l *lexer) next() (token, error) {
	if err := l.skipBlanks(); err != nil {
		return token{}, err
	}
	start := l.off
	if start >= len(l.src) {
		return token{kind: tEOF, pos: start, end: start}, nil
	}
	c := l.src[start]
	switch {
	case c == '\'':
		return l.quoted('\'', tString)
	case c == '"':
		return l.quoted('"', tIdent)
	case isDigit(c) || c == '.' && start+1 < len(l.src) && isDigit(l.src[start+1]):
		return l.number()
	case c == '!' && strings.HasPrefix(l.src[start:], "!="):
		return token{}, l.errorf(start, `"!=" is not a selector operator; use "<>"`)
	}
	if r, _ := utf8.DecodeRuneInString(l.src[start:]); isIdentStart(r) {
		return l.word()
	}
	kind, width := tEOF, 1
	switch c {
	case '(':
		kind = tLParen
	case ')':
		kind = tRParen
	case ',':
		kind = tComma
	case '=':
		kind = tEq
	case '+':
		kind = tPlus
	case '-':
		kind = tMinus
	case '*':
		kind = tStar
	case '/':
		kind = tSlash
	case '%':
		kind = tPercent
	case '<':
		kind = tLt
		if strings.HasPrefix(l.src[start:], "<>") {
			kind, width = tNe, 2
		} else if strings.HasPrefix(l.src[start:], "<=") {
			kind, width = tLe, 2
		}
	case '>':
		kind = tGt
		if strings.HasPrefix(l.src[start:], ">=") {
			kind, width = tGe, 2
		}
	default:
		_, size := utf8.DecodeRuneInString(l.src[start:])
		return token{}, l.errorf(start, "unexpected character %s", describe(l.src[start:start+size]))
	}
	l.off += width
	return token{kind: kind, pos: start, end: l.off, text: l.src[start:l.off]}, nil
}

// skipBlanks skips white space and comments. Comments follow ActiveMQ's
// grammar, quirk included: "--" opens a line comment only when a line
// break follows somewhere, so that "5--1" at the end of a selector
// still means 5 - (-1) there as well as here.
func (l *lexer) skipBlanks() error {
	for l.off < len(l.src) {
		rest := l.src[l.off:]
		switch {
		case rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r' || rest[0] == '\f':
			l.off++
		case strings.HasPrefix(rest, "--"):
			eol := strings.IndexAny(rest, "\n\r")
			if eol < 0 {
				return nil
			}
			l.off += eol + 1
		case strings.HasPrefix(rest, "/*"):
			end := strings.Index(rest[2:], "*/")
			if end < 0 {
				return l.errorf(l.off, "unterminated comment")
			}
			l.off += 2 + end + 2
		default:
			return nil
		}
	}
	return nil
}

// quoted scans a string literal ('...') or a quoted identifier ("..."),
// in which the quote character is written twice to stand for itself.
func (l *lexer) quoted(q byte, kind tokKind) (token, error) {
	start := l.off
	var b strings.Builder
	from := start + 1
	for i := from; i < len(l.src); i++ {
		if l.src[i] != q {
			continue
		}
		if i+1 < len(l.src) && l.src[i+1] == q {
			b.WriteString(l.src[from : i+1])
			i++
			from = i + 1
			continue
		}
		b.WriteString(l.src[from:i])
		l.off = i + 1
		if kind == tIdent && b.Len() == 0 {
			return token{}, l.errorf(start, "empty quoted identifier")
		}
		return token{kind: kind, pos: start, end: l.off, text: b.String()}, nil
	}
	if kind == tIdent {
		return token{}, l.errorf(start, "unterminated quoted identifier")
	}
	return token{}, l.errorf(start, "unterminated string literal")
}

// word scans an identifier or a keyword.
func (l *lexer) word() (token, error) {
	start := l.off
	i := start
	for i < len(l.src) {
		r, size := utf8.DecodeRuneInString(l.src[i:])
		if !isIdentPart(r) {
			break
		}
		i += size
	}
	l.off = i
	text := l.src[start:i]
	for _, k := range keywords {
		if strings.EqualFold(text, k.word) {
			return token{kind: k.kind, pos: start, end: i, text: text}, nil
		}
	}
	return token{kind: tIdent, pos: start, end: i, text: text}, nil
}

// number scans a numeric literal: decimal, hex (0x..) or octal (0..)
// integers with an optional L, and Java floating point literals with an
// optional F or D.
func (l *lexer) number() (token, error) {
	src, start := l.src, l.off
	i := start
	digits := func() int {
		j := i
		for i < len(src) && isDigit(src[i]) {
			i++
		}
		return i - j
	}
	var tok token
	switch {
	case strings.HasPrefix(src[i:], "0x") || strings.HasPrefix(src[i:], "0X"):
		i += 2
		j := i
		for i < len(src) && isHex(src[i]) {
			i++
		}
		u, err := strconv.ParseUint(src[j:i], 16, 64)
		if i == j || err != nil || u > math.MaxInt64 {
			return token{}, l.errorf(start, "bad hexadecimal literal %s", describe(src[start:i]))
		}
		if i < len(src) && (src[i] == 'l' || src[i] == 'L') {
			i++
		}
		tok = token{kind: tInt, u: u}
	default:
		intDigits := digits()
		isFloat := false
		if i < len(src) && src[i] == '.' {
			i++
			digits()
			isFloat = true
		}
		if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
			i++
			if i < len(src) && (src[i] == '+' || src[i] == '-') {
				i++
			}
			if digits() == 0 {
				return token{}, l.errorf(start, "bad exponent in number %s", describe(src[start:i]))
			}
			isFloat = true
		}
		text := src[start:i]
		if i < len(src) && strings.IndexByte("fFdD", src[i]) >= 0 {
			i++
			isFloat = true
		}
		switch {
		case isFloat:
			f, err := strconv.ParseFloat(text, 64)
			if err != nil {
				return token{}, l.errorf(start, "number %s out of range", describe(src[start:i]))
			}
			tok = token{kind: tFloat, f: f}
		case intDigits > 1 && text[0] == '0':
			u, err := strconv.ParseUint(text[1:], 8, 64)
			if err != nil || u > math.MaxInt64 {
				return token{}, l.errorf(start, "bad octal literal %s", describe(text))
			}
			tok = token{kind: tInt, u: u}
		default:
			u, err := strconv.ParseUint(text, 10, 64)
			if err != nil {
				// Beyond uint64: keep it as a float, as ActiveMQ keeps
				// integers beyond long as BigDecimal.
				f, ferr := strconv.ParseFloat(text, 64)
				if ferr != nil {
					return token{}, l.errorf(start, "number %s out of range", describe(text))
				}
				tok = token{kind: tFloat, f: f}
			} else {
				tok = token{kind: tInt, u: u}
			}
		}
		if tok.kind == tInt && i < len(src) && (src[i] == 'l' || src[i] == 'L') {
			i++
		}
	}
	// What follows is the next token, even with no blank between, as in
	// ActiveMQ: "price>1AND(qty=3)" is valid, and "10abc" a syntax error
	// at "abc".
	l.off = i
	tok.pos, tok.end, tok.text = start, i, src[start:i]
	return tok, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isIdentStart and isIdentPart follow Java identifiers, as JMS asks:
// ActiveMQ itself accepts only ASCII letters, digits, '_' and '$'.
func isIdentStart(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || r == '_' || r == '$' ||
		r >= utf8.RuneSelf && r != utf8.RuneError && unicode.IsLetter(r)
}

func isIdentPart(r rune) bool {
	return isIdentStart(r) || '0' <= r && r <= '9' ||
		r >= utf8.RuneSelf && unicode.IsDigit(r)
}

// errAt builds a SyntaxError at byte offset off of src.
func errAt(src string, off int, format string, args ...any) error {
	if off > len(src) {
		off = len(src)
	}
	return &SyntaxError{Pos: utf8.RuneCountInString(src[:off]) + 1, Msg: fmt.Sprintf(format, args...)}
}
