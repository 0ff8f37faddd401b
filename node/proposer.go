package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
)

// errProposerClosed is what proposals get once their leadership term is
// over. It wraps queue.ErrClosed: to the engine and the client this is
// "the broker stopped serving", whatever the cause.
var errProposerClosed = fmt.Errorf("group commit stopped: %w", queue.ErrClosed)

// applier is the part of *raft.Raft the proposer needs.
type applier interface {
	Apply(cmd []byte, timeout time.Duration) raft.ApplyFuture
	State() raft.RaftState
}

// shutdownPoll is how often a wait for an entry checks whether raft has
// shut down, which strands the futures still in its apply channel.
const shutdownPoll = 50 * time.Millisecond

// batchLimits bound one raft log entry and the pipeline.
type batchLimits struct {
	maxCommands int // commands in one entry (a larger single proposal goes alone)
	maxBytes    int // estimated encoded bytes in one entry (likewise)
	maxInflight int // entries handed to raft and not yet completed
}

// proposer implements queue.Log with group commit: the commands that
// sessions propose concurrently are gathered into one raft log entry, so
// one fsync and one replication round trip serve many of them, and several
// entries are in flight at once so raft can pipeline while the next batch
// gathers. There is no linger timer: an idle proposer sends a lone command
// at once, and batches form by themselves while earlier entries are in
// flight.
//
// A proposer lives for one leadership term. After Close every proposal
// fails with an error wrapping queue.ErrClosed and no new entry is
// started. An entry being handed to raft at the moment of Close may still
// commit, in a later term if this node leads again; that is harmless,
// since the next term's engine loads the state only after this proposer
// has drained.
type proposer struct {
	raft applier
	lim  batchLimits
	log  *slog.Logger
	// committed, if set, is told how long each entry took from raft.Apply
	// to applied (the commit latency metric).
	committed func(time.Duration)

	mu      sync.Mutex
	pending []proposal
	closed  bool

	wake     chan struct{} // capacity 1: pending became non-empty
	slots    chan struct{} // capacity maxInflight: one token per entry in raft
	inflight chan entry    // capacity maxInflight: run → complete, in log order
	stop     chan struct{}
	wg       sync.WaitGroup
}

// proposal is one Propose call.
type proposal struct {
	cmds []fsm.Command
	done func([]fsm.Result, error)
	size int // estimated encoded size of cmds
}

// entry is one raft log entry handed to raft and not yet completed.
type entry struct {
	future raft.ApplyFuture
	start  time.Time // handed to raft
	props  []proposal
	ncmds  int
}

var _ queue.Log = (*proposer)(nil)

// newProposer starts a proposer that applies entries through r. Close
// waits for the entries raft accepted: raft answers each of them (applied,
// or an error when leadership is lost), except those still in its buffered
// apply channel when raft shuts down, which wait gives up on.
func newProposer(r applier, lim batchLimits, log *slog.Logger) *proposer {
	p := &proposer{
		raft:     r,
		lim:      lim,
		log:      log,
		wake:     make(chan struct{}, 1),
		slots:    make(chan struct{}, lim.maxInflight),
		inflight: make(chan entry, lim.maxInflight),
		stop:     make(chan struct{}),
	}
	p.wg.Add(2)
	go p.run()
	go p.complete()
	return p
}

// Propose queues cmds for the next log entry. It never blocks (the engine
// calls it under its lock). The caller must not modify cmds afterwards.
// done is called exactly once, never from inside Propose: from the
// completion goroutine, from Close's caller for what was still pending,
// or from a goroutine of its own when the proposer is already closed.
func (p *proposer) Propose(cmds []fsm.Command, done func([]fsm.Result, error)) {
	pr := proposal{cmds: cmds, done: done, size: commandsSize(cmds)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		// Calling done here could deadlock an engine that holds its lock
		// around Propose and takes it again in done.
		go done(nil, errProposerClosed)
		return
	}
	p.pending = append(p.pending, pr)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Close fails every pending proposal, stops taking new ones, and waits
// until raft completed the entries in flight and their callbacks ran.
func (p *proposer) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	pending := p.pending
	p.pending = nil
	p.mu.Unlock()

	for _, pr := range pending {
		pr.done(nil, errProposerClosed)
	}
	close(p.stop)
	p.wg.Wait()
}

// run takes what is pending, up to the limits, and hands it to raft as one
// entry, keeping at most maxInflight entries in raft.
func (p *proposer) run() {
	defer p.wg.Done()
	defer close(p.inflight) // lets complete drain what is in flight and exit
	for {
		// Wait for a free slot before taking work, so proposals keep
		// gathering into the next batch while raft is busy.
		select {
		case p.slots <- struct{}{}:
		case <-p.stop:
			return
		}
		props, cmds := p.next()
		for props == nil {
			select {
			case <-p.wake:
			case <-p.stop:
				return
			}
			props, cmds = p.next()
		}
		// With no timeout Apply waits for room in raft's buffered apply
		// channel (meanwhile the next batch gathers), and fails at once
		// when raft has shut down. See raftConfig on BatchApplyCh.
		start := time.Now()
		f := p.raft.Apply(fsm.EncodeBatch(cmds), 0)
		p.inflight <- entry{future: f, start: start, props: props, ncmds: len(cmds)}
	}
}

