package fsm

import (
	"errors"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func TestEnqueueAndAck(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)

	res := h.mustApply(
		enqueue("/queue/a", "m1", "one", "k", "v"),
		enqueue("/queue/a", "m2", "two"),
		enqueue("/queue/b", "m3", "three"),
	)
	for i, want := range []uint64{1, 2, 3} {
		if res[i].Seq != want {
			t.Fatalf("result %d: seq %d, want %d", i, res[i].Seq, want)
		}
	}
	m1 := testMessage("m1", "/queue/a", "one", "k", "v")
	m2 := testMessage("m2", "/queue/a", "two")
	m3 := testMessage("m3", "/queue/b", "three")
	sameChanges(t, rec.take(), []Change{
		{Kind: Enqueued, Queue: "/queue/a", Seq: 1, Msg: m1},
		{Kind: Enqueued, Queue: "/queue/a", Seq: 2, Msg: m2},
		{Kind: Enqueued, Queue: "/queue/b", Seq: 3, Msg: m3},
	})
	if got, err := h.f.Message("/queue/a", 1); err != nil || !reflect.DeepEqual(got, m1) {
		t.Fatalf("Message(a, 1) = %+v, %v; want %+v", got, err, m1)
	}
	if _, err := h.f.Message("/queue/b", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Message of another queue's seq: err = %v, want ErrNotFound", err)
	}

	// 99 never existed and 3 is in another queue: the state ignores both
	// (an ack is not checked against the store, so each is reported).
	h.mustApply(Command{Op: OpAck, Queue: "/queue/a", Seqs: []uint64{1, 99, 3}})
	sameChanges(t, rec.take(), []Change{
		{Kind: Removed, Queue: "/queue/a", Seq: 1},
		{Kind: Removed, Queue: "/queue/a", Seq: 99},
		{Kind: Removed, Queue: "/queue/a", Seq: 3},
	})
	// A duplicate ack after failover is normal, and changes nothing.
	h.mustApply(Command{Op: OpAck, Queue: "/queue/a", Seqs: []uint64{1}})
	sameChanges(t, rec.take(), []Change{{Kind: Removed, Queue: "/queue/a", Seq: 1}})
	if _, err := h.f.Message("/queue/a", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("acked message: err = %v, want ErrNotFound", err)
	}

	sameState(t, dumpFSM(t, h.f), &dump{
		Queues: []string{"/queue/a", "/queue/b"},
		Entries: map[string][]entry{
			"/queue/a": {{Seq: 2, Meta: Meta{Priority: 4, Size: m2.Size()}, Msg: m2}},
			"/queue/b": {{Seq: 3, Meta: Meta{Priority: 4, Size: m3.Size()}, Msg: m3}},
		},
	})
	if got := h.f.AppliedIndex(); got != h.index {
		t.Fatalf("AppliedIndex = %d, want %d", got, h.index)
	}
}

func TestPublishToDurables(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)
	d1 := Durable{ClientID: "c2", Name: "s", Topic: "/topic/t"}
	d2 := Durable{ClientID: "c1", Name: "s", Topic: "/topic/t"}
	other := Durable{ClientID: "c3", Name: "s", Topic: "/topic/other"}
	h.mustApply(
		Command{Op: OpSubscribe, Durable: &d1},
		Command{Op: OpSubscribe, Durable: &d2},
		Command{Op: OpSubscribe, Durable: &other},
	)
	sameChanges(t, rec.take(), []Change{
		{Kind: DurableAdded, Durable: &d1},
		{Kind: DurableAdded, Durable: &d2},
		{Kind: DurableAdded, Durable: &other},
	})

	m := testMessage("id:1", "/topic/t", "news")
	h.mustApply(Command{Op: OpPublish, Topic: "/topic/t", Msg: m})
	changes := rec.take()
	// Copies go to the durables in store queue order, whatever the
	// subscription order: seqs must not depend on map iteration.
	sameChanges(t, changes, []Change{
		{Kind: Published, Queue: "/topic/t", Msg: m},
		{Kind: Enqueued, Queue: d2.Queue(), Seq: 1, Msg: m},
		{Kind: Enqueued, Queue: d1.Queue(), Seq: 2, Msg: m},
	})
	if changes[1].Msg != changes[2].Msg {
		t.Error("the copies of one publish do not share their *Message")
	}
	for _, e := range []struct {
		queue string
		seq   uint64
	}{{d2.Queue(), 1}, {d1.Queue(), 2}} {
		got, err := h.f.Message(e.queue, e.seq)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("Message(%s, %d) = %+v, %v", e.queue, e.seq, got, err)
		}
	}

	// No durable subscriber: only the non-durable subscribers hear of it.
	h.mustApply(Command{Op: OpPublish, Topic: "/topic/nobody", Msg: m})
	sameChanges(t, rec.take(), []Change{{Kind: Published, Queue: "/topic/nobody", Msg: m}})

	st := dumpFSM(t, h.f)
	if want := []Durable{d2, d1, other}; !reflect.DeepEqual(st.Durables, want) {
		t.Fatalf("durables %+v, want %+v", st.Durables, want)
	}
	if want := []string{d2.Queue(), d1.Queue(), other.Queue()}; !reflect.DeepEqual(st.Queues, want) {
		t.Fatalf("queues %q, want %q", st.Queues, want)
	}
}

