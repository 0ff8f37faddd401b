package failover

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// run is the supervisor: it waits for the connection in service to end,
// retires it and connects again, until the client is closed or no broker
// can be reached.
func (c *Client) run(s *session) {
	defer c.wg.Done()
	var lastProtocolErr string
	for {
		select {
		case <-s.conn.Done():
		case <-c.stop:
			return
		}
		cause := s.conn.Err()
		c.retire(s)
		c.mu.Lock()
		over := c.quiet || c.err != nil
		c.mu.Unlock()
		if over {
			return
		}
		c.log.Warn("connection lost; reconnecting", "addr", s.addr.String(), "err", cause)
		if c.opts.OnDisconnect != nil {
			c.opts.OnDisconnect(s.addr.Host, cause)
		}

		// A SEND the broker cannot even decode (over its frame size limit)
		// gets an ERROR that names no receipt, and would be resent for
		// ever. When the same such ERROR ends two connections in a row,
		// resend one SEND at a time: the one in flight alone when it comes
		// again is the cause.
		msg := protocolError(cause)
		careful := msg != "" && msg == lastProtocolErr
		lastProtocolErr = msg
		if careful {
			c.log.Info("the same ERROR ended two connections; resending one SEND at a time", "error", msg)
		}

		next, err := c.connect(c.stopCtx, false, s.addr, careful)
		if err != nil {
			if c.stopCtx.Err() != nil {
				return // closed
			}
			c.log.Error("giving up reconnecting", "err", err)
			c.fail(err)
			return
		}
		c.log.Info("reconnected", "addr", next.addr.String())
		if c.opts.OnConnect != nil {
			c.opts.OnConnect(next.addr.Host)
		}
		s = next
	}
}

// protocolError returns the message of an ERROR frame that ended a
// connection without naming a frame (no receipt-id) and without saying the
// broker is not serving: the broker objected to the stream itself.
func protocolError(err error) string {
	se := serverError(err)
	if se == nil || se.Frame.Get("receipt-id") != "" || says(se, notServingText) {
		return ""
	}
	return se.Message()
}

// connect makes passes over the addresses until one connects and its
// session is restored, waiting between passes as the URL's back-off
// options say, within the attempt limit for startup or for reconnection.
// last is the address just lost: it is tried last.
func (c *Client) connect(ctx context.Context, startup bool, last Addr, careful bool) (*session, error) {
	limit := c.url.attemptLimit(startup)
	delay := c.url.InitialReconnectDelay
	if !startup {
		if limit == 0 {
			return nil, fmt.Errorf("%w: maxReconnectAttempts=0 forbids reconnecting", ErrUnreachable)
		}
		// As ActiveMQ, the first reconnection waits initialReconnectDelay
		// too: a broker that just dropped us rarely takes us back at once.
		if err := sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("failover: reconnecting: %w", err)
		}
		delay = c.url.nextDelay(delay)
	}
	var lastErr error // of the last full pass
	for pass := 1; ; pass++ {
		list := c.connectList(last)
		var errs passError
		for _, a := range list {
			s, final, err := c.attempt(ctx, a, startup, careful)
			if err == nil {
				return s, nil
			}
			if ctx.Err() != nil {
				// With the causes seen so far in this pass, or else in
				// the last one: ctx may end during the attempts that
				// follow a telling failure.
				if errs = append(errs, err); len(errs) == 1 && lastErr != nil {
					errs = append(errs, lastErr)
				}
				return nil, fmt.Errorf("failover: connecting: %w", errs)
			}
			if final {
				return nil, fmt.Errorf("failover: the broker refused the connection: %w", err) // err names a
			}
			errs = append(errs, err)
			c.log.Debug("connection attempt failed", "addr", a.String(), "err", err)
		}
		lastErr = errs
		// As ActiveMQ, a limit counts passes over the whole list, and at
		// startup a limit of 0 still allows the one pass.
		if limit >= 0 && pass >= max(limit, 1) {
			return nil, fmt.Errorf("%w after %d attempt(s) over %v: %w", ErrUnreachable, pass, list, lastErr)
		}
		if pass == 1 || pass%10 == 0 {
			c.log.Warn("no broker reachable; retrying", "attempts", pass, "addrs", fmt.Sprint(list), "retry_in", delay, "err", lastErr)
		}
		if err := sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("failover: connecting: %w (last pass: %w)", err, lastErr)
		}
		delay = c.url.nextDelay(delay)
	}
}

// passError is why a pass over the addresses failed: the error of each
// address, in the order tried, each naming its address. It wraps them
// all, so that the cause of every one (a TLS certificate that did not
// verify, say) survives, not only that of the address tried last.
type passError []error

