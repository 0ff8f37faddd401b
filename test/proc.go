package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildBinary builds cmd/raftmq into dir and returns its path.
func BuildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "raftmq")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/raftmq")
	cmd.Dir = repoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

func repoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return wd
}

// FreePort returns a loopback port that was free a moment ago. It picks
// below Linux's ephemeral range (32768-60999 by default): a port the
// kernel handed out could be taken by any outgoing connection, such as
// raft dialing a peer, before the server that was given it binds it. It
// never returns the same port twice in one test process.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatal("free port: none found in 20000-31999")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// Server is one raftmq server process.
type Server struct {
	t       testing.TB
	bin     string
	args    []string
	DataDir string
	Stomp   string // host:port of the STOMP listener
	HTTP    string // host:port of the admin API
	// ready matches the log line after which Start returns: serving
	// STOMP for a lone server, the admin API for a group member (a
	// follower never serves STOMP).
	ready *regexp.Regexp

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	serving chan struct{}
	logTail []string
}

// StartServer starts `raftmq server` on fresh loopback ports with data in
// dataDir, and registers its cleanup with t. Extra flags are appended.
func StartServer(t testing.TB, bin, dataDir string, extra ...string) *Server {
	t.Helper()
	s := &Server{
		t:       t,
		bin:     bin,
		DataDir: dataDir,
		Stomp:   fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		HTTP:    fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		ready:   servingRE,
	}
	s.args = append([]string{"server",
		"--id", "n1",
		"--data", dataDir,
		"--stomp", s.Stomp,
		"--raft", fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		"--http", s.HTTP,
	}, extra...)
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// maxLogLines bounds the server output a test keeps.
const maxLogLines = 100000

var (
	servingRE = regexp.MustCompile(`serving STOMP clients.*addr=(\S+)`)
	adminRE   = regexp.MustCompile(`serving admin API`)
)

// Start (re)starts the process with the same arguments and data.
func (s *Server) Start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		s.t.Fatalf("stderr pipe: %v", err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start server: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.exited = make(chan struct{})
	s.serving = make(chan struct{})
	serving, exited := s.serving, s.exited
	s.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logTail = append(s.logTail, line)
			if len(s.logTail) > maxLogLines {
				s.logTail = s.logTail[len(s.logTail)-maxLogLines:]
			}
			s.mu.Unlock()
			if !once && s.ready.MatchString(line) {
				once = true
				close(serving)
			}
		}
		cmd.Wait()
		close(exited)
	}()
	select {
	case <-serving:
	case <-exited:
		s.t.Fatalf("server exited before it was ready:\n%s", s.Log())
	case <-time.After(30 * time.Second):
		s.t.Fatalf("server not ready after 30s:\n%s", s.Log())
	}
}

// Pause stops the process with SIGSTOP: it keeps its sockets but answers
// nothing, as a node in a long GC pause or cut off by a partition.
func (s *Server) Pause() { s.signalNoWait(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (s *Server) Resume() { s.signalNoWait(syscall.SIGCONT) }

func (s *Server) signalNoWait(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(sig)
	}
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Pid is the running process's id.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL)
}

// Terminate sends SIGTERM and waits for a clean exit.
func (s *Server) Terminate() error {
	s.signal(syscall.SIGTERM)
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("server exited with %v", st)
	}
	return nil
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(sig)
	// A stopped process would not act on SIGTERM until continued.
	cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// Stop kills the process if it still runs (test cleanup).
func (s *Server) Stop() { s.Kill() }

// CountLog counts the kept log lines (across restarts) containing substr.
func (s *Server) CountLog(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.logTail {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// Log returns the last lines the server wrote to stderr.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tail := s.logTail
	if len(tail) > 200 {
		tail = tail[len(tail)-200:]
	}
	return strings.Join(tail, "\n")
}

// RSS is the resident memory of the process in bytes.
func (s *Server) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", s.Pid())
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