func TestDeadLetter(t *testing.T) {
	h := newHarness(t)
	expiring := enqueue("/queue/a", "m1", "body", "k", "v")
	expiring.Msg.Expires = 1234 // a dead letter no longer expires
	h.mustApply(expiring)
	rec := attach(t, h.f)

	h.mustApply(Command{Op: OpDeadLetter, Queue: "/queue/a", Seqs: []uint64{1, 7},
		Target: "/queue/ActiveMQ.DLQ", Reason: "expired"})
	moved := testMessage("m1", "/queue/a", "body", "k", "v",
		HeaderDLQCause, "expired", HeaderOriginalDestination, "/queue/a")
	sameChanges(t, rec.take(), []Change{
		{Kind: Removed, Queue: "/queue/a", Seq: 1},
		{Kind: Enqueued, Queue: "/queue/ActiveMQ.DLQ", Seq: 2, Msg: moved},
	})
	if got, err := h.f.Message("/queue/ActiveMQ.DLQ", 2); err != nil || !reflect.DeepEqual(got, moved) {
		t.Fatalf("moved message = %+v, %v; want %+v", got, err, moved)
	}

	// Moved again: the latest cause replaces the first, the original
	// destination stays the one it was sent to.
	h.mustApply(Command{Op: OpDeadLetter, Queue: "/queue/ActiveMQ.DLQ", Seqs: []uint64{2},
		Target: "/queue/parking", Reason: "max deliveries"})
	again := testMessage("m1", "/queue/a", "body", "k", "v",
		HeaderDLQCause, "max deliveries", HeaderOriginalDestination, "/queue/a")
	sameChanges(t, rec.take(), []Change{
		{Kind: Removed, Queue: "/queue/ActiveMQ.DLQ", Seq: 2},
		{Kind: Enqueued, Queue: "/queue/parking", Seq: 3, Msg: again},
	})
	sameState(t, dumpFSM(t, h.f), &dump{
		Queues: []string{"/queue/ActiveMQ.DLQ", "/queue/a", "/queue/parking"},
		Entries: map[string][]entry{
			"/queue/parking": {{Seq: 3, Meta: Meta{Priority: 4, Size: again.Size()}, Msg: again}},
		},
	})
}

