package queue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/raftmq/raftmq/fsm"
)

// The operator's actions on queues (the admin API's). Each one changes
// the engine's mirror first and then proposes the change, as an ack does:
// what the operator purged or moved is never delivered again meanwhile.
// If the proposal fails, leadership was lost and the next leader's engine
// loads the store, where the action did not happen.

// ErrNoSuchQueue is the error of an action on a queue the engine does not
// know.
var ErrNoSuchQueue = errors.New("no such queue")

// checkAdminQueue validates a queue named by an operator.
func checkAdminQueue(dest string) error {
	kind, err := parseDest(dest)
	if err != nil || kind != kindQueue {
		return fmt.Errorf("%w %q: want /queue/NAME", ErrBadDestination, dest)
	}
	return nil
}

// await proposes cmds and waits for them to apply, or for ctx.
func (e *Engine) await(ctx context.Context, cmds []fsm.Command) error {
	if len(cmds) == 0 {
		return nil
	}
	return awaitResult(ctx, e.proposeChan(cmds))
}

// proposeChan proposes cmds and returns where their outcome will be.
// Proposed with e.mu held, they come before whatever the engine proposes
// once it is free: a purge before the held sends its dropped messages
// made room for (flow.go), which must not be purged with them.
func (e *Engine) proposeChan(cmds []fsm.Command) <-chan error {
	done := make(chan error, 1)
	e.propose(cmds, func(_ []fsm.Result, err error) { done <- err })
	return done
}

// awaitResult waits for a proposal's outcome, or for ctx.
func awaitResult(ctx context.Context, done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("waiting for raft: %w", ctx.Err())
	}
}

// knownQueue returns the queue named dest, or ErrNoSuchQueue. Call with
// e.mu held.
func (e *Engine) knownQueue(dest string) (*destQueue, error) {
	if e.closed {
		return nil, ErrClosed
	}
	q := e.queues[dest]
	if q == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchQueue, dest)
	}
	return q, nil
}

// CreateQueue makes an empty queue that outlives leadership changes and
// restarts. It reports whether the queue is new to the engine; creating
// one that exists (in memory only, say, for a consumer) stores it.
func (e *Engine) CreateQueue(ctx context.Context, dest string) (created bool, err error) {
	if err := checkAdminQueue(dest); err != nil {
		return false, err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false, ErrClosed
	}
	created = e.queues[dest] == nil
	e.mu.Unlock()
	return created, e.await(ctx, []fsm.Command{{Op: fsm.OpCreateQueue, Queue: dest}})
}

// Purge deletes every message of a queue, in flight ones included (their
// acks will find nothing), and reports how many there were.
func (e *Engine) Purge(ctx context.Context, dest string) (int, error) {
	if err := checkAdminQueue(dest); err != nil {
		return 0, err
	}
	e.mu.Lock()
	q, err := e.knownQueue(dest)
	if err != nil {
		e.mu.Unlock()
		return 0, err
	}
	n := q.pendingCount()
	e.purge(q)
	done := e.proposeChan([]fsm.Command{{Op: fsm.OpPurge, Queue: dest}})
	e.mu.Unlock()
	return n, awaitResult(ctx, done)
}

// DeleteQueue deletes a queue and its messages. Its consumers stay
// subscribed to a queue of that name, which starts empty.
func (e *Engine) DeleteQueue(ctx context.Context, dest string) error {
	if err := checkAdminQueue(dest); err != nil {
		return err
	}
	e.mu.Lock()
	q, err := e.knownQueue(dest)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	e.purge(q)
	done := e.proposeChan([]fsm.Command{{Op: fsm.OpDeleteQueue, Queue: dest}})
	e.mu.Unlock()
	if err := awaitResult(ctx, done); err != nil {
		return err
	}
	// A queue the store never had (only non-persistent messages, or only
	// consumers) reports no change: forget it here.
	// Unless it got consumers, messages or sends meanwhile: one stored
	// after the delete would be forgotten with it.
	e.mu.Lock()
	if e.queues[dest] == q && q.idle() && len(q.refs) == 0 && q.pendingCount() == 0 {
		delete(e.queues, dest)
	}
	e.mu.Unlock()
	return nil
}

// BrowsedMessage is a stored message as Browse shows it.
type BrowsedMessage struct {
	Seq         uint64
	Msg         *fsm.Message // shared with the store's reader: read only
	InFlight    bool
	Redelivered bool
}

// maxBrowseBytes bounds the message bytes one Browse decodes: a page ends
// early rather than hold many large bodies at once.
const maxBrowseBytes = 8 << 20

