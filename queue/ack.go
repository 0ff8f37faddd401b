package queue

import "github.com/raftmq/raftmq/fsm"

// tx is an open transaction: its frames wait for COMMIT.
type tx struct {
	sends []*fsm.Message
	bytes int64 // of sends
	acks  []*Delivery
	nacks []*Delivery
}

func (t *tx) frames() int { return len(t.sends) + len(t.acks) + len(t.nacks) }

// tx returns the open transaction id with room for one more frame.
func (s *Session) tx(id string) (*tx, error) {
	t := s.txs[id]
	if t == nil {
		return nil, ErrUnknownTx
	}
	if t.frames() >= s.e.cfg.MaxTxFrames {
		return nil, ErrTooManyTxFrames
	}
	return t, nil
}

// find resolves an ACK/NACK reference to an unacknowledged delivery.
func (s *Session) find(r AckRef) *Delivery {
	var d *Delivery
	switch {
	case r.ID != "":
		d = s.deliveries[r.ID]
	case r.MessageID != "":
		d = s.byMsgID[r.MessageID]
		if d == nil || (r.Subscription != "" && d.Subscription != r.Subscription) {
			// The same message may be in flight twice (two subscriptions
			// to one topic): look through the subscriptions.
			d = nil
			for _, sub := range s.subs {
				if r.Subscription != "" && sub.id != r.Subscription {
					continue
				}
				for _, c := range sub.inflight[sub.head:] {
					if c.state == dInflight && c.Msg.ID == r.MessageID {
						d = c
						break
					}
				}
			}
		}
	}
	if d == nil || d.state != dInflight {
		return nil
	}
	return d
}

// Ack acknowledges a delivery; in client mode every earlier delivery of
// the subscription too. Outside a transaction done runs after the removal
// is applied.
func (s *Session) Ack(r AckRef, txID string, done func(error)) error {
	e := s.e
	e.mu.Lock()
	if err := s.usable(); err != nil {
		e.mu.Unlock()
		return err
	}
	d := s.find(r)
	if d == nil {
		e.mu.Unlock()
		return ErrUnknownAck
	}
	ds := []*Delivery{d}
	if d.sub.ack == AckClient {
		ds = d.sub.upTo(d)
	}
	for _, d := range ds {
		e.reached(d) // frames are written in order: all of them arrived
	}
	if txID != "" {
		t, err := s.tx(txID)
		if err == nil {
			for _, d := range ds {
				e.holdInTx(d)
			}
			t.acks = append(t.acks, ds...)
		}
		e.mu.Unlock()
		if err == nil {
			done(nil)
		}
		return err
	}
	touched := make(map[*destQueue]struct{})
	cmds := e.ackDeliveries(ds, touched)
	for q := range touched {
		e.dispatch(q)
	}
	e.mu.Unlock()
	e.proposeThen(cmds, done)
	return nil
}

// upTo lists the subscription's unacknowledged deliveries up to d.
func (s *subscription) upTo(d *Delivery) []*Delivery {
	var out []*Delivery
	for _, c := range s.inflight[s.head:] {
		if c.state == dInflight {
			out = append(out, c)
		}
		if c == d {
			break
		}
	}
	return out
}

// holdInTx parks a delivery in a transaction: it stops counting against
// prefetch, and COMMIT or ABORT decides its fate.
func (e *Engine) holdInTx(d *Delivery) {
	d.state = dInTx
	d.sub.unacked--
	e.dispatch(d.q)
}

// Nack rejects a delivery: it is redelivered, or dead-lettered once it was
// delivered MaxDeliveries times.
func (s *Session) Nack(r AckRef, txID string, done func(error)) error {
	e := s.e
	e.mu.Lock()
	if err := s.usable(); err != nil {
		e.mu.Unlock()
		return err
	}
	d := s.find(r)
	if d == nil {
		e.mu.Unlock()
		return ErrUnknownAck
	}
	e.reached(d)
	if txID != "" {
		t, err := s.tx(txID)
		if err == nil {
			e.holdInTx(d)
			t.nacks = append(t.nacks, d)
		}
		e.mu.Unlock()
		if err == nil {
			done(nil)
		}
		return err
	}
	cmds := e.release(d, "NACKed")
	e.dispatch(d.q)
	e.mu.Unlock()
	e.proposeThen(cmds, done)
	return nil
}

// Begin opens a transaction.
func (s *Session) Begin(id string) error {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if _, dup := s.txs[id]; dup {
		return ErrDuplicateTx
	}
	s.txs[id] = &tx{}
	return nil
}

