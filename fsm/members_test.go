package fsm

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

func members(t *testing.T, f *FSM) []Member {
	t.Helper()
	ms, err := f.Members()
	if err != nil {
		t.Fatalf("Members: %v", err)
	}
	return ms
}

func setMember(id, host string) Command {
	return Command{Op: OpSetMember, Member: &Member{
		ID: id, RaftAddr: host + ":7000", StompAddr: host + ":61613", HTTPAddr: host + ":8080",
	}}
}

func TestMembers(t *testing.T) {
	h := newHarness(t)
	rec := attach(t, h.f)
	if ms := members(t, h.f); ms != nil {
		t.Fatalf("new store has members %+v", ms)
	}
	h.mustApply(setMember("n2", "10.0.0.2"), setMember("n1", "10.0.0.1"), setMember("n3", "10.0.0.3"))
	h.mustApply(
		setMember("n2", "10.0.0.22"), // replaced: a node that moved
		Command{Op: OpRemoveMember, Member: &Member{ID: "n3"}},
		Command{Op: OpRemoveMember, Member: &Member{ID: "n9"}}, // not there: nothing to do
	)
	want := []Member{*setMember("n1", "10.0.0.1").Member, *setMember("n2", "10.0.0.22").Member}
	if got := members(t, h.f); !reflect.DeepEqual(got, want) {
		t.Fatalf("members %+v, want %+v", got, want)
	}
	// Delivery does not use the directory: the observer hears nothing.
	sameChanges(t, rec.take(), nil)

	res := h.apply(
		Command{Op: OpSetMember},
		Command{Op: OpSetMember, Member: &Member{RaftAddr: "x:1"}},
		Command{Op: OpRemoveMember},
		Command{Op: OpRemoveMember, Member: &Member{}},
	)
	for i, r := range res {
		if !errors.Is(r.Err, ErrInvalidCommand) {
			t.Errorf("command %d: err = %v, want ErrInvalidCommand", i, r.Err)
		}
	}
	if got := members(t, h.f); !reflect.DeepEqual(got, want) {
		t.Fatalf("invalid commands changed the members: %+v", got)
	}

	// The directory and the window outlive a restart, and a snapshot
	// carries both into another FSM, replacing what it had.
	h.mustApply(dedupeEnqueue("/queue/a", "d", 1))
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	f := openFSM(t, h.dir)
	if got := members(t, f); !reflect.DeepEqual(got, want) {
		t.Fatalf("members after reopen %+v, want %+v", got, want)
	}
	sameWindow(t, f, windowEntry{"d", 1})
	data := persist(t, f)
	h2 := newHarness(t)
	h2.mustApply(setMember("other", "10.9.9.9"))
	if err := restore(h2.f, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := members(t, h2.f); !reflect.DeepEqual(got, want) {
		t.Fatalf("members after restore %+v, want %+v", got, want)
	}
	sameWindow(t, h2.f, windowEntry{"d", 1})

	if err := h2.f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.f.Members(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Members after Close: err = %v, want ErrClosed", err)
	}
}

// Members reads committed state from any goroutine while entries are
// applied and a restore swaps the store (run with -race).
func TestMembersDuringApplies(t *testing.T) {
	h := newHarness(t)
	h.mustApply(setMember("n0", "h0"))
	data := persist(t, h.f)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ms, err := h.f.Members()
			if err != nil {
				t.Errorf("Members: %v", err)
				return
			}
			// Each entry sets one member, n1 to n9 in order, and the
			// restore goes back to n0 alone: every read sees n0..nk.
			for i, m := range ms {
				if m.ID != fmt.Sprint("n", i) {
					t.Errorf("members %+v: not a prefix of the applied ones", ms)
					return
				}
			}
		}
	}()
	for i := 1; i < 10; i++ {
		h.mustApply(setMember(fmt.Sprint("n", i), fmt.Sprint("h", i)))
	}
	if err := restore(h.f, data); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	close(stop)
	wg.Wait()
	if got := members(t, h.f); len(got) != 1 || got[0].ID != "n0" {
		t.Fatalf("members after restore %+v", got)
	}
}
