package stomp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

const (
	// bufSize is the Reader's and Writer's buffer: one read or write system
	// call moves up to this much, and lines up to this long are parsed in
	// place without copying.
	bufSize = 64 << 10

	// eagerBody is the largest content-length body allocated in one piece
	// before its bytes arrive (as much as the read buffer the connection
	// holds anyway). Larger bodies grow as data comes in, so a peer that
	// announces a large body and then stalls holds about what it sent
	// (readGrowing).
	eagerBody = bufSize

	// scratchKeep caps the scratch buffers a Reader keeps between frames; one
	// frame with huge headers must not pin that memory for the connection's
	// whole life.
	scratchKeep = 256 << 10
)

// escaping selects the header escaping rules of a version.
type escaping uint8

const (
	escNone escaping = iota // 1.0: bytes are taken literally
	esc11                   // \n \c \\
	esc12                   // \n \c \\ \r
)

func escapingFor(v Version) escaping {
	switch v {
	case V11:
		return esc11
	case V12:
		return esc12
	}
	return escNone
}

// exempt reports whether a command's headers are never escaped: CONNECT,
// STOMP and CONNECTED are exchanged before a version is agreed on, so every
// version reads them literally.
func exempt(cmd string) bool {
	return cmd == CONNECT || cmd == STOMP || cmd == CONNECTED
}

// Reader decodes frames from a byte stream. It is not safe for concurrent
// use. After any error other than io.EOF the stream is out of sync and the
// connection should be closed.
type Reader struct {
	br  *bufio.Reader
	lim Limits
	esc escaping

	// line holds a line that did not fit in br's buffer.
	line []byte
	// block holds the current frame's unescaped header keys and values back
	// to back; ends[2i] and ends[2i+1] are where header i's key and value
	// end. All header strings of a frame are cut from one string made of
	// block, which costs one allocation instead of two per header.
	block []byte
	ends  []int
}

// NewReader returns a Reader that reads from r with limits lim (zero fields
// take their defaults). Until SetVersion is called it reads STOMP 1.0: no
// header unescaping.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), lim: lim.withDefaults()}
}

// SetLimits replaces the limits for the frames that follow: a server reads
// the CONNECT frame, before it knows who is speaking, under tighter ones.
func (r *Reader) SetLimits(lim Limits) { r.lim = lim.withDefaults() }

// SetVersion selects the header unescaping rules for the frames that follow,
// once a connection has negotiated its version.
func (r *Reader) SetVersion(v Version) { r.esc = escapingFor(v) }

// Buffered returns the number of bytes already read from the underlying
// reader and not yet decoded. A server can use it to flush its replies only
// when no further frame is waiting.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadFrame decodes the next frame, skipping the end-of-line heart-beats
// before it. It returns io.EOF only when the stream ends cleanly between
// frames, io.ErrUnexpectedEOF when it ends inside one, and an *Error when the
// bytes are not a valid frame or exceed the limits. The frame and its body
// belong to the caller.
func (r *Reader) ReadFrame() (*Frame, error) {
	if err := r.skipEOLs(); err != nil {
		return nil, err
	}
	size := 0 // bytes of this frame so far, checked against MaxFrameSize
	line, err := r.readLine(&size)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		// skipEOLs leaves us on a byte that is not a line end, so this is
		// unreachable; keep the guarantee local anyway.
		return nil, errorf(ErrMalformed, "empty command")
	}
	cmd := command(line)
	esc := r.esc
	if exempt(cmd) {
		esc = escNone
	}

	r.block, r.ends = r.block[:0], r.ends[:0]
	haveLen, clen := false, 0
	for {
		line, err = r.readLine(&size)
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if len(r.ends) >= 2*r.lim.MaxHeaders {
			return nil, errorf(ErrTooManyHeaders, fmt.Sprintf("more than %d headers", r.lim.MaxHeaders))
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return nil, errorf(ErrMalformed, fmt.Sprintf("header line without a colon: %q", truncate(line)))
		}
		if colon == 0 {
			return nil, errorf(ErrMalformed, fmt.Sprintf("header line with an empty name: %q", truncate(line)))
		}
		keyStart := len(r.block)
		if r.block, err = unescape(r.block, line[:colon], esc); err != nil {
			return nil, err
		}
		keyEnd := len(r.block)
		if r.block, err = unescape(r.block, line[colon+1:], esc); err != nil {
			return nil, err
		}
		r.ends = append(r.ends, keyEnd, len(r.block))
		// Only the first content-length counts, like any repeated header.
		if !haveLen && string(r.block[keyStart:keyEnd]) == "content-length" {
			haveLen = true
			if clen, err = parseContentLength(r.block[keyEnd:], r.lim.MaxFrameSize-size); err != nil {
				return nil, err
			}
		}
	}

	var body []byte
	if haveLen {
		body, err = r.readBodyN(clen, size)
	} else {
		body, err = r.readBodyNUL(size)
	}
	if err != nil {
		return nil, err
	}

	f := &Frame{Command: cmd, Body: body}
	if n := len(r.ends) / 2; n > 0 {
		s := string(r.block)
		f.Headers = make([]Header, n)
		start := 0
		for i := range f.Headers {
			k, v := r.ends[2*i], r.ends[2*i+1]
			f.Headers[i] = Header{Key: s[start:k], Value: s[k:v]}
			start = v
		}
	}
	if cap(r.block) > scratchKeep {
		r.block = nil
	}
	if cap(r.line) > scratchKeep {
		r.line = nil
	}
	return f, nil
}

