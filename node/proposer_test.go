package node

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
)

func mustDecode(b []byte) []fsm.Command {
	cmds, err := fsm.DecodeBatch(b)
	if err != nil {
		panic(err)
	}
	return cmds
}

// echoFSM answers each command with Result{Seq: Seqs[0]}, so a callback
// can tell its own results from anyone else's.
type echoFSM struct {
	mu       sync.Mutex
	entries  int
	commands int
}

func (f *echoFSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *echoFSM) ApplyBatch(logs []*raft.Log) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]any, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		cmds := mustDecode(l.Data)
		res := make([]fsm.Result, len(cmds))
		for j, c := range cmds {
			res[j].Seq = c.Seqs[0]
		}
		f.entries++
		f.commands += len(cmds)
		out[i] = res
	}
	return out
}

func (f *echoFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("not supported") }
func (f *echoFSM) Restore(io.ReadCloser) error         { return errors.New("not supported") }

// newInmemRaft starts one raft node on an in-memory transport; bootstrap
// makes it the single voter of its group, so it becomes leader.
func newInmemRaft(t *testing.T, f raft.FSM, bootstrap bool) *raft.Raft {
	t.Helper()
	conf := raft.DefaultConfig()
	conf.LocalID = "t1"
	ShortRaftTimeouts().apply(conf)
	conf.BatchApplyCh = true // as the node runs it (see raftConfig)
	conf.Logger = newHCLogger(testLogger(t), "raft")
	store := raft.NewInmemStore()
	snaps := raft.NewInmemSnapshotStore()
	addr, trans := raft.NewInmemTransport("")
	if bootstrap {
		servers := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: addr}}}
		if err := raft.BootstrapCluster(conf, store, store, snaps, trans, servers); err != nil {
			t.Fatalf("bootstrap: %v", err)
		}
	}
	r, err := raft.NewRaft(conf, f, store, store, snaps, trans)
	if err != nil {
		t.Fatalf("new raft: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("raft shutdown: %v", err)
		}
	})
	if bootstrap {
		waitFor(t, 5*time.Second, "leadership", func() bool { return r.State() == raft.Leader })
	}
	return r
}

var defaultTestLimits = batchLimits{maxCommands: 1024, maxBytes: 4 << 20, maxInflight: 8}

func TestProposerGroupCommit(t *testing.T) {
	f := &echoFSM{}
	r := newInmemRaft(t, f, true)
	p := newProposer(r, defaultTestLimits, testLogger(t))

	const workers, perWorker = 32, 100
	var (
		next      atomic.Uint64
		calls     atomic.Int64
		proposals = workers * perWorker
		totalCmds atomic.Int64
		wg        sync.WaitGroup
		errs      = make(chan error, proposals)
	)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < perWorker; i++ {
				wg.Add(1)
				// 1 to 3 commands, each tagged with a unique id the
				// echoFSM hands back.
				cmds := make([]fsm.Command, 1+i%3)
				for j := range cmds {
					cmds[j] = fsm.Command{Op: fsm.OpAck, Queue: "/queue/q", Seqs: []uint64{next.Add(1)}}
				}
				totalCmds.Add(int64(len(cmds)))
				var once atomic.Bool
				p.Propose(cmds, func(res []fsm.Result, err error) {
					defer wg.Done()
					calls.Add(1)
					if !once.CompareAndSwap(false, true) {
						errs <- errors.New("callback called twice")
						return
					}
					if err != nil {
						errs <- err
						return
					}
					if len(res) != len(cmds) {
						errs <- fmt.Errorf("got %d results for %d commands", len(res), len(cmds))
						return
					}
					for j := range cmds {
						if res[j].Seq != cmds[j].Seqs[0] {
							errs <- fmt.Errorf("result %d is %d, want %d", j, res[j].Seq, cmds[j].Seqs[0])
						}
					}
				})
			}
		}()
	}
	waitFor(t, 10*time.Second, "every callback", func() bool { return calls.Load() == int64(proposals) })
	wg.Wait()
	p.Close()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if f.commands != int(totalCmds.Load()) {
		t.Errorf("fsm applied %d commands, want %d", f.commands, totalCmds.Load())
	}
	if f.entries >= proposals {
		t.Errorf("no batching: %d entries for %d proposals", f.entries, proposals)
	}
	t.Logf("%d proposals (%d commands) in %d log entries", proposals, totalCmds.Load(), f.entries)
}

