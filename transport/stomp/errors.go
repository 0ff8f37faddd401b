package stomp

// ErrorKind classifies a decoding or encoding error, so that callers decide
// what to do (which ERROR frame to send, whether to count an abuse) without
// matching message text. An ErrorKind is itself an error, which makes
// errors.Is(err, stomp.ErrFrameTooLarge) work on a returned *Error.
type ErrorKind int

const (
	// ErrMalformed: the bytes are not a STOMP frame (a header line without a
	// colon, an undefined escape, a bad content-length, a body not ended by
	// NUL), or a frame given to the Writer cannot be encoded.
	ErrMalformed ErrorKind = iota + 1
	// ErrFrameTooLarge: the frame exceeds Limits.MaxFrameSize.
	ErrFrameTooLarge
	// ErrTooManyHeaders: the frame has more than Limits.MaxHeaders headers.
	ErrTooManyHeaders
	// ErrHeaderTooLong: the command or a header line exceeds
	// Limits.MaxHeaderLine.
	ErrHeaderTooLong
)

func (k ErrorKind) String() string {
	switch k {
	case ErrMalformed:
		return "malformed frame"
	case ErrFrameTooLarge:
		return "frame too large"
	case ErrTooManyHeaders:
		return "too many headers"
	case ErrHeaderTooLong:
		return "header line too long"
	}
	return "unknown stomp error"
}

func (k ErrorKind) Error() string { return "stomp: " + k.String() }

// Error is a frame that could not be decoded or encoded. Msg is written for a
// person: the server can put it in an ERROR frame's message header as is.
// After a decoding error the stream is out of sync; close the connection.
type Error struct {
	Kind ErrorKind
	Msg  string
}

func (e *Error) Error() string { return "stomp: " + e.Msg }

// Unwrap returns the kind, for errors.Is.
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind ErrorKind, msg string) *Error {
	return &Error{Kind: kind, Msg: msg}
}