// Browse returns up to limit stored messages of a queue with seq >= from,
// in store order, without consuming them, and the from of the next page
// (0 when there is none). Non-persistent messages are not listed: they are
// not stored.
func (e *Engine) Browse(dest string, from uint64, limit int) ([]BrowsedMessage, uint64, error) {
	if err := checkAdminQueue(dest); err != nil {
		return nil, 0, err
	}
	e.mu.Lock()
	_, err := e.knownQueue(dest)
	e.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	var page []BrowsedMessage
	var next uint64
	bytes := 0
	err = e.store.Messages(dest, from, func(seq uint64, m *fsm.Message) bool {
		if len(page) == limit || bytes >= maxBrowseBytes {
			next = seq
			return false
		}
		page = append(page, BrowsedMessage{Seq: seq, Msg: m})
		bytes += m.Size()
		return true
	})
	if err != nil {
		return nil, 0, fmt.Errorf("browse %s: %w", dest, err)
	}
	// Entries the engine dropped are acked (or moved) and on their way
	// out of the store: not shown.
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queues[dest]
	page = slices.DeleteFunc(page, func(b BrowsedMessage) bool { return q.refsOrNil(b.Seq) == nil })
	for i := range page {
		r := q.refs[page[i].Seq]
		page[i].InFlight = r.state == refInflight
		page[i].Redelivered = r.redelivered || r.deliveries > 0
	}
	return page, next, nil
}

// refsOrNil is q.refs[seq], nil for a nil q (deleted meanwhile).
func (q *destQueue) refsOrNil(seq uint64) *ref {
	if q == nil {
		return nil
	}
	return q.refs[seq]
}

// MaxMove bounds the messages one Move moves: one raft entry carries
// them, and every node reads and rewrites each one while applying it.
const MaxMove = 1000

// maxMoveBytes bounds the message bytes of one Move likewise; the first
// message always goes, however large.
const maxMoveBytes = 32 << 20

// MoveResult says what a Move did. Remaining counts the messages that
// were not looked at because of MaxMove: move again for them.
type MoveResult struct {
	Moved, Skipped, Remaining int
}

// Move moves stored messages of queue from that are not in flight to
// queue to, or, when to is empty, each back to the queue it was sent to
// (a dead-letter queue's messages to where they came from). seqs names
// the messages; nil means all, oldest first. At most MaxMove are looked
// at. Skipped counts messages in flight, gone, not stored, or with no
// queue to return to (a message a durable topic subscription
// dead-lettered).
func (e *Engine) Move(ctx context.Context, from, to string, seqs []uint64) (MoveResult, error) {
	var res MoveResult
	if err := checkAdminQueue(from); err != nil {
		return res, err
	}
	if to != "" {
		if err := checkAdminQueue(to); err != nil {
			return res, err
		}
		if to == from {
			return res, fmt.Errorf("%w: cannot move %s to itself", ErrBadDestination, from)
		}
	}
	e.mu.Lock()
	q, err := e.knownQueue(from)
	if err != nil {
		e.mu.Unlock()
		return res, err
	}
	if seqs == nil {
		for seq, r := range q.refs {
			if r.state == refPending {
				seqs = append(seqs, seq)
			}
		}
	}
	e.mu.Unlock()
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	if len(seqs) > MaxMove {
		seqs, res.Remaining = seqs[:MaxMove], len(seqs)-MaxMove
	}

	targets := make(map[uint64]string, len(seqs))
	for _, seq := range seqs {
		if to != "" {
			targets[seq] = to
			continue
		}
		// Where a message goes is in its body, in the store.
		err := e.store.Messages(from, seq, func(got uint64, m *fsm.Message) bool {
			if got == seq && m.Destination != from && checkAdminQueue(m.Destination) == nil {
				targets[seq] = m.Destination
			}
			return false
		})
		if err != nil {
			return res, fmt.Errorf("move from %s: %w", from, err)
		}
	}

	e.mu.Lock()
	byTarget := make(map[string][]uint64)
	size := 0
	for _, seq := range seqs {
		r := q.refs[seq]
		target, ok := targets[seq]
		if !ok || r == nil || r.state != refPending || e.queues[from] != q {
			res.Skipped++
			continue
		}
		if res.Moved > 0 && size+r.meta.Size > maxMoveBytes {
			res.Remaining++
			continue
		}
		size += r.meta.Size
		e.drop(q, r)
		byTarget[target] = append(byTarget[target], seq)
		res.Moved++
	}
	e.mu.Unlock()
	var cmds []fsm.Command
	for _, target := range slices.Sorted(maps.Keys(byTarget)) {
		cmds = append(cmds, fsm.Command{Op: fsm.OpMove, Queue: from, Seqs: byTarget[target], Target: target})
	}
	if err := e.await(ctx, cmds); err != nil {
		return MoveResult{}, err
	}
	return res, nil
}
