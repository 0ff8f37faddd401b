package test

import (
	"context"
	"net"
	"os/exec"
	"testing"
	"time"
)

// TestPythonStompInterop drives the broker with a real third-party client:
// Debian's python3-stomp (installed by .ci/run).
func TestPythonStompInterop(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import stomp").Run(); err != nil {
		t.Fatalf("python3-stomp is not importable by %s (apt-get install python3-stomp; .ci/run does): %v", python, err)
	}
	srv := StartServer(t, raftmqBin, t.TempDir())
	host, port, _ := net.SplitHostPort(srv.Stomp)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "testdata/interop.py", host, port).CombinedOutput()
	t.Logf("python3-stomp:\n%s", out)
	if err != nil {
		t.Fatalf("interop script failed: %v\nserver log:\n%s", err, srv.Log())
	}
}
