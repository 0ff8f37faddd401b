package queue

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// schedMsg is a persistent message with the given headers (key, value...).
func schedMsg(dest, body string, headers ...string) *fsm.Message {
	m := &fsm.Message{Destination: dest, Body: []byte(body), Priority: 4, Persistent: true}
	for i := 0; i+1 < len(headers); i += 2 {
		m.Headers = append(m.Headers, fsm.Header{Key: headers[i], Value: headers[i+1]})
	}
	return m
}

func header(m *fsm.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}

// arrival waits for delivery n and returns it with the time it came.
func arrival(t *testing.T, out *recorder, n int) (*Delivery, time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out.mu.Lock()
		if len(out.ds) > n {
			d := out.ds[n]
			out.mu.Unlock()
			return d, time.Now()
		}
		out.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("delivery %d never came", n)
	return nil, time.Time{}
}

// onTime checks that a copy due at due (unix ms) arrived at got: not
// before, and within a second (the goal is ~100 ms; a loaded CI machine
// gets slack).
func onTime(t *testing.T, what string, due int64, got time.Time) {
	t.Helper()
	late := got.UnixMilli() - due
	if late < 0 {
		t.Fatalf("%s arrived %d ms before it was due", what, -late)
	}
	if late > 1000 {
		t.Fatalf("%s arrived %d ms after it was due", what, late)
	}
	t.Logf("%s: %d ms after due", what, late)
}

func proposeWait(t *testing.T, l *fsmLog, cmds ...fsm.Command) []fsm.Result {
	t.Helper()
	type out struct {
		res []fsm.Result
		err error
	}
	ch := make(chan out, 1)
	l.Propose(cmds, func(res []fsm.Result, err error) { ch <- out{res, err} })
	o := <-ch
	if o.err != nil {
		t.Fatal(o.err)
	}
	for _, r := range o.res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	return o.res
}

func TestScheduledDelay(t *testing.T) {
	e, l := newEngine(t, Config{})
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q"})
	p, _ := open(t, e, "")

	m := schedMsg("/queue/q", "later", fsm.HeaderScheduledDelay, "300", "k", "v")
	m.Persistent = false // stored all the same
	do(t, func(done func(error)) error { return p.Send(m, "", done) })
	// The RECEIPT came: the message is stored, and not delivered yet.
	due := m.Timestamp + 300
	if st := e.Scheduled(); st.Pending != 1 || st.NextDueMs != due || st.Bytes == 0 {
		t.Fatalf("scheduled stats after the send: %+v (due %d)", st, due)
	}
	if out.count() != 0 {
		t.Fatal("delivered before its delay")
	}
	stored, err := l.f.Message(fsm.ScheduledQueue, 1)
	if err != nil || !stored.Persistent {
		t.Fatalf("stored scheduled message: %+v, %v", stored, err)
	}
	for _, d := range e.Destinations(false) {
		if !strings.HasPrefix(d.Name, "/queue/") && !strings.HasPrefix(d.Name, "/topic/") {
			t.Fatalf("Destinations lists %q", d.Name)
		}
	}

	d, at := arrival(t, out, 0)
	onTime(t, "copy", due, at)
	got := d.Msg
	if got.ID != m.ID || string(got.Body) != "later" || !got.Persistent || got.Destination != "/queue/q" {
		t.Fatalf("copy %+v", got)
	}
	if job, _ := header(got, fsm.HeaderScheduledJobID); job != m.ID {
		t.Fatalf("copy's %s = %q, want %q", fsm.HeaderScheduledJobID, job, m.ID)
	}
	if _, ok := header(got, fsm.HeaderScheduledDelay); ok {
		t.Fatalf("copy keeps %s: %q", fsm.HeaderScheduledDelay, got.Headers)
	}
	if v, _ := header(got, "k"); v != "v" {
		t.Fatalf("copy lost the sender's header: %q", got.Headers)
	}
	time.Sleep(100 * time.Millisecond)
	if out.count() != 1 {
		t.Fatalf("%d deliveries, want 1", out.count())
	}
	if st := e.Scheduled(); st.Pending != 0 || st.Fired != 1 || st.Bytes != 0 {
		t.Fatalf("scheduled stats after firing: %+v", st)
	}
}

