package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftmq/raftmq/transport/stomp"
)

// Conn is one STOMP connection. Its methods are safe for concurrent use.
// Close must be called to release it, even after the server has ended it.
type Conn struct {
	nc        net.Conn
	dr        *deadlineReader
	rd        *stomp.Reader // used by the read loop only, after the handshake
	version   stomp.Version
	connected *stomp.Frame
	sendEvery time.Duration // heart-beats we send; 0: none
	recvEvery time.Duration // heart-beats the server sends; 0: none

	wmu     sync.Mutex
	w       *stomp.Writer
	waiting atomic.Int32 // writers queued on wmu; see write
	wrote   atomic.Bool  // a write happened since the heart-beat loop looked

	seq atomic.Uint64 // receipt and subscription ids

	mu           sync.Mutex
	err          error // why the connection ended; nil while it is open
	receipts     map[string]*Receipt
	subs         map[string]*Subscription
	disconnectID string // receipt id of our DISCONNECT

	done      chan struct{} // closed when the connection has ended
	stop      chan struct{} // closed by Close: stop delivering messages
	closeOnce sync.Once
	wg        sync.WaitGroup // the read loop, the heart-beat loop, subscription pumps
}

// Dial connects to addr (host:port) over TCP, or TLS when opts.TLS is set,
// and performs the STOMP handshake as NewConn does; ctx bounds all three.
// A failed TLS handshake (an untrusted or expired certificate, a host name
// mismatch, a server that does not speak TLS) gives an error saying so and
// wrapping crypto/tls's, as *tls.CertificateVerificationError.
func Dial(ctx context.Context, addr string, opts Options) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: dialing %s: %w", addr, err)
	}
	if opts.TLS != nil {
		tc := tls.Client(nc, tlsConfig(opts.TLS, addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("client: TLS handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	return NewConn(ctx, nc, opts)
}

// tlsConfig returns cfg for a connection to addr: when cfg names no
// server, a copy naming addr's host, against which the certificate is
// then verified (as tls.Dial does).
func tlsConfig(cfg *tls.Config, addr string) *tls.Config {
	if cfg.ServerName != "" {
		return cfg
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	c := cfg.Clone()
	c.ServerName = host
	return c
}

// NewConn sends CONNECT on nc and waits for CONNECTED until ctx ends. An
// ERROR reply gives an error wrapping *ServerError. NewConn owns nc from then
// on: it closes it when the handshake fails and when the Conn is closed.
func NewConn(ctx context.Context, nc net.Conn, opts Options) (*Conn, error) {
	if err := opts.Validate(); err != nil {
		_ = nc.Close()
		return nil, err
	}
	opts = opts.withDefaults()
	dr := &deadlineReader{nc: nc}
	c := &Conn{
		nc:       nc,
		dr:       dr,
		rd:       stomp.NewReader(dr, opts.Limits),
		w:        stomp.NewWriter(nc),
		receipts: make(map[string]*Receipt),
		subs:     make(map[string]*Subscription),
		done:     make(chan struct{}),
		stop:     make(chan struct{}),
	}
	if err := c.handshake(ctx, &opts); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("client: connecting to %s: %w", nc.RemoteAddr(), err)
	}
	c.rd.SetVersion(c.version)
	c.w.SetVersion(c.version)
	// Past the handshake, silence longer than twice the server's interval
	// means the server or the path to it is gone. (An interval too large
	// to double is no promise at all: no timeout, rather than an
	// overflowed negative one.)
	if c.recvEvery <= math.MaxInt64/2 {
		c.dr.timeout = 2 * c.recvEvery
	}
	c.wg.Add(1)
	go c.readLoop()
	if c.sendEvery > 0 {
		c.wg.Add(1)
		go c.heartbeatLoop()
	}
	return c, nil
}

func (c *Conn) handshake(ctx context.Context, opts *Options) error {
	// The context bounds the handshake: its deadline becomes the socket's,
	// and cancelling it expires the socket at once.
	if dl, ok := ctx.Deadline(); ok {
		if err := c.nc.SetDeadline(dl); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	reply, err := c.exchangeConnect(opts)
	stopped := stop()
	if err != nil {
		// Report the cause the caller knows. The socket deadline may fire
		// a moment before the context's own timer marks it done.
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			return context.DeadlineExceeded
		}
		return err
	}
	if !stopped {
		return ctx.Err() // the AfterFunc ran: the deadline is now in the past
	}
	if err := c.nc.SetDeadline(time.Time{}); err != nil {
		return err
	}

	switch reply.Command {
	case stomp.CONNECTED:
	case stomp.ERROR:
		return &ServerError{Frame: reply}
	default:
		return fmt.Errorf("%w: %s frame in reply to CONNECT", ErrProtocol, reply.Command)
	}
	c.connected = reply
	c.version = stomp.V10 // a 1.0 server sends no version header
	if v, ok := reply.Lookup("version"); ok {
		c.version = stomp.Version(v)
	}
	if !opts.offers(c.version) {
		return fmt.Errorf("%w: server chose version %q, not among %q", ErrProtocol, c.version, opts.AcceptVersion)
	}
	if c.version == stomp.V10 {
		return nil // heart-beats came with 1.1
	}
	sx, sy, err := stomp.ParseHeartBeat(reply.Get("heart-beat"))
	if err != nil {
		return fmt.Errorf("%w: CONNECTED: %w", ErrProtocol, err)
	}
	c.sendEvery = stomp.HeartBeatInterval(opts.HeartBeat[0], sy)
	c.recvEvery = stomp.HeartBeatInterval(sx, opts.HeartBeat[1])
	return nil
}

func (c *Conn) exchangeConnect(opts *Options) (*stomp.Frame, error) {
	if err := c.w.WriteFrame(opts.connectFrame()); err != nil {
		return nil, err
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	reply, err := c.rd.ReadFrame()
	if err == io.EOF {
		err = fmt.Errorf("closed by the server before CONNECTED: %w", io.ErrUnexpectedEOF)
	}
	return reply, err
}

// Version returns the negotiated protocol version.
func (c *Conn) Version() stomp.Version { return c.version }

// Connected returns the server's CONNECTED frame.
func (c *Conn) Connected() *stomp.Frame { return c.connected }

// HeartBeat returns the negotiated heart-beat intervals: how often we send
// one when otherwise idle, and how often the server does. Zero means none.
func (c *Conn) HeartBeat() (send, recv time.Duration) { return c.sendEvery, c.recvEvery }

// Done is closed when the connection has ended, by Close or by a failure.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended: ErrClosed after Close or
// Disconnect, an error wrapping *ServerError after an ERROR frame, or the
// I/O error. It returns nil while the connection is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection at once, failing pending receipts with
// ErrClosed and closing every subscription's channel. It waits for the
// Conn's goroutines to end. Messages not yet taken from a subscription's
// channel are dropped.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { close(c.stop) })
	c.fail(ErrClosed)
	c.wg.Wait()
	return nil
}

// Disconnect ends the session politely: DISCONNECT with a receipt, so that
// everything sent before has been processed by the server, then Close. As
// with Close, messages not yet taken from subscription channels are dropped.
func (c *Conn) Disconnect(ctx context.Context) error {
	r, err := c.newReceipt()
	if err == nil {
		c.mu.Lock()
		c.disconnectID = r.id
		c.mu.Unlock()
		err = c.writeWithReceipt(r, &stomp.Frame{
			Command: stomp.DISCONNECT,
			Headers: []stomp.Header{{Key: "receipt", Value: r.id}},
		})
		if err == nil {
			err = r.Wait(ctx)
		}
	}
	_ = c.Close()
	if err != nil {
		return fmt.Errorf("client: DISCONNECT: %w", err)
	}
	return nil
}

// WriteFrame writes f as it is, for tests that need frames the API does not
// make. A receipt it asks for is not waited for.
func (c *Conn) WriteFrame(f *stomp.Frame) error { return c.write(f) }

// Send sends a message to dest without asking for a receipt: it returns
// once the frame is written, with no word on what the server did with it.
func (c *Conn) Send(dest string, body []byte, headers ...stomp.Header) error {
	return c.write(sendFrame(dest, "", body, headers))
}

// SendAsync sends a message asking for a receipt and returns without
// waiting for it. For a persistent message the receipt means the broker has
// stored it.
func (c *Conn) SendAsync(dest string, body []byte, headers ...stomp.Header) (*Receipt, error) {
	r, err := c.newReceipt()
	if err != nil {
		return nil, fmt.Errorf("client: SEND to %s: %w", dest, err)
	}
	if err := c.writeWithReceipt(r, sendFrame(dest, r.id, body, headers)); err != nil {
		return nil, fmt.Errorf("client: SEND to %s: %w", dest, err)
	}
	return r, nil
}

// SendReceipt sends a message and waits for its receipt.
func (c *Conn) SendReceipt(ctx context.Context, dest string, body []byte, headers ...stomp.Header) error {
	r, err := c.SendAsync(dest, body, headers...)
	if err != nil {
		return err
	}
	if err := r.Wait(ctx); err != nil {
		return fmt.Errorf("client: SEND to %s: %w", dest, err)
	}
	return nil
}

// sendFrame builds a SEND frame; our headers come first, since the first of
// repeated headers is the one that counts.
func sendFrame(dest, receipt string, body []byte, headers []stomp.Header) *stomp.Frame {
	f := &stomp.Frame{Command: stomp.SEND, Body: body, Headers: make([]stomp.Header, 0, 2+len(headers))}
	f.Add("destination", dest)
	if receipt != "" {
		f.Add("receipt", receipt)
	}
	f.Headers = append(f.Headers, headers...)
	return f
}

// Ack acknowledges msg, inside transaction tx unless tx is empty, without
// asking for a receipt.
func (c *Conn) Ack(msg *stomp.Frame, tx string) error {
	f, err := c.ackFrame(stomp.ACK, msg, tx, "")
	if err != nil {
		return err
	}
	return c.write(f)
}

// AckReceipt acknowledges msg and waits for the server's receipt.
func (c *Conn) AckReceipt(ctx context.Context, msg *stomp.Frame, tx string) error {
	return c.ackReceipt(ctx, stomp.ACK, msg, tx)
}

// Nack rejects msg (STOMP 1.1 and later), without asking for a receipt.
func (c *Conn) Nack(msg *stomp.Frame, tx string) error {
	f, err := c.ackFrame(stomp.NACK, msg, tx, "")
	if err != nil {
		return err
	}
	return c.write(f)
}

// NackReceipt rejects msg and waits for the server's receipt.
func (c *Conn) NackReceipt(ctx context.Context, msg *stomp.Frame, tx string) error {
	return c.ackReceipt(ctx, stomp.NACK, msg, tx)
}

func (c *Conn) ackReceipt(ctx context.Context, cmd string, msg *stomp.Frame, tx string) error {
	r, err := c.newReceipt()
	if err != nil {
		return fmt.Errorf("client: %s: %w", cmd, err)
	}
	f, err := c.ackFrame(cmd, msg, tx, r.id)
	if err == nil {
		err = c.writeWithReceipt(r, f)
	} else {
		c.dropReceipt(r)
	}
	if err == nil {
		err = r.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("client: %s: %w", cmd, err)
	}
	return nil
}

// ackFrame builds an ACK or NACK for msg. How a message is named changed
// with every version: 1.2 echoes the MESSAGE's ack header as id, 1.1 names
// message-id and subscription, 1.0 message-id alone.
func (c *Conn) ackFrame(cmd string, msg *stomp.Frame, tx, receipt string) (*stomp.Frame, error) {
	f := &stomp.Frame{Command: cmd, Headers: make([]stomp.Header, 0, 4)}
	switch c.version {
	case stomp.V12:
		id, ok := msg.Lookup("ack")
		if !ok {
			return nil, fmt.Errorf("client: %s: MESSAGE has no ack header", cmd)
		}
		f.Add("id", id)
	case stomp.V11:
		f.Add("message-id", msg.Get("message-id"))
		f.Add("subscription", msg.Get("subscription"))
	default:
		if cmd == stomp.NACK {
			return nil, fmt.Errorf("client: NACK needs STOMP 1.1 or later, connection speaks %s", c.version)
		}
		f.Add("message-id", msg.Get("message-id"))
	}
	if c.version != stomp.V12 && f.Get("message-id") == "" {
		return nil, fmt.Errorf("client: %s: MESSAGE has no message-id header", cmd)
	}
	if tx != "" {
		f.Add("transaction", tx)
	}
	if receipt != "" {
		f.Add("receipt", receipt)
	}
	return f, nil
}

// Begin starts transaction tx and waits for the receipt.
func (c *Conn) Begin(ctx context.Context, tx string) error {
	return c.txFrame(ctx, stomp.BEGIN, tx)
}

// Commit commits transaction tx and waits for the receipt.
func (c *Conn) Commit(ctx context.Context, tx string) error {
	return c.txFrame(ctx, stomp.COMMIT, tx)
}

// Abort rolls back transaction tx and waits for the receipt.
func (c *Conn) Abort(ctx context.Context, tx string) error {
	return c.txFrame(ctx, stomp.ABORT, tx)
}

func (c *Conn) txFrame(ctx context.Context, cmd, tx string) error {
	if err := c.request(ctx, &stomp.Frame{
		Command: cmd,
		Headers: []stomp.Header{{Key: "transaction", Value: tx}},
	}); err != nil {
		return fmt.Errorf("client: %s %s: %w", cmd, tx, err)
	}
	return nil
}

// request sends f with a receipt header and waits for the receipt. The
// header goes first: of repeated headers the first counts, and a receipt
// among the caller's headers must not take the place of ours.
func (c *Conn) request(ctx context.Context, f *stomp.Frame) error {
	r, err := c.newReceipt()
	if err != nil {
		return err
	}
	f.Headers = slices.Insert(f.Headers, 0, stomp.Header{Key: "receipt", Value: r.id})
	if err := c.writeWithReceipt(r, f); err != nil {
		return err
	}
	return r.Wait(ctx)
}

// newReceipt registers a receipt to wait for. It must be registered before
// its frame is written: the RECEIPT can arrive before write returns.
func (c *Conn) newReceipt() (*Receipt, error) {
	r := &Receipt{id: "r" + strconv.FormatUint(c.seq.Add(1), 10), done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	c.receipts[r.id] = r
	return r, nil
}

// dropReceipt unregisters a receipt whose frame was not sent.
func (c *Conn) dropReceipt(r *Receipt) {
	c.mu.Lock()
	delete(c.receipts, r.id)
	c.mu.Unlock()
}

func (c *Conn) writeWithReceipt(r *Receipt, f *stomp.Frame) error {
	err := c.write(f)
	if err != nil {
		c.dropReceipt(r)
	}
	return err
}

// write encodes f and sends it. When other writers are queued, the last of
// them flushes for all: a burst of concurrent sends costs one system call.
func (c *Conn) write(f *stomp.Frame) error {
	err := c.locked(func(w *stomp.Writer) error { return w.WriteFrame(f) })
	var se *stomp.Error
	if errors.As(err, &se) {
		return fmt.Errorf("client: encoding %s: %w", f.Command, err)
	}
	return err
}

// locked runs fn on the writer under the write lock and flushes unless
// another writer is queued. It returns fn's *stomp.Error if fn could not
// encode its frame (nothing was written, the stream is intact), or the
// connection's error if the connection has ended.
func (c *Conn) locked(fn func(w *stomp.Writer) error) error {
	select {
	case <-c.done:
		return c.Err()
	default:
	}
	c.waiting.Add(1)
	c.wmu.Lock()
	err := fn(c.w)
	// A writer queued behind us will flush our frame with its own. One
	// always exists until the count drops to zero, and whoever brings it
	// there flushes, so no frame is left in the buffer.
	if c.waiting.Add(-1) == 0 {
		if ferr := c.w.Flush(); ferr != nil {
			err = ferr
		}
	}
	c.wmu.Unlock()
	c.wrote.Store(true)

	var se *stomp.Error
	if err == nil || errors.As(err, &se) {
		return err
	}
	// An I/O error: the stream is broken. If the connection had ended
	// already (we closed the socket under this writer), that is the story.
	c.fail(fmt.Errorf("client: writing: %w", err))
	return c.Err()
}

// readLoop reads frames until the connection ends and dispatches them.
func (c *Conn) readLoop() {
	defer c.wg.Done()
	for {
		f, err := c.rd.ReadFrame()
		if err != nil {
			c.fail(c.readError(err))
			return
		}
		switch f.Command {
		case stomp.MESSAGE:
			c.deliver(f)
		case stomp.RECEIPT:
			c.receipt(f)
		case stomp.ERROR:
			c.fail(&ServerError{Frame: f})
			return
		default:
			c.fail(fmt.Errorf("%w: unexpected %s frame from the server", ErrProtocol, f.Command))
			return
		}
	}
}

func (c *Conn) readError(err error) error {
	var ne net.Error
	switch {
	case err == io.EOF:
		return fmt.Errorf("client: connection closed by the server: %w", err)
	case errors.As(err, &ne) && ne.Timeout() && c.recvEvery > 0:
		return fmt.Errorf("client: server silent for %v (heart-beat every %v): %w", c.dr.timeout, c.recvEvery, err)
	}
	return fmt.Errorf("client: reading: %w", err)
}

// deliver routes a MESSAGE to its subscription. Messages for a subscription
// we no longer have (in flight while we unsubscribed) are dropped.
func (c *Conn) deliver(f *stomp.Frame) {
	id, ok := f.Lookup("subscription")
	c.mu.Lock()
	s := c.subs[id]
	if !ok {
		// A 1.0 server may leave the subscription out; match by destination.
		dest := f.Get("destination")
		for _, cand := range c.subs {
			if cand.dest == dest {
				s = cand
				break
			}
		}
	}
	c.mu.Unlock()
	if s != nil {
		s.push(f)
	}
}

func (c *Conn) receipt(f *stomp.Frame) {
	id := f.Get("receipt-id")
	c.mu.Lock()
	r := c.receipts[id]
	delete(c.receipts, id)
	disconnected := id != "" && id == c.disconnectID
	c.mu.Unlock()
	if disconnected {
		// The server closes after this receipt; end cleanly first, so the
		// connection's error is ErrClosed and not the EOF that follows.
		c.fail(ErrClosed)
	}
	if r != nil {
		r.complete(f, nil)
	}
}

// fail ends the connection with err, unless it has ended already: it closes
// the socket, fails pending receipts and ends subscriptions.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	receipts, subs := c.receipts, c.subs
	c.receipts, c.subs = nil, nil
	c.mu.Unlock()

	_ = c.nc.Close()
	for _, r := range receipts {
		r.complete(nil, err)
	}
	for _, s := range subs {
		s.end()
	}
	close(c.done)
}

// heartbeatLoop sends a heart-beat whenever nothing was written for about
// sendEvery. Ticking at half the interval keeps every gap below sendEvery.
func (c *Conn) heartbeatLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.sendEvery / 2)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if c.wrote.Swap(false) {
				continue
			}
			_ = c.locked((*stomp.Writer).WriteHeartbeat) // a failure ends the Conn
		}
	}
}

// deadlineReader moves the read deadline forward before every read, so the
// connection fails when the server has sent nothing at all for timeout.
// Any byte counts, so a large frame arriving slowly is not cut off.
type deadlineReader struct {
	nc      net.Conn
	timeout time.Duration // 0: no deadline; set before the read loop starts
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.timeout > 0 {
		if err := d.nc.SetReadDeadline(time.Now().Add(d.timeout)); err != nil {
			return 0, err
		}
	}
	return d.nc.Read(p)
}
