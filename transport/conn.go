package transport

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/stomp"
)

const (
	// closeTimeout bounds the writing of the last frames (receipts, the
	// final RECEIPT or ERROR) once a connection shuts down, so a client
	// that does not read cannot hold it open.
	closeTimeout = 500 * time.Millisecond
	// lingerTimeout bounds how long, after an ERROR, the server keeps
	// reading and discarding what the client still sends before it closes
	// the socket. Closing with unread bytes makes the kernel send a reset,
	// which can destroy the ERROR frame before the client reads it.
	lingerTimeout = 500 * time.Millisecond
	// writeChunk is the most one socket write may carry, so that
	// WriteTimeout measures progress, not the time to send a large body.
	writeChunk = 64 << 10
	// frameOverhead approximates the bytes of a MESSAGE frame beyond the
	// message itself (header names, broker headers), for accounting.
	frameOverhead = 192
	// controlOverhead is what a queued control frame costs in memory
	// beyond its encoded size, so that MaxOutboundBytes bounds the memory
	// of receipts a client does not read, not just their bytes on the wire
	// (a RECEIPT of 33 bytes takes about 130 of heap): the *stomp.Frame
	// (64 bytes), a header (32) and a queue slot (24) twice, since the
	// writer holds one queue while the next one fills, less the command
	// and header name, which are constants. TestControlFrameCost checks it
	// against the heap.
	controlOverhead = 128
)

// conn is one client connection. The reader goroutine (serve, readLoop)
// decodes frames and calls the Session; the writer goroutine (writeLoop)
// drains the outbound queue to the socket. What they share is under mu.
type conn struct {
	srv *Server
	cfg *Config
	nc  net.Conn
	id  string // the CONNECTED session header
	log *slog.Logger

	dr deadlineReader
	rd *stomp.Reader // reader goroutine only
	dw deadlineWriter
	w  *stomp.Writer // writer goroutine only
	mf stomp.Frame   // writer goroutine only: reused for MESSAGE frames

	// version and hb are set by the reader while connecting and are
	// read-only once CONNECTED is queued; the writer reads them after
	// taking CONNECTED from the queue, under mu.
	version stomp.Version
	hb      heartBeats
	// release undoes Config.Admit's admission when the connection ends.
	release func()
	// composites numbers the transactions of composite sends (reader
	// goroutine only).
	composites uint64
	// temp prefixes the names of its temporary destinations (temp.go).
	temp     string
	tempOnce sync.Once

	wake chan struct{} // capacity 1: the queue has frames, or closing

	mu           sync.Mutex
	cond         sync.Cond // on mu: pending or ctrlBytes fell, or closing
	sess         Session
	out          []outItem
	outBytes     int  // bytes of frames queued or being written
	ctrlBytes    int  // the part of outBytes that is not MESSAGE frames
	blocked      bool // Writable said no: Resume is owed once drained
	pending      int  // operations whose done has not run yet
	pendingBytes int  // their message bytes
	closing      bool // no more output is queued; the writer ends the connection
	linger       bool // after the last frame, drain input before closing
	// principal is who the client authenticated as (Config.Authenticate),
	// set while connecting and replaced by Server.Recheck; nil when
	// authentication is off. Read it with who.
	principal Principal
	// subs maps the ids of the subscriptions asked for to their
	// destinations, for Server.Recheck to check read rights again.
	subs map[string]string

	stats connStats // info.go
}

// outItem is a queued frame: a control frame (CONNECTED, RECEIPT, ERROR),
// or a delivery the writer renders as a MESSAGE frame.
type outItem struct {
	f    *stomp.Frame
	d    *queue.Delivery
	size int
}

func newConn(s *Server, nc net.Conn, id string) *conn {
	c := &conn{
		srv:  s,
		cfg:  &s.cfg,
		nc:   nc,
		id:   id,
		log:  s.log.With("session", id, "remote", nc.RemoteAddr().String()),
		wake: make(chan struct{}, 1),
	}
	c.cond.L = &c.mu
	c.stats.accepted = time.Now()
	c.dr.nc = nc
	c.rd = stomp.NewReader(&c.dr, s.cfg.Limits)
	c.dw.nc = nc
	c.dw.timeout = s.cfg.WriteTimeout
	c.w = stomp.NewWriter(&c.dw)
	return c
}

