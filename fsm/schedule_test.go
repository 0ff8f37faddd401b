package fsm

import (
	"errors"
	"reflect"
	"testing"
)

// scheduledMsg is a message as the leader stores it in ScheduledQueue.
func scheduledMsg(id, dest, body string, s Schedule, headers ...string) *Message {
	m := testMessage(id, dest, body, headers...)
	SetSchedule(m, s)
	return m
}

func schedule(m *Message) Command {
	return Command{Op: OpEnqueue, Queue: ScheduledQueue, Msg: m}
}

func fire(seq uint64, due int64) Command {
	return Command{Op: OpFire, Queue: ScheduledQueue, Seqs: []uint64{seq}, Due: due}
}

// only returns the single message of queue in d.
func only(t *testing.T, d *dump, queue string) entry {
	t.Helper()
	if es := d.Entries[queue]; len(es) != 1 {
		t.Fatalf("%s holds %d entries, want 1:\n%v", queue, len(es), d)
	}
	return d.Entries[queue][0]
}

func headerOf(m *Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}

func TestFireOnce(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)
	m := scheduledMsg("ID:x-1", "/queue/a", "hello", Schedule{Due: 1_700_000_005_000},
		"k", "v", HeaderScheduledDelay, "5000")
	seq := h.mustApply(schedule(m))[0].Seq
	rec.take()

	d := dumpFSM(t, h.f)
	if e := only(t, d, ScheduledQueue); e.Meta.Due != 1_700_000_005_000 {
		t.Fatalf("scheduled entry's meta: %+v, want its due time", e.Meta)
	}

	// A fire for another due time is stale: nothing happens.
	h.mustApply(fire(seq, 1_700_000_004_999))
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("stale fire changed something: %+v", got)
	}
	sameState(t, dumpFSM(t, h.f), d)

	h.mustApply(fire(seq, 1_700_000_005_000))
	want := testMessage("ID:x-1", "/queue/a", "hello", "k", "v", HeaderScheduledJobID, "ID:x-1")
	sameChanges(t, rec.take(), []Change{
		{Kind: Removed, Queue: ScheduledQueue, Seq: seq},
		{Kind: Enqueued, Queue: "/queue/a", Seq: seq + 1, Msg: want},
	})
	after := dumpFSM(t, h.f)
	if len(after.Entries[ScheduledQueue]) != 0 {
		t.Fatalf("fired entry still scheduled:\n%v", after)
	}
	if e := only(t, after, "/queue/a"); !reflect.DeepEqual(e.Msg, want) || e.Meta.Due != 0 {
		t.Fatalf("copy = %+v (meta %+v), want %+v", e.Msg, e.Meta, want)
	}

	// The same fire again (a duplicate, or the old leader's): a no-op.
	h.mustApply(fire(seq, 1_700_000_005_000))
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("second fire changed something: %+v", got)
	}
	sameState(t, dumpFSM(t, h.f), after)
}

func TestFireRepeats(t *testing.T) {
	h := newHarness(t)
	m := scheduledMsg("ID:r", "/queue/a", "tick", Schedule{Due: 1000, Period: 100, Remaining: 2},
		HeaderScheduledPeriod, "100", HeaderScheduledRepeat, "2")
	seq := h.mustApply(schedule(m))[0].Seq

	var ids []string
	due := int64(1000)
	for i := range 3 {
		h.mustApply(fire(seq, due))
		// A repeat of the fire just applied finds the entry rescheduled
		// under a new seq: nothing happens.
		before := dumpFSM(t, h.f)
		h.mustApply(fire(seq, due))
		sameState(t, dumpFSM(t, h.f), before)

		es := before.Entries["/queue/a"]
		cp := es[len(es)-1].Msg
		ids = append(ids, cp.ID)
		if _, ok := headerOf(cp, HeaderScheduledPeriod); ok {
			t.Fatalf("copy %d keeps %s: %q", i, HeaderScheduledPeriod, cp.Headers)
		}
		if _, ok := headerOf(cp, HeaderSchedule); ok {
			t.Fatalf("copy %d keeps the internal schedule: %q", i, cp.Headers)
		}
		if job, _ := headerOf(cp, HeaderScheduledJobID); job != "ID:r" {
			t.Fatalf("copy %d: job id %q", i, job)
		}
		left := before.Entries[ScheduledQueue]
		if i == 2 {
			if len(left) != 0 {
				t.Fatalf("after the last copy still scheduled:\n%v", before)
			}
			break
		}
		e := only(t, before, ScheduledQueue)
		s, ok := ScheduleOf(e.Msg)
		due += 100
		if !ok || s != (Schedule{Due: due, Period: 100, Remaining: int64(1 - i), Fired: int64(i + 1)}) || e.Meta.Due != due {
			t.Fatalf("after copy %d: schedule %+v (meta due %d)", i, s, e.Meta.Due)
		}
		seq = e.Seq
	}
	if want := []string{"ID:r:1", "ID:r:2", "ID:r:3"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("copy ids %q, want %q", ids, want)
	}
}

