package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// windowEntry is one id of the dedupe window with the time it was
// recorded with.
type windowEntry struct {
	ID string
	TS int64
}

// window reads f's dedupe window, sorted by id, and checks that its two
// indexes agree: every 'x' key has the 'y' key of the same id and time,
// and no 'y' key is left over.
func window(t *testing.T, f *FSM) []windowEntry {
	t.Helper()
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	var byID []windowEntry
	err := scan(f.st.db, kindDedupe, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("dedupe id %q: value of %d bytes", k[1:], len(v))
		}
		byID = append(byID, windowEntry{ID: string(k[1:]), TS: int64(binary.BigEndian.Uint64(v))})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	byTime := make(map[windowEntry]bool)
	var prev int64
	err = scan(f.st.db, kindDedupeByTime, func(k, _ []byte) error {
		ts := int64(binary.BigEndian.Uint64(k[1:9]) ^ 1<<63)
		if len(byTime) > 0 && ts < prev {
			return fmt.Errorf("time index out of order: %d after %d", ts, prev)
		}
		prev = ts
		byTime[windowEntry{ID: string(dedupeTimeID(k)), TS: ts}] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range byID {
		if !byTime[e] {
			t.Fatalf("dedupe id %+v is missing from the time index %v", e, byTime)
		}
		delete(byTime, e)
	}
	if len(byTime) > 0 {
		t.Fatalf("time index has ids the window does not: %v", byTime)
	}
	return byID
}

func sameWindow(t *testing.T, f *FSM, want ...windowEntry) {
	t.Helper()
	if got := window(t, f); !reflect.DeepEqual(got, want) {
		t.Fatalf("dedupe window %+v, want %+v", got, want)
	}
}

// dedupeEnqueue is an enqueue with a dedupe id and message timestamp ts.
func dedupeEnqueue(queue, id string, ts int64) Command {
	m := testMessage("m-"+id, queue, "body", "dedupe-id", id)
	m.Timestamp = ts
	return Command{Op: OpEnqueue, Queue: queue, Msg: m, DedupeID: id}
}

func TestDedupeDuplicateStoresNothing(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)
	first := dedupeEnqueue("/queue/a", "d1", 1000)
	if res := h.mustApply(first); res[0].Seq != 1 || res[0].Duplicate {
		t.Fatalf("first send: %+v, want seq 1, not a duplicate", res[0])
	}
	sameChanges(t, rec.take(), []Change{{Kind: Enqueued, Queue: "/queue/a", Seq: 1, Msg: first.Msg}})

	// The resend (a new message-id and time, as a new leader assigns) and
	// the same id sent elsewhere: the id space is the group's.
	resend := dedupeEnqueue("/queue/a", "d1", 5000)
	resend.Msg.ID = "other"
	elsewhere := dedupeEnqueue("/queue/b", "d1", 5000)
	pub := Command{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("p", "/topic/t", "x"), DedupeID: "d1"}
	for i, res := range h.mustApply(resend, elsewhere, pub) {
		if res != (Result{Duplicate: true}) {
			t.Fatalf("command %d: %+v, want a duplicate", i, res)
		}
	}
	sameChanges(t, rec.take(), nil)
	st := dumpFSM(t, h.f)
	if got := seqsOf(st, "/queue/a"); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("/queue/a holds %v, want [1]", got)
	}
	// The duplicate did not create /queue/b either.
	if !reflect.DeepEqual(st.Queues, []string{"/queue/a"}) {
		t.Fatalf("queues %q, want only /queue/a", st.Queues)
	}
	// The window keeps the first time: a resend does not extend it.
	sameWindow(t, h.f, windowEntry{"d1", 1000})

	// No id, no deduplication.
	res := h.mustApply(enqueue("/queue/a", "n1", "x"), enqueue("/queue/a", "n1", "x"))
	if res[0].Duplicate || res[1].Duplicate || res[0].Seq == res[1].Seq {
		t.Fatalf("sends without an id: %+v", res)
	}
	sameWindow(t, h.f, windowEntry{"d1", 1000})
}