// serve runs the connection to its end: the reader here, the writer in its
// own goroutine. The session is closed once both are done, so no Session
// call, Resume included, can follow Close.
func (c *conn) serve() {
	c.log.Debug("connection opened")
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()

	err := c.readLoop()
	var ce *clientErr
	switch {
	case errors.As(err, &ce):
		if ce.fatal {
			c.log.Warn("protocol error; closing connection", "err", err)
		} else {
			c.log.Debug("frame refused; closing connection", "err", err)
		}
		c.shutdown(ce.frame(), true)
	case errors.Is(err, errStop):
		c.shutdown(nil, false)
	default:
		c.log.Debug("read failed; closing connection", "err", err)
		c.shutdown(nil, false)
	}
	<-writerDone

	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
	if c.release != nil {
		c.release()
	}
	c.log.Debug("connection closed")
}

// readLoop reads and executes frames until the connection ends. It returns
// errStop when there is nothing to tell the client, a *clientErr
// for the ERROR frame, or the read error that ended it.
func (c *conn) readLoop() error {
	// CONNECT must arrive by an absolute deadline: trickling bytes does
	// not extend it.
	if err := c.dr.setDeadline(time.Now().Add(c.cfg.ConnectTimeout)); err != nil {
		return err
	}
	// Nor may an unauthenticated client make the broker buffer a frame
	// of the full size allowed after login.
	c.rd.SetLimits(connectLimits(c.cfg.Limits))
	f, err := c.rd.ReadFrame()
	if err != nil {
		return c.readErr(err, false)
	}
	c.rd.SetLimits(c.cfg.Limits)
	if err := c.connect(f); err != nil {
		return err
	}
	for {
		if err := c.waitRoom(); err != nil {
			return err
		}
		f, err := c.rd.ReadFrame()
		if err != nil {
			return c.readErr(err, true)
		}
		c.stats.framesIn.Add(1)
		if err := c.exec(f); err != nil {
			return err
		}
	}
}

// who is the connection's principal, nil when authentication is off.
func (c *conn) who() Principal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.principal
}

// maxConnectFrame bounds the CONNECT (or STOMP) frame, read before the
// client has logged in: logins, host, heart-beat and version headers fit
// in a few hundred bytes.
const maxConnectFrame = 64 << 10

// connectLimits are lim (defaulted by Config.Validate) tightened for the
// CONNECT frame.
func connectLimits(lim stomp.Limits) stomp.Limits {
	lim.MaxFrameSize = min(lim.MaxFrameSize, maxConnectFrame)
	lim.MaxHeaderLine = min(lim.MaxHeaderLine, maxConnectFrame)
	return lim
}

// readErr explains why reading stopped.
func (c *conn) readErr(err error, connected bool) error {
	if c.isClosing() {
		return errStop
	}
	var se *stomp.Error
	if errors.As(err, &se) {
		lim := c.cfg.Limits
		if !connected {
			lim = connectLimits(lim)
		}
		return codecErr(se, lim)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errStop // the client hung up
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if !connected {
			return protocolErr(nil, "no CONNECT frame within "+c.cfg.ConnectTimeout.String(), "")
		}
		return protocolErr(nil, "no heart-beat from the client within "+c.dr.limit().String(), "")
	}
	return err
}

// waitRoom blocks while the connection has as many operations in flight
// as it may, or more control frames queued than it may hold. Not reading
// is the backpressure: TCP stops the client.
func (c *conn) waitRoom() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closing && (c.pending >= c.cfg.MaxPendingOps || c.pendingBytes >= c.cfg.MaxPendingBytes ||
		c.ctrlBytes >= c.cfg.MaxOutboundBytes) {
		c.cond.Wait()
	}
	if c.closing {
		return errStop
	}
	return nil
}

// waitIdle blocks until every operation in flight completed, or the
// connection is closing.
func (c *conn) waitIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closing && c.pending > 0 {
		c.cond.Wait()
	}
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// track counts an operation in flight and returns its done callback,
// which queues the RECEIPT frame f asked for, or ends the connection with
// the engine's error. It must be called exactly once, or untrack instead
// when the Session refused the call outright.
func (c *conn) track(f *stomp.Frame) func(error) {
	receipt, wantReceipt := f.Lookup("receipt")
	// Neither f nor a slice of its header block: the callback must not
	// keep the frame alive while raft commits it.
	receipt, cmd, size := strings.Clone(receipt), f.Command, len(f.Body)
	c.mu.Lock()
	c.pending++
	c.pendingBytes += size
	c.mu.Unlock()
	return func(err error) {
		if err != nil {
			c.log.Debug("operation failed; closing connection", "command", cmd, "err", err)
			c.shutdown(engineErr(receipt, err).frame(), true)
		} else if wantReceipt {
			c.queueControl(receiptFrame(receipt))
		}
		c.untrack(size)
	}
}

