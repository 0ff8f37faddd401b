package failover

import (
	"fmt"
	"sync"

	"github.com/raftmq/raftmq/transport/client"
)

// session is one connection. It is in service from the end of its restore
// until it is lost; after that, it lingers until every subscription has
// taken the messages that arrived on it, then its Conn is closed.
type session struct {
	conn *client.Conn
	addr Addr

	// Under Client.mu.
	lost bool // out of service: nothing more is written for it
	refs int  // its own, plus one per subscription still draining it

	// writers counts operations writing SENDs to conn. Once lost is set
	// none starts, and the supervisor waits for those under way before
	// deciding which SENDs to resend, so none is written on both the old
	// and the new connection by two parties.
	writers sync.WaitGroup

	// The watcher's queue: SENDs written on conn, awaiting their receipts
	// in the order written.
	wmu     sync.Mutex
	queue   []watchItem
	closed  bool          // no more items: the session is lost
	refused string        // receipt id of a SEND the broker refused here
	wake    chan struct{} // capacity 1
	drained chan struct{} // closed when the watcher has settled every item
}

type watchItem struct {
	p *Receipt
	r *client.Receipt // the receipt on this connection
}

func newSession(conn *client.Conn, addr Addr) *session {
	return &session{
		conn:    conn,
		addr:    addr,
		refs:    1,
		wake:    make(chan struct{}, 1),
		drained: make(chan struct{}),
	}
}

func (s *session) enqueue(it watchItem) {
	s.wmu.Lock()
	s.queue = append(s.queue, it)
	s.wmu.Unlock()
	s.signal()
}

func (s *session) closeQueue() {
	s.wmu.Lock()
	s.closed = true
	s.wmu.Unlock()
	s.signal()
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// refusedSend returns the receipt id of the SEND the broker refused on
// this connection, if any. Meaningful once drained is closed.
func (s *session) refusedSend() string {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.refused
}

// watch settles the SENDs written on s as their receipts arrive, in the
// order written: one goroutine per connection rather than one per SEND.
// The broker receipts a connection's SENDs in about that order, so a
// receipt that arrives early waits little.
func (c *Client) watch(s *session) {
	defer c.wg.Done()
	defer close(s.drained)
	var batch []watchItem
	for {
		s.wmu.Lock()
		batch, s.queue = s.queue, batch[:0]
		closed := s.closed
		s.wmu.Unlock()
		for i, it := range batch {
			select {
			case <-it.r.Done():
			case <-c.stop:
				return
			}
			c.settle(s, it)
			batch[i] = watchItem{} // the buffer is reused; do not pin SENDs
		}
		if len(batch) > 0 {
			continue
		}
		if closed {
			return
		}
		select {
		case <-s.wake:
		case <-c.stop:
			return
		}
	}
}

// settle decides a SEND's fate from its receipt on s: receipted, refused
// (see refusal), or unknown, which leaves it pending for the next
// connection. A transactional SEND is never resent: the broker discards
// the transaction with the connection.
func (c *Client) settle(s *session, it watchItem) {
	p := it.p
	err := it.r.Err()
	if err == nil {
		c.finish(p, s, nil)
		return
	}
	if se := refusal(err, it.r.ID()); se != nil {
		s.wmu.Lock()
		s.refused = it.r.ID()
		s.wmu.Unlock()
		if p.tx != "" {
			c.finish(p, s, fmt.Errorf("failover: SEND to %s in transaction %s: %w: %w: %w", p.dest, p.tx, ErrTxRolledBack, ErrRefused, se))
		} else {
			c.finish(p, s, fmt.Errorf("failover: SEND to %s (dedupe-id %s): %w: %w", p.dest, p.id, ErrRefused, se))
		}
		return
	}
	if p.tx != "" {
		c.finish(p, s, fmt.Errorf("failover: SEND to %s in transaction %s: %w: %w", p.dest, p.tx, ErrTxRolledBack, err))
	}
	// Otherwise its fate is unknown; restore resends it.
}