func TestScheduledRepeat(t *testing.T) {
	e, _ := newEngine(t, Config{})
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q"})
	p, _ := open(t, e, "")
	m := schedMsg("/queue/q", "tick", fsm.HeaderScheduledDelay, "100",
		fsm.HeaderScheduledPeriod, "150", fsm.HeaderScheduledRepeat, "2")
	do(t, func(done func(error)) error { return p.Send(m, "", done) })

	ids := map[string]bool{}
	for i := range 3 {
		d, at := arrival(t, out, i)
		onTime(t, fmt.Sprintf("copy %d", i+1), m.Timestamp+100+int64(i)*150, at)
		if want := fmt.Sprintf("%s:%d", m.ID, i+1); d.Msg.ID != want {
			t.Fatalf("copy %d has id %q, want %q", i+1, d.Msg.ID, want)
		}
		ids[d.Msg.ID] = true
		// Each copy is a message of its own: ack it as one.
		do(t, func(done func(error)) error { return c.Ack(AckRef{ID: d.AckID}, "", done) })
	}
	time.Sleep(300 * time.Millisecond)
	if out.count() != 3 || len(ids) != 3 {
		t.Fatalf("%d deliveries, %d ids; want 3 copies", out.count(), len(ids))
	}
	if st := e.Scheduled(); st.Pending != 0 || st.Fired != 3 {
		t.Fatalf("scheduled stats: %+v", st)
	}
}

// TestScheduledPeriodWithoutDelay: without a delay the first copy waits
// one period, as ActiveMQ's scheduler does.
func TestScheduledPeriodWithoutDelay(t *testing.T) {
	e, _ := newEngine(t, Config{})
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q"})
	p, _ := open(t, e, "")
	m := schedMsg("/queue/q", "x", fsm.HeaderScheduledPeriod, "200")
	do(t, func(done func(error)) error { return p.Send(m, "", done) })
	_, at := arrival(t, out, 0)
	onTime(t, "copy", m.Timestamp+200, at)
}

// TestScheduledTopic: the copy reaches the subscribers present when it
// fires, including one that came after the SEND, and durable ones.
func TestScheduledTopic(t *testing.T) {
	e, _ := newEngine(t, Config{})
	dur, dout := open(t, e, "client-1")
	subscribe(t, dur, SubscribeSpec{ID: "d", Destination: "/topic/t", DurableName: "sub"})
	p, _ := open(t, e, "")
	m := schedMsg("/topic/t", "news", fsm.HeaderScheduledDelay, "250")
	do(t, func(done func(error)) error { return p.Send(m, "", done) })

	late, lout := open(t, e, "")
	subscribe(t, late, SubscribeSpec{ID: "l", Destination: "/topic/t"})
	d, at := arrival(t, lout, 0)
	onTime(t, "topic copy", m.Timestamp+250, at)
	if string(d.Msg.Body) != "news" || d.Destination != "/topic/t" {
		t.Fatalf("subscriber got %+v", d)
	}
	if d, _ := arrival(t, dout, 0); string(d.Msg.Body) != "news" {
		t.Fatalf("durable subscriber got %q", d.Msg.Body)
	}
}

