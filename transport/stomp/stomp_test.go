package stomp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// readAll decodes every frame of input and returns them with the error that
// ended the stream (io.EOF for a clean end).
func readAll(r io.Reader, v Version, lim Limits) ([]*Frame, error) {
	fr := NewReader(r, lim)
	fr.SetVersion(v)
	var frames []*Frame
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
	}
}

// chunkReader returns its data in pieces of random sizes.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
	max  int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rng.IntN(c.max))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func sameFrame(a, b *Frame) bool {
	return a.Command == b.Command &&
		slices.Equal(a.Headers, b.Headers) &&
		bytes.Equal(a.Body, b.Body)
}

func frameString(f *Frame) string {
	return fmt.Sprintf("%q %q %q", f.Command, f.Headers, f.Body)
}

func hdrs(kv ...string) []Header {
	var hs []Header
	for i := 0; i < len(kv); i += 2 {
		hs = append(hs, Header{kv[i], kv[i+1]})
	}
	return hs
}

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name  string
		v     Version
		input string
		want  []*Frame
	}{
		{
			name:  "send",
			input: "SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello\x00",
			want:  []*Frame{{SEND, hdrs("destination", "/queue/a", "content-type", "text/plain"), []byte("hello")}},
		},
		{
			name:  "no headers no body",
			input: "DISCONNECT\n\n\x00",
			want:  []*Frame{{DISCONNECT, nil, nil}},
		},
		{
			name:  "crlf line ends",
			v:     V10,
			input: "SEND\r\ndestination:/queue/a\r\nx:y\r\n\r\nbody\x00",
			want:  []*Frame{{SEND, hdrs("destination", "/queue/a", "x", "y"), []byte("body")}},
		},
		{
			name:  "heart-beats around and between frames",
			v:     V12,
			input: "\n\r\n\nSEND\n\na\x00\n\r\n\r\n\nSEND\n\nb\x00\n\n",
			want:  []*Frame{{SEND, nil, []byte("a")}, {SEND, nil, []byte("b")}},
		},
		{
			name:  "repeated headers keep wire order",
			v:     V12,
			input: "MESSAGE\nfoo:1\nfoo:2\nbar:3\nfoo:4\n\n\x00",
			want:  []*Frame{{MESSAGE, hdrs("foo", "1", "foo", "2", "bar", "3", "foo", "4"), nil}},
		},
		{
			name:  "split at first colon, empty value",
			input: "SEND\na:b:c\nempty:\n\n\x00",
			want:  []*Frame{{SEND, hdrs("a", "b:c", "empty", ""), nil}},
		},
		{
			name:  "content-length body holds NULs and line ends",
			v:     V11,
			input: "SEND\ncontent-length:7\n\na\x00b\n\x00\r\n\x00",
			want:  []*Frame{{SEND, hdrs("content-length", "7"), []byte("a\x00b\n\x00\r\n")}},
		},
		{
			name:  "content-length zero and leading zeros",
			input: "SEND\ncontent-length:0\n\n\x00SEND\ncontent-length:003\n\nabc\x00",
			want: []*Frame{
				{SEND, hdrs("content-length", "0"), nil},
				{SEND, hdrs("content-length", "003"), []byte("abc")},
			},
		},
		{
			name:  "only the first content-length counts",
			input: "SEND\ncontent-length:2\ncontent-length:junk\n\nab\x00",
			want:  []*Frame{{SEND, hdrs("content-length", "2", "content-length", "junk"), []byte("ab")}},
		},
		{
			name:  "1.0 does not unescape",
			v:     V10,
			input: "SEND\na\\cb:x\\ny\\t\\\n\n\x00",
			want:  []*Frame{{SEND, hdrs(`a\cb`, `x\ny\t\`), nil}},
		},
		{
			name:  "1.1 unescapes keys and values",
			v:     V11,
			input: "SEND\na\\cb\\\\:x\\ny\\cz\\\\\n\n\x00",
			want:  []*Frame{{SEND, hdrs(`a:b\`, "x\ny:z\\"), nil}},
		},
		{
			name:  "1.2 also unescapes CR",
			v:     V12,
			input: "SEND\nk\\r:a\\rb\\n\\c\\\\\n\n\x00",
			want:  []*Frame{{SEND, hdrs("k\r", "a\rb\n:\\"), nil}},
		},
		{
			name:  "CONNECT, STOMP and CONNECTED are never unescaped",
			v:     V12,
			input: "CONNECT\npasscode:a\\tb\\\n\n\x00STOMP\nlogin:\\c\n\n\x00CONNECTED\nserver:x\\ny\n\n\x00",
			want: []*Frame{
				{CONNECT, hdrs("passcode", `a\tb\`), nil},
				{STOMP, hdrs("login", `\c`), nil},
				{CONNECTED, hdrs("server", `x\ny`), nil},
			},
		},
		{
			name:  "unknown commands pass through",
			input: "FROB\nk:v\n\n\x00",
			want:  []*Frame{{"FROB", hdrs("k", "v"), nil}},
		},
		{
			name:  "raw CR inside a header line is data",
			v:     V11,
			input: "SEND\nk\r:a\rb\r\n\n\x00",
			want:  []*Frame{{SEND, hdrs("k\r", "a\rb"), nil}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(strings.NewReader(tt.input), tt.v, Limits{})
			if err != io.EOF {
				t.Fatalf("stream ended with %v, want io.EOF", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d frames, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !sameFrame(got[i], tt.want[i]) {
					t.Errorf("frame %d:\n got %s\nwant %s", i, frameString(got[i]), frameString(tt.want[i]))
				}
			}
		})
	}
}

func TestFrameGetFirst(t *testing.T) {
	fs, err := readAll(strings.NewReader("MESSAGE\nfoo:1\nfoo:2\n\n\x00"), V12, Limits{})
	if err != io.EOF || len(fs) != 1 {
		t.Fatalf("got %d frames, %v", len(fs), err)
	}
	if got := fs[0].Get("foo"); got != "1" {
		t.Errorf(`Get("foo") = %q, want the first value "1"`, got)
	}
}

func TestReadErrors(t *testing.T) {
	small := Limits{MaxFrameSize: 64, MaxHeaders: 3, MaxHeaderLine: 16}
	tests := []struct {
		name  string
		v     Version
		lim   Limits
		input string
		kind  ErrorKind // 0: want wantErr
		err   error
	}{
		{name: "no colon", input: "SEND\nnocolon\n\n\x00", kind: ErrMalformed},
		{name: "empty name", input: "SEND\n:v\n\n\x00", kind: ErrMalformed},
		{name: "undefined escape 1.1", v: V11, input: "SEND\nk:a\\tb\n\n\x00", kind: ErrMalformed},
		{name: "undefined escape 1.2", v: V12, input: "SEND\nk:a\\tb\n\n\x00", kind: ErrMalformed},
		{name: "undefined escape in key", v: V12, input: "SEND\n\\x:a\n\n\x00", kind: ErrMalformed},
		{name: "CR escape is 1.2 only", v: V11, input: "SEND\nk:a\\r\n\n\x00", kind: ErrMalformed},
		{name: "lone backslash 1.1", v: V11, input: "SEND\nk:a\\\n\n\x00", kind: ErrMalformed},
		{name: "lone backslash 1.2", v: V12, input: "SEND\nk\\:a\n\n\x00", kind: ErrMalformed},
		{name: "CR CR LF", input: "SEND\nk:v\r\r\n\n\x00", kind: ErrMalformed},
		{name: "CR CR LF command", input: "SEND\r\r\n\n\x00", kind: ErrMalformed},
		{name: "negative content-length", input: "SEND\ncontent-length:-1\n\n\x00", kind: ErrMalformed},
		{name: "signed content-length", input: "SEND\ncontent-length:+1\n\na\x00", kind: ErrMalformed},
		{name: "empty content-length", input: "SEND\ncontent-length:\n\n\x00", kind: ErrMalformed},
		{name: "content-length with space", input: "SEND\ncontent-length: 1\n\na\x00", kind: ErrMalformed},
		{name: "content-length not a number", input: "SEND\ncontent-length:1a\n\na\x00", kind: ErrMalformed},
		{name: "body longer than content-length", input: "SEND\ncontent-length:3\n\nabcd\x00", kind: ErrMalformed},
		{name: "content-length overflow", input: "SEND\ncontent-length:99999999999999999999999999\n\n\x00", kind: ErrFrameTooLarge},
		{name: "digits past limit then junk", input: "SEND\ncontent-length:99999999999999999999999x\n\n\x00", kind: ErrMalformed},
		{name: "content-length over limit", lim: Limits{MaxFrameSize: 64}, input: "SEND\ncontent-length:100\n\n", kind: ErrFrameTooLarge},
		{name: "NUL body over limit", lim: small, input: "SEND\n\n" + strings.Repeat("x", 100) + "\x00", kind: ErrFrameTooLarge},
		{name: "too many headers", lim: small, input: "SEND\na:1\nb:2\nc:3\nd:4\n\n\x00", kind: ErrTooManyHeaders},
		{name: "header line too long", lim: small, input: "SEND\nk:" + strings.Repeat("v", 15) + "\n\n\x00", kind: ErrHeaderTooLong},
		{name: "command line too long", lim: small, input: strings.Repeat("C", 17) + "\n\n\x00", kind: ErrHeaderTooLong},
		{name: "headers over frame limit", lim: Limits{MaxFrameSize: 20}, input: "SEND\naaaa:1\nbbbb:2\ncccc:3\n\n\x00", kind: ErrFrameTooLarge},
		{name: "eof in command", input: "SEND", err: io.ErrUnexpectedEOF},
		{name: "eof after command", input: "SEND\n", err: io.ErrUnexpectedEOF},
		{name: "eof in headers", input: "SEND\nk:v\n", err: io.ErrUnexpectedEOF},
		{name: "eof in body", input: "SEND\n\nbody", err: io.ErrUnexpectedEOF},
		{name: "eof in content-length body", input: "SEND\ncontent-length:10\n\nbody", err: io.ErrUnexpectedEOF},
		{name: "eof before NUL after content-length body", input: "SEND\ncontent-length:4\n\nbody", err: io.ErrUnexpectedEOF},
		{name: "lone CR at end", input: "\n\r", err: io.ErrUnexpectedEOF},
		{name: "empty stream", input: "", err: io.EOF},
		{name: "only heart-beats", input: "\n\r\n\n", err: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tt.input), iotest.OneByteReader(strings.NewReader(tt.input))} {
				fs, err := readAll(r, tt.v, tt.lim)
				if len(fs) != 0 {
					t.Fatalf("decoded %d frames, want none: %s", len(fs), frameString(fs[0]))
				}
				if tt.kind == 0 {
					if err != tt.err {
						t.Fatalf("err = %v, want %v", err, tt.err)
					}
					continue
				}
				var se *Error
				if !errors.As(err, &se) || se.Kind != tt.kind {
					t.Fatalf("err = %v, want an *Error of kind %v", err, tt.kind)
				}
				if !errors.Is(err, tt.kind) {
					t.Errorf("errors.Is(%v, %v) = false", err, tt.kind)
				}
				if se.Msg == "" {
					t.Error("error has no message")
				}
			}
		})
	}
}

// TestLimitsAreExact checks each limit at its boundary: equal passes, one
// more fails.
func TestLimitsAreExact(t *testing.T) {
	check := func(t *testing.T, lim Limits, input string, kind ErrorKind) {
		t.Helper()
		fs, err := readAll(strings.NewReader(input), V12, lim)
		if kind == 0 {
			if err != io.EOF || len(fs) != 1 {
				t.Fatalf("got %d frames and %v, want one frame", len(fs), err)
			}
			return
		}
		if !errors.Is(err, kind) {
			t.Fatalf("err = %v, want %v", err, kind)
		}
	}
	t.Run("frame size", func(t *testing.T) {
		// "SEND\n\n" is 6 bytes, so a 10-byte body makes 16.
		lim := Limits{MaxFrameSize: 16}
		check(t, lim, "SEND\n\n"+strings.Repeat("x", 10)+"\x00", 0)
		check(t, lim, "SEND\n\n"+strings.Repeat("x", 11)+"\x00", ErrFrameTooLarge)
		// "SEND\ncontent-length:2\n\n" is 23 bytes.
		lim = Limits{MaxFrameSize: 25}
		check(t, lim, "SEND\ncontent-length:2\n\nab\x00", 0)
		check(t, lim, "SEND\ncontent-length:3\n\nabc\x00", ErrFrameTooLarge)
	})
	t.Run("headers", func(t *testing.T) {
		lim := Limits{MaxHeaders: 2}
		check(t, lim, "SEND\na:1\nb:2\n\n\x00", 0)
		check(t, lim, "SEND\na:1\nb:2\nc:3\n\n\x00", ErrTooManyHeaders)
	})
	t.Run("header line", func(t *testing.T) {
		lim := Limits{MaxHeaderLine: 8}
		check(t, lim, "SEND\nk:123456\n\n\x00", 0)
		check(t, lim, "SEND\nk:123456\r\n\n\x00", 0) // the CR is part of the line end
		check(t, lim, "SEND\nk:1234567\n\n\x00", ErrHeaderTooLong)
		check(t, lim, "COMMAND1\n\n\x00", 0)
		check(t, lim, "COMMAND12\n\n\x00", ErrHeaderTooLong)
	})
	t.Run("lines longer than the read buffer", func(t *testing.T) {
		lim := Limits{MaxHeaderLine: 3 * bufSize}
		long := strings.Repeat("v", 2*bufSize+100)
		fs, err := readAll(strings.NewReader("SEND\nk:"+long+"\r\n\n\x00"), V12, lim)
		if err != io.EOF || len(fs) != 1 || fs[0].Get("k") != long {
			t.Fatalf("long header: got %d frames, %v", len(fs), err)
		}
		check(t, lim, "SEND\nk:"+strings.Repeat("v", 3*bufSize)+"\n\n\x00", ErrHeaderTooLong)
		check(t, Limits{MaxHeaderLine: 3 * bufSize, MaxFrameSize: bufSize + 10}, "SEND\nk:"+long+"\n\n\x00", ErrFrameTooLarge)
	})
	t.Run("zero means default", func(t *testing.T) {
		if got := (Limits{}).withDefaults(); got != DefaultLimits() {
			t.Fatalf("Limits{}.withDefaults() = %+v", got)
		}
		if d := DefaultLimits(); d.MaxFrameSize != 100<<20 || d.MaxHeaders != 1000 || d.MaxHeaderLine != 64<<10 {
			t.Fatalf("DefaultLimits() = %+v", d)
		}
	})
}

// TestHugeContentLengthAllocatesNothing: an announced body beyond the limit
// is refused before any allocation, and one within the limit that never
// arrives costs only what was sent.
func TestHugeContentLengthAllocatesNothing(t *testing.T) {
	// bytesPerRead is what decoding input costs, Reader included.
	bytesPerRead := func(input string, want error) uint64 {
		const runs = 5
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			_, err := NewReader(strings.NewReader(input), Limits{}).ReadFrame()
			if !errors.Is(err, want) {
				t.Fatalf("err = %v, want %v", err, want)
			}
		}
		runtime.ReadMemStats(&after)
		return (after.TotalAlloc - before.TotalAlloc) / runs
	}
	for _, input := range []string{
		"SEND\ncontent-length:104857601\n\n",                       // one over the default limit
		"SEND\ncontent-length:9223372036854775807\n\n",             // max int64
		"SEND\ncontent-length:1000000000000000000000000000000\n\n", // overflows
	} {
		// The Reader's buffer and a little; no body.
		if n := bytesPerRead(input, ErrFrameTooLarge); n > bufSize+4096 {
			t.Errorf("%q: allocated %d bytes", input, n)
		}
	}
	// A body within the limit that stalls costs the Reader's buffer and
	// what arrived: the body buffer starts at bufSize and doubles, so all
	// its allocations add up to less than four times what was sent.
	for _, sent := range []int{1000, 300 << 10} {
		input := "SEND\ncontent-length:100000000\n\n" + strings.Repeat("x", sent)
		want := uint64(bufSize + max(4*sent, bufSize) + 4096)
		if n := bytesPerRead(input, io.ErrUnexpectedEOF); n > want {
			t.Errorf("a 100 MB body stalled after %d bytes allocated %d bytes, want at most %d", sent, n, want)
		}
	}
}

// mixedStream is a stream exercising every reader path, with the frames it
// decodes to as 1.2.
func mixedStream() (string, []*Frame) {
	big := strings.Repeat("0123456789", 20000) // 200 kB: longer than the buffer
	input := "\n\r\n" +
		"CONNECT\r\naccept-version:1.2\r\nhost:a\\b\r\n\r\n\x00\n" +
		"SEND\ndestination:/queue/a\nk\\c:v\\n\\r\\\\\nk\\c:dup\n\nhello\x00\n\n" +
		"SEND\ncontent-length:5\n\n\x00\x00\n\x00\r\x00\r\n" +
		"MESSAGE\nsubscription:1\n\n" + big + "\x00" +
		"SEND\ncontent-length:200000\nx:y\n\n" + big + "\x00" +
		"\n\n\n"
	frames := []*Frame{
		{CONNECT, hdrs("accept-version", "1.2", "host", `a\b`), nil},
		{SEND, hdrs("destination", "/queue/a", "k:", "v\n\r\\", "k:", "dup"), []byte("hello")},
		{SEND, hdrs("content-length", "5"), []byte("\x00\x00\n\x00\r")},
		{MESSAGE, hdrs("subscription", "1"), []byte(big)},
		{SEND, hdrs("content-length", "200000", "x", "y"), []byte(big)},
	}
	return input, frames
}

func TestReadSplitAnywhere(t *testing.T) {
	input, want := mixedStream()
	checkFrames := func(t *testing.T, got []*Frame, err error) {
		t.Helper()
		if err != io.EOF {
			t.Fatalf("stream ended with %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d frames, want %d", len(got), len(want))
		}
		for i := range got {
			if !sameFrame(got[i], want[i]) {
				t.Fatalf("frame %d differs: got %.200s", i, frameString(got[i]))
			}
		}
	}
	t.Run("whole", func(t *testing.T) {
		got, err := readAll(strings.NewReader(input), V12, Limits{})
		checkFrames(t, got, err)
	})
	t.Run("one byte at a time", func(t *testing.T) {
		got, err := readAll(iotest.OneByteReader(strings.NewReader(input)), V12, Limits{})
		checkFrames(t, got, err)
	})
	t.Run("random chunks", func(t *testing.T) {
		for seed := range uint64(50) {
			r := &chunkReader{data: []byte(input), rng: rand.New(rand.NewPCG(seed, 1)), max: 1 + int(seed)*97}
			got, err := readAll(r, V12, Limits{})
			checkFrames(t, got, err)
		}
	})
	t.Run("every split point", func(t *testing.T) {
		// Small frames so that the quadratic loop stays fast.
		small := "\nSEND\r\nk\\c:v\\n\r\n\r\nab\x00\nSEND\ncontent-length:3\n\na\x00b\x00\n"
		wantSmall := []*Frame{
			{SEND, hdrs("k:", "v\n"), []byte("ab")},
			{SEND, hdrs("content-length", "3"), []byte("a\x00b")},
		}
		for i := range len(small) + 1 {
			r := io.MultiReader(strings.NewReader(small[:i]), strings.NewReader(small[i:]))
			got, err := readAll(r, V12, Limits{})
			if err != io.EOF || len(got) != 2 || !sameFrame(got[0], wantSmall[0]) || !sameFrame(got[1], wantSmall[1]) {
				t.Fatalf("split at %d: %d frames, %v", i, len(got), err)
			}
		}
	})
}

// TestReadErrorIsNotEOF: a read error between frames is passed on, wrapped,
// and a deadline while waiting for a frame consumes nothing.
func TestReadErrorBetweenFrames(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(iotest.ErrReader(boom), Limits{})
	if _, err := r.ReadFrame(); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap %v", err, boom)
	}
	r = NewReader(io.MultiReader(strings.NewReader("SEND\n"), iotest.ErrReader(boom)), Limits{})
	if _, err := r.ReadFrame(); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap %v", err, boom)
	}
}

func TestWriteFrame(t *testing.T) {
	tests := []struct {
		name string
		v    Version
		f    *Frame
		want string
	}{
		{
			name: "plain",
			f:    &Frame{SEND, hdrs("destination", "/queue/a"), nil},
			want: "SEND\ndestination:/queue/a\n\n\x00",
		},
		{
			name: "content-length added for a body",
			f:    &Frame{SEND, hdrs("destination", "/queue/a"), []byte("a\x00b")},
			want: "SEND\ndestination:/queue/a\ncontent-length:3\n\na\x00b\x00",
		},
		{
			name: "content-length rewritten in place, duplicates dropped",
			f:    &Frame{SEND, hdrs("content-length", "99", "x", "1", "content-length", "7"), []byte("abc")},
			want: "SEND\ncontent-length:3\nx:1\n\nabc\x00",
		},
		{
			name: "explicit content-length on an empty body",
			f:    &Frame{SEND, hdrs("content-length", "5"), nil},
			want: "SEND\ncontent-length:0\n\n\x00",
		},
		{
			name: "1.0 writes literally",
			v:    V10,
			f:    &Frame{SEND, hdrs(`k\`, "a:b\\c\rd"), nil},
			want: "SEND\nk\\:a:b\\c\rd\n\n\x00",
		},
		{
			name: "1.1 escapes backslash, LF and colon, not CR",
			v:    V11,
			f:    &Frame{SEND, hdrs("k:\\", "a:b\\c\nd\re"), nil},
			want: "SEND\nk\\c\\\\:a\\cb\\\\c\\nd\re\n\n\x00",
		},
		{
			name: "1.2 also escapes CR",
			v:    V12,
			f:    &Frame{MESSAGE, hdrs("k\r", "a:b\\c\nd\r"), nil},
			want: "MESSAGE\nk\\r:a\\cb\\\\c\\nd\\r\n\n\x00",
		},
		{
			name: "CONNECTED is never escaped",
			v:    V12,
			f:    &Frame{CONNECTED, hdrs("server", `raftmq\1`, "session", "a:b"), nil},
			want: "CONNECTED\nserver:raftmq\\1\nsession:a:b\n\n\x00",
		},
		{
			name: "CONNECT is never escaped",
			v:    V11,
			f:    &Frame{CONNECT, hdrs("passcode", `p\w:d`), nil},
			want: "CONNECT\npasscode:p\\w:d\n\n\x00",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			w.SetVersion(tt.v)
			if err := w.WriteFrame(tt.f); err != nil {
				t.Fatal(err)
			}
			if buf.Len() != 0 {
				t.Fatal("WriteFrame wrote through before Flush")
			}
			if w.Buffered() != len(tt.want) {
				t.Errorf("Buffered() = %d, want %d", w.Buffered(), len(tt.want))
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("wrote %q\n     want %q", buf.String(), tt.want)
			}
		})
	}
}

func TestWriteHeartbeat(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for range 3 {
		if err := w.WriteHeartbeat(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "\n\n\n" {
		t.Fatalf("wrote %q", buf.String())
	}
}

func TestWriteRejectsUnencodable(t *testing.T) {
	tests := []struct {
		name string
		v    Version
		f    *Frame
	}{
		{"empty command", V12, &Frame{Command: ""}},
		{"LF in command", V12, &Frame{Command: "SE\nND"}},
		{"command ending in CR", V12, &Frame{Command: "SEND\r"}},
		{"empty header name", V12, &Frame{SEND, hdrs("", "v"), nil}},
		{"1.0 colon in name", V10, &Frame{SEND, hdrs("a:b", "v"), nil}},
		{"1.0 LF in name", V10, &Frame{SEND, hdrs("a\nb", "v"), nil}},
		{"1.0 LF in value", V10, &Frame{SEND, hdrs("k", "a\nb"), nil}},
		{"1.0 value ending in CR", V10, &Frame{SEND, hdrs("k", "v\r"), nil}},
		{"1.1 value ending in CR", V11, &Frame{SEND, hdrs("k", "v\r"), nil}},
		{"CONNECT LF in value under 1.2", V12, &Frame{CONNECT, hdrs("login", "a\nb"), nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			w.SetVersion(tt.v)
			err := w.WriteFrame(tt.f)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if w.Buffered() != 0 {
				t.Fatalf("%d bytes buffered for a rejected frame", w.Buffered())
			}
		})
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestWriteErrorWrapped(t *testing.T) {
	boom := errors.New("boom")
	w := NewWriter(failWriter{boom})
	if err := w.WriteFrame(&Frame{SEND, nil, make([]byte, 2*bufSize)}); !errors.Is(err, boom) {
		t.Fatalf("WriteFrame = %v, want it to wrap %v", err, boom)
	}
	w = NewWriter(failWriter{boom})
	if err := w.WriteHeartbeat(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want it to wrap %v", err, boom)
	}
}

// canonical is what decode(encode(f)) gives: the Writer owns content-length.
func canonical(f *Frame) *Frame {
	out := &Frame{Command: f.Command, Body: f.Body}
	haveLen := false
	for _, h := range f.Headers {
		if h.Key == "content-length" {
			if haveLen {
				continue
			}
			haveLen = true
			h.Value = fmt.Sprint(len(f.Body))
		}
		out.Headers = append(out.Headers, h)
	}
	if !haveLen && len(f.Body) > 0 {
		out.Add("content-length", fmt.Sprint(len(f.Body)))
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	frames := []*Frame{
		{CONNECT, hdrs("accept-version", AcceptAll, "host", "localhost", "passcode", `a\b:c`), nil},
		{CONNECTED, hdrs("version", "1.2", "server", `x\y`), nil},
		{SEND, hdrs("destination", "/queue/a", "receipt", "7"), []byte("hello")},
		{SEND, hdrs("destination", "/queue/a", "content-length", "1"), []byte("\x00\x00\x00")},
		{MESSAGE, hdrs("a", "1", "a", "2", "b", ""), nil},
		{"CUSTOM", nil, []byte("\n\r\n")},
	}
	escaped := []*Frame{
		{SEND, hdrs("k:", "v\nw", `back\slash`, `\\`), []byte("x")},
		{MESSAGE, hdrs("k\r", "a\rb"), nil},
	}
	for _, v := range []Version{V10, V11, V12} {
		t.Run(string(v), func(t *testing.T) {
			in := frames
			if v != V10 {
				in = append(slices.Clip(in), escaped...)
			}
			if v == V12 {
				in = append(in, &Frame{SEND, hdrs("cr", "ends in CR\r"), nil})
			}
			var buf bytes.Buffer
			w := NewWriter(&buf)
			w.SetVersion(v)
			for _, f := range in {
				if err := w.WriteFrame(f); err != nil {
					t.Fatalf("%s: %v", frameString(f), err)
				}
				if err := w.WriteHeartbeat(); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(iotest.HalfReader(&buf), v, Limits{})
			if err != io.EOF {
				t.Fatalf("read: %v", err)
			}
			if len(got) != len(in) {
				t.Fatalf("got %d frames, want %d", len(got), len(in))
			}
			for i := range in {
				if want := canonical(in[i]); !sameFrame(got[i], want) {
					t.Errorf("frame %d:\n got %s\nwant %s", i, frameString(got[i]), frameString(want))
				}
			}
		})
	}
}

func TestNegotiateVersion(t *testing.T) {
	tests := []struct {
		accept string
		want   Version
		ok     bool
	}{
		{"", V10, true},
		{"1.0", V10, true},
		{"1.1", V11, true},
		{"1.0,1.1,1.2", V12, true},
		{"1.2,1.0", V12, true},
		{" 1.1 , 1.0 ", V11, true},
		{"1.1,2.0", V11, true},
		{"2.0", "", false},
		{"1.3,x", "", false},
	}
	for _, tt := range tests {
		v, ok := NegotiateVersion(tt.accept)
		if v != tt.want || ok != tt.ok {
			t.Errorf("NegotiateVersion(%q) = %q, %v; want %q, %v", tt.accept, v, ok, tt.want, tt.ok)
		}
	}
}

func TestHeartBeat(t *testing.T) {
	const ms = time.Millisecond
	for _, tt := range []struct {
		in         string
		send, recv time.Duration
		ok         bool
	}{
		{"", 0, 0, true},
		{"0,0", 0, 0, true},
		{"1000,2500", 1000 * ms, 2500 * ms, true},
		{" 10, 20 ", 10 * ms, 20 * ms, true},
		{"10", 0, 0, false},
		{"10,", 0, 0, false},
		{"-1,0", 0, 0, false},
		{"a,b", 0, 0, false},
		{"1,2,3", 0, 0, false},
		{"99999999999999999999,0", 0, 0, false},
	} {
		send, recv, err := ParseHeartBeat(tt.in)
		if (err == nil) != tt.ok || send != tt.send || recv != tt.recv {
			t.Errorf("ParseHeartBeat(%q) = %v, %v, %v", tt.in, send, recv, err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseHeartBeat(%q) error %v is not ErrMalformed", tt.in, err)
		}
	}
	if got := FormatHeartBeat(1500*ms, 0); got != "1500,0" {
		t.Errorf("FormatHeartBeat = %q", got)
	}
	if got := FormatHeartBeat(time.Microsecond, 1500*time.Microsecond); got != "1,2" {
		t.Errorf("FormatHeartBeat rounds sub-millisecond intervals to %q, want 1,2", got)
	}
	// The spec's algebra: the sender's cx against the receiver's sy.
	for _, tt := range []struct{ canSend, wantRecv, want time.Duration }{
		{0, 0, 0},
		{0, 100, 0},
		{100, 0, 0},
		{100, 200, 200},
		{300, 200, 300},
	} {
		if got := HeartBeatInterval(tt.canSend, tt.wantRecv); got != tt.want {
			t.Errorf("HeartBeatInterval(%v, %v) = %v, want %v", tt.canSend, tt.wantRecv, got, tt.want)
		}
	}
}

func TestLargeContentLengthBody(t *testing.T) {
	// Larger than eagerBody, so the body grows as it arrives.
	body := bytes.Repeat([]byte("0123456789abcdef"), 3*eagerBody/16+5)
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteFrame(&Frame{SEND, nil, body}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := &chunkReader{data: buf.Bytes(), rng: rand.New(rand.NewPCG(1, 2)), max: 3 * bufSize}
	fs, err := readAll(r, V12, Limits{})
	if err != io.EOF || len(fs) != 1 || !bytes.Equal(fs[0].Body, body) {
		t.Fatalf("got %d frames, %v", len(fs), err)
	}
	if cap(fs[0].Body) != len(body) {
		t.Errorf("body capacity %d for %d bytes", cap(fs[0].Body), len(body))
	}
}

func TestReaderBuffered(t *testing.T) {
	r := NewReader(strings.NewReader("SEND\n\n\x00SEND\n\n\x00"), Limits{})
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if r.Buffered() != 7 {
		t.Errorf("Buffered() = %d, want the 7 bytes of the second frame", r.Buffered())
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Kind: ErrHeaderTooLong, Msg: "header line too long"}
	if e.Error() != "stomp: header line too long" {
		t.Errorf("Error() = %q", e.Error())
	}
	for _, k := range []ErrorKind{ErrMalformed, ErrFrameTooLarge, ErrTooManyHeaders, ErrHeaderTooLong} {
		if strings.Contains(k.Error(), "unknown") {
			t.Errorf("kind %d has no name", k)
		}
	}
	var wrapped error = fmt.Errorf("reading: %w", e)
	if !errors.Is(wrapped, ErrHeaderTooLong) || errors.Is(wrapped, ErrMalformed) {
		t.Error("errors.Is does not match the kind")
	}
}

func TestFrameHeaderMethods(t *testing.T) {
	f := &Frame{Command: SEND}
	f.Add("a", "1")
	f.Add("b", "2")
	f.Add("a", "3")
	f.Set("a", "x")
	f.Set("c", "4")
	want := hdrs("a", "x", "b", "2", "a", "3", "c", "4")
	if !slices.Equal(f.Headers, want) {
		t.Fatalf("after Add and Set: %q", f.Headers)
	}
	f.Del("a")
	if !slices.Equal(f.Headers, hdrs("b", "2", "c", "4")) {
		t.Fatalf("after Del: %q", f.Headers)
	}
	if _, ok := f.Lookup("a"); ok || f.Get("b") != "2" {
		t.Error("Lookup or Get wrong")
	}
}

// TestLimitBrokenBeforeStall: a frame already past a limit is refused with
// the bytes at hand, not after the next ones arrive: a peer that sends too
// much and then stalls must not keep its connection. One within the limits
// so far waits for more.
func TestLimitBrokenBeforeStall(t *testing.T) {
	errStalled := errors.New("stalled: the reader asked for more")
	lim := Limits{MaxFrameSize: 16, MaxHeaderLine: 8}
	for _, tc := range []struct {
		name, input string
		want        error
	}{
		{"command line", "COMMAND123", ErrHeaderTooLong},
		{"header line", "SEND\nk:12345678", ErrHeaderTooLong},
		{"header line up to its CR", "SEND\nk:1234567\r", ErrHeaderTooLong},
		{"header line at the limit and a CR", "SEND\nk:123456\r", errStalled},
		{"header line one over, before its line end", "SEND\nk:1234567", errStalled},
		{"header lines past the frame size", "SEND\nab:defg\nh:ij", ErrFrameTooLarge},
		{"no room left for the blank line", "SEND\nab:cdef\nh:\n", ErrFrameTooLarge},
		{"body without NUL", "SEND\n\n" + strings.Repeat("x", 11), ErrFrameTooLarge},
		{"body at the limit", "SEND\n\n" + strings.Repeat("x", 10), errStalled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, split := range []bool{false, true} {
				var src io.Reader = strings.NewReader(tc.input)
				if split {
					src = iotest.OneByteReader(src)
				}
				r := NewReader(io.MultiReader(src, iotest.ErrReader(errStalled)), lim)
				if _, err := r.ReadFrame(); !errors.Is(err, tc.want) {
					t.Fatalf("one byte per read %v: err = %v, want %v", split, err, tc.want)
				}
			}
		})
	}

	// A line longer than the read buffer, within the limit, is assembled;
	// past the limit it is refused without waiting for its end.
	t.Run("line longer than the buffer", func(t *testing.T) {
		lim := Limits{MaxHeaderLine: bufSize + 100}
		for _, tc := range []struct {
			n    int
			want error
		}{{bufSize + 101, errStalled}, {bufSize + 102, ErrHeaderTooLong}} {
			input := "SEND\nk:" + strings.Repeat("v", tc.n-2)
			r := NewReader(io.MultiReader(strings.NewReader(input), iotest.ErrReader(errStalled)), lim)
			if _, err := r.ReadFrame(); !errors.Is(err, tc.want) {
				t.Fatalf("%d bytes without LF: err = %v, want %v", tc.n, err, tc.want)
			}
		}
	})

	// An endless line or body trickling in is refused once the limit is
	// passed, long before the 64 KiB read buffer fills.
	for _, tc := range []struct {
		name, head string
		lim        Limits
		want       error
	}{
		{"line", "SEND\nk:", Limits{MaxHeaderLine: 512}, ErrHeaderTooLong},
		{"body", "SEND\n\n", Limits{MaxFrameSize: 16 << 10}, ErrFrameTooLarge},
	} {
		t.Run("endless "+tc.name, func(t *testing.T) {
			src := &countingReader{r: iotest.OneByteReader(io.MultiReader(strings.NewReader(tc.head), endless('x')))}
			if _, err := NewReader(src, tc.lim).ReadFrame(); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			limit := max(tc.lim.MaxHeaderLine, tc.lim.MaxFrameSize)
			if src.n > len(tc.head)+limit+2 {
				t.Errorf("read %d bytes before refusing a limit of %d", src.n, limit)
			}
		})
	}
}

// endless is an endless stream of one byte.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
