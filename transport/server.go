package transport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/stomp"
	"github.com/raftmq/raftmq/transport/tlsconf"
)

// Broker opens engine sessions. The node adapts *queue.Engine to it.
type Broker interface {
	// Open starts the session of one client connection; out is how the
	// engine reaches the connection.
	Open(clientID string, out queue.Outbound) (Session, error)
}

// Session is one client's view of the delivery engine (*queue.Session).
// The done callbacks may run on any goroutine, possibly before the call
// returns; a call that returns an error does not call done.
type Session interface {
	Send(m *fsm.Message, tx string, done func(error)) error
	Subscribe(spec queue.SubscribeSpec, done func(error)) error
	Unsubscribe(id, durableName string, done func(error)) error
	Ack(r queue.AckRef, tx string, done func(error)) error
	Nack(r queue.AckRef, tx string, done func(error)) error
	Begin(tx string) error
	Commit(tx string, done func(error)) error
	Abort(tx string) error
	Resume()
	Close()
}

// Config holds the connection rules. A zero field means its default (see
// Validate).
type Config struct {
	// Limits bound what one frame may make a connection hold in memory
	// (stomp.DefaultLimits: 100 MiB frames, as ActiveMQ).
	Limits stomp.Limits
	// HeartBeat is what the server offers in CONNECTED: [0] how often it
	// can send, [1] how often it wants to receive (10s, 10s). A negative
	// value means never.
	HeartBeat [2]time.Duration
	// ConnectTimeout is how long a new connection may take to send its
	// CONNECT frame (10s).
	ConnectTimeout time.Duration
	// WriteTimeout closes a connection whose socket accepts no bytes for
	// this long: the consumer that never reads (30s).
	WriteTimeout time.Duration
	// MaxOutboundBytes bounds the frames queued for one connection: above
	// it the engine is told to hold deliveries back, and the reader stops
	// reading while receipts and errors alone exceed it (4 MiB). Frames
	// count their encoded size; receipts and errors also the memory they
	// take beyond it, which for small ones is most of their cost.
	MaxOutboundBytes int
	// MaxPendingOps bounds the operations of one connection awaiting
	// completion (raft commit); at the limit the connection stops reading,
	// which pushes back on the client through TCP (1024).
	MaxPendingOps int
	// MaxPendingBytes bounds the message bytes of those operations: a
	// producer pipelining large persistent SENDs faster than they commit
	// is paused likewise (64 MiB; one frame always goes, whatever its size).
	MaxPendingBytes int
	// ServerName is the CONNECTED frame's server header ("raftmq").
	ServerName string
	// ConnectedHeaders, when set, adds headers to every CONNECTED frame
	// (the group's client addresses). It is called once per connection.
	ConnectedHeaders func() []stomp.Header
	// Fence, when set, is asked before each batch of frames is written:
	// while it reports false the writer holds the batch, checking again
	// every few milliseconds, until it turns true or the connection closes
	// (then only the closing ERROR is written). The node answers from its
	// leader lease, so a leader that may have been deposed (a long pause,
	// a partition) starts no write of a MESSAGE or RECEIPT until a quorum
	// confirms it still leads. The check precedes the write: a process
	// paused between the two can still finish a write it began. A
	// connection closed while the fence is open (a normal shutdown) writes
	// its pending RECEIPTs, which all follow commits.
	Fence func() bool
	// Admit, when set, decides on each CONNECT before a session opens
	// (bridges from other groups, refused when redundant): an error is
	// sent as the ERROR that ends the connection. release, if not nil,
	// is called once when the connection ends.
	Admit func(connect *stomp.Frame, remoteAddr string) (release func(), err error)
	// Authenticate, when set, checks each CONNECT's login and passcode
	// before anything else happens on the connection: an error is the
	// ERROR that ends it (its text is what the client reads, so it must
	// not say which of the two was wrong). The Principal it returns is
	// asked about every SEND and SUBSCRIBE. Nil admits everyone with
	// every right.
	Authenticate func(login, passcode string) (Principal, error)
	// MaxConnections bounds the open connections of each listener (0: no
	// bound). A connection past it is told so in an ERROR frame and
	// closed before it costs a session, like ActiveMQ's
	// maximumConnections.
	MaxConnections int
}

// ErrRetryLater, wrapped in an Authenticate error, says the credentials
// were not checked for want of capacity: the ERROR tells the client to
// retry (failover.RetryHeader).
var ErrRetryLater = errors.New("retry later")

// Principal is who a connection authenticated as (see Config.Authenticate),
// and what it may do. Its methods run on every SEND and SUBSCRIBE, so they
// must be fast.
type Principal interface {
	// Name names the principal in logs and connection listings.
	Name() string
	// MaySend reports whether it may SEND to the destination.
	MaySend(destination string) bool
	// MayReceive reports whether it may SUBSCRIBE to the destination.
	MayReceive(destination string) bool
	// MayBridge reports whether it may connect as another group's
	// bridge (HeaderBridgeGroup), which makes this group's own bridge
	// to that group stand by.
	MayBridge() bool
	// Scope prefixes the client-id of its connections, "" for none:
	// durable subscriptions are named by client-id, and one user must
	// not name, replace or remove another's.
	Scope() string
}