func TestScheduledHeadersRefused(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	tenYears := fmt.Sprint(MaxScheduledDelay.Milliseconds())
	for _, tc := range []struct {
		headers []string
		want    error
	}{
		{[]string{fsm.HeaderScheduledDelay, "-1"}, ErrBadSchedule},
		{[]string{fsm.HeaderScheduledDelay, "soon"}, ErrBadSchedule},
		{[]string{fsm.HeaderScheduledDelay, "1.5"}, ErrBadSchedule},
		{[]string{fsm.HeaderScheduledDelay, ""}, ErrBadSchedule},
		{[]string{fsm.HeaderScheduledDelay, tenYears + "1"}, ErrBadSchedule},
		{[]string{fsm.HeaderScheduledPeriod, "-5"}, ErrBadSchedule},
		{[]string{fsm.HeaderScheduledDelay, "10", fsm.HeaderScheduledRepeat, "1001"}, ErrBadSchedule},
		{[]string{fsm.HeaderScheduledDelay, "10", fsm.HeaderScheduledRepeat, "-2"}, ErrBadSchedule},
		{[]string{fsm.HeaderScheduledDelay, "10", fsm.HeaderScheduledRepeat, "x"}, ErrBadSchedule},
		{[]string{fsm.HeaderScheduledCron, "0 * * * *"}, ErrCronUnsupported},
		{[]string{fsm.HeaderScheduledDelay, "10", fsm.HeaderScheduledCron, "* * * * *"}, ErrCronUnsupported},
	} {
		m := schedMsg("/queue/q", "x", tc.headers...)
		err := p.Send(m, "", func(error) { t.Errorf("%q: done called for a refused send", tc.headers) })
		if !errors.Is(err, tc.want) {
			t.Errorf("%q: err = %v, want %v", tc.headers, err, tc.want)
		}
	}
	// In a transaction the SEND is refused as it arrives.
	if err := p.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	err := p.Send(schedMsg("/queue/q", "x", fsm.HeaderScheduledDelay, "x"), "tx", func(error) {})
	var se *ScheduleError
	if !errors.As(err, &se) || se.Header != fsm.HeaderScheduledDelay || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("in a transaction: err = %v", err)
	}
	if st := e.Scheduled(); st.Pending != 0 {
		t.Fatalf("a refused send was scheduled: %+v", st)
	}

	// At the edges: accepted. -1 repeats as often as allowed.
	m := schedMsg("/queue/q", "x", fsm.HeaderScheduledDelay, tenYears, fsm.HeaderScheduledRepeat, "-1")
	do(t, func(done func(error)) error { return p.Send(m, "", done) })
	if s, ok := fsm.ScheduleOf(m); !ok || s.Remaining != MaxScheduledRepeat || s.Due != m.Timestamp+MaxScheduledDelay.Milliseconds() {
		t.Fatalf("schedule of the edge case: %+v %v", s, ok)
	}
}

// TestNotScheduled: a SEND that only looks scheduled is delivered at once.
func TestNotScheduled(t *testing.T) {
	e, _ := newEngine(t, Config{})
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q"})
	p, _ := open(t, e, "")
	for i, hs := range [][]string{
		{fsm.HeaderScheduledRepeat, "3"},                                        // repeat alone
		{fsm.HeaderScheduledDelay, "60000", fsm.HeaderScheduledJobID, "ID:old"}, // a fired copy sent on
		{fsm.HeaderScheduledCron, ""},                                           // empty cron
	} {
		do(t, func(done func(error)) error { return p.Send(schedMsg("/queue/q", "now", hs...), "", done) })
		out.wait(t, i)
	}
	if st := e.Scheduled(); st.Pending != 0 {
		t.Fatalf("scheduled: %+v", st)
	}
}

// TestScheduledInTransaction: a scheduled SEND in a transaction is
// scheduled at COMMIT, its delay counting from there; an aborted one never.
func TestScheduledInTransaction(t *testing.T) {
	e, _ := newEngine(t, Config{})
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q"})
	p, _ := open(t, e, "")

	if err := p.Begin("gone"); err != nil {
		t.Fatal(err)
	}
	do(t, func(done func(error)) error {
		return p.Send(schedMsg("/queue/q", "aborted", fsm.HeaderScheduledDelay, "50"), "gone", done)
	})
	if err := p.Abort("gone"); err != nil {
		t.Fatal(err)
	}

	if err := p.Begin("tx"); err != nil {
		t.Fatal(err)
	}
	m := schedMsg("/queue/q", "committed", fsm.HeaderScheduledDelay, "200")
	do(t, func(done func(error)) error { return p.Send(m, "tx", done) })
	time.Sleep(300 * time.Millisecond)
	if out.count() != 0 || e.Scheduled().Pending != 0 {
		t.Fatalf("before COMMIT: %d deliveries, %+v", out.count(), e.Scheduled())
	}
	commit := time.Now().UnixMilli()
	do(t, func(done func(error)) error { return p.Commit("tx", done) })
	if st := e.Scheduled(); st.Pending != 1 {
		t.Fatalf("after COMMIT: %+v", st)
	}
	d, at := arrival(t, out, 0)
	onTime(t, "copy", commit+200, at)
	if string(d.Msg.Body) != "committed" {
		t.Fatalf("got %q", d.Msg.Body)
	}
	time.Sleep(100 * time.Millisecond)
	if out.count() != 1 {
		t.Fatalf("%d deliveries, want 1", out.count())
	}
}