func TestDedupePublish(t *testing.T) {
	h := newHarness(t)
	d := Durable{ClientID: "c", Name: "s", Topic: "/topic/t"}
	h.mustApply(Command{Op: OpSubscribe, Durable: &d})
	rec := attach(t, h.f)
	m := testMessage("p1", "/topic/t", "news")
	m.Timestamp = 7
	pub := Command{Op: OpPublish, Topic: "/topic/t", Msg: m, DedupeID: "p"}
	h.mustApply(pub)
	sameChanges(t, rec.take(), []Change{
		{Kind: Published, Queue: "/topic/t", Msg: m},
		{Kind: Enqueued, Queue: d.Queue(), Seq: 1, Msg: m},
	})
	// A duplicate reaches neither the durable nor the non-durable
	// subscribers.
	if res := h.mustApply(pub); res[0] != (Result{Duplicate: true}) {
		t.Fatalf("second publish: %+v, want a duplicate", res[0])
	}
	sameChanges(t, rec.take(), nil)

	// Without durable subscriptions the id is recorded all the same: the
	// non-durable subscribers got the message.
	other := Command{Op: OpPublish, Topic: "/topic/nobody", Msg: m, DedupeID: "q"}
	h.mustApply(other)
	sameChanges(t, rec.take(), []Change{{Kind: Published, Queue: "/topic/nobody", Msg: m}})
	if res := h.mustApply(other); !res[0].Duplicate {
		t.Fatalf("second publish to a topic without durables: %+v, want a duplicate", res[0])
	}
	sameChanges(t, rec.take(), nil)
	sameWindow(t, h.f, windowEntry{"p", 7}, windowEntry{"q", 7})
	if got := seqsOf(dumpFSM(t, h.f), d.Queue()); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("durable queue holds %v, want [1]", got)
	}
}

// The second command with an id in one batch, and in one entry, is a
// duplicate of the first: reads go through the batch being built.
func TestDedupeWithinOneBatch(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)
	a := dedupeEnqueue("/queue/a", "same", 1)
	res := h.mustApply(a, dedupeEnqueue("/queue/a", "same", 2),
		Command{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("p", "/topic/t", ""), DedupeID: "same"})
	if want := []Result{{Seq: 1}, {Duplicate: true}, {Duplicate: true}}; !reflect.DeepEqual(res, want) {
		t.Fatalf("results %+v, want %+v", res, want)
	}
	sameChanges(t, rec.take(), []Change{{Kind: Enqueued, Queue: "/queue/a", Seq: 1, Msg: a.Msg}})

	// Across entries of one ApplyBatch call too.
	logs := h.f.ApplyBatch([]*raft.Log{
		h.entry(dedupeEnqueue("/queue/a", "x", 3)),
		h.entry(dedupeEnqueue("/queue/a", "x", 4)),
	})
	first, second := results(t, logs[0], 1)[0], results(t, logs[1], 1)[0]
	if first.Duplicate || !second.Duplicate {
		t.Fatalf("across entries: %+v then %+v, want stored then duplicate", first, second)
	}
	sameWindow(t, h.f, windowEntry{"same", 1}, windowEntry{"x", 3})
}