func (e passError) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e passError) Unwrap() []error { return e }

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connectList returns the addresses for one pass: those the broker
// announced first (they are the group as it is now), then the configured
// ones, shuffled when the URL says so, and the address just lost last.
func (c *Client) connectList(last Addr) []Addr {
	c.mu.Lock()
	learned := c.learned
	c.mu.Unlock()
	list := make([]Addr, 0, len(learned)+len(c.url.Addrs))
	for _, a := range slices.Concat(learned, c.url.Addrs) {
		if !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	if c.url.Randomize {
		rand.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
	}
	if i := slices.Index(list, last); i >= 0 && i < len(list)-1 {
		list = append(slices.Delete(list, i, i+1), last)
	}
	return list
}

// learn replaces the announced addresses with those of a CONNECTED frame's
// raftmq-brokers header, received over via, when the URL allows it. An
// entry is an address as in a URL (tcp://h:61613, ssl://h:61614), or a
// bare host[:port] that is reached the way via is (TLS or not). An address
// we cannot use is skipped, not fatal: the others still are of use. Plain
// addresses are of no use to a client configured with TLS addresses only:
// an announcement must not take it off TLS.
func (c *Client) learn(connected *stomp.Frame, via Addr) {
	if !c.url.UpdateURIsSupported || connected == nil {
		return
	}
	v, ok := connected.Lookup(BrokersHeader)
	if !ok {
		return
	}
	var addrs []Addr
	var plain []string
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		a, err := parseAnnounced(part, via)
		if err != nil {
			c.log.Warn("ignoring a broker address the server announced", "addr", part, "err", err)
			continue
		}
		if c.tlsOnly && !a.TLS() {
			plain = append(plain, part)
			continue
		}
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if len(plain) > 0 {
		c.log.Warn("ignoring the plain TCP broker addresses the server announced: every configured address uses TLS",
			"addrs", strings.Join(plain, ","))
	}
	c.mu.Lock()
	c.learned = addrs
	c.mu.Unlock()
}

// parseAnnounced parses one entry of the raftmq-brokers header: an
// address with its scheme, or a bare host[:port] reached as via is.
func parseAnnounced(entry string, via Addr) (Addr, error) {
	if !strings.Contains(entry, "://") {
		scheme := "tcp"
		if via.TLS() {
			scheme = "ssl"
		}
		entry = scheme + "://" + entry
	}
	return parseAddr(entry)
}

// attempt connects to a and restores the client's state on the new
// connection: the returned session is in service. final reports an error
// that ends the attempts: the broker refused CONNECT itself.
func (c *Client) attempt(ctx context.Context, a Addr, startup, careful bool) (s *session, final bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	copts := c.copts
	if a.TLS() {
		copts.TLS = c.tlsConfig(a)
	}
	conn, err := client.Dial(dctx, a.Host, copts)
	if err != nil {
		// A TLS handshake that failed is no refusal: the next broker may
		// present a certificate that verifies.
		return nil, handshakeRefusal(err), fmt.Errorf("dial %v: %w", a, err)
	}
	s = newSession(conn, a)
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		_ = conn.Close()
		return nil, false, ErrClosed
	}
	c.sessions[s] = struct{}{}
	c.wg.Add(1) // under mu while not stopped: Close's Wait cannot have begun
	c.mu.Unlock()
	go c.watch(s)
	c.learn(conn.Connected(), a)

	rctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	if err := c.restore(rctx, s, startup, careful); err != nil {
		c.retire(s)
		return nil, false, fmt.Errorf("restoring the session on %v: %w", a, err)
	}
	return s, false, nil
}

// tlsConfig returns the TLS configuration for a connection to a: a copy of
// Options.TLS (or a zero one) whose ServerName, unless set, is a's host.
func (c *Client) tlsConfig(a Addr) *tls.Config {
	cfg := c.opts.TLS.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(a.Host)
		if err != nil {
			host = a.Host // validate checked it: not reached
		}
		cfg.ServerName = host
	}
	return cfg
}

