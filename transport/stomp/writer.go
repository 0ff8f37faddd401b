package stomp

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Writer encodes frames onto a byte stream through a buffer. It is not safe
// for concurrent use; nothing reaches the stream until Flush (or until the
// buffer fills).
type Writer struct {
	bw  *bufio.Writer
	esc escaping
	num [20]byte // scratch for content-length digits
}

// NewWriter returns a Writer on w. Until SetVersion is called it writes
// STOMP 1.0: no header escaping.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, bufSize)}
}

// SetVersion selects the header escaping rules for the frames that follow.
func (w *Writer) SetVersion(v Version) { w.esc = escapingFor(v) }

// WriteFrame encodes f into the buffer. Header keys and values are escaped
// per the version, except in CONNECT, STOMP and CONNECTED frames, which are
// never escaped.
//
// The Writer owns content-length: the first content-length header is written
// with the body's actual length and later ones are dropped, and one is added
// when the body is not empty and f has none, because a body may hold NUL
// bytes. A frame is thus always delimited correctly, whatever its headers
// say.
//
// A frame that cannot be encoded (an empty command or header name, or a line
// end or colon where the version has no escape for it) is rejected with an
// *Error of kind ErrMalformed before anything is written.
func (w *Writer) WriteFrame(f *Frame) error {
	esc := w.esc
	if exempt(f.Command) {
		esc = escNone
	}
	if err := check(f, esc); err != nil {
		return err
	}
	bw := w.bw
	_, _ = bw.WriteString(f.Command)
	_ = bw.WriteByte('\n')
	haveLen := false
	for i := range f.Headers {
		h := &f.Headers[i]
		if h.Key == "content-length" {
			if !haveLen {
				haveLen = true
				w.writeContentLength(len(f.Body))
			}
			continue
		}
		w.writeEscaped(h.Key, esc)
		_ = bw.WriteByte(':')
		w.writeEscaped(h.Value, esc)
		_ = bw.WriteByte('\n')
	}
	if !haveLen && len(f.Body) > 0 {
		w.writeContentLength(len(f.Body))
	}
	_ = bw.WriteByte('\n')
	_, _ = bw.Write(f.Body)
	// bufio.Writer errors are sticky: the last write reports any earlier one.
	if err := bw.WriteByte(0); err != nil {
		return fmt.Errorf("stomp: writing %s frame: %w", f.Command, err)
	}
	return nil
}

// WriteHeartbeat buffers one heart-beat (a line feed).
func (w *Writer) WriteHeartbeat() error {
	if err := w.bw.WriteByte('\n'); err != nil {
		return fmt.Errorf("stomp: writing heart-beat: %w", err)
	}
	return nil
}

// Flush writes the buffered bytes to the stream.
func (w *Writer) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("stomp: flushing: %w", err)
	}
	return nil
}

// Buffered returns the number of bytes written into the buffer and not yet
// flushed.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

func (w *Writer) writeContentLength(n int) {
	_, _ = w.bw.WriteString("content-length:")
	_, _ = w.bw.Write(strconv.AppendInt(w.num[:0], int64(n), 10))
	_ = w.bw.WriteByte('\n')
}

// writeEscaped writes s with the escapes of esc.
func (w *Writer) writeEscaped(s string, esc escaping) {
	if esc == escNone {
		_, _ = w.bw.WriteString(s)
		return
	}
	start := 0
	for i := 0; i < len(s); i++ {
		var rep string
		switch s[i] {
		case '\\':
			rep = `\\`
		case '\n':
			rep = `\n`
		case ':':
			rep = `\c`
		case '\r':
			if esc != esc12 {
				continue // 1.1 has no escape for CR; check ruled out a trailing one
			}
			rep = `\r`
		default:
			continue
		}
		_, _ = w.bw.WriteString(s[start:i])
		_, _ = w.bw.WriteString(rep)
		start = i + 1
	}
	_, _ = w.bw.WriteString(s[start:])
}

// check reports whether f can be encoded with esc such that reading it back
// gives the same frame.
func check(f *Frame, esc escaping) error {
	c := f.Command
	if c == "" {
		return errorf(ErrMalformed, "cannot encode a frame with an empty command")
	}
	if strings.IndexByte(c, '\n') >= 0 || endsInCR(c) {
		return errorf(ErrMalformed, fmt.Sprintf("cannot encode command %q", c))
	}
	for _, h := range f.Headers {
		if h.Key == "" {
			return errorf(ErrMalformed, fmt.Sprintf("cannot encode an empty header name in a %s frame", c))
		}
		if h.Key == "content-length" {
			continue // its value is not written
		}
		// A CR ending the value would read back as part of the line end;
		// only 1.2 can escape it. (A CR ending the key is followed by the
		// colon, so it is harmless.)
		bad := esc != esc12 && endsInCR(h.Value)
		if esc == escNone {
			bad = bad || strings.ContainsAny(h.Key, ":\n") || strings.IndexByte(h.Value, '\n') >= 0
		}
		if bad {
			return errorf(ErrMalformed, fmt.Sprintf("cannot encode header %q:%q in a %s frame without escaping", h.Key, h.Value, c))
		}
	}
	return nil
}

func endsInCR(s string) bool { return len(s) > 0 && s[len(s)-1] == '\r' }