// Validate fills in defaults and rejects impossible values.
func (c *Config) Validate() error {
	d := stomp.DefaultLimits()
	if c.Limits.MaxFrameSize <= 0 {
		c.Limits.MaxFrameSize = d.MaxFrameSize
	}
	if c.Limits.MaxHeaders <= 0 {
		c.Limits.MaxHeaders = d.MaxHeaders
	}
	if c.Limits.MaxHeaderLine <= 0 {
		c.Limits.MaxHeaderLine = d.MaxHeaderLine
	}
	for i := range c.HeartBeat {
		if c.HeartBeat[i] == 0 {
			c.HeartBeat[i] = 10 * time.Second
		}
	}
	defDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	defDur(&c.ConnectTimeout, 10*time.Second)
	defDur(&c.WriteTimeout, 30*time.Second)
	if c.MaxOutboundBytes == 0 {
		c.MaxOutboundBytes = 4 << 20
	}
	if c.MaxPendingOps == 0 {
		c.MaxPendingOps = 1024
	}
	if c.MaxPendingBytes == 0 {
		c.MaxPendingBytes = 64 << 20
	}
	if c.ServerName == "" {
		c.ServerName = "raftmq"
	}
	if c.ConnectTimeout < 0 || c.WriteTimeout < 0 {
		return errors.New("transport config: negative timeout")
	}
	if c.MaxOutboundBytes < 0 || c.MaxPendingOps < 0 || c.MaxPendingBytes < 0 || c.MaxConnections < 0 {
		return errors.New("transport config: negative limit")
	}
	return nil
}

// Server accepts client connections and serves STOMP on them.
type Server struct {
	cfg    Config
	broker Broker
	log    *slog.Logger

	idPrefix string
	nextID   atomic.Uint64
	refused  atomic.Uint64
	// authFailed counts refused CONNECTs (bad credentials), denied the
	// frames refused for want of a right.
	authFailed atomic.Uint64
	denied     atomic.Uint64
	// tlsFailed counts failed TLS handshakes; ctx ends with Close, so
	// handshakes under way do not delay it.
	tlsFailed atomic.Uint64
	ctx       context.Context
	cancel    context.CancelFunc

	// written tells the engine a delivery's frame reached the socket, and
	// writeFailed that the connection failed while the frame was being
	// written, so part of it may have reached the client. They are
	// (*queue.Delivery).Written and WriteFailed; tests replace them, since
	// a Delivery made outside the engine cannot be marked.
	written     func(*queue.Delivery)
	writeFailed func(*queue.Delivery)

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // one per connection in conns
}

// NewServer returns a server that opens a session on b for every
// connection. cfg is validated here; NewServer panics when it is invalid,
// so callers that take configuration from users call Validate first. log
// may be nil.
func NewServer(cfg Config, b Broker, log *slog.Logger) *Server {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Session ids must stay unique across leaders and restarts, since a
	// failover client reconnects to another server: prefix a counter with
	// random bytes.
	var p [6]byte
	_, _ = rand.Read(p[:]) // crypto/rand.Read never fails
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		ctx:         ctx,
		cancel:      cancel,
		cfg:         cfg,
		broker:      b,
		log:         log,
		idPrefix:    hex.EncodeToString(p[:]) + "-",
		written:     (*queue.Delivery).Written,
		writeFailed: (*queue.Delivery).WriteFailed,
		listeners:   make(map[net.Listener]struct{}),
		conns:       make(map[*conn]struct{}),
	}
}

// Serve accepts connections on l until l fails or Close is called, and
// returns nil after Close. Serve may be called for several listeners.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var open atomic.Int64     // this listener's connections (MaxConnections)
	var refusing atomic.Int64 // refusals still writing their ERROR
	var delay time.Duration   // backoff after temporary accept errors
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			// Running out of file descriptors is temporary: back off
			// rather than spin or give up, as net/http does.
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("transport: accept on %s: %w", l.Addr(), err)
		}
		delay = 0
		if max := s.cfg.MaxConnections; max > 0 && open.Load() >= int64(max) {
			s.refuse(nc, &refusing, fmt.Sprintf("too many connections: this listener takes at most %d", max))
			continue
		}
		open.Add(1)
		s.start(nc, func() { open.Add(-1) })
	}
}

// retryHeader marks an ERROR refusing CONNECT for a reason that may pass
// (failover.RetryHeader; the transport does not import its client).
const retryHeader = "raftmq-retry"

// maxRefusing bounds the refused connections whose ERROR frame is still
// being written, so that a flood of connections past the limit costs a
// bounded number of goroutines: beyond it they are closed without a word.
const maxRefusing = 64

