package selector

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits on what Compile accepts. Selectors come from the network, so
// both are checked before any work that grows with them.
const (
	// MaxLength is the longest selector source accepted, in bytes.
	MaxLength = 4096
	// MaxDepth is the deepest nesting accepted: every parenthesis and
	// every prefix NOT, + or - opens a level.
	MaxDepth = 64
)

// Selector is a compiled message selector. It is immutable, so one
// Selector may be used by many goroutines at once.
type Selector struct {
	src    string
	root   *node // nil for an empty selector, which selects everything
	idents []string
}

// SyntaxError reports a selector that does not compile.
type SyntaxError struct {
	Pos int    // 1-based character (not byte) position in the source
	Msg string // what was expected and what was found
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("selector: at position %d: %s", e.Pos, e.Msg)
}

// Compile parses src into a Selector. An empty selector, or one of only
// blanks and comments, selects every message, as JMS says. Any error is
// a *SyntaxError.
func Compile(src string) (*Selector, error) {
	if len(src) > MaxLength {
		off := MaxLength
		for off > 0 && !utf8.RuneStart(src[off]) {
			off--
		}
		return nil, &SyntaxError{
			Pos: utf8.RuneCountInString(src[:off]) + 1,
			Msg: fmt.Sprintf("selector longer than %d bytes", MaxLength),
		}
	}
	p := &parser{lx: lexer{src: src}, idents: map[string]struct{}{}}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	return &Selector{
		src:    src,
		root:   root,
		idents: slices.Sorted(maps.Keys(p.idents)),
	}, nil
}

// String returns the source as given to Compile.
func (s *Selector) String() string { return s.src }

// Identifiers returns the distinct identifiers the selector reads,
// sorted, so that a caller knows which headers matter (quoted ones
// without their quotes). The slice is the caller's to keep.
func (s *Selector) Identifiers() []string { return slices.Clone(s.idents) }

// Matches reports whether the message whose headers lookup returns is
// selected. lookup reports the value of a header, or false when the
// message has none (the identifier is then NULL). Only a selector that
// evaluates to TRUE matches: FALSE and UNKNOWN do not. A nil lookup
// stands for a message without headers.
//
// Matches does not allocate unless a header holds a number outside
// float64's range, and it calls lookup at most once per identifier
// occurrence in the selector.
func (s *Selector) Matches(lookup func(name string) (string, bool)) bool {
	if s.root == nil {
		return true
	}
	if lookup == nil {
		lookup = noHeaders
	}
	return s.root.test(lookup) == isTrue
}

func noHeaders(string) (string, bool) { return "", false }

// describe names a token's text for error messages, shortened so that a
// hostile selector cannot make them huge.
func describe(text string) string {
	const max = 24
	if len(text) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "..."
	}
	return fmt.Sprintf("%q", text)
}

// quoteString renders a string literal as written in a selector.
func quoteString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
