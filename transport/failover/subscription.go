package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/raftmq/raftmq/transport/client"
	"github.com/raftmq/raftmq/transport/stomp"
)

// chanSize is the buffer of a subscription's channel. Behind it each
// connection's client keeps its own queue, bounded by the broker's prefetch
// for client acks.
const chanSize = 64

// Message is a MESSAGE frame and the connection that delivered it, which
// its ACK or NACK must go to.
type Message struct {
	*stomp.Frame
	sub  *Subscription
	sess *session
}

// Redelivered reports whether the broker flagged the message as possibly
// delivered before (redelivered:true): after a failover or a restart every
// unacknowledged message is, since the broker cannot know.
func (m *Message) Redelivered() bool { return m.Get("redelivered") == "true" }

// Subscription returns the subscription the message arrived on.
func (m *Message) Subscription() *Subscription { return m.sub }

// Subscription is a SUBSCRIBE that the client makes again, with the same
// id, destination, ack mode and headers, on every new connection. Its
// channel survives failovers.
type Subscription struct {
	c       *Client
	id      string
	dest    string
	ack     string
	headers []stomp.Header // as sent, id included
	seq     uint64         // creation order: resubscribed in this order
	ch      chan *Message
	wake    chan struct{} // capacity 1: feeds changed or ended

	// Under Client.mu.
	ready bool                 // subscribed once: restored from now on
	ended bool                 // never restored again; C closes once drained
	err   error                // why it ended, if not by Unsubscribe
	inner *client.Subscription // on sess
	sess  *session
	feeds []feed // connections' subscriptions to drain into ch, in order
	gone  bool   // the pump has exited
}

// feed is the subscription on one connection.
type feed struct {
	in   *client.Subscription
	sess *session
}

// Subscribe subscribes to dest and waits for the broker's receipt (on the
// next connection, if the connection is lost before it comes). ack is
// "auto" (or empty), "client" or "client-individual". The subscription id
// is the id header in headers, if any, else one unique to the client.
// A SUBSCRIBE the broker refuses gives an error wrapping ErrRefused.
func (c *Client) Subscribe(ctx context.Context, dest, ack string, headers ...stomp.Header) (*Subscription, error) {
	switch ack {
	case "":
		ack = "auto"
	case "auto", "client", "client-individual":
	default:
		return nil, fmt.Errorf("failover: SUBSCRIBE to %s: invalid ack mode %q", dest, ack)
	}
	seq := c.seq.Add(1)
	hs := slices.Clone(headers)
	id, ok := (&stomp.Frame{Headers: headers}).Lookup("id")
	if !ok {
		// Ours, so that it is the same on every connection.
		id = "fs" + strconv.FormatUint(seq, 10)
		hs = slices.Insert(hs, 0, stomp.Header{Key: "id", Value: id})
	}
	sub := &Subscription{
		c: c, id: id, dest: dest, ack: ack, headers: hs, seq: seq,
		ch:   make(chan *Message, chanSize),
		wake: make(chan struct{}, 1),
	}

	// Reserve the id; restore skips it until it is ready.
	c.mu.Lock()
	if err := c.usable(); err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("failover: SUBSCRIBE to %s: %w", dest, err)
	}
	if _, dup := c.subs[id]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("failover: SUBSCRIBE to %s: subscription id %q in use", dest, id)
	}
	c.subs[id] = sub
	c.mu.Unlock()

	for {
		s, err := c.acquire(ctx)
		if err != nil {
			c.dropSub(sub)
			return nil, fmt.Errorf("failover: SUBSCRIBE to %s: %w", dest, err)
		}
		in, err := s.conn.Subscribe(ctx, dest, ack, hs...)
		if err == nil {
			c.mu.Lock()
			if c.err != nil {
				err := c.err
				c.mu.Unlock()
				s.writers.Done()
				return nil, fmt.Errorf("failover: SUBSCRIBE to %s: %w", dest, err)
			}
			if !s.lost {
				sub.ready = true
				c.attach(sub, in, s)
				c.wg.Add(1) // under mu while the client runs: Close's Wait cannot have begun
				c.mu.Unlock()
				s.writers.Done()
				go sub.pump()
				return sub, nil
			}
			c.mu.Unlock()
		}
		s.writers.Done()
		if err != nil {
			if s.conn.Err() == nil {
				c.dropSub(sub) // ctx ended, or a local error
				return nil, fmt.Errorf("failover: SUBSCRIBE to %s: %w", dest, err)
			}
			if se := c.requestRefusal(s, err); se != nil {
				c.dropSub(sub)
				return nil, fmt.Errorf("failover: SUBSCRIBE to %s: %w: %w", dest, ErrRefused, se)
			}
		}
		// The connection was lost before or just after the receipt: the
		// broker forgot the subscription with it. Again on the next one.
	}
}