// skipEOLs consumes the line ends (LF or CRLF) that separate frames; they are
// heart-beats. It consumes nothing else, so an error while waiting (a read
// deadline) leaves the stream intact.
func (r *Reader) skipEOLs() error {
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			return r.betweenFrames(err)
		}
		switch b[0] {
		case '\n':
			_, _ = r.br.Discard(1) // cannot fail: the byte is buffered
		case '\r':
			b, err = r.br.Peek(2)
			if len(b) < 2 {
				// A CR then the end: not a heart-beat, and no frame either.
				return r.inFrame(err)
			}
			if b[1] != '\n' {
				return nil // a CR that starts a command line
			}
			_, _ = r.br.Discard(2)
		default:
			return nil
		}
	}
}

// readLine returns the next line without its line end (LF or CRLF). The line
// is valid until the next read. It adds the bytes consumed to *size and
// enforces MaxFrameSize and MaxHeaderLine.
func (r *Reader) readLine(size *int) ([]byte, error) {
	// More bytes than these without a LF break a limit whatever follows:
	// a line holds MaxHeaderLine bytes and maybe the CR of its CRLF, and
	// the frame must keep room for the LF. (A line one byte over its limit
	// and not ending in CR is thus caught when its LF arrives.)
	maxLine := r.lim.MaxHeaderLine + 1
	maxFrame := r.lim.MaxFrameSize - *size - 1
	limit := min(maxLine, maxFrame)
	b, err := r.readSlice('\n', limit)
	if err == bufio.ErrBufferFull {
		// Longer than the buffer: assemble it, bounded by the limits.
		r.line = r.line[:0]
		for err == bufio.ErrBufferFull {
			r.line = append(r.line, b...)
			b, err = r.readSlice('\n', limit-len(r.line))
		}
		if err == nil {
			r.line = append(r.line, b...)
			b = r.line
		}
	}
	if err == errPastLimit {
		// Name the limit the stream crossed first, so that the error does
		// not depend on how its bytes arrived.
		if maxLine <= maxFrame {
			return nil, r.lineTooLong()
		}
		return nil, r.frameTooLarge()
	}
	if err != nil {
		return nil, r.inFrame(err)
	}
	*size += len(b) // within MaxFrameSize: len(b)-1 <= maxFrame
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
		// "x\r\r\n" would decode to "x\r", which no encoder can write back
		// (a trailing CR always reads as part of the line end). Refusing it
		// keeps decode(encode(f)) == f; no real client sends it.
		if n > 1 && b[n-2] == '\r' {
			return nil, errorf(ErrMalformed, "line ends in CR CR LF")
		}
	}
	if len(b) > r.lim.MaxHeaderLine {
		return nil, r.lineTooLong()
	}
	return b, nil
}