func (c *conn) untrack(size int) {
	c.mu.Lock()
	c.pending--
	c.pendingBytes -= size
	c.cond.Broadcast()
	c.mu.Unlock()
}

// receiptFrame returns the RECEIPT for id. It copies id: a receipt header
// read by stomp.Reader shares one string with all the headers of its
// frame, which a queued RECEIPT must not keep alive.
func receiptFrame(id string) *stomp.Frame {
	return &stomp.Frame{Command: stomp.RECEIPT, Headers: []stomp.Header{{Key: "receipt-id", Value: strings.Clone(id)}}}
}

// queueControl queues a frame other than MESSAGE; it is dropped when the
// connection is closing, so nothing is written after Server.Close.
func (c *conn) queueControl(f *stomp.Frame) {
	size := frameSize(f) + controlOverhead
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, outItem{f: f, size: size})
	c.outBytes += size
	c.ctrlBytes += size
	c.mu.Unlock()
	c.signal()
}

// Deliver queues d's MESSAGE frame; it implements queue.Outbound. It never
// blocks: the engine bounds what it queues by asking Writable.
func (c *conn) Deliver(d *queue.Delivery) {
	size := d.Msg.Size() + len(d.Destination) + len(d.Subscription) + len(d.AckID) + frameOverhead
	c.mu.Lock()
	if c.closing {
		// Not written, so not acknowledged: closing the session gives
		// the message back to its queue.
		c.mu.Unlock()
		return
	}
	c.out = append(c.out, outItem{d: d, size: size})
	c.outBytes += size
	c.mu.Unlock()
	c.signal()
}

// CloseWithError ends the connection with an ERROR saying why; it
// implements queue.Closer. It never blocks: the writer sends the ERROR
// after what is queued and closes the socket, and the session closes with
// the connection.
func (c *conn) CloseWithError(reason string) {
	c.shutdown(errorFrame(reason, "", ""), false)
}

// Writable reports whether the connection has room for more deliveries;
// it implements queue.Outbound. After a false the writer calls
// Session.Resume once the queue drained below half of MaxOutboundBytes.
func (c *conn) Writable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	if c.outBytes < c.cfg.MaxOutboundBytes {
		return true
	}
	c.blocked = true
	return false
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// shutdown starts closing the connection: nothing more is queued,
// deliveries not yet written are dropped (the session gives them back when
// closed), and the writer writes what else is queued, then final if not
// nil, and closes the socket, lingering first when linger is set. Only the
// first call counts.
func (c *conn) shutdown(final *stomp.Frame, linger bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.linger = linger && final != nil
	kept := c.out[:0]
	for _, it := range c.out {
		if it.d == nil {
			kept = append(kept, it)
		}
	}
	clear(c.out[len(kept):])
	c.out = kept
	if final != nil {
		c.out = append(c.out, outItem{f: final})
	}
	// Stop the reader before the writer can see closing: a writer that
	// wrote the ERROR and began draining first would otherwise have its
	// drain cut short by this stop, and the close would reset the
	// connection under the unread ERROR. (dr's lock never waits for c.mu.)
	c.dr.stop()
	c.cond.Broadcast()
	c.mu.Unlock()

	// Cut short a write blocked on a client that does not read; the
	// writer gives the last frames their own closeTimeout.
	c.dw.setCutoff(time.Now().Add(closeTimeout))
	c.signal()
}