// requestRefusal decides whether err, which ended s while a request
// (SUBSCRIBE, BEGIN) waited for its receipt, is the broker refusing that
// request. transport/client does not say which receipt a request waited
// for, so this goes by elimination: an ERROR that names a receipt, does
// not say "not serving", and is not about a SEND of ours. A concurrent
// request on the same connection (another SUBSCRIBE, an AckReceipt) could
// still be the one refused.
func (c *Client) requestRefusal(s *session, err error) *client.ServerError {
	se := serverError(err)
	if se == nil || se.Frame.Get("receipt-id") == "" || says(se, notServingText) {
		return nil
	}
	// The watcher has settled every SEND on s once the supervisor has
	// retired it.
	select {
	case <-s.drained:
	case <-c.stop:
		return nil
	}
	if se.Frame.Get("receipt-id") == s.refusedSend() {
		return nil
	}
	return se
}

// attach makes in, sub's subscription on s, the one sub reads next.
// Called with mu.
func (c *Client) attach(sub *Subscription, in *client.Subscription, s *session) {
	sub.inner, sub.sess = in, s
	sub.feeds = append(sub.feeds, feed{in: in, sess: s})
	s.refs++
	sub.signal()
}

func (c *Client) dropSub(sub *Subscription) {
	c.mu.Lock()
	if c.subs[sub.id] == sub {
		delete(c.subs, sub.id)
	}
	c.mu.Unlock()
}

// endSub ends sub with err: it is not restored again, and C closes once
// the messages already received were taken.
func (c *Client) endSub(sub *Subscription, err error) {
	c.mu.Lock()
	if !sub.ended {
		sub.ended, sub.err = true, err
		if c.subs[sub.id] == sub {
			delete(c.subs, sub.id)
		}
	}
	c.mu.Unlock()
	sub.signal()
}