// Commit applies a transaction's frames atomically: its persistent sends
// and acks, and the dead-lettering its NACKs cause, form one command batch,
// which the log keeps in one entry. done runs after it applied.
func (s *Session) Commit(id string, done func(error)) error {
	e := s.e
	e.mu.Lock()
	if err := s.usable(); err != nil {
		e.mu.Unlock()
		return err
	}
	t := s.txs[id]
	if t == nil {
		e.mu.Unlock()
		return ErrUnknownTx
	}
	// The non-persistent sends are routed after the commit applied: check
	// their memory now, so that the transaction fails whole or not at all.
	var memBytes int64
	for _, m := range t.sends {
		if !m.Persistent {
			memBytes += int64(m.Size())
		}
	}
	if e.npBytes+memBytes > e.cfg.NonPersistentBytes {
		e.mu.Unlock()
		return ErrMemoryLimit
	}
	delete(s.txs, id)

	// Each persistent send carries its own dedupe-id. One that is a
	// duplicate, of an earlier message or of an earlier send of this
	// transaction, is skipped and the rest applies: a client that replays
	// a transaction after a failover stores each message once.
	var cmds []fsm.Command
	var memory []*fsm.Message
	var topics []*topic
	for _, m := range t.sends {
		switch {
		case !m.Persistent:
			memory = append(memory, m)
		case isTopic(m.Destination):
			cmds = append(cmds, fsm.Command{Op: fsm.OpPublish, Topic: m.Destination, Msg: m, DedupeID: dedupeID(m)})
			tp := e.topic(m.Destination)
			tp.inRaft++
			topics = append(topics, tp)
		default:
			cmds = append(cmds, fsm.Command{Op: fsm.OpEnqueue, Queue: m.Destination, Msg: m, DedupeID: dedupeID(m)})
		}
	}
	touched := make(map[*destQueue]struct{})
	cmds = append(cmds, e.ackDeliveries(t.acks, touched)...)
	for _, d := range t.nacks {
		d.state = dInflight // release expects an unfinished delivery
		d.sub.unacked++
		cmds = append(cmds, e.release(d, "NACKed")...)
		touched[d.q] = struct{}{}
	}
	for q := range touched {
		e.dispatch(q)
	}
	e.mu.Unlock()

	finish := func(err error) {
		e.mu.Lock()
		for _, tp := range topics {
			tp.inRaft--
			e.gcTopic(tp)
		}
		if err == nil {
			err = e.sendMemory(memory)
		}
		e.mu.Unlock()
		done(err)
	}
	if len(cmds) == 0 {
		finish(nil)
		return nil
	}
	e.propose(cmds, func(_ []fsm.Result, err error) { finish(err) })
	return nil
}

// sendMemory routes committed non-persistent messages.
func (e *Engine) sendMemory(ms []*fsm.Message) error {
	for _, m := range ms {
		if !isTopic(m.Destination) {
			if err := e.enqueueMemory(m); err != nil {
				return err
			}
			continue
		}
		if t := e.topics[m.Destination]; t != nil {
			e.fanout(t, m, nil)
		}
	}
	return nil
}

// Abort discards a transaction's sends; the messages it acked or nacked
// become deliverable again.
func (s *Session) Abort(id string) error {
	e := s.e
	e.mu.Lock()
	if err := s.usable(); err != nil {
		e.mu.Unlock()
		return err
	}
	t := s.txs[id]
	if t == nil {
		e.mu.Unlock()
		return ErrUnknownTx
	}
	delete(s.txs, id)
	cmds := e.abort(t)
	e.mu.Unlock()
	if len(cmds) > 0 {
		e.propose(cmds, nil)
	}
	return nil
}

// abort returns a transaction's acked and nacked messages to their queues.
func (e *Engine) abort(t *tx) []fsm.Command {
	var cmds []fsm.Command
	touched := make(map[*destQueue]struct{})
	for _, ds := range [][]*Delivery{t.acks, t.nacks} {
		for _, d := range ds {
			if d.state != dInTx {
				continue
			}
			d.state = dInflight
			d.sub.unacked++
			cmds = append(cmds, e.release(d, "transaction aborted")...)
			touched[d.q] = struct{}{}
		}
	}
	for q := range touched {
		e.dispatch(q)
	}
	return cmds
}

func isTopic(dest string) bool {
	k, err := parseDest(dest)
	return err == nil && k == kindTopic
}
