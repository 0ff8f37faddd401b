package failover

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

const (
	// DedupeHeader names a SEND's unique id. The broker remembers the ids
	// it stored, so a SEND resent after a failover is stored once.
	DedupeHeader = "dedupe-id"
	// BrokersHeader is the CONNECTED header listing the client URIs of
	// every broker in the group, comma-separated.
	BrokersHeader = "raftmq-brokers"
	// DefaultConnectTimeout bounds one connection attempt.
	DefaultConnectTimeout = 10 * time.Second
)

// Options configure the connections a Client makes. The zero value
// connects as an anonymous client speaking any STOMP version, without
// heart-beats.
type Options struct {
	// AcceptVersion, Host, Login, Passcode, ClientID, HeartBeat, Headers
	// and Limits are those of client.Options, used for every connection.
	AcceptVersion   string
	Host            string
	Login, Passcode string
	ClientID        string
	// HeartBeat is worth setting: without heart-beats a broker that
	// vanishes without closing the connection (power loss, a partition)
	// is noticed only when a write fails.
	HeartBeat [2]time.Duration
	Headers   []stomp.Header
	Limits    stomp.Limits
	// ConnectTimeout bounds one attempt on one address: the TCP connect,
	// the TLS handshake and CONNECTED, and then restoring the
	// subscriptions on the new connection (10s).
	ConnectTimeout time.Duration
	// TLS is the template of the TLS configuration of every ssl://
	// address, announced ones included; plain addresses never use TLS.
	// Each connection uses a copy whose ServerName, when the template
	// leaves it empty, is the address's host, so each broker's
	// certificate is verified against the name it is dialled by. Nil
	// means the zero tls.Config: the system's roots, ServerName the host.
	// DialURL keeps a copy of it.
	TLS *tls.Config
	// Logger receives connection events. Nil means slog.Default().
	Logger *slog.Logger
	// OnConnect, if set, is called with the broker's host:port after every
	// connection the client put in service, the first included.
	// OnDisconnect is called when one is lost, with why. Both run on the
	// client's reconnecting goroutine: they must return promptly and must
	// not call Close or Disconnect.
	OnConnect    func(addr string)
	OnDisconnect func(addr string, err error)
}

func (o *Options) clientOptions() client.Options {
	return client.Options{
		AcceptVersion: o.AcceptVersion,
		Host:          o.Host,
		Login:         o.Login,
		Passcode:      o.Passcode,
		ClientID:      o.ClientID,
		HeartBeat:     o.HeartBeat,
		Headers:       o.Headers,
		Limits:        o.Limits,
	}
}

// Client is a STOMP client that keeps one connection to one broker of a
// list, moving to another when it is lost. Its methods are safe for
// concurrent use. Close must be called to release it, even after it ended
// on its own.
type Client struct {
	url      *URL
	tlsOnly  bool // every configured address is TLS: learn no plain one
	opts     Options
	copts    client.Options
	log      *slog.Logger
	idPrefix string        // of dedupe ids: unique to this client
	seq      atomic.Uint64 // SEND order and dedupe ids, subscription ids

	stop    chan struct{} // closed by Close: every goroutine ends
	stopCtx context.Context
	cancel  context.CancelFunc // cancels stopCtx, with stop
	done    chan struct{}      // closed when the client has ended
	wg      sync.WaitGroup     // the supervisor, watchers, subscription pumps

	mu         sync.Mutex
	cur        *session      // the connection in service; nil while reconnecting
	up         chan struct{} // closed when cur is set; replaced when it is lost
	err        error         // why the client ended; nil while it runs
	closing    bool          // Disconnect began: no new operations
	quiet      bool          // Disconnect ends the connection: do not reconnect
	stopped    bool          // stop is closed
	learned    []Addr        // announced by the last broker (raftmq-brokers)
	reconnects int
	sessions   map[*session]struct{}    // not yet closed, for Close
	pending    map[uint64]*Receipt      // SENDs not yet receipted, by seq
	subs       map[string]*Subscription // by subscription id
	txs        map[string]*session      // open transactions, by name
}

// Dial parses rawURL (see ParseURL) and connects as DialURL does.
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return DialURL(ctx, u, opts)
}

// DialURL connects to one of u's brokers, trying them in order (shuffled
// when u.Randomize), moving on from a refused address at once, and making
// further passes after the reconnect delay within
// u.StartupMaxReconnectAttempts, until ctx ends. An ERROR in reply to
// CONNECT (other than "not serving") ends the attempts: it would not change
// on another broker of the group. ctx bounds the first connection only;
// the client then runs, reconnecting as needed, until Close.
func DialURL(ctx context.Context, u *URL, opts Options) (*Client, error) {
	if err := u.validate(); err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	copts := opts.clientOptions()
	if err := copts.Validate(); err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	if opts.ConnectTimeout < 0 {
		return nil, fmt.Errorf("failover: negative connect timeout %v", opts.ConnectTimeout)
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var id [8]byte
	_, _ = rand.Read(id[:]) // never fails (crypto/rand panics instead)

	opts.TLS = opts.TLS.Clone()

	uc := *u
	uc.Addrs = make([]Addr, len(u.Addrs))
	tlsOnly := true
	for i, a := range u.Addrs {
		// validate checked the scheme: keep the one ParseURL would.
		uc.Addrs[i] = Addr{Scheme: schemes[strings.ToLower(a.Scheme)], Host: a.Host}
		tlsOnly = tlsOnly && a.TLS()
	}
	c := &Client{
		url:      &uc,
		tlsOnly:  tlsOnly,
		opts:     opts,
		copts:    copts,
		log:      log.With("logger", "failover"),
		idPrefix: hex.EncodeToString(id[:]) + "-",
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		up:       make(chan struct{}),
		sessions: make(map[*session]struct{}),
		pending:  make(map[uint64]*Receipt),
		subs:     make(map[string]*Subscription),
		txs:      make(map[string]*session),
	}
	c.stopCtx, c.cancel = context.WithCancel(context.Background())

	c.wg.Add(1) // held by Dial until the supervisor takes over
	s, err := c.connect(ctx, true, Addr{}, false)
	if err != nil {
		c.wg.Done()
		_ = c.Close()
		return nil, err
	}
	c.log.Info("connected", "addr", s.addr.String())
	if c.opts.OnConnect != nil {
		c.opts.OnConnect(s.addr.Host)
	}
	go c.run(s)
	return c, nil
}

// Addr returns the host:port of the broker in service, or "" while
// reconnecting.
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return ""
	}
	return c.cur.addr.Host
}