// errPastLimit is readSlice's report that a limit is broken; its callers
// turn it into the *Error of that limit.
var errPastLimit = errors.New("stomp: past the limit")

// readSlice is bufio.Reader.ReadSlice(delim) bounded by limit, the most bytes
// that may precede delim. ReadSlice returns only at delim or when the buffer
// (bufSize) is full, so a peer that sent more than a smaller limit and then
// stalled would keep its connection, and the bytes it holds, until its next
// byte. readSlice instead returns errPastLimit as soon as more than limit
// bytes are buffered without delim, or precede it.
//
// Like ReadSlice, it consumes and returns the bytes up to and including
// delim, or the whole buffer with bufio.ErrBufferFull when delim is not in
// it; the slice is valid until the next read.
func (r *Reader) readSlice(delim byte, limit int) ([]byte, error) {
	if limit >= r.br.Size() {
		// The buffer fills before the limit is crossed, so ReadSlice does
		// not wait past it. This is the path of the default limits, and
		// saves the calls below.
		return r.br.ReadSlice(delim)
	}
	scanned := 0 // bytes already known not to hold delim
	for {
		b, _ := r.br.Peek(r.br.Buffered()) // cannot fail: the bytes are buffered
		if i := bytes.IndexByte(b[scanned:], delim); i >= 0 {
			i += scanned
			if i > limit {
				return nil, errPastLimit
			}
			_, _ = r.br.Discard(i + 1)
			return b[:i+1], nil
		}
		// This path runs only for limits below the buffer size, so a
		// full buffer is always past the limit by now.
		if len(b) > limit {
			return nil, errPastLimit
		}
		scanned = len(b)
		// Wait for more: one read, however many bytes it brings.
		if _, err := r.br.Peek(len(b) + 1); err != nil {
			return nil, err
		}
	}
}

// readBodyN reads a body of exactly n bytes and the NUL after it. size is
// the frame's size so far; the limit is checked before anything is allocated.
func (r *Reader) readBodyN(n, size int) ([]byte, error) {
	if n > r.lim.MaxFrameSize-size {
		return nil, errorf(ErrFrameTooLarge, fmt.Sprintf("content-length %d exceeds the frame size limit", n))
	}
	var body []byte
	var err error
	switch {
	case n == 0:
	case n <= eagerBody || n <= r.br.Buffered(): // small, or already here
		body = make([]byte, n)
		_, err = io.ReadFull(r.br, body)
	default:
		body, err = r.readGrowing(n)
	}
	if err != nil {
		return nil, r.inFrame(err)
	}
	c, err := r.br.ReadByte()
	if err != nil {
		return nil, r.inFrame(err)
	}
	if c != 0 {
		return nil, errorf(ErrMalformed, fmt.Sprintf("body of content-length %d is not followed by NUL", n))
	}
	return body, nil
}

// readGrowing reads n bytes into a buffer that starts at what one read
// brings (bufSize) and doubles as data arrives, so a peer that announces a
// large body and stalls holds less than twice what it sent.
func (r *Reader) readGrowing(n int) ([]byte, error) {
	body := make([]byte, 0, min(n, bufSize))
	for len(body) < n {
		if len(body) == cap(body) {
			nb := make([]byte, len(body), min(2*cap(body), n))
			copy(nb, body)
			body = nb
		}
		m, err := r.br.Read(body[len(body):cap(body)])
		body = body[:len(body)+m]
		if err != nil && len(body) < n {
			return nil, err
		}
	}
	return body, nil
}

// readBodyNUL reads a body that runs to the first NUL, growing it as data
// arrives. size is the frame's size so far.
func (r *Reader) readBodyNUL(size int) ([]byte, error) {
	limit := r.lim.MaxFrameSize - size // the body bytes the frame has room for
	b, err := r.readSlice(0, limit)
	if err == nil {
		// The common case: the whole body is in the buffer.
		if len(b) == 1 {
			return nil, nil
		}
		return bytes.Clone(b[:len(b)-1]), nil
	}
	var body []byte
	for err == bufio.ErrBufferFull {
		body = append(body, b...)
		b, err = r.readSlice(0, limit-len(body))
	}
	if err == errPastLimit {
		return nil, r.frameTooLarge()
	}
	if err != nil {
		return nil, r.inFrame(err)
	}
	return append(body, b[:len(b)-1]...), nil
}

