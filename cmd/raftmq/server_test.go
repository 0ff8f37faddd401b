package main

import (
	"bufio"
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/stomp"
)

// serverProc is `raftmq server` running in a child process.
type serverProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    chan string   // the first "serving STOMP clients" address
	exited  chan struct{} // closed once the process exited
	waitErr error         // its exit status, once exited is closed

	mu     sync.Mutex
	stderr strings.Builder
}

// servingLine matches the line scripts wait for, in text or JSON.
var servingLine = regexp.MustCompile(`msg="serving STOMP clients" addr=(\S+)|"msg":"serving STOMP clients","addr":"([^"]+)"`)

func startServer(t *testing.T, args ...string) *serverProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"server"}, args...)...)
	// The child sees none of the machine's RAFTMQ_* settings: only the
	// arguments given here configure it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "RAFTMQ_TEST_MAIN=1")
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProc{t: t, cmd: cmd, addr: make(chan string, 1), exited: make(chan struct{})}
	go func() {
		// Drain stderr to the end, so the server never blocks on it.
		sc := bufio.NewScanner(errPipe)
		found := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := servingLine.FindStringSubmatch(line); m != nil && !found {
				found = true
				p.addr <- m[1] + m[2]
			}
		}
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *serverProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *serverProc) servingAddr() string {
	p.t.Helper()
	select {
	case a := <-p.addr:
		return a
	case <-p.exited:
		p.t.Fatalf("server exited (%v) before serving:\n%s", p.waitErr, p.log())
	case <-time.After(20 * time.Second):
		p.t.Fatalf("server not serving after 20s:\n%s", p.log())
	}
	return ""
}

// stop sends sig and checks the process exits 0.
func (p *serverProc) stop(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			p.t.Fatalf("server exited with %v after %v:\n%s", p.waitErr, sig, p.log())
		}
	case <-time.After(20 * time.Second):
		p.t.Fatalf("server still running 20s after %v:\n%s", sig, p.log())
	}
}

// stompSession connects with STOMP 1.2 and returns a function doing one
// frame round trip.
func stompSession(t *testing.T, addr string) (send func(*stomp.Frame), read func() *stomp.Frame) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	r, w := stomp.NewReader(nc, stomp.Limits{}), stomp.NewWriter(nc)
	send = func(f *stomp.Frame) {
		t.Helper()
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	read = func() *stomp.Frame {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	send(&stomp.Frame{Command: stomp.CONNECT, Headers: []stomp.Header{
		{Key: "accept-version", Value: "1.2"}, {Key: "host", Value: "raftmq"}, {Key: "heart-beat", Value: "0,0"},
	}})
	if f := read(); f.Command != stomp.CONNECTED {
		t.Fatalf("CONNECT answered with %s %v %q", f.Command, f.Headers, f.Body)
	}
	r.SetVersion(stomp.V12)
	w.SetVersion(stomp.V12)
	return send, read
}

func TestServerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes")
	}
	dir := t.TempDir()
	args := []string{"--data", dir, "--stomp", "127.0.0.1:0", "--raft", "127.0.0.1:0", "--heartbeat", "0,0"}

	p := startServer(t, args...)
	send, read := stompSession(t, p.servingAddr())
	send(&stomp.Frame{Command: stomp.SEND, Headers: []stomp.Header{
		{Key: "destination", Value: "/queue/proc"}, {Key: "receipt", Value: "r1"},
	}, Body: []byte("survives restarts")})
	if f := read(); f.Command != stomp.RECEIPT || f.Get("receipt-id") != "r1" {
		t.Fatalf("SEND answered with %s %v", f.Command, f.Headers)
	}
	p.stop(syscall.SIGTERM)
	if log := p.log(); !strings.Contains(log, `msg="node stopped"`) {
		t.Errorf("no clean shutdown in the log:\n%s", log)
	}

	// Same data directory, JSON logs, SIGINT this time.
	p = startServer(t, append(args, "--log-format", "json")...)
	addr := p.servingAddr()
	if !strings.Contains(p.log(), `"msg":"serving STOMP clients","addr":"`+addr+`"`) {
		t.Errorf("JSON serving line not found:\n%s", p.log())
	}
	send, read = stompSession(t, addr)
	send(&stomp.Frame{Command: stomp.SUBSCRIBE, Headers: []stomp.Header{
		{Key: "id", Value: "s"}, {Key: "destination", Value: "/queue/proc"}, {Key: "ack", Value: "auto"},
	}})
	if f := read(); f.Command != stomp.MESSAGE || string(f.Body) != "survives restarts" {
		t.Fatalf("got %s %v %q, want the message sent before the restart", f.Command, f.Headers, f.Body)
	}
	p.stop(os.Interrupt)
}

func TestServerProcessBadDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes")
	}
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startServer(t, "--data", file, "--stomp", "127.0.0.1:0", "--raft", "127.0.0.1:0")
	select {
	case <-p.exited:
		var ee *exec.ExitError
		if !errors.As(p.waitErr, &ee) || ee.ExitCode() != 1 {
			t.Errorf("exit = %v, want status 1", p.waitErr)
		}
		if !strings.Contains(p.log(), "raftmq server: node: create data directory") {
			t.Errorf("no useful error:\n%s", p.log())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server with an unusable data directory did not exit")
	}
}
