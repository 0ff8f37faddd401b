package node

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level that hclog's Trace maps to: below Debug, so
// raft's very chatty trace output stays off unless a handler asks for it.
const LevelTrace = slog.LevelDebug - 4

// hclogAdapter is an hclog.Logger that writes through a *slog.Logger, so
// raft's logs come out in the same structured stream as ours.
type hclogAdapter struct {
	base    *slog.Logger
	name    string
	implied []any
	// level is shared by every logger derived from the same root, as in
	// hclog, so SetLevel on raft's logger applies to its sub-loggers too.
	// hclog.NoLevel means "whatever the slog handler enables".
	level *atomic.Int32
}

var _ hclog.Logger = (*hclogAdapter)(nil)

// newHCLogger returns an hclog.Logger named name that logs to l.
func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	return &hclogAdapter{base: l, name: name, level: new(atomic.Int32)}
}

// slogLevel maps an hclog level to slog. NoLevel is hclog's "always
// print, without a level"; Info is the closest honest equivalent.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *hclogAdapter) enabled(l hclog.Level) bool {
	if l == hclog.Off {
		return false
	}
	if min := hclog.Level(a.level.Load()); min != hclog.NoLevel && l != hclog.NoLevel && l < min {
		return false
	}
	return a.base.Handler().Enabled(context.Background(), slogLevel(l))
}

// emit builds the record itself rather than calling slog.Logger.Log so the
// source position (for handlers with AddSource) is raft's caller, not this
// file. Every exported method calls emit directly, so the frame to skip is
// always the same.
func (a *hclogAdapter) emit(l hclog.Level, msg string, args []any) {
	if !a.enabled(l) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // runtime.Callers, emit, the exported method
	r := slog.NewRecord(time.Now(), slogLevel(l), msg, pcs[0])
	if a.name != "" {
		r.AddAttrs(slog.String("logger", a.name))
	}
	r.Add(convertArgs(a.implied)...)
	r.Add(convertArgs(args)...)
	_ = a.base.Handler().Handle(context.Background(), r)
}

// convertArgs turns hclog's key/value list into slog's: keys become
// strings, hclog's formatting wrappers are rendered as hclog would, and a
// dangling value gets hclog's EXTRA_VALUE_AT_END key instead of slog's
// !BADKEY.
func convertArgs(args []any) []any {
	if len(args) == 0 {
		return nil
	}
	out := make([]any, 0, len(args)+1)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, hclog.MissingKey, convertValue(args[i]))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		out = append(out, key, convertValue(args[i+1]))
	}
	return out
}

func convertValue(v any) any {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return ""
		}
		if f, ok := v[0].(string); ok {
			return fmt.Sprintf(f, v[1:]...)
		}
		return fmt.Sprint(v...)
	case hclog.Hex:
		return "0x" + strconv.FormatInt(int64(v), 16)
	case hclog.Octal:
		return "0" + strconv.FormatInt(int64(v), 8)
	case hclog.Binary:
		return "0b" + strconv.FormatInt(int64(v), 2)
	case hclog.Quote:
		return strconv.Quote(string(v))
	case error, time.Time, time.Duration, slog.LogValuer:
		return v // slog renders these well itself
	case fmt.Stringer:
		// Resolve now: raft passes values such as its RaftState that a
		// JSON handler would otherwise print as bare numbers. fmt guards
		// against String methods that panic on nil receivers.
		return fmt.Sprint(v)
	default:
		return v
	}
}

func (a *hclogAdapter) Log(l hclog.Level, msg string, args ...any) { a.emit(l, msg, args) }
func (a *hclogAdapter) Trace(msg string, args ...any)              { a.emit(hclog.Trace, msg, args) }
func (a *hclogAdapter) Debug(msg string, args ...any)              { a.emit(hclog.Debug, msg, args) }
func (a *hclogAdapter) Info(msg string, args ...any)               { a.emit(hclog.Info, msg, args) }
func (a *hclogAdapter) Warn(msg string, args ...any)               { a.emit(hclog.Warn, msg, args) }
func (a *hclogAdapter) Error(msg string, args ...any)              { a.emit(hclog.Error, msg, args) }

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return append([]any(nil), a.implied...) }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	c := *a
	c.implied = append(append([]any(nil), a.implied...), args...)
	if len(args)%2 != 0 {
		// As hclog does: a dangling value must not pair with the keys of
		// a later With.
		extra := c.implied[len(c.implied)-1]
		c.implied = append(c.implied[:len(c.implied)-1], hclog.MissingKey, extra)
	}
	return &c
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

func (a *hclogAdapter) SetLevel(l hclog.Level) { a.level.Store(int32(l)) }

// GetLevel reports the lowest level that would be written: the one set
// with SetLevel, or else the lowest the slog handler enables.
func (a *hclogAdapter) GetLevel() hclog.Level {
	if l := hclog.Level(a.level.Load()); l != hclog.NoLevel {
		return l
	}
	for l := hclog.Trace; l <= hclog.Error; l++ {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	if opts == nil {
		opts = &hclog.StandardLoggerOptions{}
	}
	return &stdWriter{a: a, opts: *opts}
}

// stdWriter adapts the standard library's log.Logger output (one line per
// Write, possibly prefixed "[LEVEL]" by code written for hclog) to the
// adapter.
type stdWriter struct {
	a    *hclogAdapter
	opts hclog.StandardLoggerOptions
}

func (w *stdWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	sc.Buffer(nil, len(p)+1)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		level := hclog.Info
		if w.opts.ForceLevel != hclog.NoLevel {
			level = w.opts.ForceLevel
		} else if w.opts.InferLevels || w.opts.InferLevelsWithTimestamp {
			level, line = inferLevel(line, w.opts.InferLevelsWithTimestamp)
		}
		w.a.Log(level, line)
	}
	return len(p), nil
}

// inferLevel strips a leading "[LEVEL]" (after a timestamp, if asked) and
// returns the level it names, as hclog's own writer does.
func inferLevel(line string, timestamp bool) (hclog.Level, string) {
	rest := line
	if timestamp {
		if i := strings.Index(rest, "["); i > 0 {
			rest = rest[i:]
		}
	}
	for _, p := range []struct {
		prefix string
		level  hclog.Level
	}{
		{"[TRACE]", hclog.Trace},
		{"[DEBUG]", hclog.Debug},
		{"[INFO]", hclog.Info},
		{"[WARN]", hclog.Warn},
		{"[ERROR]", hclog.Error},
		{"[ERR]", hclog.Error},
	} {
		if strings.HasPrefix(rest, p.prefix) {
			return p.level, strings.TrimSpace(rest[len(p.prefix):])
		}
	}
	return hclog.Info, line
}
