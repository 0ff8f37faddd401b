package stomp

// Defaults for Limits. The frame size is ActiveMQ's maxFrameSize, so clients
// that work against ActiveMQ work here.
const (
	DefaultMaxFrameSize  = 100 << 20
	DefaultMaxHeaders    = 1000
	DefaultMaxHeaderLine = 64 << 10
)

// Limits bound what one frame may make the Reader hold in memory. A zero (or
// negative) field means the default.
type Limits struct {
	// MaxFrameSize bounds the bytes of a frame from the first byte of its
	// command to the byte before its terminating NUL: command, header lines
	// with their line ends, blank line and body.
	MaxFrameSize int
	// MaxHeaders bounds the number of header lines.
	MaxHeaders int
	// MaxHeaderLine bounds the length of the command line and of each header
	// line, line end excluded, before unescaping.
	MaxHeaderLine int
}

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits {
	return Limits{
		MaxFrameSize:  DefaultMaxFrameSize,
		MaxHeaders:    DefaultMaxHeaders,
		MaxHeaderLine: DefaultMaxHeaderLine,
	}
}

// withDefaults fills zero fields with their defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFrameSize <= 0 {
		l.MaxFrameSize = d.MaxFrameSize
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = d.MaxHeaders
	}
	if l.MaxHeaderLine <= 0 {
		l.MaxHeaderLine = d.MaxHeaderLine
	}
	return l
}
