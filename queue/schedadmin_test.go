package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// TestListAndUnschedule: scheduled messages are listed earliest due
// first, found by job id, and removed through raft: a removed one never
// fires and stops counting.
func TestListAndUnschedule(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	later := schedMsg("/queue/jobs", "later", fsm.HeaderScheduledDelay, "7200000")
	sooner := schedMsg("/queue/jobs", "sooner", fsm.HeaderScheduledDelay, "3600000",
		fsm.HeaderScheduledPeriod, "60000", fsm.HeaderScheduledRepeat, "5")
	other := schedMsg("/topic/news", "other", fsm.HeaderScheduledDelay, "5400000")
	for _, m := range []*fsm.Message{later, sooner, other} {
		sendMsg(t, p, m, "")
	}
	list, total, err := e.ListScheduled("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if total != 3 || len(list) != 3 || list[0].JobID != sooner.ID || list[1].JobID != other.ID || list[2].JobID != later.ID {
		t.Fatalf("list %+v (total %d): want sooner, other, later", list, total)
	}
	if s := list[0]; s.Destination != "/queue/jobs" || s.PeriodMs != 60000 || s.Remaining != 5 || s.Fired != 0 || s.DueMs != sooner.Timestamp+3600000 {
		t.Errorf("sooner listed as %+v (sent at %d)", s, sooner.Timestamp)
	}
	if list, total, _ := e.ListScheduled("/queue/jobs", 1); total != 2 || len(list) != 1 || list[0].JobID != sooner.ID {
		t.Errorf("jobs, limit 1: %+v, total %d", list, total)
	}
	if s, err := e.FindScheduled(later.ID); err != nil || s.Destination != "/queue/jobs" {
		t.Errorf("find later: %+v, %v", s, err)
	}

	ctx := context.Background()
	if err := e.Unschedule(ctx, sooner.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.Unschedule(ctx, sooner.ID); !errors.Is(err, ErrNoSuchJob) {
		t.Errorf("removing it again: %v, want ErrNoSuchJob", err)
	}
	if _, err := e.FindScheduled(sooner.ID); !errors.Is(err, ErrNoSuchJob) {
		t.Errorf("find after removal: %v", err)
	}
	if st := e.Scheduled(); st.Pending != 2 {
		t.Errorf("scheduled stats after removal: %+v", st)
	}
	if _, total, _ := e.ListScheduled("", 0); total != 2 {
		t.Errorf("%d listed after removal", total)
	}
}

// TestUnscheduleWhileFiring: a job's fire is in raft when its removal is
// asked for. Usually the removal's OpAck is proposed behind the fire (the
// 50 ms below): the fire applies first and stores the job again for its
// next copy, which the engine removes too. Either way, after Unschedule
// returns the one copy already fired is all there is.
func TestUnscheduleWhileFiring(t *testing.T) {
	e, l := newEngine(t, Config{})
	p, _ := open(t, e, "")
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/tick", Ack: AckAuto})
	m := schedMsg("/queue/tick", "tick", fsm.HeaderScheduledDelay, "200",
		fsm.HeaderScheduledPeriod, "10", fsm.HeaderScheduledRepeat, "100")
	sendMsg(t, p, m, "")
	release := holdFire(t, e, l) // the fire, due in 200 ms, waits in the log
	removed := make(chan error, 1)
	go func() { removed <- e.Unschedule(context.Background(), m.ID) }()
	time.Sleep(50 * time.Millisecond) // its OpAck is proposed behind the fire
	close(release)
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	n := out.count()
	time.Sleep(200 * time.Millisecond) // 20 periods
	if after := out.count(); n != 1 || after != n {
		t.Errorf("%d copies when the removal returned, %d after; want the one that fired", n, after)
	}
	if _, total, _ := e.ListScheduled("", 0); total != 0 {
		t.Errorf("%d scheduled left", total)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.sched.entries) != 0 || e.sched.heap.Len() != 0 || len(e.sched.removing) != 0 {
		t.Errorf("mirror: %d entries, %d timers, %d removals", len(e.sched.entries), e.sched.heap.Len(), len(e.sched.removing))
	}
}

// holdFire holds l's applies until a scheduled entry's fire is proposed
// and waits in the log behind the hold; closing the channel it returns
// lets them go.
func holdFire(t *testing.T, e *Engine, l *fsmLog) chan struct{} {
	t.Helper()
	release := make(chan struct{})
	l.ch <- func() { <-release }
	deadline := time.Now().Add(5 * time.Second)
	for !firing(e) {
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the fire was never proposed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return release
}

// firing reports whether a scheduled entry's fire is proposed.
func firing(e *Engine) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.sched.entries {
		if x.firing {
			return true
		}
	}
	return false
}

// scanHookStore runs after once, when a read of the scheduled messages
// has ended: to let raft apply something between a removal's scan and
// what it does next.
type scanHookStore struct {
	Store
	after func()
}

func (h *scanHookStore) Messages(q string, from uint64, fn func(uint64, *fsm.Message) bool) error {
	err := h.Store.Messages(q, from, fn)
	if q == fsm.ScheduledQueue && h.after != nil {
		after := h.after
		h.after = nil
		after()
	}
	return err
}

// TestUnscheduleRepeatAfterScan: the job fires, and its repeat is stored,
// after the removal read the store and before it proposed anything. The
// removal was registered before the read, so the repeat is removed as it
// applies: nothing fires after Unschedule returns.
func TestUnscheduleRepeatAfterScan(t *testing.T) {
	e, _ := newEngine(t, Config{})
	hs := &scanHookStore{Store: e.store}
	e.store = hs
	p, _ := open(t, e, "")
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/tick", Ack: AckAuto})
	m := schedMsg("/queue/tick", "tick", fsm.HeaderScheduledDelay, "300",
		fsm.HeaderScheduledPeriod, "300", fsm.HeaderScheduledRepeat, "5")
	sendMsg(t, p, m, "")
	hs.after = func() { out.wait(t, 0) } // the first copy fired: the repeat is stored
	if err := e.Unschedule(context.Background(), m.ID); err != nil {
		t.Fatal(err)
	}
	n := out.count()
	time.Sleep(900 * time.Millisecond) // three periods
	if _, total, _ := e.ListScheduled("", 0); out.count() != n || total != 0 {
		t.Errorf("after the removal: %d copies then %d, %d still scheduled", n, out.count(), total)
	}
}

// failingLog fails the proposals fail picks, as a leader that lost its
// term does, and passes the others on.
type failingLog struct {
	Log
	fail func(cmds []fsm.Command) bool
}

func (l *failingLog) Propose(cmds []fsm.Command, done func([]fsm.Result, error)) {
	if l.fail(cmds) {
		go done(nil, errors.New("leadership lost"))
		return
	}
	l.Log.Propose(cmds, done)
}

// TestOverlappingRemovalsShareTheChase: two removals of one job are under
// way when its fire, already in raft, stores the next repeat. Removing
// that repeat fails (the leader lost its term): then neither removal
// reports success, and the repeat is back on the timer.
func TestOverlappingRemovalsShareTheChase(t *testing.T) {
	e, l := newEngine(t, Config{})
	var mu sync.Mutex
	acks := 0
	e.log = &failingLog{Log: l, fail: func(cmds []fsm.Command) bool {
		mu.Lock()
		defer mu.Unlock()
		if cmds[0].Op == fsm.OpAck && cmds[0].Queue == fsm.ScheduledQueue {
			acks++
			return acks == 3 // the two removals' own, then the chase
		}
		return false
	}}
	p, _ := open(t, e, "")
	m := schedMsg("/queue/tick", "tick", fsm.HeaderScheduledDelay, "200",
		fsm.HeaderScheduledPeriod, "60000", fsm.HeaderScheduledRepeat, "5")
	sendMsg(t, p, m, "")
	release := holdFire(t, e, l)
	results := make(chan error, 2)
	for range 2 {
		go func() { results <- e.Unschedule(context.Background(), m.ID) }()
	}
	time.Sleep(50 * time.Millisecond) // both proposed behind the fire
	close(release)
	for range 2 {
		if err := <-results; err == nil {
			t.Error("a removal reported success while the repeat's removal failed")
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.sched.entries) != 1 || e.sched.heap.Len() != 1 || len(e.sched.removing) != 0 {
		t.Errorf("mirror: %d entries, %d timers, %d removals; want the repeat back on the timer", len(e.sched.entries), e.sched.heap.Len(), len(e.sched.removing))
	}
}