// TestScheduledLimits: a scheduled message counts against the store
// limit from its SEND, and against its queue's only once it fired,
// where it is never refused.
func TestScheduledLimits(t *testing.T) {
	e, l := newEngine(t, Config{
		StoreLimit: 4096,
		QueueLimit: DestLimit{MaxMessages: 1, OnFull: Fail},
	})
	p, _ := open(t, e, "")
	send(t, p, "/queue/q", "first", 4) // the queue is full now
	if err := p.Send(schedMsg("/queue/q", "x"), "", func(error) {}); !errors.Is(err, ErrDestinationFull) {
		t.Fatalf("plain send to the full queue: %v", err)
	}
	before := e.StoreBytes()
	m := schedMsg("/queue/q", strings.Repeat("b", 1000), fsm.HeaderScheduledDelay, "200")
	do(t, func(done func(error)) error { return p.Send(m, "", done) })
	if got, want := e.StoreBytes(), before+storeCost(m.Size()); got != want {
		t.Fatalf("StoreBytes = %d, want %d: the scheduled message counts in the store", got, want)
	}
	big := schedMsg("/queue/q", strings.Repeat("b", 3000), fsm.HeaderScheduledDelay, "200")
	err := p.Send(big, "", func(error) { t.Error("done called for a refused send") })
	var fe *FullError
	if !errors.As(err, &fe) || fe.Unit != unitStoreBytes {
		t.Fatalf("scheduled send beyond the store limit: %v", err)
	}
	if _, n := reservations(e); n != 0 {
		t.Fatalf("%d bytes still reserved", n)
	}
	// It fires into the full queue all the same.
	deadline := time.Now().Add(5 * time.Second)
	for e.Scheduled().Pending != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	n := 0
	l.f.Messages("/queue/q", 0, func(uint64, *fsm.Message) bool { n++; return true })
	if n != 2 {
		t.Fatalf("/queue/q holds %d messages, want 2", n)
	}
}

