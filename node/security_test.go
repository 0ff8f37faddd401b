package node

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftmq/raftmq/transport/tlsconf"
)

// TestRaftHandshakeBounded: a peer that connects to the raft port and never
// says a word is dropped after the handshake timeout, instead of holding
// raft's goroutine for that connection forever.
func TestRaftHandshakeBounded(t *testing.T) {
	dir := t.TempDir()
	if err := tlsconf.NewCA(dir, "ca", time.Hour); err != nil {
		t.Fatal(err)
	}
	cert, key, err := tlsconf.IssueCert(tlsconf.CertRequest{CADir: dir, OutDir: dir, Name: "n1", Group: "g",
		Hosts: []string{"127.0.0.1"}, Validity: time.Hour, Client: true, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	src, err := tlsconf.Load(tlsconf.Files{Cert: cert, Key: key, CA: filepath.Join(dir, tlsconf.CACertFile)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &raftStream{ln: tls.NewListener(ln, src.MemberServerConfig("g")), handshake: 200 * time.Millisecond}
	defer s.Close()

	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read on a connection that never handshook succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a silent peer's handshake was not bounded")
	}
}