func TestMoveBackFromDLQ(t *testing.T) {
	h := newHarness(t)
	h.mustApply(enqueue("/queue/a", "m1", "one", "k", "v"), enqueue("/queue/a", "m2", "two"))
	h.mustApply(Command{Op: OpDeadLetter, Queue: "/queue/a", Seqs: []uint64{1, 2},
		Target: "/queue/DLQ.a", Reason: "delivered 6 times"})
	rec := attach(t, h.f)

	// Seq 9 does not exist: skipped. The dead-letter headers go, the
	// user's stay; the destination is the queue the message is now in.
	h.mustApply(Command{Op: OpMove, Queue: "/queue/DLQ.a", Seqs: []uint64{3, 9}, Target: "/queue/a"},
		Command{Op: OpMove, Queue: "/queue/DLQ.a", Seqs: []uint64{4}, Target: "/queue/elsewhere"})
	back := testMessage("m1", "/queue/a", "one", "k", "v")
	elsewhere := testMessage("m2", "/queue/elsewhere", "two")
	sameChanges(t, rec.take(), []Change{
		{Kind: Removed, Queue: "/queue/DLQ.a", Seq: 3},
		{Kind: Enqueued, Queue: "/queue/a", Seq: 5, Msg: back},
		{Kind: Removed, Queue: "/queue/DLQ.a", Seq: 4},
		{Kind: Enqueued, Queue: "/queue/elsewhere", Seq: 6, Msg: elsewhere},
	})
	sameState(t, dumpFSM(t, h.f), &dump{
		Queues: []string{"/queue/DLQ.a", "/queue/a", "/queue/elsewhere"},
		Entries: map[string][]entry{
			"/queue/a":         {{Seq: 5, Meta: Meta{Priority: 4, Size: back.Size()}, Msg: back}},
			"/queue/elsewhere": {{Seq: 6, Meta: Meta{Priority: 4, Size: elsewhere.Size()}, Msg: elsewhere}},
		},
	})

	for _, bad := range []Command{
		{Op: OpMove, Queue: "/queue/a", Seqs: []uint64{5}, Target: "/queue/a"},
		{Op: OpMove, Queue: "/queue/a", Seqs: []uint64{5}, Target: ""},
	} {
		if res := h.apply(bad); !errors.Is(res[0].Err, ErrInvalidCommand) && res[0].Err == nil {
			t.Errorf("%+v: err = %v, want an error", bad, res[0].Err)
		}
	}
	if c := rec.take(); len(c) != 0 {
		t.Fatalf("refused moves reported %+v", c)
	}
}

func TestCreateQueue(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)
	h.mustApply(Command{Op: OpCreateQueue, Queue: "/queue/new"}, Command{Op: OpCreateQueue, Queue: "/queue/new"})
	sameChanges(t, rec.take(), []Change{{Kind: QueueCreated, Queue: "/queue/new"}})
	if st := dumpFSM(t, h.f); !reflect.DeepEqual(st.Queues, []string{"/queue/new"}) || len(st.Entries) != 0 {
		t.Fatalf("after create: %v", st)
	}
	if res := h.apply(Command{Op: OpCreateQueue, Queue: ""}); res[0].Err == nil {
		t.Fatal("created a queue without a name")
	}
}

// TestDurableSelector: a publish stores a copy only in the durable
// subscriptions whose selector selects it; an invalid selector is refused.
func TestDurableSelector(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)
	eu := Durable{ClientID: "c", Name: "eu", Topic: "/topic/t", Selector: "region = 'eu'"}
	all := Durable{ClientID: "c", Name: "all", Topic: "/topic/t"}
	h.mustApply(Command{Op: OpSubscribe, Durable: &eu}, Command{Op: OpSubscribe, Durable: &all})
	rec.take()
	euMsg := testMessage("1", "/topic/t", "x", "region", "eu")
	usMsg := testMessage("2", "/topic/t", "y", "region", "us")
	h.mustApply(Command{Op: OpPublish, Topic: "/topic/t", Msg: euMsg}, Command{Op: OpPublish, Topic: "/topic/t", Msg: usMsg})
	st := dumpFSM(t, h.f)
	if got := seqsOf(st, eu.Queue()); len(got) != 1 {
		t.Errorf("eu subscription holds %v, want the eu message only", got)
	}
	if got := seqsOf(st, all.Queue()); len(got) != 2 {
		t.Errorf("subscription without selector holds %v, want both", got)
	}
	bad := Durable{ClientID: "c", Name: "bad", Topic: "/topic/t", Selector: "region = "}
	if r := h.apply(Command{Op: OpSubscribe, Durable: &bad}); r[0].Err == nil {
		t.Error("a durable subscription with an invalid selector was stored")
	}
}

// TestWildcardDurable: a durable subscription to a wildcard topic stores
// what is published to the topics its pattern matches, and keeps doing
// so after a restart of the state (loadState).
func TestWildcardDurable(t *testing.T) {
	h := newHarness(t)
	w := Durable{ClientID: "c", Name: "w", Topic: "/topic/prices.>"}
	h.mustApply(Command{Op: OpSubscribe, Durable: &w})
	pub := func(topic string) Command {
		return Command{Op: OpPublish, Topic: topic, Msg: testMessage("id-"+topic, topic, "x")}
	}
	h.mustApply(pub("/topic/prices.eu"), pub("/topic/prices.eu.paid"), pub("/topic/prices"), pub("/topic/other"))
	if got := seqsOf(dumpFSM(t, h.f), w.Queue()); len(got) != 2 {
		t.Errorf("wildcard durable holds %v, want the two matching publishes", got)
	}
	// Reopened, the state knows the pattern again.
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	h.f = openFSM(t, h.dir)
	h.mustApply(pub("/topic/prices.us"))
	if got := seqsOf(dumpFSM(t, h.f), w.Queue()); len(got) != 3 {
		t.Errorf("after reopening, wildcard durable holds %v, want 3", got)
	}
	bad := Durable{ClientID: "c", Name: "bad", Topic: "/topic/a.>.b"}
	if r := h.apply(Command{Op: OpSubscribe, Durable: &bad}); r[0].Err == nil {
		t.Error("a durable subscription to an invalid pattern was stored")
	}
}

