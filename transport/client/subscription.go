package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/raftmq/raftmq/transport/stomp"
)

// chanSize is the buffer of a subscription's channel. Messages beyond it
// wait in an unbounded queue, so a slow consumer never stalls the read loop
// (and with it receipts and heart-beats); the broker's prefetch bounds the
// queue for client acks.
const chanSize = 256

// Subscription is one SUBSCRIBE on a Conn.
type Subscription struct {
	c    *Conn
	id   string
	dest string
	ch   chan *stomp.Frame

	mu    sync.Mutex
	queue []*stomp.Frame // received, not yet passed to ch
	ended bool           // nothing more will be queued
	wake  chan struct{}  // capacity 1: the pump has work
}

// Subscribe subscribes to dest and waits for the server's receipt. ack is
// "auto" (or empty), "client" or "client-individual". The subscription id is
// the id header given in headers, if any, else one unique in the Conn.
// Messages may arrive before Subscribe returns; none are lost.
func (c *Conn) Subscribe(ctx context.Context, dest, ack string, headers ...stomp.Header) (*Subscription, error) {
	switch ack {
	case "":
		ack = "auto"
	case "auto", "client", "client-individual":
	default:
		return nil, fmt.Errorf("client: SUBSCRIBE to %s: invalid ack mode %q", dest, ack)
	}
	f := &stomp.Frame{Command: stomp.SUBSCRIBE, Headers: make([]stomp.Header, 0, 4+len(headers))}
	id, ok := (&stomp.Frame{Headers: headers}).Lookup("id")
	if !ok {
		id = "s" + strconv.FormatUint(c.seq.Add(1), 10)
		f.Add("id", id)
	}
	f.Add("destination", dest)
	f.Add("ack", ack)
	f.Headers = append(f.Headers, headers...)

	s := &Subscription{
		c:    c,
		id:   id,
		dest: dest,
		ch:   make(chan *stomp.Frame, chanSize),
		wake: make(chan struct{}, 1),
	}
	// Registered before SUBSCRIBE is written: messages may precede the
	// receipt.
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("client: SUBSCRIBE to %s: %w", dest, c.err)
	}
	if _, dup := c.subs[id]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("client: SUBSCRIBE to %s: subscription id %q in use", dest, id)
	}
	c.subs[id] = s
	c.wg.Add(1) // under mu, so it cannot race with Close's Wait
	c.mu.Unlock()
	go s.pump()

	if err := c.request(ctx, f); err != nil {
		c.removeSub(s)
		if c.Err() == nil {
			// We gave up waiting, but the server may yet subscribe us; undo
			// it, or it would hold messages for a subscription nobody reads.
			_ = c.write(&stomp.Frame{Command: stomp.UNSUBSCRIBE, Headers: []stomp.Header{{Key: "id", Value: id}}})
		}
		return nil, fmt.Errorf("client: SUBSCRIBE to %s: %w", dest, err)
	}
	return s, nil
}

// ID returns the subscription id.
func (s *Subscription) ID() string { return s.id }

// Destination returns the destination subscribed to.
func (s *Subscription) Destination() string { return s.dest }

// C returns the channel of MESSAGE frames for this subscription, in the
// order received. It is closed after Unsubscribe or when the connection
// ends, once the messages already received have been taken, or at once on
// Close.
func (s *Subscription) C() <-chan *stomp.Frame { return s.ch }

// Unsubscribe ends the subscription and waits for the server's receipt.
// Messages received before the receipt are still delivered on C.
func (s *Subscription) Unsubscribe(ctx context.Context, headers ...stomp.Header) error {
	c := s.c
	c.mu.Lock()
	cur, ok := c.subs[s.id]
	err := c.err
	c.mu.Unlock()
	if !ok || cur != s {
		if err == nil {
			err = errors.New("already unsubscribed")
		}
		return fmt.Errorf("client: UNSUBSCRIBE %s: %w", s.id, err)
	}
	f := &stomp.Frame{Command: stomp.UNSUBSCRIBE, Headers: make([]stomp.Header, 0, 2+len(headers))}
	f.Add("id", s.id)
	f.Headers = append(f.Headers, headers...)
	err = c.request(ctx, f)
	c.removeSub(s)
	if err != nil {
		return fmt.Errorf("client: UNSUBSCRIBE %s: %w", s.id, err)
	}
	return nil
}

func (c *Conn) removeSub(s *Subscription) {
	c.mu.Lock()
	if c.subs[s.id] == s {
		delete(c.subs, s.id)
	}
	c.mu.Unlock()
	s.end()
}

// push queues a message; called by the read loop, it never blocks on the
// consumer.
func (s *Subscription) push(f *stomp.Frame) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, f)
	s.mu.Unlock()
	s.signal()
}

// end marks that no more messages will come; C closes once the queue is
// drained.
func (s *Subscription) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pump moves queued messages to the channel, taking the whole queue at a
// time and swapping buffers, so the read loop holds the lock only to append.
func (s *Subscription) pump() {
	defer s.c.wg.Done()
	defer close(s.ch)
	var batch []*stomp.Frame
	for {
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		ended := s.ended
		s.mu.Unlock()
		for i, f := range batch {
			select {
			case s.ch <- f:
			case <-s.c.stop:
				return
			}
			batch[i] = nil // the buffer is reused; do not pin delivered frames
		}
		if len(batch) > 0 {
			continue
		}
		if ended {
			return
		}
		select {
		case <-s.wake:
		case <-s.c.stop:
			return
		}
	}
}