func TestProposerRaftShutdown(t *testing.T) {
	// Raft shutting down under a busy proposer (as when a removed leader
	// shuts itself down) must still answer every proposal, so Close
	// returns instead of waiting for ever.
	r := newInmemRaft(t, &echoFSM{}, true)
	p := newProposer(r, defaultTestLimits, testLogger(t))

	const workers, perWorker = 8, 200
	var calls atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				p.Propose(tagged(uint64(i)), func([]fsm.Result, error) { calls.Add(1) })
			}
		}()
	}
	time.Sleep(time.Millisecond) // let some entries reach raft
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs after raft shut down")
	}
	if got := calls.Load(); got != workers*perWorker {
		t.Fatalf("%d callbacks for %d proposals", got, workers*perWorker)
	}
}

func TestProposerNotLeader(t *testing.T) {
	// Never bootstrapped: it stays a follower and refuses every Apply.
	r := newInmemRaft(t, &echoFSM{}, false)
	p := newProposer(r, defaultTestLimits, testLogger(t))
	defer p.Close()

	const n = 50
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		p.Propose([]fsm.Command{{Op: fsm.OpPurge, Queue: "/queue/q", Seqs: []uint64{1}}}, func(res []fsm.Result, err error) {
			if res != nil {
				err = fmt.Errorf("results %v with error %v", res, err)
			}
			errs <- err
		})
	}
	for i := 0; i < n; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, raft.ErrNotLeader) || !errors.Is(err, queue.ErrClosed) {
				t.Fatalf("err = %v, want raft.ErrNotLeader and queue.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d callbacks called", i, n)
		}
	}
}

// fakeRaft hands out futures the test completes by hand.
type fakeRaft struct {
	applied chan *fakeFuture
}

type fakeFuture struct {
	cmds []fsm.Command
	done chan struct{}
	err  error
	resp any
}

// State reports a running leader: the fake never shuts down.
func (r *fakeRaft) State() raft.RaftState { return raft.Leader }

func (f *fakeFuture) Error() error  { <-f.done; return f.err }
func (f *fakeFuture) Response() any { <-f.done; return f.resp }
func (f *fakeFuture) Index() uint64 { return 0 }

// complete answers every command with its tag, as echoFSM does.
func (f *fakeFuture) complete() {
	res := make([]fsm.Result, len(f.cmds))
	for i, c := range f.cmds {
		res[i].Seq = c.Seqs[0]
	}
	f.resp = res
	close(f.done)
}

func (f *fakeFuture) fail(err error) { f.err = err; close(f.done) }

func (r *fakeRaft) Apply(b []byte, _ time.Duration) raft.ApplyFuture {
	f := &fakeFuture{cmds: mustDecode(b), done: make(chan struct{})}
	r.applied <- f
	return f
}

func (r *fakeRaft) next(t *testing.T) *fakeFuture {
	t.Helper()
	select {
	case f := <-r.applied:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no entry applied")
		return nil
	}
}

func (r *fakeRaft) none(t *testing.T) {
	t.Helper()
	select {
	case f := <-r.applied:
		t.Fatalf("unexpected entry with %d commands", len(f.cmds))
	case <-time.After(20 * time.Millisecond):
	}
}

func tagged(ids ...uint64) []fsm.Command {
	cmds := make([]fsm.Command, len(ids))
	for i, id := range ids {
		cmds[i] = fsm.Command{Op: fsm.OpAck, Queue: "/queue/q", Seqs: []uint64{id}}
	}
	return cmds
}

// recorder collects callback outcomes by proposal name.
type recorder struct {
	mu  sync.Mutex
	got map[string][]any
}