func TestSubscribeReplaceUnsubscribe(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)
	d := Durable{ClientID: "c", Name: "s", Topic: "/topic/t"}
	publish := Command{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("id", "/topic/t", "x")}

	h.mustApply(Command{Op: OpSubscribe, Durable: &d}, publish)
	rec.take()

	// The same subscription again changes nothing and reports nothing.
	h.mustApply(Command{Op: OpSubscribe, Durable: &d})
	if c := rec.take(); len(c) != 0 {
		t.Fatalf("identical subscribe reported %+v", c)
	}
	if got := seqsOf(dumpFSM(t, h.f), d.Queue()); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("entries after identical subscribe: %v", got)
	}

	// Another selector replaces it, and its messages no longer match.
	sel := d
	sel.Selector = "JMSPriority >= 4"
	h.mustApply(Command{Op: OpSubscribe, Durable: &sel})
	sameChanges(t, rec.take(), []Change{
		{Kind: DurableRemoved, Durable: &d},
		{Kind: DurableAdded, Durable: &sel},
	})
	st := dumpFSM(t, h.f)
	if got := seqsOf(st, d.Queue()); got != nil || !reflect.DeepEqual(st.Queues, []string{d.Queue()}) {
		t.Fatalf("after replace: queues %q, entries %v", st.Queues, got)
	}

	// Another topic: publishing to the old one no longer reaches it.
	moved := sel
	moved.Topic = "/topic/u"
	h.mustApply(Command{Op: OpSubscribe, Durable: &moved}, publish)
	sameChanges(t, rec.take(), []Change{
		{Kind: DurableRemoved, Durable: &sel},
		{Kind: DurableAdded, Durable: &moved},
		{Kind: Published, Queue: "/topic/t", Msg: publish.Msg},
	})

	h.mustApply(Command{Op: OpPublish, Topic: "/topic/u", Msg: publish.Msg},
		Command{Op: OpUnsubscribe, Durable: &Durable{ClientID: "c", Name: "s"}})
	sameChanges(t, rec.take(), []Change{
		{Kind: Published, Queue: "/topic/u", Msg: publish.Msg},
		{Kind: Enqueued, Queue: d.Queue(), Seq: 2, Msg: publish.Msg},
		{Kind: DurableRemoved, Durable: &moved},
	})
	sameState(t, dumpFSM(t, h.f), &dump{Entries: map[string][]entry{}})

	// A retried unsubscribe is a no-op.
	h.mustApply(Command{Op: OpUnsubscribe, Durable: &d})
	if c := rec.take(); len(c) != 0 {
		t.Fatalf("second unsubscribe reported %+v", c)
	}
}