// writeLoop writes queued frames until the connection closes, then closes
// the socket. Frames queued together go out in one flush.
func (c *conn) writeLoop() {
	defer c.nc.Close()
	var (
		batch []outItem
		dels  []*queue.Delivery
		every time.Duration // heart-beat interval, once CONNECTED is out
		timer *time.Timer
		tick  <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-c.wake:
		case <-tick:
			// Nothing written for a whole interval: send a heart-beat.
			if err := c.heartbeat(); err != nil {
				c.log.Debug("heart-beat write failed; closing connection", "err", err)
				c.shutdown(nil, false)
				return
			}
			timer.Reset(every)
			continue
		}

		c.mu.Lock()
		batch, c.out = c.out, batch[:0]
		closing, linger := c.closing, c.linger
		c.mu.Unlock()
		if closing {
			// The last frames get closeTimeout from now, not from
			// shutdown: a writer that was slow to be scheduled must not
			// lose the ERROR it was asked to write.
			c.dw.setCutoff(time.Now().Add(closeTimeout))
			if !c.fenceAllows() {
				batch = errorsOnly(batch)
			}
		} else if !c.fenceOpen() {
			// The connection began closing while the batch was held:
			// nothing held is written, only the ERROR closing queued.
			c.mu.Lock()
			batch = errorsOnly(append(batch, c.out...))
			clear(c.out)
			c.out = c.out[:0]
			closing, linger = true, c.linger
			c.mu.Unlock()
			c.dw.setCutoff(time.Now().Add(closeTimeout))
		}

		dels = dels[:0]
		var failed *queue.Delivery // the delivery whose write failed
		n, ctrl, err := 0, 0, error(nil)
		for _, it := range batch {
			if err = c.writeItem(it); err != nil {
				failed = it.d
				break
			}
			n += it.size
			if it.d != nil {
				dels = append(dels, it.d)
			} else {
				ctrl += it.size
				if it.f.Command == stomp.CONNECTED {
					c.mu.Lock()
					v, hb := c.version, c.hb
					c.mu.Unlock()
					c.w.SetVersion(v)
					if every = hb.send; every > 0 {
						timer = time.NewTimer(every)
						tick = timer.C
					}
				}
			}
		}
		clear(batch)
		if err == nil {
			err = c.w.Flush()
		}
		if err != nil {
			if !closing {
				c.log.Debug("write failed; closing connection", "err", err)
			}
			// The buffered writer sends in chunks as it fills, so the
			// kernel may have taken any part of the frames handed to it,
			// the failed one included: the client may hold them, and the
			// engine must flag them redelivered when it gives them back.
			// (If the encoder refused the failed frame, nothing of it was
			// sent; flagging it anyway errs on the safe side.) The items
			// after it were never written: nothing to say.
			for _, d := range dels {
				c.srv.writeFailed(d)
			}
			if failed != nil {
				c.srv.writeFailed(failed)
			}
			c.shutdown(nil, false)
			return
		}
		for _, d := range dels {
			c.srv.written(d)
		}
		clear(dels)
		if closing {
			if linger {
				c.drain()
			}
			return
		}
		if timer != nil {
			timer.Reset(every)
		}
		c.wrote(n, ctrl)
	}
}

// fenceAllows reports whether the server's Fence lets frames out now.
func (c *conn) fenceAllows() bool {
	return c.srv.cfg.Fence == nil || c.srv.cfg.Fence()
}

// errorsOnly keeps the ERROR frames of batch: what a connection closing
// behind a shut fence may still write. Its receipts may be true (a
// committed SEND) but come from a node that may no longer lead; the
// client resends and the group's dedupe window answers.
func errorsOnly(batch []outItem) []outItem {
	kept := batch[:0]
	for _, it := range batch {
		if it.d == nil && it.f.Command == stomp.ERROR {
			kept = append(kept, it)
		}
	}
	clear(batch[len(kept):])
	return kept
}

// fenceOpen waits until the server's Fence lets frames out, and reports
// false if the connection started closing first. Control frames wait
// too: a RECEIPT is as much a promise as a MESSAGE.
func (c *conn) fenceOpen() bool {
	for !c.fenceAllows() {
		if c.isClosing() {
			return false
		}
		time.Sleep(fencePoll)
	}
	return true
}

// fencePoll is how often a held writer asks the Fence again. A held
// leader renews its lease within a heart-beat round trip or loses it.
const fencePoll = 2 * time.Millisecond

// wrote releases the accounting of n written bytes, ctrl of them control
// frames, and resumes the engine once the queue drained below half.
func (c *conn) wrote(n, ctrl int) {
	c.mu.Lock()
	c.outBytes -= n
	c.ctrlBytes -= ctrl
	if ctrl > 0 {
		c.cond.Broadcast() // the reader may wait for room
	}
	var resume Session
	if c.blocked && c.outBytes < c.cfg.MaxOutboundBytes/2 && c.sess != nil {
		c.blocked = false
		resume = c.sess
	}
	c.mu.Unlock()
	if resume != nil {
		resume.Resume()
	}
}

// writeItem buffers one frame.
func (c *conn) writeItem(it outItem) error {
	if it.f != nil {
		return c.w.WriteFrame(it.f)
	}
	f := &c.mf
	c.messageFrame(f, it.d, false)
	err := c.w.WriteFrame(f)
	var se *stomp.Error
	if errors.As(err, &se) {
		// A header the sender's version could carry and this client's
		// cannot (a line end for STOMP 1.0): drop such headers rather
		// than the message. Nothing was written for the failed frame.
		c.log.Debug("dropping message headers this STOMP version cannot encode", "version", c.version, "err", err)
		c.messageFrame(f, it.d, true)
		err = c.w.WriteFrame(f)
	}
	// Keep neither the body nor header strings alive until the next
	// message.
	clear(f.Headers)
	f.Body = nil
	if err == nil {
		c.stats.messagesOut.Add(1)
	}
	return err
}