func (r *Reader) frameTooLarge() error {
	return errorf(ErrFrameTooLarge, fmt.Sprintf("frame larger than %d bytes", r.lim.MaxFrameSize))
}

func (r *Reader) lineTooLong() error {
	return errorf(ErrHeaderTooLong, fmt.Sprintf("command or header line longer than %d bytes", r.lim.MaxHeaderLine))
}

// betweenFrames maps a read error where no frame has started.
func (r *Reader) betweenFrames(err error) error {
	if err == io.EOF {
		return io.EOF
	}
	return fmt.Errorf("stomp: reading frame: %w", err)
}

// inFrame maps a read error inside a frame: the end of the stream there is
// unexpected.
func (r *Reader) inFrame(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF || err == nil {
		// nil: Peek returned fewer bytes without an error, which bufio
		// does only at the end of the data.
		return io.ErrUnexpectedEOF
	}
	return fmt.Errorf("stomp: reading frame: %w", err)
}

// parseContentLength parses a non-negative decimal integer no larger than
// limit (the room left in the frame).
func parseContentLength(b []byte, limit int) (int, error) {
	if len(b) == 0 {
		return 0, errorf(ErrMalformed, "empty content-length")
	}
	var n uint64
	over := false
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errorf(ErrMalformed, fmt.Sprintf("invalid content-length %q", truncate(b)))
		}
		// Stop accumulating once past limit, so that no number of digits
		// can overflow n; keep scanning to report malformed input as such.
		if !over {
			over = n > uint64(limit)/10
			n = n*10 + uint64(c-'0')
			over = over || n > uint64(limit)
		}
	}
	if over {
		return 0, errorf(ErrFrameTooLarge, fmt.Sprintf("content-length %s exceeds the frame size limit", truncate(b)))
	}
	return int(n), nil
}

// unescape appends src to dst, decoding header escapes per esc.
func unescape(dst, src []byte, esc escaping) ([]byte, error) {
	i := -1
	if esc != escNone {
		i = bytes.IndexByte(src, '\\')
	}
	for i >= 0 {
		dst = append(dst, src[:i]...)
		if i+1 == len(src) {
			return nil, errorf(ErrMalformed, "header ends in a lone backslash")
		}
		switch c := src[i+1]; {
		case c == 'n':
			dst = append(dst, '\n')
		case c == 'c':
			dst = append(dst, ':')
		case c == '\\':
			dst = append(dst, '\\')
		case c == 'r' && esc == esc12:
			dst = append(dst, '\r')
		default:
			return nil, errorf(ErrMalformed, fmt.Sprintf("undefined escape sequence %q in header", src[i:i+2]))
		}
		src = src[i+2:]
		i = bytes.IndexByte(src, '\\')
	}
	return append(dst, src...), nil
}

// command returns the command as a string, without allocating for the
// standard ones.
func command(b []byte) string {
	switch string(b) {
	case SEND:
		return SEND
	case MESSAGE:
		return MESSAGE
	case ACK:
		return ACK
	case NACK:
		return NACK
	case RECEIPT:
		return RECEIPT
	case SUBSCRIBE:
		return SUBSCRIBE
	case UNSUBSCRIBE:
		return UNSUBSCRIBE
	case BEGIN:
		return BEGIN
	case COMMIT:
		return COMMIT
	case ABORT:
		return ABORT
	case CONNECT:
		return CONNECT
	case STOMP:
		return STOMP
	case CONNECTED:
		return CONNECTED
	case DISCONNECT:
		return DISCONNECT
	case ERROR:
		return ERROR
	}
	return string(b)
}

// truncate shortens b for an error message.
func truncate(b []byte) []byte {
	const n = 64
	if len(b) > n {
		return b[:n]
	}
	return b
}