func TestPurgeAndDeleteQueue(t *testing.T) {
	h := newHarness(t)
	d := Durable{ClientID: "c", Name: "s", Topic: "/topic/t"}
	h.mustApply(enqueue("/queue/a", "1", "x"), enqueue("/queue/a", "2", "y"),
		Command{Op: OpSubscribe, Durable: &d})
	rec := attach(t, h.f)

	h.mustApply(Command{Op: OpPurge, Queue: "/queue/a"})
	sameChanges(t, rec.take(), []Change{{Kind: Purged, Queue: "/queue/a"}})
	st := dumpFSM(t, h.f)
	if !reflect.DeepEqual(st.Queues, []string{"/queue/a", d.Queue()}) || len(st.Entries) != 0 {
		t.Fatalf("after purge: %v", st)
	}
	// Seqs are never reused.
	if res := h.mustApply(enqueue("/queue/a", "3", "z")); res[0].Seq != 3 {
		t.Fatalf("seq after purge = %d, want 3", res[0].Seq)
	}
	rec.take()

	h.mustApply(Command{Op: OpDeleteQueue, Queue: "/queue/a"})
	sameChanges(t, rec.take(), []Change{{Kind: QueueDeleted, Queue: "/queue/a"}})
	if _, err := h.f.Message("/queue/a", 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("message of a deleted queue: err = %v", err)
	}

	// Missing queues: nothing to do, nothing reported.
	h.mustApply(Command{Op: OpPurge, Queue: "/queue/a"}, Command{Op: OpDeleteQueue, Queue: "/queue/none"})
	if c := rec.take(); len(c) != 0 {
		t.Fatalf("purge/delete of missing queues reported %+v", c)
	}

	// A durable's queue goes with its subscription, not alone.
	res := h.apply(Command{Op: OpDeleteQueue, Queue: d.Queue()})
	if !errors.Is(res[0].Err, ErrInvalidCommand) {
		t.Fatalf("deleting a durable's queue: err = %v", res[0].Err)
	}
	if st := dumpFSM(t, h.f); !reflect.DeepEqual(st.Durables, []Durable{d}) || !reflect.DeepEqual(st.Queues, []string{d.Queue()}) {
		t.Fatalf("durable damaged: %v", st)
	}
}

func TestInvalidCommandsDoNotStopTheBatch(t *testing.T) {
	h := newHarness(t)
	res := h.apply(
		enqueue("/queue/a", "ok1", "x"),
		Command{Op: OpEnqueue, Queue: "/queue/a"},
		enqueue("/queue/a\x00b", "nul", "x"),
		enqueue("", "empty", "x"),
		Command{Op: OpPublish, Msg: testMessage("p", "/topic/t", "x")},
		Command{Op: OpPublish, Topic: "/topic/t"},
		Command{Op: OpDeadLetter, Queue: "/queue/a", Seqs: []uint64{1}},
		Command{Op: OpSubscribe},
		Command{Op: OpSubscribe, Durable: &Durable{Name: "s", Topic: "/topic/t"}},
		Command{Op: OpSubscribe, Durable: &Durable{ClientID: "c", Name: "s"}},
		Command{Op: OpSubscribe, Durable: &Durable{ClientID: "c\x00", Name: "s", Topic: "/topic/t"}},
		Command{Op: OpUnsubscribe},
		enqueue("/queue/a", "ok2", "y"),
	)
	for i, r := range res {
		ok := i == 0 || i == len(res)-1
		if ok != (r.Err == nil) {
			t.Errorf("command %d: err = %v", i, r.Err)
		}
		if !ok && !errors.Is(r.Err, ErrInvalidCommand) {
			t.Errorf("command %d: err = %v, want ErrInvalidCommand", i, r.Err)
		}
	}
	if res[0].Seq != 1 || res[len(res)-1].Seq != 2 {
		t.Fatalf("seqs %d, %d; want 1, 2", res[0].Seq, res[len(res)-1].Seq)
	}
	// The failed dead-letter left its entry alone.
	if got := seqsOf(dumpFSM(t, h.f), "/queue/a"); !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Fatalf("entries %v", got)
	}
}