func (c *conn) heartbeat() error {
	if err := c.w.WriteHeartbeat(); err != nil {
		return err
	}
	return c.w.Flush()
}

// drain reads and discards what the client still sends, until it closes
// its side or lingerTimeout passes, after sending FIN. See lingerTimeout.
func (c *conn) drain() {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if c.nc.SetReadDeadline(time.Now().Add(lingerTimeout)) != nil {
		return
	}
	_, _ = io.Copy(io.Discard, c.nc)
}

// messageFrame renders d into f, reusing f's header slice. The broker's
// headers come first: a repeated header counts at its first occurrence,
// so no stored header can shadow them. With portable set, user headers
// this connection's version cannot encode are left out.
func (c *conn) messageFrame(f *stomp.Frame, d *queue.Delivery, portable bool) {
	if d.BrowseEnd { // a queue browser's end marker (browse.go)
		c.browseEndFrame(f, d)
		return
	}
	m := d.Msg
	h := append(f.Headers[:0],
		stomp.Header{Key: "message-id", Value: m.ID},
		stomp.Header{Key: "destination", Value: c.shownDest(d.Destination)},
		stomp.Header{Key: "subscription", Value: d.Subscription},
	)
	// STOMP 1.2 acknowledges by the ack header; 1.0 and 1.1 clients
	// acknowledge by message-id (and subscription).
	if c.version == stomp.V12 {
		h = append(h, stomp.Header{Key: "ack", Value: d.AckID})
	}
	if d.Redelivered {
		h = append(h, stomp.Header{Key: "redelivered", Value: "true"})
	}
	h = append(h,
		stomp.Header{Key: "delivery-count", Value: strconv.Itoa(d.DeliveryCount)},
		stomp.Header{Key: "priority", Value: strconv.Itoa(int(m.Priority))},
	)
	if m.Expires != 0 {
		h = append(h, stomp.Header{Key: "expires", Value: strconv.FormatInt(m.Expires, 10)})
	}
	h = append(h,
		stomp.Header{Key: "timestamp", Value: strconv.FormatInt(m.Timestamp, 10)},
		stomp.Header{Key: "persistent", Value: strconv.FormatBool(m.Persistent)},
	)
	for _, uh := range m.Headers {
		if portable && !encodable(uh.Key, uh.Value, c.version) {
			continue
		}
		h = append(h, stomp.Header(uh))
	}
	f.Command = stomp.MESSAGE
	f.Headers = h
	f.Body = m.Body
}

// encodable reports whether a header survives the header escaping of v,
// mirroring what stomp.Writer refuses: STOMP 1.0 has no escapes, and only
// 1.2 can escape a carriage return that ends a value.
func encodable(key, value string, v stomp.Version) bool {
	switch {
	case key == "":
		return false
	case v == stomp.V12:
		return true
	case strings.HasSuffix(value, "\r"):
		return false
	case v == stomp.V11:
		return true
	}
	return !strings.ContainsAny(key, ":\n") && !strings.Contains(value, "\n")
}

// frameSize approximates the encoded size of a control frame.
func frameSize(f *stomp.Frame) int {
	n := len(f.Command) + len(f.Body) + 8
	for _, h := range f.Headers {
		n += len(h.Key) + len(h.Value) + 2
	}
	return n
}

// deadlineWriter is the socket as the frame writer sees it. Each write of
// at most writeChunk bytes must complete within timeout; once the
// connection shuts down no deadline goes past the cutoff.
type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration

	mu     sync.Mutex
	cutoff time.Time
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := w.arm(); err != nil {
			return n, err
		}
		m, err := w.nc.Write(p[:min(len(p), writeChunk)])
		n += m
		if err != nil {
			return n, err
		}
		p = p[m:]
	}
	return n, nil
}

func (w *deadlineWriter) arm() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := time.Now().Add(w.timeout)
	if !w.cutoff.IsZero() && w.cutoff.Before(t) {
		t = w.cutoff
	}
	return w.nc.SetWriteDeadline(t)
}

// setCutoff makes every write, the one in progress included, end by t.
func (w *deadlineWriter) setCutoff(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cutoff = t
	_ = w.nc.SetWriteDeadline(t) // a closed socket needs no deadline
}
