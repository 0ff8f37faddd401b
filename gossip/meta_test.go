package gossip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	m := Meta{Group: "orders", ID: "n1", Role: RoleLeader, Term: 42, Stomp: "10.0.0.1:61613", Raft: "10.0.0.1:7000", HTTP: "10.0.0.1:8161", Network: true}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMeta(b)
	if err != nil || got != m {
		t.Fatalf("DecodeMeta(%s) = %+v, %v; want %+v", b, got, err, m)
	}
	t.Logf("encoded meta: %d bytes: %s", len(b), b)
	for _, bad := range []string{"", "{", `{"g":"x"}`, `{"i":"x"}`, "not json"} {
		if _, err := DecodeMeta([]byte(bad)); err == nil {
			t.Errorf("DecodeMeta(%q): want error", bad)
		}
	}
	// Unknown keys are ignored: a newer node may advertise more.
	if got, err := DecodeMeta([]byte(`{"g":"x","i":"y","zz":1}`)); err != nil || got.Name() != "x/y" {
		t.Fatalf("unknown key: %+v, %v", got, err)
	}
}

func TestMetaTooLarge(t *testing.T) {
	m := Meta{Group: "g", ID: "a", Stomp: strings.Repeat("s", memberlist.MetaMaxSize)}
	if _, err := m.Encode(); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("Encode = %v, want ErrMetaTooLarge", err)
	}
	// The largest that fits.
	m.Stomp = ""
	b, _ := m.Encode()
	m.Stomp = strings.Repeat("s", memberlist.MetaMaxSize-len(b)-len(`,"s":""`))
	if b, err := m.Encode(); err != nil || len(b) != memberlist.MetaMaxSize {
		t.Fatalf("Encode at the limit = %d bytes, %v", len(b), err)
	}
}

func TestParseKey(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		key := bytes.Repeat([]byte{7}, n)
		got, err := ParseKey(base64.StdEncoding.EncodeToString(key))
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%d bytes: %x, %v", n, got, err)
		}
	}
	for _, bad := range []string{
		"",
		"not base64!",
		base64.StdEncoding.EncodeToString(make([]byte, 8)),
		base64.StdEncoding.EncodeToString(make([]byte, 33)),
		base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), // URL alphabet
		base64.RawStdEncoding.EncodeToString(make([]byte, 16)),            // no padding
	} {
		if _, err := ParseKey(bad); err == nil || !strings.HasPrefix(err.Error(), "gossip key") {
			t.Errorf("ParseKey(%q) = %v, want a gossip key error", bad, err)
		}
	}
}

func TestSplitAddr(t *testing.T) {
	cases := []struct {
		in   string
		host string
		port int
	}{
		{"10.0.0.1:8000", "10.0.0.1", 8000},
		{"10.0.0.1", "10.0.0.1", DefaultPort},
		{":8000", "", 8000},
		{"", "", DefaultPort},
		{"node1", "node1", DefaultPort},
		{"[::1]:8000", "::1", 8000},
		{"[::1]", "::1", DefaultPort},
		{"::1", "::1", DefaultPort},
		{"127.0.0.1:0", "127.0.0.1", 0},
	}
	for _, c := range cases {
		host, port, err := splitAddr(c.in, DefaultPort)
		if err != nil || host != c.host || port != c.port {
			t.Errorf("splitAddr(%q) = %q, %d, %v; want %q, %d", c.in, host, port, err, c.host, c.port)
		}
	}
	for _, bad := range []string{"h:x", "h:70000", "h:-1"} {
		if _, _, err := splitAddr(bad, DefaultPort); err == nil {
			t.Errorf("splitAddr(%q): want error", bad)
		}
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := backoff(i+1, 100*time.Millisecond, time.Second); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
}

func TestLogWriterLevels(t *testing.T) {
	var buf bytes.Buffer
	w := logWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
	}))}
	w.Write([]byte("[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n"))
	w.Write([]byte("[INFO] memberlist: Suspect b has failed\n[WARN] memberlist: Refuting\n"))
	w.Write([]byte("[ERR] memberlist: Failed to send\n"))
	w.Write([]byte("no prefix\n\n"))
	want := `level=DEBUG msg="memberlist: Stream connection from=127.0.0.1:1"
level=INFO msg="memberlist: Suspect b has failed"
level=WARN msg="memberlist: Refuting"
level=ERROR msg="memberlist: Failed to send"
level=INFO msg="no prefix"
`
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}

	// Above the handler's level nothing is formatted or written.
	buf.Reset()
	quiet := logWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	quiet.Write([]byte("[DEBUG] memberlist: chatty\n"))
	if buf.Len() != 0 {
		t.Fatalf("debug line written at info level: %s", buf.String())
	}
}

func dropTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