// restore puts s in service: it subscribes again, resends the SENDs not
// receipted, and then opens s to callers.
func (c *Client) restore(ctx context.Context, s *session, startup, careful bool) error {
	// Subscriptions first, one at a time and in the order made, before any
	// SEND: an ERROR in this phase is about the SUBSCRIBE in flight.
	c.mu.Lock()
	subs := make([]*Subscription, 0, len(c.subs))
	for _, sub := range c.subs {
		if sub.ready && !sub.ended {
			subs = append(subs, sub)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(subs, func(a, b *Subscription) int { return cmpUint(a.seq, b.seq) })
	for _, sub := range subs {
		if err := c.resubscribe(ctx, s, sub); err != nil {
			return err
		}
	}

	// Then the SENDs not receipted, in the order made. Callers' new SENDs
	// queue behind them meanwhile; s opens to callers, under the same lock
	// as the check, once none is left unwritten on s, so every later SEND
	// sees s in service and writes itself.
	for {
		c.mu.Lock()
		if c.err != nil {
			c.mu.Unlock()
			return errNotInstalled
		}
		var batch []*Receipt
		for _, p := range c.pending {
			if p.tx == "" && p.sess != s {
				batch = append(batch, p)
			}
		}
		if len(batch) == 0 {
			c.cur = s
			close(c.up)
			if !startup {
				c.reconnects++
			}
			c.mu.Unlock()
			return nil
		}
		for _, p := range batch {
			p.sess = s
			if p.timer != nil {
				// Written now: the timeout option no longer applies.
				p.timer.Stop()
				p.timer = nil
			}
		}
		c.mu.Unlock()
		slices.SortFunc(batch, func(a, b *Receipt) int { return cmpUint(a.seq, b.seq) })
		for _, p := range batch {
			r, err := c.write(s, p)
			if err != nil {
				continue // refused by the codec: failed, not resent
			}
			if r == nil {
				return fmt.Errorf("resending: %w", s.conn.Err())
			}
			if careful {
				if err := c.awaitAlone(ctx, p, r); err != nil {
					return err
				}
			}
		}
	}
}

// awaitAlone waits for the receipt of p, the only SEND in flight on its
// connection. If an ERROR that names no frame ends the connection
// meanwhile, p is what the broker objected to: it fails and is not resent.
func (c *Client) awaitAlone(ctx context.Context, p *Receipt, r *client.Receipt) error {
	select {
	case <-r.Done():
	case <-ctx.Done():
		return fmt.Errorf("resending one at a time: %w", ctx.Err())
	}
	err := r.Err()
	if err == nil || refusal(err, r.ID()) != nil {
		return nil // the watcher settles it
	}
	if protocolError(err) != "" {
		c.finish(p, nil, fmt.Errorf("failover: SEND to %s (dedupe-id %s): %w: the connection ended while it alone was in flight: %w",
			p.dest, p.id, ErrRefused, serverError(err)))
	}
	return fmt.Errorf("resending one at a time: %w", err)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// resubscribe subscribes sub again on s, with its id, destination, ack mode
// and headers. A refusal ends sub (it would be refused on every
// connection), but not "not serving" or "durable subscription already
// active": the broker may not yet have dropped our previous connection.
func (c *Client) resubscribe(ctx context.Context, s *session, sub *Subscription) error {
	in, err := s.conn.Subscribe(ctx, sub.dest, sub.ack, sub.headers...)
	if err != nil {
		se := serverError(err)
		if se != nil && se.Frame.Get("receipt-id") != "" && !says(se, notServingText) && !says(se, durableInUseText) {
			c.log.Warn("the broker refused a resubscription; it ends", "id", sub.id, "destination", sub.dest, "err", se.Message())
			c.endSub(sub, fmt.Errorf("failover: resubscribing %s to %s on %s: %w: %w", sub.id, sub.dest, s.addr.Host, ErrRefused, se))
		}
		return fmt.Errorf("resubscribing %s to %s: %w", sub.id, sub.dest, err)
	}
	c.mu.Lock()
	if sub.ended {
		// Unsubscribed meanwhile: undo it here too.
		c.mu.Unlock()
		_ = in.Unsubscribe(ctx)
		return nil
	}
	c.attach(sub, in, s)
	c.mu.Unlock()
	return nil
}

// retire takes s out of service for good: no SEND is written on it from
// now on, and once the watcher settled those that were, restore may
// resend the rest. Its Conn is closed once every subscription has taken
// the messages that arrived on it.
func (c *Client) retire(s *session) {
	c.mu.Lock()
	s.lost = true
	if c.cur == s {
		c.cur = nil
		c.up = make(chan struct{})
	}
	c.mu.Unlock()
	s.writers.Wait()
	s.closeQueue()
	if s.conn.Err() == nil {
		// A restore that failed on a live connection (a broker too slow
		// to answer). Its watcher waits for receipts the broker may hold
		// for ever (a leader whose lease lapsed, a frozen process), so it
		// gets ConnectTimeout to settle them; then the connection ends,
		// which fails the rest (they are resent, deduplicated). Messages
		// it delivered and nobody took yet are dropped, and the broker
		// redelivers those not auto-acked.
		select {
		case <-s.drained:
		case <-c.stop:
		case <-time.After(c.opts.ConnectTimeout):
		}
		_ = s.conn.Close()
	}
	select {
	case <-s.drained:
	case <-c.stop:
	}
	c.release(s)
}

// release drops one reference to s and closes its Conn with the last.
func (c *Client) release(s *session) {
	c.mu.Lock()
	s.refs--
	last := s.refs == 0
	if last {
		delete(c.sessions, s)
	}
	c.mu.Unlock()
	if last {
		_ = s.conn.Close()
	}
}

// write sends p on s and hands it to s's watcher. It returns the receipt
// on s; nil and no error when the connection has ended (p stays pending,
// to be resent); an error when p failed for good (the codec refused it,
// or a transactional SEND whose connection ended), p being settled.
func (c *Client) write(s *session, p *Receipt) (*client.Receipt, error) {
	r, err := s.conn.SendAsync(p.dest, p.body, p.headers...)
	if err == nil {
		s.enqueue(watchItem{p: p, r: r})
		return r, nil
	}
	var se *stomp.Error
	switch {
	case errors.As(err, &se):
		err = fmt.Errorf("failover: SEND to %s: %w", p.dest, err)
	case p.tx != "":
		err = fmt.Errorf("failover: SEND to %s in transaction %s: %w: %w", p.dest, p.tx, ErrTxRolledBack, err)
	default:
		return nil, nil
	}
	c.finish(p, s, err)
	return nil, err
}
