package selector

import (
	"strings"
	"unicode/utf8"
)

// A LIKE pattern is matched without backtracking. It is cut at every
// '%' into segments of fixed length (in characters): the first must
// match at the start of the value, the last at its end, and each one in
// between at its leftmost place after the previous one. Taking the
// leftmost place is never wrong, since a later one would leave less room
// for the rest, so one pass suffices. A middle segment is found with
// strings.Index when it is plain text, and with a bit-parallel automaton
// (shift-and) when it holds '_'. Either way a match costs
// O(len(value) × ⌈characters in the longest segment / 64⌉) at most.
//
// Characters are runes; a byte that is not valid UTF-8 counts as one.

// anyChar stands for '_' in a segment's runes.
const anyChar rune = -1

type likeMatcher struct {
	exact bool      // no '%': segs[0] must be the whole value
	segs  []likeSeg // for !exact, at least two: the first and last anchored
}

type likeSeg struct {
	lit   string // the text, when there is no '_'
	runes []rune // the characters, anyChar for '_'; nil when there is no '_'
	sa    *shiftAnd
}

// compileLike compiles pattern. With hasEsc, esc escapes a following
// '%', '_' or esc; before any other character (or at the end) it stands
// for itself, as in ActiveMQ.
func compileLike(pattern string, esc rune, hasEsc bool) *likeMatcher {
	m := &likeMatcher{exact: true}
	var lit []byte
	var runes []rune
	wild := false
	flush := func() {
		seg := likeSeg{lit: string(lit)}
		if wild {
			seg.runes = runes
		}
		m.segs = append(m.segs, seg)
		lit, runes, wild = nil, nil, false
	}
	addChar := func(text string, r rune) {
		lit = append(lit, text...)
		runes = append(runes, r)
	}
	for i := 0; i < len(pattern); {
		r, size := utf8.DecodeRuneInString(pattern[i:])
		if hasEsc && r == esc && i+size < len(pattern) {
			nr, nsize := utf8.DecodeRuneInString(pattern[i+size:])
			if nr == '%' || nr == '_' || nr == esc {
				addChar(pattern[i+size:i+size+nsize], nr)
				i += size + nsize
				continue
			}
		}
		switch r {
		case '%':
			flush()
			m.exact = false
		case '_':
			runes = append(runes, anyChar)
			wild = true
		default:
			addChar(pattern[i:i+size], r)
		}
		i += size
	}
	flush()
	if !m.exact {
		// Empty middle segments (from "%%") match anywhere: drop them.
		mid := m.segs[1 : len(m.segs)-1]
		kept := m.segs[:1]
		for _, s := range mid {
			if s.lit != "" || s.runes != nil {
				kept = append(kept, s)
			}
		}
		m.segs = append(kept, m.segs[len(m.segs)-1])
		for i := 1; i < len(m.segs)-1; i++ {
			if s := &m.segs[i]; s.runes != nil {
				s.sa = newShiftAnd(s.runes)
			}
		}
	}
	return m
}

func (m *likeMatcher) match(s string) bool {
	first := &m.segs[0]
	start, ok := first.prefix(s)
	if !ok {
		return false
	}
	if m.exact {
		return start == len(s)
	}
	rest := s[start:]
	end, ok := m.segs[len(m.segs)-1].suffix(rest)
	if !ok {
		return false
	}
	rest = rest[:end]
	for i := 1; i < len(m.segs)-1; i++ {
		n, ok := m.segs[i].find(rest)
		if !ok {
			return false
		}
		rest = rest[n:]
	}
	return true
}

// prefix matches the segment at the start of s and returns where the
// match ends.
func (g *likeSeg) prefix(s string) (int, bool) {
	if g.runes == nil {
		return len(g.lit), strings.HasPrefix(s, g.lit)
	}
	j := 0
	for _, want := range g.runes {
		if j == len(s) {
			return 0, false
		}
		r, size := utf8.DecodeRuneInString(s[j:])
		if want != anyChar && want != r {
			return 0, false
		}
		j += size
	}
	return j, true
}

// suffix matches the segment at the end of s and returns where the
// match starts.
func (g *likeSeg) suffix(s string) (int, bool) {
	if g.runes == nil {
		return len(s) - len(g.lit), strings.HasSuffix(s, g.lit)
	}
	j := len(s)
	for k := len(g.runes) - 1; k >= 0; k-- {
		if j == 0 {
			return 0, false
		}
		r, size := utf8.DecodeLastRuneInString(s[:j])
		if want := g.runes[k]; want != anyChar && want != r {
			return 0, false
		}
		j -= size
	}
	return j, true
}

// find returns where the leftmost match of the segment in s ends.
func (g *likeSeg) find(s string) (int, bool) {
	if g.sa == nil {
		i := strings.Index(s, g.lit)
		return i + len(g.lit), i >= 0
	}
	return g.sa.find(s)
}

// maxWords bounds a shift-and state: MaxLength characters at most, 64
// to a word, so the state fits in a fixed array on the stack.
const maxWords = (MaxLength + 63) / 64

// shiftAnd finds a segment with '_' in it. Bit k of the state is set
// when the last k+1 characters read match the segment's first k+1.
type shiftAnd struct {
	words int
	last  uint64   // the bit of the segment's last character, in the last word
	any   []uint64 // the positions of '_'
	masks []uint64 // per distinct character, words at a time: its positions
	ascii [128]int32
	other map[rune]int32 // non-ASCII characters; ascii and other hold mask index+1
}

func newShiftAnd(runes []rune) *shiftAnd {
	t := &shiftAnd{words: (len(runes) + 63) / 64}
	t.last = 1 << ((len(runes) - 1) % 64)
	t.any = make([]uint64, t.words)
	index := func(r rune) int32 {
		if r < utf8.RuneSelf {
			return t.ascii[r]
		}
		return t.other[r]
	}
	for k, r := range runes {
		w, bit := k/64, uint64(1)<<(k%64)
		if r == anyChar {
			t.any[w] |= bit
			continue
		}
		idx := index(r)
		if idx == 0 {
			t.masks = append(t.masks, make([]uint64, t.words)...)
			idx = int32(len(t.masks) / t.words)
			if r < utf8.RuneSelf {
				t.ascii[r] = idx
			} else {
				if t.other == nil {
					t.other = map[rune]int32{}
				}
				t.other[r] = idx
			}
		}
		t.masks[int(idx-1)*t.words+w] |= bit
	}
	return t
}

func (t *shiftAnd) find(s string) (int, bool) {
	var buf [maxWords]uint64
	var d []uint64
	if t.words <= maxWords {
		d = buf[:t.words]
	} else {
		d = make([]uint64, t.words) // not from Compile, whose patterns are shorter
	}
	for j := 0; j < len(s); {
		r, size := utf8.DecodeRuneInString(s[j:])
		j += size
		var idx int32
		if r < utf8.RuneSelf {
			idx = t.ascii[r]
		} else if t.other != nil {
			idx = t.other[r]
		}
		var masks []uint64
		if idx > 0 {
			masks = t.masks[int(idx-1)*t.words : int(idx)*t.words]
		}
		carry := uint64(1) // a match may start at every character
		for w := range d {
			m := t.any[w]
			if masks != nil {
				m |= masks[w]
			}
			next := (d[w]<<1 | carry) & m
			carry = d[w] >> 63
			d[w] = next
		}
		if d[t.words-1]&t.last != 0 {
			return j, true
		}
	}
	return 0, false
}