func (r *recorder) cb(name string) func([]fsm.Result, error) {
	return func(res []fsm.Result, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.got == nil {
			r.got = make(map[string][]any)
		}
		if err != nil {
			r.got[name] = append(r.got[name], err)
		} else {
			// Only what the proposer decides: seq and error per result.
			parts := make([]string, len(res))
			for i, x := range res {
				parts[i] = fmt.Sprintf("{%d %v}", x.Seq, x.Err)
			}
			r.got[name] = append(r.got[name], "["+strings.Join(parts, " ")+"]")
		}
	}
}

func (r *recorder) calls(name string) []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[name]
}

func seqs(cmds []fsm.Command) []uint64 {
	var s []uint64
	for _, c := range cmds {
		s = append(s, c.Seqs[0])
	}
	return s
}

func TestProposerBatchLimits(t *testing.T) {
	fr := &fakeRaft{applied: make(chan *fakeFuture, 16)}
	one := commandsSize(tagged(1))
	lim := batchLimits{maxCommands: 4, maxBytes: 3 * one, maxInflight: 1}
	p := newProposer(fr, lim, testLogger(t))
	defer p.Close()
	var rec recorder

	// An idle proposer sends a lone command at once.
	p.Propose(tagged(1), rec.cb("a"))
	first := fr.next(t)
	if got := seqs(first.cmds); fmt.Sprint(got) != "[1]" {
		t.Fatalf("first entry = %v, want [1]", got)
	}

	// With the only slot taken, proposals gather.
	p.Propose(tagged(2, 3), rec.cb("b"))
	p.Propose(tagged(4), rec.cb("c"))
	p.Propose(tagged(5), rec.cb("d"))                // over maxBytes with b and c
	p.Propose(tagged(6, 7, 8, 9, 10), rec.cb("big")) // over both limits alone
	p.Propose(tagged(11), rec.cb("e"))
	fr.none(t)

	first.complete()
	for _, want := range []string{"[2 3 4]", "[5]", "[6 7 8 9 10]", "[11]"} {
		f := fr.next(t)
		if got := fmt.Sprint(seqs(f.cmds)); got != want {
			t.Fatalf("entry = %v, want %v", got, want)
		}
		fr.none(t) // one in flight at a time
		f.complete()
	}
	waitFor(t, 5*time.Second, "last callback", func() bool { return len(rec.calls("e")) == 1 })
	for name, want := range map[string]string{
		"a": "[{1 <nil>}]", "b": "[{2 <nil>} {3 <nil>}]", "c": "[{4 <nil>}]", "d": "[{5 <nil>}]",
		"big": "[{6 <nil>} {7 <nil>} {8 <nil>} {9 <nil>} {10 <nil>}]", "e": "[{11 <nil>}]",
	} {
		calls := rec.calls(name)
		if len(calls) != 1 || fmt.Sprint(calls[0]) != want {
			t.Errorf("%s: calls = %v, want [%s]", name, calls, want)
		}
	}
}

func TestProposerInflightBound(t *testing.T) {
	fr := &fakeRaft{applied: make(chan *fakeFuture, 16)}
	lim := batchLimits{maxCommands: 1, maxBytes: 1 << 20, maxInflight: 3}
	p := newProposer(fr, lim, testLogger(t))
	defer p.Close()
	var rec recorder
	for i := uint64(1); i <= 5; i++ {
		p.Propose(tagged(i), rec.cb(fmt.Sprint(i)))
	}
	var inflight []*fakeFuture
	for i := 0; i < 3; i++ {
		inflight = append(inflight, fr.next(t))
	}
	fr.none(t)
	inflight[0].complete()
	inflight = append(inflight, fr.next(t))
	fr.none(t)
	for _, f := range inflight[1:] {
		f.complete()
	}
	fr.next(t).complete()
	waitFor(t, 5*time.Second, "all callbacks", func() bool { return len(rec.calls("5")) == 1 })
}