// refuse tells a connection it was not admitted, then closes it. It never
// blocks the accept loop.
func (s *Server) refuse(nc net.Conn, refusing *atomic.Int64, reason string) {
	s.refused.Add(1)
	if refusing.Add(1) > maxRefusing {
		refusing.Add(-1)
		nc.Close()
		return
	}
	go func() {
		defer refusing.Add(-1)
		writeRefusal(nc, reason, true)
	}()
}

// writeRefusal writes an ERROR frame to a connection that never got a
// session (it was refused, or it spoke plaintext to a TLS port) and
// closes it, all within closeTimeout.
func writeRefusal(nc net.Conn, reason string, retry bool) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(closeTimeout))
	w := stomp.NewWriter(nc)
	f := errorFrame(reason, "", "")
	if retry {
		f.Headers = append(f.Headers, stomp.Header{Key: retryHeader, Value: "true"})
	}
	if err := w.WriteFrame(f); err == nil {
		_ = w.Flush()
	}
	// Tell the client we are done, then read what it sent until it hangs
	// up too: closing with unread bytes would make the kernel reset the
	// connection under the ERROR frame.
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
}

// handshake completes a TLS connection's handshake within
// ConnectTimeout, before the connection reads frames, so a failure is
// reported as what it is. A plaintext client on a TLS port is told so in
// plaintext: a STOMP client that connected with tcp:// instead of ssl://
// reads an ERROR that says what to change, not a reset.
func (s *Server) handshake(c *conn, tc *tls.Conn) bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout)
	defer cancel()
	err := tc.HandshakeContext(ctx)
	if err == nil {
		return true
	}
	s.tlsFailed.Add(1)
	if raw, ok := tlsconf.PlaintextOnTLS(err); ok {
		c.log.Warn("plaintext client on the TLS port; refused", "err", err)
		writeRefusal(raw, "this port speaks TLS: connect with ssl:// (stomp+ssl://)", false)
		return false
	}
	c.log.Warn("TLS handshake failed; connection refused", "err", err)
	tc.Close()
	return false
}

// SecurityStats counts what a server refused since it started.
type SecurityStats struct {
	Refused      uint64 // connections past MaxConnections
	TLSFailures  uint64 // failed handshakes: bad or missing certificates, plaintext on the TLS port
	AuthFailures uint64 // CONNECT frames refused for their credentials
	Denials      uint64 // SEND and SUBSCRIBE frames refused for want of a right
}

// SecurityStats returns the server's refusal counters.
func (s *Server) SecurityStats() SecurityStats {
	return SecurityStats{
		Refused:      s.refused.Load(),
		TLSFailures:  s.tlsFailed.Load(),
		AuthFailures: s.authFailed.Load(),
		Denials:      s.denied.Load(),
	}
}

func (s *Server) start(nc net.Conn, closed func()) {
	c := newConn(s, nc, s.idPrefix+strconv.FormatUint(s.nextID.Add(1), 10))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		closed()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer closed()
		if tc, ok := nc.(*tls.Conn); ok && !s.handshake(c, tc) {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			return
		}
		c.serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops accepting and closes every connection now, sending each a
// best-effort ERROR frame whose message is reason. Operations that complete
// later write nothing. Close returns once every connection is closed and
// its session ended, within about a second even for clients that do not
// read.
func (s *Server) Close(reason string) {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	ls := make([]net.Listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()

	for _, l := range ls {
		l.Close()
	}
	for _, c := range cs {
		c.shutdown(errorFrame(reason, "", ""), false)
	}
	s.wg.Wait()
}

// Recheck runs every authenticated connection's principal through
// refresh, after the users and rights were reloaded. A connection whose
// refresh fails (the user was removed, or their password changed), or
// whose new principal may no longer read a destination it subscribed to,
// is closed with an ERROR saying why: its client must log in again under
// the new rules. The others carry on with the refreshed principal. It
// returns how many connections it closed.
func (s *Server) Recheck(refresh func(Principal) (Principal, error)) int {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	closed := 0
	for _, c := range cs {
		if reason := c.recheck(refresh); reason != "" {
			c.log.Warn("closing a connection the reloaded users and rights no longer admit", "reason", reason)
			c.shutdown(errorFrame(reason, "", ""), false)
			closed++
		}
	}
	return closed
}

// recheck refreshes the connection's principal and says why the
// connection must end, "" if it may go on.
func (c *conn) recheck(refresh func(Principal) (Principal, error)) string {
	c.mu.Lock()
	old := c.principal
	c.mu.Unlock()
	if old == nil {
		return ""
	}
	p, err := refresh(old)
	if err != nil {
		return fmt.Sprintf("user %s is no longer admitted: %v", old.Name(), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.principal = p
	for _, dest := range c.subs {
		// Temporary destinations need no right (temp.go).
		if !isTemp(dest) && !p.MayReceive(dest) {
			return fmt.Sprintf("user %s is no longer authorized to read from %s", p.Name(), dest)
		}
	}
	return ""
}

// NumConns returns the number of open client connections.
func (s *Server) NumConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
