package stomp

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// benchFrame is a typical persistent SEND: 1 KiB body, six headers.
func benchFrame() *Frame {
	return &Frame{
		Command: SEND,
		Headers: hdrs(
			"destination", "/queue/orders.eu-west",
			"receipt", "r-123456",
			"persistent", "true",
			"content-type", "application/json",
			"correlation-id", "6f1c2a1e-8d0b-4f7e-9a35-0c2f54b1d7aa",
			"priority", "4",
		),
		Body: bytes.Repeat([]byte("x"), 1024),
	}
}

// loopReader replays the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

func BenchmarkReadFrame(b *testing.B) {
	for _, v := range []Version{V10, V12} {
		b.Run(string(v), func(b *testing.B) {
			benchReadFrame(b, v, Limits{})
		})
	}
}

// BenchmarkReadFrameSmallLimits: limits below the read buffer's size take
// the Reader's careful path, which checks them before waiting for more.
func BenchmarkReadFrameSmallLimits(b *testing.B) {
	benchReadFrame(b, V12, Limits{MaxFrameSize: 16 << 10, MaxHeaderLine: 1024})
}

func benchReadFrame(b *testing.B, v Version, lim Limits) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.SetVersion(v)
	if err := w.WriteFrame(benchFrame()); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	r := NewReader(&loopReader{data: buf.Bytes()}, lim)
	r.SetVersion(v)
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadFrame(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadFrameNUL(b *testing.B) {
	// No content-length: the body runs to the NUL, as many 1.0 clients send.
	input := "SEND\ndestination:/queue/orders.eu-west\nreceipt:r-123456\npersistent:true\n" +
		"content-type:application/json\ncorrelation-id:6f1c2a1e\npriority:4\n\n" +
		strings.Repeat("x", 1024) + "\x00"
	r := NewReader(&loopReader{data: []byte(input)}, Limits{})
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadFrame(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteFrame(b *testing.B) {
	for _, v := range []Version{V10, V12} {
		b.Run(string(v), func(b *testing.B) {
			f := benchFrame()
			w := NewWriter(io.Discard)
			w.SetVersion(v)
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteFrame(f); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