// Connected returns the CONNECTED frame of the connection in service, or
// nil while reconnecting.
func (c *Client) Connected() *stomp.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return nil
	}
	return c.cur.conn.Connected()
}

// Reconnects returns how many times the client connected again after
// losing a connection.
func (c *Client) Reconnects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnects
}

// Done is closed when the client has ended: Close, Disconnect, or no
// broker reachable within maxReconnectAttempts.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client ended (ErrClosed, or an error wrapping
// ErrUnreachable), or nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// usable returns why no new operation may start, or nil. Called with mu.
func (c *Client) usable() error {
	if c.err != nil {
		return c.err
	}
	if c.closing {
		return ErrClosed
	}
	return nil
}

// acquire returns the session in service, waiting for one while
// reconnecting (within the URL's timeout and ctx). The session's writers
// count includes the caller, who must call s.writers.Done() once it wrote
// what it came to write.
func (c *Client) acquire(ctx context.Context) (*session, error) {
	var expired <-chan time.Time
	for {
		c.mu.Lock()
		if err := c.usable(); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		if s := c.cur; s != nil {
			s.writers.Add(1)
			c.mu.Unlock()
			return s, nil
		}
		up := c.up
		c.mu.Unlock()
		if expired == nil && c.url.Timeout > 0 {
			t := time.NewTimer(c.url.Timeout)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-up:
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-expired:
			return nil, fmt.Errorf("%w (%v)", ErrTimeout, c.url.Timeout)
		}
	}
}

// Close ends the client at once: the connection is closed, pending SENDs
// and receipts fail with ErrClosed, subscription channels close (messages
// not yet taken are dropped). It waits for the client's goroutines to end.
func (c *Client) Close() error {
	c.mu.Lock()
	pending := c.end(ErrClosed)
	first := !c.stopped
	c.stopped = true
	sessions := make([]*session, 0, len(c.sessions))
	for s := range c.sessions {
		sessions = append(sessions, s)
	}
	c.mu.Unlock()
	if first {
		close(c.stop)
		c.cancel()
	}
	completeAll(pending, ErrClosed)
	for _, s := range sessions {
		_ = s.conn.Close()
	}
	c.wg.Wait()
	return nil
}

// Disconnect ends the client politely: it refuses new operations, waits
// until ctx ends for the receipts of the SENDs already made (across
// failovers), sends DISCONNECT and waits for its receipt, then closes as
// Close does. It returns an error if not everything was receipted.
func (c *Client) Disconnect(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true
	rs := make([]*Receipt, 0, len(c.pending))
	for _, p := range c.pending {
		rs = append(rs, p)
	}
	c.mu.Unlock()

	var err error
	for i, p := range rs {
		select {
		case <-p.done:
			continue
		case <-ctx.Done():
			err = fmt.Errorf("failover: DISCONNECT: %d SEND(s) not receipted: %w", len(rs)-i, ctx.Err())
		}
		break
	}
	if err == nil {
		c.mu.Lock()
		c.quiet = true
		s := c.cur
		c.mu.Unlock()
		if s != nil {
			if derr := s.conn.Disconnect(ctx); derr != nil {
				err = fmt.Errorf("failover: %w", derr)
			}
		}
	}
	_ = c.Close()
	return err
}

// end marks the client ended with err, unless it has ended already, and
// ends what depends on it: subscriptions close once drained, open
// transactions are forgotten. It returns the pending SENDs for the caller
// to fail outside the lock. Called with mu.
func (c *Client) end(err error) []*Receipt {
	if c.err != nil {
		return nil
	}
	c.err = err
	close(c.done)
	pending := make([]*Receipt, 0, len(c.pending))
	for _, p := range c.pending {
		c.settleLocked(p) // deleting while ranging over a map is allowed
		pending = append(pending, p)
	}
	for id, sub := range c.subs {
		delete(c.subs, id)
		if sub.ready && !sub.ended {
			sub.ended, sub.err = true, err
			sub.signal()
		}
	}
	clear(c.txs)
	return pending
}

// fail ends the client on its own (no broker reachable).
func (c *Client) fail(err error) {
	c.mu.Lock()
	pending := c.end(err)
	c.mu.Unlock()
	completeAll(pending, err)
}

func completeAll(rs []*Receipt, err error) {
	for _, p := range rs {
		p.complete(fmt.Errorf("failover: SEND to %s (dedupe-id %s): %w", p.dest, p.id, err))
	}
}

// errNotInstalled ends a restore when the client ended meanwhile.
var errNotInstalled = errors.New("failover: client ended while connecting")