func TestProposerErrors(t *testing.T) {
	fr := &fakeRaft{applied: make(chan *fakeFuture, 16)}
	lim := batchLimits{maxCommands: 100, maxBytes: 1 << 20, maxInflight: 1}
	p := newProposer(fr, lim, testLogger(t))
	defer p.Close()
	var rec recorder

	p.Propose(tagged(1), rec.cb("first"))
	first := fr.next(t)
	p.Propose(tagged(2), rec.cb("x"))
	p.Propose(tagged(3, 4), rec.cb("y"))
	first.complete()
	// A raft error reaches every proposal of the entry.
	fr.next(t).fail(raft.ErrLeadershipLost)

	// So does a response that does not match the commands (an FSM bug).
	p.Propose(tagged(5, 6), rec.cb("short"))
	f := fr.next(t)
	f.resp = []fsm.Result{{Seq: 5}}
	close(f.done)

	// And an error the FSM returns for the whole entry.
	p.Propose(tagged(7), rec.cb("fsmerr"))
	f = fr.next(t)
	f.resp = errors.New("corrupt entry")
	close(f.done)

	waitFor(t, 5*time.Second, "callbacks", func() bool { return len(rec.calls("fsmerr")) == 1 })
	for _, name := range []string{"x", "y"} {
		calls := rec.calls(name)
		if len(calls) != 1 {
			t.Fatalf("%s called %d times", name, len(calls))
		}
		err, _ := calls[0].(error)
		if !errors.Is(err, raft.ErrLeadershipLost) || !errors.Is(err, queue.ErrClosed) {
			t.Errorf("%s: err = %v, want ErrLeadershipLost and ErrClosed", name, calls[0])
		}
	}
	if calls := rec.calls("short"); len(calls) != 1 {
		t.Errorf("short: calls = %v", calls)
	} else if _, ok := calls[0].(error); !ok {
		t.Errorf("short: got %v, want an error", calls[0])
	}
	if calls := rec.calls("fsmerr"); len(calls) != 1 {
		t.Errorf("fsmerr: calls = %v", calls)
	} else if err, _ := calls[0].(error); err == nil || errors.Is(err, queue.ErrClosed) {
		t.Errorf("fsmerr: got %v, want the FSM's error", calls[0])
	}
}

func TestProposerClose(t *testing.T) {
	fr := &fakeRaft{applied: make(chan *fakeFuture, 16)}
	lim := batchLimits{maxCommands: 100, maxBytes: 1 << 20, maxInflight: 1}
	p := newProposer(fr, lim, testLogger(t))
	var rec recorder

	p.Propose(tagged(1), rec.cb("inflight"))
	f := fr.next(t)
	p.Propose(tagged(2), rec.cb("pending1"))
	p.Propose(tagged(3), rec.cb("pending2"))

	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	// Close fails what is pending at once but waits for what raft holds.
	waitFor(t, 5*time.Second, "pending failed", func() bool { return len(rec.calls("pending2")) == 1 })
	select {
	case <-closed:
		t.Fatal("Close returned with an entry in flight")
	case <-time.After(20 * time.Millisecond):
	}
	f.complete()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	fr.none(t)

	if calls := rec.calls("inflight"); len(calls) != 1 || fmt.Sprint(calls[0]) != "[{1 <nil>}]" {
		t.Errorf("inflight: calls = %v", calls)
	}
	for _, name := range []string{"pending1", "pending2"} {
		calls := rec.calls(name)
		if len(calls) != 1 {
			t.Fatalf("%s called %d times", name, len(calls))
		}
		if err, _ := calls[0].(error); !errors.Is(err, queue.ErrClosed) {
			t.Errorf("%s: got %v, want ErrClosed", name, calls[0])
		}
	}

	// After Close: an error, asynchronously, and nothing reaches raft.
	done := make(chan error, 1)
	p.Propose(tagged(4), func(_ []fsm.Result, err error) { done <- err })
	select {
	case err := <-done:
		if !errors.Is(err, queue.ErrClosed) {
			t.Errorf("after Close: err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("callback after Close not called")
	}
	fr.none(t)
	p.Close() // idempotent
}
