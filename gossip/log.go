package gossip

import (
	"bytes"
	"context"
	"log/slog"
)

// logWriter turns memberlist's log lines ("[DEBUG] memberlist: ...") into
// slog records at the matching level. memberlist writes through a
// *log.Logger, which makes one Write per line.
type logWriter struct {
	log *slog.Logger
}

// levels maps memberlist's prefixes to slog levels. [TRACE] is not used by
// memberlist today but is by its neighbours (serf, raft).
var levels = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[TRACE]"), slog.LevelDebug},
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
}

// Write logs each line of p; it never fails, so memberlist never stalls
// on logging.
func (w logWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		w.line(bytes.TrimSpace(line))
	}
	return len(p), nil
}

func (w logWriter) line(b []byte) {
	if len(b) == 0 {
		return
	}
	level := slog.LevelInfo // a line without a prefix
	for _, l := range levels {
		if bytes.HasPrefix(b, l.prefix) {
			level = l.level
			b = bytes.TrimSpace(b[len(l.prefix):])
			break
		}
	}
	ctx := context.Background()
	if !w.log.Enabled(ctx, level) {
		return
	}
	w.log.Log(ctx, level, string(b))
}