// TestScheduledLoadFiresOverdue: a new leader's engine loads the scheduled
// entries; those due already fire at once, the rest on time, each once.
func TestScheduledLoadFiresOverdue(t *testing.T) {
	l := newFSMLog(t)
	now := time.Now().UnixMilli()
	overdue := schedMsg("/queue/q", "overdue")
	overdue.ID, overdue.Timestamp = "ID:old-1", now-5000
	fsm.SetSchedule(overdue, fsm.Schedule{Due: now - 2000})
	future := schedMsg("/queue/q", "future")
	future.ID, future.Timestamp = "ID:old-2", now
	fsm.SetSchedule(future, fsm.Schedule{Due: now + 400})
	proposeWait(t, l,
		fsm.Command{Op: fsm.OpEnqueue, Queue: fsm.ScheduledQueue, Msg: overdue},
		fsm.Command{Op: fsm.OpEnqueue, Queue: fsm.ScheduledQueue, Msg: future})

	e, err := NewEngine(Config{}, l, l.f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q"})
	start := time.Now()
	if err := l.f.Attach(e); err != nil {
		t.Fatal(err)
	}
	d, at := arrival(t, out, 0)
	if string(d.Msg.Body) != "overdue" || at.Sub(start) > time.Second {
		t.Fatalf("first delivery %q after %v, want the overdue one at once", d.Msg.Body, at.Sub(start))
	}
	d, at = arrival(t, out, 1)
	onTime(t, "future copy", future.Timestamp+400, at)
	if string(d.Msg.Body) != "future" {
		t.Fatalf("second delivery %q", d.Msg.Body)
	}
	// A deposed leader's fire of the same entry, late: nothing happens.
	proposeWait(t, l, fsm.Command{Op: fsm.OpFire, Queue: fsm.ScheduledQueue, Seqs: []uint64{1}, Due: now - 2000})
	time.Sleep(200 * time.Millisecond)
	if out.count() != 2 {
		t.Fatalf("%d deliveries, want 2", out.count())
	}
}

// TestScheduledAcrossLeaders: the engine that accepted the SEND goes away
// before the due time; the next one fires it, once, on time.
func TestScheduledAcrossLeaders(t *testing.T) {
	l := newFSMLog(t)
	e1, err := NewEngine(Config{}, l, l.f)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.f.Attach(e1); err != nil {
		t.Fatal(err)
	}
	p, _ := open(t, e1, "")
	m := schedMsg("/queue/q", "x", fsm.HeaderScheduledDelay, "300", fsm.HeaderScheduledPeriod, "100", fsm.HeaderScheduledRepeat, "1")
	do(t, func(done func(error)) error { return p.Send(m, "", done) })
	l.f.Detach()
	e1.Close()

	e2, err := NewEngine(Config{}, l, l.f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e2.Close)
	if err := l.f.Attach(e2); err != nil {
		t.Fatal(err)
	}
	c, out := open(t, e2, "")
	subscribe(t, c, SubscribeSpec{ID: "s", Destination: "/queue/q"})
	for i := range 2 {
		d, at := arrival(t, out, i)
		onTime(t, fmt.Sprintf("copy %d", i+1), m.Timestamp+300+int64(i)*100, at)
		if want := fmt.Sprintf("%s:%d", m.ID, i+1); d.Msg.ID != want || d.Redelivered {
			t.Fatalf("copy %d: id %q redelivered %v, want %q, a first delivery", i+1, d.Msg.ID, d.Redelivered, want)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if out.count() != 2 {
		t.Fatalf("%d deliveries, want 2", out.count())
	}
}

// TestScheduledRepeatsCountInTheStore: a scheduled message weighs what
// all its copies will, from the SEND on, in a transaction or not; one
// whose copies would not fit is refused.
func TestScheduledRepeatsCountInTheStore(t *testing.T) {
	e, _ := newEngine(t, Config{StoreLimit: 64 << 10})
	p, _ := open(t, e, "")
	// An empty store takes any one message (as an empty queue does).
	send(t, p, "/queue/other", "x", 4)
	body := strings.Repeat("b", 16<<10)
	repeated := schedMsg("/queue/q", body, fsm.HeaderScheduledDelay, "60000", fsm.HeaderScheduledPeriod, "1", fsm.HeaderScheduledRepeat, "200")
	var fe *FullError
	if err := p.Send(repeated, "", func(error) { t.Error("done called for a refused send") }); !errors.As(err, &fe) || fe.Unit != unitStoreBytes {
		t.Fatalf("201 copies of 16 KiB under a 64 KiB store limit: %v", err)
	}
	two := schedMsg("/queue/q", body, fsm.HeaderScheduledDelay, "60000", fsm.HeaderScheduledRepeat, "1", fsm.HeaderScheduledPeriod, "1000")
	do(t, func(done func(error)) error { return p.Send(two, "", done) })
	if got := e.StoreBytes(); got < 2*int64(len(body)) {
		t.Fatalf("StoreBytes = %d after a message of two 16 KiB copies", got)
	}
	// In a transaction, and through a composite SEND's transaction.
	if err := p.Begin("t"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		m := schedMsg("/queue/q", body, fsm.HeaderScheduledDelay, "60000")
		do(t, func(done func(error)) error { return p.Send(m, "t", done) })
	}
	if err := p.Commit("t", func(error) { t.Error("done called for a refused commit") }); !errors.As(err, &fe) {
		t.Fatalf("commit of three more 16 KiB scheduled messages: %v", err)
	}
}