func TestExpireDedupe(t *testing.T) {
	h := newHarness(t)
	h.mustApply(
		dedupeEnqueue("/queue/a", "neg", -5),
		dedupeEnqueue("/queue/a", "t100", 100),
		dedupeEnqueue("/queue/a", "t100b", 100),
		dedupeEnqueue("/queue/a", "t200", 200),
		dedupeEnqueue("/queue/a", "t300", 300),
	)
	// Strictly before: the ids of 200 stay.
	h.mustApply(Command{Op: OpExpireDedupe, Before: 200})
	sameWindow(t, h.f, windowEntry{"t200", 200}, windowEntry{"t300", 300})
	res := h.mustApply(dedupeEnqueue("/queue/a", "t100", 400), dedupeEnqueue("/queue/a", "t200", 400))
	if res[0].Duplicate || !res[1].Duplicate {
		t.Fatalf("after expiry: %+v, want the expired id stored again and the kept one a duplicate", res)
	}
	sameWindow(t, h.f, windowEntry{"t100", 400}, windowEntry{"t200", 200}, windowEntry{"t300", 300})

	// Nothing to forget, and an expiry in the past: no change.
	h.mustApply(Command{Op: OpExpireDedupe, Before: 200}, Command{Op: OpExpireDedupe, Before: -1 << 62})
	sameWindow(t, h.f, windowEntry{"t100", 400}, windowEntry{"t200", 200}, windowEntry{"t300", 300})

	// Record, expire and send again within one entry.
	res = h.mustApply(
		dedupeEnqueue("/queue/a", "z", 350),
		Command{Op: OpExpireDedupe, Before: 401},
		dedupeEnqueue("/queue/a", "z", 500),
		dedupeEnqueue("/queue/a", "t300", 500),
	)
	for i, r := range res {
		if r.Duplicate {
			t.Fatalf("command %d is a duplicate after the expiry: %+v", i, res)
		}
	}
	sameWindow(t, h.f, windowEntry{"t300", 500}, windowEntry{"z", 500})

	// An id recorded after an expiry, with a time the expiry's range
	// deletion covered, is kept: the later write wins within the batch.
	h.mustApply(Command{Op: OpExpireDedupe, Before: 1000}, dedupeEnqueue("/queue/a", "w", 5))
	sameWindow(t, h.f, windowEntry{"w", 5})
	if res := h.mustApply(dedupeEnqueue("/queue/a", "w", 6)); !res[0].Duplicate {
		t.Fatal("id recorded after an expiry in the same entry was lost")
	}
	h.mustApply(Command{Op: OpExpireDedupe, Before: 6})
	sameWindow(t, h.f)
	h.mustApply(dedupeEnqueue("/queue/a", "t300", 500), dedupeEnqueue("/queue/a", "z", 500))

	// Expiring everything leaves an empty window that works as before.
	h.mustApply(Command{Op: OpExpireDedupe, Before: 1 << 62})
	sameWindow(t, h.f)
	if res := h.mustApply(dedupeEnqueue("/queue/a", "z", 1)); res[0].Duplicate {
		t.Fatal("duplicate in an empty window")
	}
}

func TestDedupeIDTooLong(t *testing.T) {
	h := newHarness(t)
	long := strings.Repeat("x", MaxDedupeIDLen+1)
	res := h.apply(dedupeEnqueue("/queue/a", long, 1),
		Command{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("p", "/topic/t", ""), DedupeID: long},
		dedupeEnqueue("/queue/a", long[1:], 1))
	for i := range 2 {
		if !errors.Is(res[i].Err, ErrInvalidCommand) {
			t.Fatalf("command %d: err = %v, want ErrInvalidCommand", i, res[i].Err)
		}
	}
	if res[2].Err != nil || res[2].Seq != 1 {
		t.Fatalf("id of the maximum length: %+v", res[2])
	}
	sameWindow(t, h.f, windowEntry{long[1:], 1})
}

// The window is replicated state: snapshots carry it, a restore replaces
// it, and the restored FSM deduplicates as the original does.
func TestSnapshotRestoreKeepsDedupeWindow(t *testing.T) {
	h := newHarness(t)
	h.mustApply(dedupeEnqueue("/queue/a", "a", 10), dedupeEnqueue("/queue/a", "b", 20),
		Command{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("p", "/topic/t", ""), DedupeID: "c"})
	data := persist(t, h.f)
	want := window(t, h.f)

	h2 := newHarness(t)
	h2.mustApply(dedupeEnqueue("/queue/x", "mine", 1))
	if err := restore(h2.f, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	sameWindow(t, h2.f, want...)

	// Same log, same results on both; "mine" went with the old state.
	for _, f := range []*FSM{h.f, h2.f} {
		hh := &harness{t: t, f: f, index: f.AppliedIndex()}
		res := hh.mustApply(dedupeEnqueue("/queue/a", "a", 30), dedupeEnqueue("/queue/a", "mine", 30),
			Command{Op: OpExpireDedupe, Before: 15}, dedupeEnqueue("/queue/a", "a", 40))
		want := []Result{{Duplicate: true}, {Seq: 3}, {}, {Seq: 4}}
		if !reflect.DeepEqual(res, want) {
			t.Fatalf("after restore: %+v, want %+v", res, want)
		}
	}
	sameWindow(t, h2.f, window(t, h.f)...)
}