func TestFireToTopic(t *testing.T) {
	h := newHarness(t)
	d := Durable{ClientID: "c", Name: "s", Topic: "/topic/t"}
	h.mustApply(Command{Op: OpSubscribe, Durable: &d})
	rec := attach(t, h.f)
	m := scheduledMsg("ID:t", "/topic/t", "news", Schedule{Due: 50})
	seq := h.mustApply(schedule(m))[0].Seq
	rec.take()
	h.mustApply(fire(seq, 50))
	want := testMessage("ID:t", "/topic/t", "news", HeaderScheduledJobID, "ID:t")
	sameChanges(t, rec.take(), []Change{
		{Kind: Removed, Queue: ScheduledQueue, Seq: seq},
		{Kind: Published, Queue: "/topic/t", Msg: want},
		{Kind: Enqueued, Queue: d.Queue(), Seq: seq + 1, Msg: want},
	})
}

func TestFireKeepsTimeToLive(t *testing.T) {
	h := newHarness(t)
	m := scheduledMsg("ID:e", "/queue/a", "x", Schedule{Due: 1_700_000_060_000})
	m.Expires = m.Timestamp + 10_000 // 10 s to live
	plain := scheduledMsg("ID:p", "/queue/a", "y", Schedule{Due: 1_700_000_060_000})
	res := h.mustApply(schedule(m), schedule(plain))
	h.mustApply(fire(res[0].Seq, 1_700_000_060_000), fire(res[1].Seq, 1_700_000_060_000))
	es := dumpFSM(t, h.f).Entries["/queue/a"]
	if len(es) != 2 {
		t.Fatalf("%d copies", len(es))
	}
	if got := es[0].Msg; got.Timestamp != 1_700_000_060_000 || got.Expires != 1_700_000_070_000 || es[0].Meta.Expires != got.Expires {
		t.Fatalf("copy of an expiring message: timestamp %d expires %d (meta %d)", got.Timestamp, got.Expires, es[0].Meta.Expires)
	}
	if got := es[1].Msg; got.Timestamp != plain.Timestamp || got.Expires != 0 {
		t.Fatalf("copy of a message without expiry: timestamp %d expires %d", got.Timestamp, got.Expires)
	}
}

func TestFireInvalid(t *testing.T) {
	h := newHarness(t)
	seq := h.mustApply(schedule(scheduledMsg("ID:i", "/queue/a", "x", Schedule{Due: 5})))[0].Seq
	for _, c := range []Command{
		{Op: OpFire, Queue: ScheduledQueue, Due: 5},
		{Op: OpFire, Queue: ScheduledQueue, Seqs: []uint64{seq, seq}, Due: 5},
		{Op: OpFire, Seqs: []uint64{seq}, Due: 5},
	} {
		if r := h.apply(c)[0]; !errors.Is(r.Err, ErrInvalidCommand) {
			t.Errorf("%+v: err = %v, want ErrInvalidCommand", c, r.Err)
		}
	}
	if len(dumpFSM(t, h.f).Entries[ScheduledQueue]) != 1 {
		t.Fatal("an invalid fire removed the entry")
	}
	// An entry without a schedule header is due at 0 and fires once.
	bare := h.mustApply(schedule(testMessage("ID:b", "/queue/a", "y")))[0].Seq
	h.mustApply(fire(bare, 0))
	if got := len(dumpFSM(t, h.f).Entries["/queue/a"]); got != 1 {
		t.Fatalf("entry without schedule: %d copies, want 1", got)
	}
}

// TestSnapshotKeepsSchedule: a restored FSM holds the scheduled entries
// with their due times, and fires them as the original does.
func TestSnapshotKeepsSchedule(t *testing.T) {
	h := newHarness(t)
	res := h.mustApply(
		schedule(scheduledMsg("ID:1", "/queue/a", "one", Schedule{Due: 100, Period: 10, Remaining: 3})),
		schedule(scheduledMsg("ID:2", "/topic/t", "two", Schedule{Due: 200})),
	)
	want := dumpFSM(t, h.f)
	data := persist(t, h.f)

	h2 := newHarness(t)
	rec := attach(t, h2.f)
	if err := restore(h2.f, data); err != nil {
		t.Fatal(err)
	}
	sameState(t, dumpFSM(t, h2.f), want)
	loaded := rec.loads[len(rec.loads)-1].Entries[ScheduledQueue]
	if len(loaded) != 2 || loaded[0].Meta.Due != 100 || loaded[1].Meta.Due != 200 {
		t.Fatalf("observer loaded %+v", loaded)
	}
	h2.index = h.index
	for _, hh := range []*harness{h, h2} {
		hh.mustApply(fire(res[0].Seq, 100), fire(res[1].Seq, 200))
	}
	sameState(t, dumpFSM(t, h2.f), dumpFSM(t, h.f))
}
