package stomp

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fuzzChunks returns data in pieces whose sizes come from sizes, cycling;
// TCP delivers frames in arbitrary pieces.
type fuzzChunks struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *fuzzChunks) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		n = 1 + int(c.sizes[c.i%len(c.sizes)])
		c.i++
	}
	n = copy(p, c.data[:min(n, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

func FuzzReader(f *testing.F) {
	seeds := []string{
		"SEND\ndestination:/queue/a\n\nhello\x00",
		"\n\r\nCONNECT\r\naccept-version:1.2\r\nhost:a\\b\r\n\r\n\x00\n",
		"SEND\ncontent-length:5\n\n\x00\x00\n\x00\r\x00",
		"MESSAGE\nk\\c:v\\n\\r\\\\\nk\\c:dup\n\n\x00",
		"SEND\ncontent-length:3\ncontent-length:x\n\nabc\x00SEND\n\n\x00",
		"SEND\nk:a\\tb\n\n\x00",
		"ACK\nid:1\ntransaction:tx\n\n\x00\n\n",
	}
	for i, s := range seeds {
		f.Add([]byte(s), []byte{byte(i), 3, 0, 200}, uint8(i))
	}
	f.Fuzz(func(t *testing.T, data, sizes []byte, ver uint8) {
		v := [...]Version{V10, V11, V12}[ver%3]
		lim := Limits{MaxFrameSize: 4096, MaxHeaders: 16, MaxHeaderLine: 256}
		r := NewReader(&fuzzChunks{data: data, sizes: sizes}, lim)
		r.SetVersion(v)
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				var se *Error
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &se) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if fr.Command == "" || len(fr.Headers) > lim.MaxHeaders || len(fr.Body) > lim.MaxFrameSize {
				t.Fatalf("frame outside the limits: %d headers, %d body bytes, command %q",
					len(fr.Headers), len(fr.Body), fr.Command)
			}

			// Whatever decodes must encode, and decode back the same.
			var buf bytes.Buffer
			w := NewWriter(&buf)
			w.SetVersion(v)
			if err := w.WriteFrame(fr); err != nil {
				t.Fatalf("cannot re-encode %s: %v", frameString(fr), err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			encoded := buf.String()
			r2 := NewReader(&buf, Limits{})
			r2.SetVersion(v)
			got, err := r2.ReadFrame()
			if err != nil {
				t.Fatalf("cannot decode re-encoded %q: %v", encoded, err)
			}
			if want := canonical(fr); !sameFrame(got, want) {
				t.Fatalf("round trip through %q:\n got %s\nwant %s", encoded, frameString(got), frameString(want))
			}
			if _, err := r2.ReadFrame(); err != io.EOF {
				t.Fatalf("re-encoded %q holds more than one frame: %v", encoded, err)
			}
		}
	})
}
