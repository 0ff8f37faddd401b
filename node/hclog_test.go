package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// jsonLines decodes each line the JSON handler wrote.
func jsonLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func newBufLogger(level slog.Level) (*bytes.Buffer, *slog.Logger) {
	var buf bytes.Buffer
	return &buf, slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level, AddSource: true}))
}

func TestHCLogLevelsAndArgs(t *testing.T) {
	buf, sl := newBufLogger(LevelTrace)
	l := newHCLogger(sl, "raft")

	l.Trace("t", "k", 1)
	l.Debug("d")
	l.Info("i", "peer", raft.ServerAddress("10.0.0.1:7000"), "state", raft.Leader)
	l.Warn("w", "err", errors.New("boom"))
	l.Error("e", "fmt", hclog.Fmt("%d-%s", 7, "x"), "hex", hclog.Hex(255), "dangling")
	l.Log(hclog.NoLevel, "nolevel")

	got := jsonLines(t, buf)
	wantLevels := []string{"DEBUG-4", "DEBUG", "INFO", "WARN", "ERROR", "INFO"}
	if len(got) != len(wantLevels) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(wantLevels), buf)
	}
	for i, m := range got {
		if m["level"] != wantLevels[i] {
			t.Errorf("line %d level = %v, want %s", i, m["level"], wantLevels[i])
		}
		if m["logger"] != "raft" {
			t.Errorf("line %d logger = %v, want raft", i, m["logger"])
		}
		// The source must be the caller, not the adapter.
		src, _ := m["source"].(map[string]any)
		if file, _ := src["file"].(string); !strings.HasSuffix(file, "hclog_test.go") {
			t.Errorf("line %d source = %v, want hclog_test.go", i, src)
		}
	}
	if got[0]["k"] != float64(1) {
		t.Errorf("trace k = %v", got[0]["k"])
	}
	if got[2]["peer"] != "10.0.0.1:7000" || got[2]["state"] != "Leader" {
		t.Errorf("info args = %v", got[2])
	}
	if got[3]["err"] != "boom" {
		t.Errorf("warn err = %v", got[3]["err"])
	}
	if got[4]["fmt"] != "7-x" || got[4]["hex"] != "0xff" || got[4][hclog.MissingKey] != "dangling" {
		t.Errorf("error args = %v", got[4])
	}
}

func TestHCLogNamedWith(t *testing.T) {
	buf, sl := newBufLogger(slog.LevelInfo)
	root := newHCLogger(sl, "raft")

	sub := root.Named("net").With("a", 1).With("b")
	if sub.Name() != "raft.net" {
		t.Errorf("Name = %q, want raft.net", sub.Name())
	}
	if args := sub.ImpliedArgs(); len(args) != 4 || args[0] != "a" || args[2] != hclog.MissingKey || args[3] != "b" {
		t.Errorf("ImpliedArgs = %v", args)
	}
	sub.Info("x", "c", 3)
	root.ResetNamed("other").Info("y")
	if len(root.ImpliedArgs()) != 0 {
		t.Errorf("With changed the parent: %v", root.ImpliedArgs())
	}

	got := jsonLines(t, buf)
	if len(got) != 2 {
		t.Fatalf("got %d lines:\n%s", len(got), buf)
	}
	if m := got[0]; m["logger"] != "raft.net" || m["a"] != float64(1) || m[hclog.MissingKey] != "b" || m["c"] != float64(3) {
		t.Errorf("named/with line = %v", m)
	}
	if got[1]["logger"] != "other" {
		t.Errorf("ResetNamed line = %v", got[1])
	}
}

func TestHCLogIsAndSetLevel(t *testing.T) {
	buf, sl := newBufLogger(slog.LevelInfo)
	root := newHCLogger(sl, "raft")
	sub := root.Named("sub")

	if root.IsTrace() || root.IsDebug() || !root.IsInfo() || !root.IsWarn() || !root.IsError() {
		t.Errorf("Is* do not follow the handler's Info level")
	}
	if lvl := root.GetLevel(); lvl != hclog.Info {
		t.Errorf("GetLevel = %v, want info", lvl)
	}
	root.Debug("dropped")

	// SetLevel can only raise the bar above the handler's, and sub-loggers
	// share it, as in hclog.
	root.SetLevel(hclog.Warn)
	if sub.IsInfo() || !sub.IsWarn() || sub.GetLevel() != hclog.Warn {
		t.Errorf("sub-logger does not share SetLevel(Warn)")
	}
	sub.Info("dropped too")
	sub.Warn("kept")
	root.SetLevel(hclog.Off)
	if root.IsError() {
		t.Errorf("IsError with level off")
	}
	root.Error("dropped as well")

	got := jsonLines(t, buf)
	if len(got) != 1 || got[0]["msg"] != "kept" {
		t.Errorf("lines = %v", got)
	}
}

func TestHCLogStandardLogger(t *testing.T) {
	buf, sl := newBufLogger(slog.LevelDebug)
	l := newHCLogger(sl, "raft")

	std := l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	std.Print("[WARN] careful")
	std.Print("[DEBUG]  detail")
	std.Print("plain")
	forced := l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error})
	forced.Print("[INFO] forced")

	got := jsonLines(t, buf)
	want := []struct{ level, msg string }{
		{"WARN", "careful"}, {"DEBUG", "detail"}, {"INFO", "plain"}, {"ERROR", "[INFO] forced"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines:\n%s", len(got), buf)
	}
	for i, w := range want {
		if got[i]["level"] != w.level || got[i]["msg"] != w.msg {
			t.Errorf("line %d = %v, want %v", i, got[i], w)
		}
	}
}
