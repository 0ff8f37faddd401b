package queue

import (
	"reflect"
	"testing"

	"github.com/raftmq/raftmq/fsm"
)

func TestPendingOrder(t *testing.T) {
	var p pendingList
	var ord uint64
	mk := func(prio uint8) *ref {
		ord++
		return &ref{ord: ord, meta: fsm.Meta{Priority: prio}}
	}
	low1, high1, low2, high2 := mk(1), mk(8), mk(1), mk(8)
	for _, r := range []*ref{low1, high1, low2, high2} {
		p.push(r)
	}
	if got := p.pop(); got != high1 {
		t.Fatalf("first pop: got ord %d, want high1", got.ord)
	}
	// high1 comes back (a NACK): it goes before high2, which arrived later.
	p.pushReturned(high1)
	for i, want := range []*ref{high1, high2, low1, low2} {
		if got := p.pop(); got != want {
			t.Fatalf("pop %d: got ord %d, want %d", i, got.ord, want.ord)
		}
	}
	if p.pop() != nil || p.n != 0 {
		t.Fatalf("list not empty: n=%d", p.n)
	}
}

func TestPendingLazyRemoval(t *testing.T) {
	var p pendingList
	rs := make([]*ref, 5)
	for i := range rs {
		rs[i] = &ref{ord: uint64(i + 1)}
		p.push(rs[i])
	}
	rs[1].state = refGone
	p.removed()
	rs[3].state = refGone
	p.removed()
	var got []uint64
	for r := p.pop(); r != nil; r = p.pop() {
		got = append(got, r.ord)
	}
	if len(got) != 3 || got[0] != 1 || got[1] != 3 || got[2] != 5 {
		t.Fatalf("got %v, want [1 3 5]", got)
	}
	if p.n != 0 {
		t.Fatalf("n = %d after draining", p.n)
	}
}

func TestPendingCompactsLongFIFO(t *testing.T) {
	var p pendingList
	for i := 1; i <= 5000; i++ {
		p.push(&ref{ord: uint64(i)})
	}
	for i := 1; i <= 4000; i++ {
		if r := p.pop(); r.ord != uint64(i) {
			t.Fatalf("pop %d: got %d", i, r.ord)
		}
	}
	l := &p.levels[0]
	if len(l.fifo)-l.head != 1000 || l.head > 2500 {
		t.Fatalf("fifo not compacted: len %d head %d", len(l.fifo), l.head)
	}
}

func TestPendingPeekAndPushInOrder(t *testing.T) {
	var p pendingList
	rs := make([]*ref, 8)
	for i := range rs {
		rs[i] = &ref{ord: uint64(i + 1), meta: fsm.Meta{Priority: 4}}
	}
	// In order, then out of order (a message that came back), then a
	// higher priority.
	for _, i := range []int{1, 3, 4, 0, 2, 6} {
		p.pushInOrder(rs[i])
	}
	rs[7].meta.Priority = 9
	p.pushInOrder(rs[7])
	if n := len(p.levels[4].returned); n != 2 {
		t.Fatalf("%d refs in the heap, want 2 (the ones pushed out of order)", n)
	}
	rs[0].state = refGone // dead at the head: peek steps over it
	p.removed()
	var got []uint64
	for r := p.peek(); r != nil; r = p.peek() {
		if pop := p.pop(); pop != r {
			t.Fatalf("peek %d, pop %d", r.ord, pop.ord)
		}
		got = append(got, r.ord)
	}
	if want := []uint64{8, 2, 3, 4, 5, 7}; !reflect.DeepEqual(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	if p.n != 0 {
		t.Fatalf("n = %d after draining", p.n)
	}
	if !before(rs[7], rs[1]) || !before(rs[1], rs[2]) || before(rs[2], rs[1]) {
		t.Fatal("before: want priority first, then arrival")
	}
}