func (sub *Subscription) signal() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// pump moves messages from the connections' subscriptions to ch, one
// connection after the other, so that messages keep the order they
// arrived in across a failover. A connection's subscription is drained to
// its end even after the connection was lost: for auto acks the broker
// counts those messages as delivered.
func (sub *Subscription) pump() {
	c := sub.c
	defer c.wg.Done()
	defer close(sub.ch)
	for {
		c.mu.Lock()
		var f feed
		have := len(sub.feeds) > 0
		if have {
			f = sub.feeds[0]
			sub.feeds[0] = feed{}
			sub.feeds = sub.feeds[1:]
		}
		if !have && sub.ended {
			sub.gone = true
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if have {
			if !sub.drain(f) {
				return
			}
			c.release(f.sess)
			continue
		}
		select {
		case <-sub.wake:
		case <-c.stop:
			return
		}
	}
}

// drain passes f's messages on until its channel closes; false when the
// client was closed first.
func (sub *Subscription) drain(f feed) bool {
	stop := sub.c.stop
	for {
		select {
		case m, ok := <-f.in.C():
			if !ok {
				return true
			}
			select {
			case sub.ch <- &Message{Frame: m, sub: sub, sess: f.sess}:
			case <-stop:
				return false
			}
		case <-stop:
			return false
		}
	}
}

// ID returns the subscription id, the same on every connection.
func (sub *Subscription) ID() string { return sub.id }

// Destination returns the destination subscribed to.
func (sub *Subscription) Destination() string { return sub.dest }

// C returns the channel of messages, in the order received, across
// failovers. It is closed after Unsubscribe, when the broker refuses the
// subscription on a new connection, or when the client ends, once the
// messages already received have been taken; at once on Close.
func (sub *Subscription) C() <-chan *Message { return sub.ch }

// Err returns why the subscription ended other than by Unsubscribe: the
// broker refused it on a new connection, or the client ended. Nil while
// it lasts.
func (sub *Subscription) Err() error {
	sub.c.mu.Lock()
	defer sub.c.mu.Unlock()
	return sub.err
}

// Unsubscribe ends the subscription. On a connection in service it sends
// UNSUBSCRIBE (with headers) and waits for the receipt; messages received
// before it are still delivered on C. While the client is reconnecting
// there is nothing to send: the broker forgot the subscription with the
// connection. Except for a durable subscription (an
// activemq.subscriptionName header), which the broker keeps: Unsubscribe
// then waits for a connection (within the timeout option and ctx), and
// fails if that one is lost before the receipt.
func (sub *Subscription) Unsubscribe(ctx context.Context, headers ...stomp.Header) error {
	c := sub.c
	_, durable := (&stomp.Frame{Headers: headers}).Lookup("activemq.subscriptionName")
	var s *session
	if durable {
		var err error
		if s, err = c.acquire(ctx); err != nil {
			return fmt.Errorf("failover: UNSUBSCRIBE %s: %w", sub.id, err)
		}
	}
	c.mu.Lock()
	if sub.ended {
		err := sub.err
		c.mu.Unlock()
		if s != nil {
			s.writers.Done()
		}
		if err == nil {
			err = errors.New("already unsubscribed")
		}
		return fmt.Errorf("failover: UNSUBSCRIBE %s: %w", sub.id, err)
	}
	sub.ended = true
	if c.subs[sub.id] == sub {
		delete(c.subs, sub.id)
	}
	in, on := sub.inner, sub.sess
	live := on != nil && !on.lost && on == c.cur
	if s == nil && live {
		s = on
		s.writers.Add(1)
	}
	c.mu.Unlock()
	defer sub.signal()
	if s == nil {
		return nil // reconnecting: gone with the connection
	}
	defer s.writers.Done()
	if on != s || !live {
		// Durable, and restore attached it elsewhere: cannot happen while
		// s is in service, since restore completes before; be safe.
		return fmt.Errorf("failover: UNSUBSCRIBE %s: the connection changed; the durable subscription may remain", sub.id)
	}
	if err := in.Unsubscribe(ctx, headers...); err != nil {
		if s.conn.Err() != nil && !durable {
			return nil // lost with the connection all the same
		}
		if s.conn.Err() != nil {
			return fmt.Errorf("failover: UNSUBSCRIBE %s: connection lost before the receipt; the durable subscription may remain: %w", sub.id, err)
		}
		return fmt.Errorf("failover: UNSUBSCRIBE %s: %w", sub.id, err)
	}
	return nil
}

// Ack acknowledges msg, inside transaction tx unless tx is empty, on the
// connection that delivered it, without asking for a receipt. A message
// from a connection since lost gives ErrStaleMessage: the broker will
// redeliver it.
func (c *Client) Ack(msg *Message, tx string) error {
	return c.ack(nil, stomp.ACK, msg, tx)
}

// AckReceipt acknowledges msg as Ack does and waits for the receipt.
func (c *Client) AckReceipt(ctx context.Context, msg *Message, tx string) error {
	return c.ack(ctx, stomp.ACK, msg, tx)
}

// Nack rejects msg (STOMP 1.1 and later) as Ack acknowledges it.
func (c *Client) Nack(msg *Message, tx string) error {
	return c.ack(nil, stomp.NACK, msg, tx)
}

// NackReceipt rejects msg as Nack does and waits for the receipt.
func (c *Client) NackReceipt(ctx context.Context, msg *Message, tx string) error {
	return c.ack(ctx, stomp.NACK, msg, tx)
}

// ack sends an ACK or NACK; with a receipt when ctx is not nil.
func (c *Client) ack(ctx context.Context, cmd string, msg *Message, tx string) error {
	if msg == nil || msg.sess == nil {
		return fmt.Errorf("failover: %s: not a message of this client", cmd)
	}
	s := msg.sess
	mid := msg.Get("message-id")
	c.mu.Lock()
	if err := c.usable(); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("failover: %s %s: %w", cmd, mid, err)
	}
	if msg.sub.c != c {
		c.mu.Unlock()
		return fmt.Errorf("failover: %s %s: not a message of this client", cmd, mid)
	}
	if tx != "" {
		ts := c.txs[tx]
		switch {
		case ts == nil:
			c.mu.Unlock()
			return fmt.Errorf("failover: %s %s: transaction %q was not begun", cmd, mid, tx)
		case ts.lost:
			c.mu.Unlock()
			return fmt.Errorf("failover: %s %s in transaction %s: %w", cmd, mid, tx, ErrTxRolledBack)
		case ts != s:
			c.mu.Unlock()
			return fmt.Errorf("failover: %s %s in transaction %s: %w", cmd, mid, tx, ErrStaleMessage)
		}
	}
	lost := s.lost
	c.mu.Unlock()
	if lost || s.conn.Err() != nil {
		return fmt.Errorf("failover: %s %s: %w", cmd, mid, ErrStaleMessage)
	}

	var err error
	switch {
	case ctx == nil && cmd == stomp.ACK:
		err = s.conn.Ack(msg.Frame, tx)
	case ctx == nil:
		err = s.conn.Nack(msg.Frame, tx)
	case cmd == stomp.ACK:
		err = s.conn.AckReceipt(ctx, msg.Frame, tx)
	default:
		err = s.conn.NackReceipt(ctx, msg.Frame, tx)
	}
	switch {
	case err == nil:
		return nil
	case s.conn.Err() == nil:
		return fmt.Errorf("failover: %w", err)
	case tx != "":
		return fmt.Errorf("failover: %s %s in transaction %s: %w (%v)", cmd, mid, tx, ErrTxRolledBack, err)
	default:
		// Written or not, the broker redelivers the message unless it
		// processed the ACK before the connection went.
		return fmt.Errorf("failover: %s %s: %w (%v)", cmd, mid, ErrStaleMessage, err)
	}
}