// next removes the proposals for one entry from the pending list and
// returns them with their commands concatenated; nil when nothing is
// pending.
func (p *proposer) next() ([]proposal, []fsm.Command) {
	p.mu.Lock()
	if p.closed { // Close failed what was pending: start nothing more
		p.mu.Unlock()
		return nil, nil
	}
	var n, size, i int
	for ; i < len(p.pending); i++ {
		pr := &p.pending[i]
		// The first proposal always goes, however large: it cannot be
		// split, and waiting would not make it smaller.
		if i > 0 && (n+len(pr.cmds) > p.lim.maxCommands || size+pr.size > p.lim.maxBytes) {
			break
		}
		n += len(pr.cmds)
		size += pr.size
	}
	props := p.pending[:i:i]
	if i == len(p.pending) {
		p.pending = nil
	} else {
		p.pending = p.pending[i:]
	}
	p.mu.Unlock()

	if len(props) == 0 {
		return nil, nil
	}
	cmds := make([]fsm.Command, 0, n)
	for _, pr := range props {
		cmds = append(cmds, pr.cmds...)
	}
	return props, cmds
}

// complete waits for the entries in the order they went to raft (raft
// completes them in that order) and calls their proposals' callbacks.
func (p *proposer) complete() {
	defer p.wg.Done()
	for e := range p.inflight {
		results, err := p.wait(e)
		if err == nil && p.committed != nil {
			p.committed(time.Since(e.start))
		}
		<-p.slots // the next entry may go while callbacks run
		off := 0
		for _, pr := range e.props {
			n := len(pr.cmds)
			if err != nil {
				pr.done(nil, err)
			} else {
				pr.done(results[off:off+n:off+n], nil)
			}
			off += n
		}
	}
}

// wait returns the results of e's commands, or why they may not have been
// applied.
func (p *proposer) wait(e entry) ([]fsm.Result, error) {
	if err := p.futureError(e.future); err != nil {
		return nil, applyError(err)
	}
	switch resp := e.future.Response().(type) {
	case []fsm.Result:
		if len(resp) != e.ncmds {
			err := fmt.Errorf("fsm returned %d results for %d commands", len(resp), e.ncmds)
			p.log.Error("group commit: bad apply response", "index", e.future.Index(), "err", err)
			return nil, err
		}
		return resp, nil
	case error:
		return nil, fmt.Errorf("fsm apply at index %d: %w", e.future.Index(), resp)
	default:
		err := fmt.Errorf("fsm returned %T, want []fsm.Result", resp)
		p.log.Error("group commit: bad apply response", "index", e.future.Index(), "err", err)
		return nil, err
	}
}

// futureError waits for f (see waitFuture).
func (p *proposer) futureError(f raft.ApplyFuture) error {
	return waitFuture(context.Background(), nil, p.raft.State, f)
}

// waitFuture waits for f, ctx or stop (nil: none). Raft never answers a
// future still in its buffered apply channel when it shuts down, so the
// wait also ends, with raft.ErrRaftShutdown, when raft is found shut
// down; the goroutine blocked on such a future is then left behind (a
// few, once, when raft stops on its own, e.g. after being removed from
// the group). A closed stop gives ErrClosed.
func waitFuture(ctx context.Context, stop <-chan struct{}, state func() raft.RaftState, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	tick := time.NewTicker(shutdownPoll)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if state() == raft.Shutdown {
				return raft.ErrRaftShutdown
			}
		case <-stop:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errOutcomeUnknown says what a client must do about a command whose
// leader went away while committing it.
var errOutcomeUnknown = errors.New("the operation may or may not have been stored (raft lost leadership before it committed); resend SENDs with the same dedupe-id header")

// applyError turns raft's errors into ours. Those that mean "this node is
// not (or no longer) the leader" also wrap queue.ErrClosed, which the
// engine already treats as "not serving"; the raft cause stays visible to
// errors.Is and in the message.
func applyError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Refused before it reached the log: nothing was stored.
		return fmt.Errorf("%w: raft: %w", queue.ErrClosed, err)
	case errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrRaftShutdown):
		// The entry may be in logs that the next leader commits: the
		// client must not take the error as "not stored".
		return fmt.Errorf("%w: %w: %w", queue.ErrClosed, errOutcomeUnknown, err)
	default:
		return fmt.Errorf("raft apply: %w", err)
	}
}

// commandsSize estimates the encoded size of cmds, to keep entries near
// MaxBatchBytes. It need not be exact, only proportional.
func commandsSize(cmds []fsm.Command) int {
	n := 0
	for i := range cmds {
		c := &cmds[i]
		n += 16 + len(c.Queue) + len(c.Topic) + len(c.Target) + len(c.Reason) + 10*len(c.Seqs)
		if c.Msg != nil {
			n += c.Msg.Size()
		}
		if d := c.Durable; d != nil {
			n += len(d.ClientID) + len(d.Name) + len(d.Topic) + len(d.Selector) + 8
		}
	}
	return n
}
