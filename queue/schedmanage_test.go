package queue

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/raftmq/raftmq/fsm"
)

// manage sends to ActiveMQ's scheduler management topic and waits for
// the outcome.
func manage(t *testing.T, s *Session, kv ...string) {
	t.Helper()
	do(t, func(done func(error)) error {
		return s.Send(schedMsg(SchedulerManagement, "", kv...), "", done)
	})
}

// TestSchedulerManagement: BROWSE, REMOVE and REMOVEALL sent to
// ActiveMQ.Scheduler.Management, as a STOMP client of ActiveMQ sends them.
func TestSchedulerManagement(t *testing.T) {
	e, _ := newEngine(t, Config{})
	p, _ := open(t, e, "")
	a1 := schedMsg("/queue/a", "a1", fsm.HeaderScheduledDelay, "3600000", "k", "v")
	a2 := schedMsg("/queue/a", "a2", fsm.HeaderScheduledDelay, "7200000")
	x := schedMsg("/topic/x", "x", fsm.HeaderScheduledDelay, "10800000")
	for _, m := range []*fsm.Message{a2, x, a1} {
		sendMsg(t, p, m, "")
	}
	c, out := open(t, e, "")
	subscribe(t, c, SubscribeSpec{ID: "b", Destination: "/queue/browsed", Ack: AckAuto})

	manage(t, p, HeaderSchedulerAction, "BROWSE", "reply-to", "/queue/browsed")
	out.wait(t, 2)
	if got := bodies(out); !slices.Equal(got, []string{"a1", "a2", "x"}) {
		t.Fatalf("browse gave %q, want every scheduled message, the earliest due first", got)
	}
	first := out.wait(t, 0).Msg
	if id, _ := first.Header(fsm.HeaderScheduledJobID); id != a1.ID {
		t.Errorf("browsed copy's %s is %q, want %q", fsm.HeaderScheduledJobID, id, a1.ID)
	}
	if v, _ := first.Header("k"); v != "v" {
		t.Errorf("browsed copy lost the sender's headers: %v", first.Headers)
	}
	if d, _ := first.Header(fsm.HeaderScheduledDelay); d != "3600000" {
		t.Errorf("browsed copy shows %s %q", fsm.HeaderScheduledDelay, d)
	}
	if _, total, _ := e.ListScheduled("", 0); total != 3 {
		t.Errorf("a browse left %d scheduled, want 3 (and was itself scheduled?)", total)
	}

	// A window on the next due time.
	end := strconv.FormatInt(a1.Timestamp+3600000, 10)
	manage(t, p, HeaderSchedulerAction, "BROWSE", "reply-to", "/queue/browsed", HeaderActionEndTime, end)
	out.wait(t, 3)
	time.Sleep(50 * time.Millisecond)
	if got := bodies(out)[3:]; !slices.Equal(got, []string{"a1"}) {
		t.Errorf("browse up to a1's due time gave %q", got)
	}

	manage(t, p, HeaderSchedulerAction, "REMOVE", fsm.HeaderScheduledJobID, a2.ID)
	manage(t, p, HeaderSchedulerAction, "REMOVE", fsm.HeaderScheduledJobID, "ID:no-such-job") // ignored, as ActiveMQ does
	if list, _, _ := e.ListScheduled("", 0); len(list) != 2 || list[0].JobID != a1.ID || list[1].JobID != x.ID {
		t.Fatalf("after REMOVE: %+v", list)
	}
	start := strconv.FormatInt(a1.Timestamp+3600001, 10)
	manage(t, p, HeaderSchedulerAction, "REMOVEALL", HeaderActionStartTime, start)
	if list, _, _ := e.ListScheduled("", 0); len(list) != 1 || list[0].JobID != a1.ID {
		t.Fatalf("after REMOVEALL from past a1's due time: %+v", list)
	}
	manage(t, p, HeaderSchedulerAction, "REMOVEALL")
	if _, total, _ := e.ListScheduled("", 0); total != 0 {
		t.Fatalf("after REMOVEALL: %d left", total)
	}

	for _, tc := range []struct {
		headers []string
		tx      string
		want    error
	}{
		{nil, "", ErrSchedulerAction},
		{[]string{HeaderSchedulerAction, "LIST"}, "", ErrSchedulerAction},
		{[]string{HeaderSchedulerAction, "BROWSE"}, "", ErrSchedulerReplyTo},
		{[]string{HeaderSchedulerAction, "REMOVE"}, "", ErrSchedulerJobID},
		{[]string{HeaderSchedulerAction, "REMOVEALL", HeaderActionEndTime, "soon"}, "", ErrBadSchedule},
		{[]string{HeaderSchedulerAction, "BROWSE", "reply-to", "/queue/b", HeaderActionStartTime, "x"}, "", ErrBadSchedule},
		{[]string{HeaderSchedulerAction, "REMOVEALL"}, "tx", ErrSchedulerTx},
		// The copies of a browse to the management topic would be read
		// as commands (a scheduled message may carry any header).
		{[]string{HeaderSchedulerAction, "BROWSE", "reply-to", SchedulerManagement}, "", ErrBadDestination},
		{[]string{HeaderSchedulerAction, "BROWSE", "reply-to", "/queue/a,/queue/b"}, "", ErrBadDestination},
		{[]string{HeaderSchedulerAction, "BROWSE", "reply-to", "/queue/a.>"}, "", ErrWildcardSend},
		{[]string{HeaderSchedulerAction, "BROWSE", "reply-to", SystemTopicPrefix + "x"}, "", ErrReservedDestination},
	} {
		if tc.tx != "" {
			if err := p.Begin(tc.tx); err != nil {
				t.Fatal(err)
			}
		}
		err := p.Send(schedMsg(SchedulerManagement, "", tc.headers...), tc.tx, func(error) {})
		if !errors.Is(err, tc.want) {
			t.Errorf("%v in %q: %v, want %v", tc.headers, tc.tx, err, tc.want)
		}
	}
}
