package test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// python is Debian's interpreter, whose modules include python3-stomp
// (the pyenv python3 first on PATH does not have them).
const python = "/usr/bin/python3"

// runPythonStomp runs testdata/SCRIPT with python3-stomp against a fresh
// single-node broker of the built binary, and fails the test with the
// script's output and the server's log if the script fails.
func runPythonStomp(t *testing.T, script string) {
	t.Helper()
	if err := exec.Command(python, "-c", "import stomp").Run(); err != nil {
		t.Fatalf("python3-stomp is not importable by %s (apt-get install python3-stomp; .ci/run does): %v", python, err)
	}
	srv := StartServer(t, raftmqBin, t.TempDir())
	host, port, _ := net.SplitHostPort(srv.Stomp)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "testdata/"+script, host, port).CombinedOutput()
	t.Logf("python3-stomp:\n%s", out)
	if err != nil {
		t.Fatalf("%s failed: %v\nserver log:\n%s", script, err, srv.Log())
	}
}

// TestPythonStompInterop drives the broker with a real third-party client:
// Debian's python3-stomp (installed by .ci/run).
func TestPythonStompInterop(t *testing.T) { runPythonStomp(t, "interop.py") }

// TestPythonStompFailoverList gives python3-stomp every member's address
// with the leader last: it reaches the leader because followers refuse
// connections, and reaches the new leader the same way after the old one
// is killed.
func TestPythonStompFailoverList(t *testing.T) {
	if err := exec.Command(python, "-c", "import stomp").Run(); err != nil {
		t.Fatalf("python3-stomp is not importable by %s (apt-get install python3-stomp; .ci/run does): %v", python, err)
	}
	g := StartGroup(t, raftmqBin, 3)
	leader := g.WaitLeader(waitLong)
	var hosts []string
	for i, s := range g.Nodes {
		if i != leader {
			hosts = append(hosts, s.Stomp)
		}
	}
	hosts = append(hosts, g.Nodes[leader].Stomp)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "testdata/failover.py", strings.Join(hosts, ","), "/queue/py-failover")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	var out []string
	next := func(prefix string) string {
		t.Helper()
		for lines.Scan() {
			out = append(out, lines.Text())
			if strings.HasPrefix(lines.Text(), prefix) {
				return strings.TrimSpace(strings.TrimPrefix(lines.Text(), prefix))
			}
		}
		cmd.Wait()
		t.Fatalf("python3-stomp never printed %q:\n%s\n%s", prefix, strings.Join(out, "\n"), stderr.String())
		return ""
	}
	if got := next("CONNECTED "); got != g.Nodes[leader].Stomp {
		t.Errorf("python3-stomp connected to %s, want the leader %s", got, g.Nodes[leader].Stomp)
	}
	next("SENT before")
	g.Nodes[leader].Kill()
	newLeader := g.WaitLeader(waitLong)
	io.WriteString(stdin, "killed\n")
	if got := next("CONNECTED "); got != g.Nodes[newLeader].Stomp {
		t.Errorf("after the kill python3-stomp connected to %s, want the new leader %s", got, g.Nodes[newLeader].Stomp)
	}
	next("GOT before,after")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python3-stomp: %v\n%s\n%s", err, strings.Join(out, "\n"), stderr.String())
	}
	t.Logf("python3-stomp:\n%s", strings.Join(out, "\n"))
}