// Commands of one pebble batch see each other's writes, across log
// entries and within one.
func TestOneBatchSeesItsOwnWrites(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)
	d := Durable{ClientID: "c", Name: "s", Topic: "/topic/t"}
	m := testMessage("p", "/topic/t", "x")
	logs := []*raft.Log{
		h.entry(enqueue("/queue/a", "1", "x")),
		h.entry(Command{Op: OpAck, Queue: "/queue/a", Seqs: []uint64{1}}),
		h.entry(enqueue("/queue/a", "2", "y"),
			Command{Op: OpPurge, Queue: "/queue/a"},
			Command{Op: OpAck, Queue: "/queue/a", Seqs: []uint64{2}}),
		h.entry(Command{Op: OpSubscribe, Durable: &d},
			Command{Op: OpPublish, Topic: "/topic/t", Msg: m},
			enqueue("/queue/b", "3", "z"),
			Command{Op: OpDeadLetter, Queue: "/queue/b", Seqs: []uint64{4}, Target: "/queue/dlq", Reason: "r"}),
	}
	resps := h.f.ApplyBatch(logs)
	for i, resp := range resps {
		results(t, resp, len(mustDecode(t, logs[i].Data)))
	}
	dlq := testMessage("3", "/queue/b", "z", HeaderDLQCause, "r", HeaderOriginalDestination, "/queue/b")
	sameChanges(t, rec.take(), []Change{
		{Kind: Enqueued, Queue: "/queue/a", Seq: 1, Msg: testMessage("1", "/queue/a", "x")},
		{Kind: Removed, Queue: "/queue/a", Seq: 1},
		{Kind: Enqueued, Queue: "/queue/a", Seq: 2, Msg: testMessage("2", "/queue/a", "y")},
		{Kind: Purged, Queue: "/queue/a"},
		{Kind: Removed, Queue: "/queue/a", Seq: 2},
		{Kind: DurableAdded, Durable: &d},
		{Kind: Published, Queue: "/topic/t", Msg: m},
		{Kind: Enqueued, Queue: d.Queue(), Seq: 3, Msg: m},
		{Kind: Enqueued, Queue: "/queue/b", Seq: 4, Msg: testMessage("3", "/queue/b", "z")},
		{Kind: Removed, Queue: "/queue/b", Seq: 4},
		{Kind: Enqueued, Queue: "/queue/dlq", Seq: 5, Msg: dlq},
	})
	st := dumpFSM(t, h.f)
	if got := seqsOf(st, d.Queue()); !reflect.DeepEqual(got, []uint64{3}) {
		t.Fatalf("durable entries %v", got)
	}
	if got := seqsOf(st, "/queue/a"); got != nil {
		t.Fatalf("purged queue has entries %v", got)
	}
}

func mustDecode(t *testing.T, b []byte) []Command {
	t.Helper()
	cmds, err := DecodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	return cmds
}

func TestNonCommandAndReplayedEntries(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)
	logs := []*raft.Log{
		h.entry(enqueue("/queue/a", "1", "x")),
		{Index: 2, Term: 2, Type: raft.LogConfiguration, Data: []byte("not ours")},
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: EncodeBatch([]Command{enqueue("/queue/a", "2", "y")})},
	}
	h.index = 3
	resps := h.f.ApplyBatch(logs)
	if resps[1] != nil {
		t.Fatalf("configuration entry response %v, want nil", resps[1])
	}
	results(t, resps[2], 1)
	if got := h.f.AppliedIndex(); got != 3 {
		t.Fatalf("AppliedIndex = %d, want 3", got)
	}
	want := dumpFSM(t, h.f)
	rec.take()

	// Raft replays entries since its last snapshot after a restart.
	for i, resp := range h.f.ApplyBatch(logs) {
		if resp != nil {
			t.Fatalf("replayed entry %d answered %v", i, resp)
		}
	}
	if resp := h.f.Apply(logs[0]); resp != nil {
		t.Fatalf("replayed entry answered %v", resp)
	}
	if c := rec.take(); len(c) != 0 {
		t.Fatalf("replay reported %+v", c)
	}
	sameState(t, dumpFSM(t, h.f), want)
}

func TestReopenKeepsAppliedIndex(t *testing.T) {
	h := newHarness(t)
	var logs []*raft.Log
	for i := range 5 {
		logs = append(logs, h.entry(enqueue("/queue/a", "m", strings.Repeat("x", i))))
	}
	logs = append(logs, h.entry(Command{Op: OpAck, Queue: "/queue/a", Seqs: []uint64{2}}))
	h.f.ApplyBatch(logs)
	want := dumpFSM(t, h.f)
	if err := h.f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	h.f = openFSM(t, h.dir)
	if got := h.f.AppliedIndex(); got != h.index {
		t.Fatalf("AppliedIndex after reopen = %d, want %d", got, h.index)
	}
	sameState(t, dumpFSM(t, h.f), want)
	// Raft replays from its last snapshot: nothing may apply twice.
	for i, resp := range h.f.ApplyBatch(logs[2:]) {
		if resp != nil {
			t.Fatalf("replayed entry %d answered %v", i, resp)
		}
	}
	sameState(t, dumpFSM(t, h.f), want)
	// The seq counter survived too.
	if res := h.mustApply(enqueue("/queue/a", "m", "y")); res[0].Seq != 6 {
		t.Fatalf("seq after reopen = %d, want 6", res[0].Seq)
	}
}

