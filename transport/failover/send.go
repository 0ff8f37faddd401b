package failover

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/raftmq/raftmq/transport/stomp"
)

// Receipt is a SEND awaiting the broker's receipt, on whichever connection
// it comes. Until then the client keeps the SEND (its body included) to
// resend it after a failover.
type Receipt struct {
	id   string // dedupe-id
	dest string
	done chan struct{}
	err  error // set before done is closed

	// Read-only after SendAsync; resent as they are.
	seq     uint64
	body    []byte
	headers []stomp.Header // the caller's, and our dedupe-id
	tx      string

	// Under Client.mu.
	sess      *session    // the connection it was last written to; nil: never written
	timer     *time.Timer // the timeout option, while never written
	completed bool
}

// ID returns the SEND's dedupe-id.
func (r *Receipt) ID() string { return r.id }

// Done is closed when the SEND is settled: receipted, refused, or failed.
func (r *Receipt) Done() <-chan struct{} { return r.done }

// Err returns, once Done is closed, nil if the broker receipted the SEND,
// or why it failed; nil before.
func (r *Receipt) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Wait waits for the SEND to be settled or ctx to end. Giving up waiting
// does not withdraw the SEND: the client still sends it, and resends it,
// until it is receipted.
func (r *Receipt) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	default:
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("failover: waiting for the receipt of SEND %s: %w", r.id, ctx.Err())
	}
}

func (r *Receipt) complete(err error) {
	r.err = err
	close(r.done)
}

// SendAsync sends a message to dest and returns without waiting for the
// receipt. The SEND carries a dedupe-id header (the caller's, if headers
// has one, else one unique to this client) and asks for a receipt; until
// the receipt arrives the client keeps it and resends it, with the same
// dedupe-id, on every new connection. body must not be modified until
// the Receipt is done.
//
// While the client is reconnecting, the SEND waits in memory and is written
// once connected; with the URL's timeout option it fails with ErrTimeout
// if that takes longer. How many SENDs are in flight is the caller's
// business: each costs its body and headers until receipted.
//
// A SEND with a transaction header belongs to that transaction (see
// Begin): it is written on the transaction's connection and never resent;
// if that connection is gone it fails with ErrTxRolledBack.
func (c *Client) SendAsync(dest string, body []byte, headers ...stomp.Header) (*Receipt, error) {
	seq := c.seq.Add(1)
	p := &Receipt{dest: dest, done: make(chan struct{}), seq: seq, body: body}
	given := stomp.Frame{Headers: headers}
	p.tx = given.Get("transaction")
	p.headers = make([]stomp.Header, 0, len(headers)+1)
	p.headers = append(p.headers, headers...)
	if id, ok := given.Lookup(DedupeHeader); ok {
		p.id = id
	} else {
		p.id = c.idPrefix + strconv.FormatUint(seq, 10)
		p.headers = append(p.headers, stomp.Header{Key: DedupeHeader, Value: p.id})
	}

	c.mu.Lock()
	if err := c.usable(); err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("failover: SEND to %s: %w", dest, err)
	}
	s := c.cur
	if p.tx != "" {
		s = c.txs[p.tx]
		switch {
		case s == nil:
			c.mu.Unlock()
			return nil, fmt.Errorf("failover: SEND to %s: transaction %q was not begun", dest, p.tx)
		case s.lost:
			c.mu.Unlock()
			return nil, fmt.Errorf("failover: SEND to %s in transaction %s: %w", dest, p.tx, ErrTxRolledBack)
		}
	}
	c.pending[seq] = p
	if s != nil {
		p.sess = s
		s.writers.Add(1)
	} else if c.url.Timeout > 0 {
		p.timer = time.AfterFunc(c.url.Timeout, func() { c.expire(p) })
	}
	c.mu.Unlock()
	if s == nil {
		return p, nil // restore writes it
	}
	_, err := c.write(s, p)
	s.writers.Done()
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Send sends a message as SendAsync does and waits for its receipt, across
// failovers, until ctx ends. If ctx ends first and the SEND was never
// written it is withdrawn (the error says "not sent"); otherwise its
// outcome is unknown and the client still resends it until receipted.
func (c *Client) Send(ctx context.Context, dest string, body []byte, headers ...stomp.Header) error {
	p, err := c.SendAsync(dest, body, headers...)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
	}
	if c.withdraw(p) {
		return fmt.Errorf("failover: SEND to %s: %w (not sent)", dest, ctx.Err())
	}
	select {
	case <-p.done:
		return p.err
	default:
	}
	return fmt.Errorf("failover: SEND to %s (dedupe-id %s): %w; it may have been stored, and is resent until receipted", dest, p.id, ctx.Err())
}

// withdraw removes p if it was never written, and reports whether it did.
func (c *Client) withdraw(p *Receipt) bool {
	c.mu.Lock()
	if p.completed || p.sess != nil {
		c.mu.Unlock()
		return false
	}
	c.settleLocked(p)
	c.mu.Unlock()
	p.complete(fmt.Errorf("failover: SEND to %s: withdrawn", p.dest))
	return true
}

// expire fails p when the timeout option ran out before it was written.
func (c *Client) expire(p *Receipt) {
	c.mu.Lock()
	if p.completed || p.sess != nil {
		c.mu.Unlock()
		return
	}
	c.settleLocked(p)
	c.mu.Unlock()
	p.complete(fmt.Errorf("failover: SEND to %s: %w (%v)", p.dest, ErrTimeout, c.url.Timeout))
}

// finish settles p with err, unless it was settled already or (s not nil)
// it has been written to another connection since s.
func (c *Client) finish(p *Receipt, s *session, err error) {
	c.mu.Lock()
	if p.completed || s != nil && p.sess != s {
		c.mu.Unlock()
		return
	}
	c.settleLocked(p)
	c.mu.Unlock()
	p.complete(err)
}

// settleLocked marks p settled and forgets it. Called with mu; the caller
// completes p after unlocking.
func (c *Client) settleLocked(p *Receipt) {
	p.completed = true
	delete(c.pending, p.seq)
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}