func TestSkippableUnknownCommand(t *testing.T) {
	h := newHarness(t)
	data := batchWithRaw(OpSkippable|0x40, []byte("from a newer leader"),
		enqueue("/queue/a", "1", "x"), enqueue("/queue/a", "2", "y"))
	h.index++
	res := results(t, h.f.Apply(&raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data}), 3)
	if res[0].Err != nil || res[0].Seq != 1 || res[2].Err != nil || res[2].Seq != 2 {
		t.Fatalf("known commands: %+v", res)
	}
	if !errors.Is(res[1].Err, ErrSkipped) {
		t.Fatalf("unknown command: err = %v, want ErrSkipped", res[1].Err)
	}
	if h.f.AppliedIndex() != h.index {
		t.Fatal("applied index did not advance")
	}
}

func TestUndecodableEntryPanics(t *testing.T) {
	h := newHarness(t)
	data := batchWithRaw(0x40, nil, enqueue("/queue/a", "1", "x"))
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), "log entry 1") {
			t.Fatalf("recovered %v, want a corrupt log entry 1 error", r)
		}
		if h.f.AppliedIndex() != 0 {
			t.Fatal("applied index advanced past an entry that was not applied")
		}
	}()
	h.f.Apply(&raft.Log{Index: 1, Term: 1, Type: raft.LogCommand, Data: data})
}

func TestClosed(t *testing.T) {
	h := newHarness(t)
	h.mustApply(enqueue("/queue/a", "1", "x"))
	if err := h.f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err, _ := h.f.Apply(h.entry(enqueue("/queue/a", "2", "x"))).(error); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close = %v", err)
	}
	if _, err := h.f.Message("/queue/a", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Message after Close: %v", err)
	}
	if err := h.f.Attach(&recorder{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Attach after Close: %v", err)
	}
	if _, err := h.f.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Snapshot after Close: %v", err)
	}
	if err := h.f.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	// The entry refused after Close is applied after reopening.
	h.f = openFSM(t, h.dir)
	if res := h.mustApply(enqueue("/queue/a", "2", "x")); res[0].Seq != 2 {
		t.Fatalf("seq = %d, want 2", res[0].Seq)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{{CacheSize: -1}, {MemTableSize: -1}, {MemTableSize: 4 << 30}} {
		if _, err := Open(t.TempDir(), o); err == nil {
			t.Errorf("Open accepted %+v", o)
		}
	}
}

func BenchmarkApply(b *testing.B) {
	f, err := Open(b.TempDir(), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	cmds := benchBatch(64, 1024)
	data := EncodeBatch(cmds)
	var index, seq uint64
	acks := make([]uint64, 64)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		// A steady state: enqueue 64 messages, ack the previous 64.
		index++
		enq := &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
		index++
		ack := &raft.Log{Index: index, Term: 1, Type: raft.LogCommand,
			Data: EncodeBatch([]Command{{Op: OpAck, Queue: "/queue/orders", Seqs: acks}})}
		f.ApplyBatch([]*raft.Log{enq, ack})
		for i := range acks {
			seq++
			acks[i] = seq
		}
	}
}

// TestNetworkPathIsStored checks that the index record of every stored
// copy of a forwarded message carries its network path, so a new leader
// loading the state knows where the message has been without reading it.
func TestNetworkPathIsStored(t *testing.T) {
	h := newHarness(t)
	d := Durable{ClientID: "c", Name: "s", Topic: "/topic/t"}
	h.mustApply(
		Command{Op: OpSubscribe, Durable: &d},
		enqueue("/queue/a", "fwd", "x", HeaderNetworkPath, "A,B"),
		enqueue("/queue/a", "local", "y"),
		Command{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("pub", "/topic/t", "z", HeaderNetworkPath, "C")},
	)
	// Dead-lettering rewrites the message: its path must survive.
	h.mustApply(Command{Op: OpDeadLetter, Queue: "/queue/a", Seqs: []uint64{1}, Target: "/queue/DLQ.a", Reason: "r"})
	rec := attach(t, h.f)
	paths := make(map[string]string)
	for q, es := range rec.loads[0].Entries {
		for _, e := range es {
			paths[q+"#"+strconv.FormatUint(e.Seq, 10)] = e.Meta.Path
		}
	}
	want := map[string]string{"/queue/a#2": "", d.Queue() + "#3": "C", "/queue/DLQ.a#4": "A,B"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("stored paths %v, want %v", paths, want)
	}
}
