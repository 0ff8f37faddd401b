package queue

import (
	"container/heap"

	"github.com/raftmq/raftmq/fsm"
)

// ref is one message known to the engine: pending in a queue, in flight to
// a consumer, or on its way out (acked, expired or dead-lettered, waiting
// for the command to apply).
type ref struct {
	seq        uint64 // store seq; 0 for non-persistent messages
	ord        uint64 // arrival order within the engine, for FIFO per priority
	meta       fsm.Meta
	msg        *fsm.Message // cached body; nil means read it from the store
	persistent bool
	cached     bool // msg counts against the engine's cache budget
	parked     bool // pending in its queue's parked list, not its pending list
	state      refState
	// deliveries counts deliveries written to a client socket.
	deliveries int
	// redelivered marks that the message may have reached a client before.
	redelivered bool
}

type refState uint8

const (
	refPending refState = iota
	refInflight
	refGone // acked, expired, moved, purged: skip wherever found
)

func (r *ref) expired(nowMs int64) bool {
	return r.meta.Expires != 0 && nowMs >= r.meta.Expires
}

// pendingList holds a queue's pending messages: highest priority first,
// then arrival order. Each priority level is a FIFO of new arrivals plus a
// heap of messages that came back (nacked, released by a consumer that
// left); taking the smaller arrival order of the two keeps the level in
// order without inserting into the middle of the FIFO. Removal is lazy:
// a ref whose state is no longer refPending is skipped and dropped on pop.
type pendingList struct {
	levels [10]level
	n      int // live pending refs
}

type level struct {
	fifo     []*ref
	head     int
	returned refHeap
}

func (p *pendingList) push(r *ref) {
	l := &p.levels[prio(r)]
	l.fifo = append(l.fifo, r)
	p.n++
}

// pushReturned puts back a ref that was taken earlier.
func (p *pendingList) pushReturned(r *ref) {
	heap.Push(&p.levels[prio(r)].returned, r)
	p.n++
}

// pushInOrder adds r in its place by arrival order: at the tail of the
// FIFO when it arrived after everything there (the common case, and O(1)),
// otherwise with the returned ones.
func (p *pendingList) pushInOrder(r *ref) {
	l := &p.levels[prio(r)]
	if n := len(l.fifo); n == l.head || l.fifo[n-1].ord < r.ord {
		l.fifo = append(l.fifo, r)
	} else {
		heap.Push(&l.returned, r)
	}
	p.n++
}

// pop takes the next live pending ref, or nil.
func (p *pendingList) pop() *ref {
	for i := len(p.levels) - 1; i >= 0; i-- {
		l := &p.levels[i]
		for {
			r := l.take()
			if r == nil {
				break
			}
			if r.state == refPending {
				p.n--
				return r
			}
		}
	}
	return nil
}

// peek returns the next live pending ref without taking it, or nil.
func (p *pendingList) peek() *ref {
	for i := len(p.levels) - 1; i >= 0; i-- {
		if r := p.levels[i].peek(); r != nil {
			return r
		}
	}
	return nil
}

// peek returns the level's next live ref, dropping the dead ones before it.
func (l *level) peek() *ref {
	for {
		var r *ref
		if l.head < len(l.fifo) {
			r = l.fifo[l.head]
		}
		if len(l.returned) > 0 && (r == nil || l.returned[0].ord < r.ord) {
			r = l.returned[0]
		}
		if r == nil || r.state == refPending {
			return r
		}
		l.take()
	}
}

// before reports whether a comes before b in a pending list's order:
// higher priority first, then arrival.
func before(a, b *ref) bool {
	if pa, pb := prio(a), prio(b); pa != pb {
		return pa > pb
	}
	return a.ord < b.ord
}

// take removes the level's next ref in arrival order, dead or alive.
func (l *level) take() *ref {
	var f *ref
	if l.head < len(l.fifo) {
		f = l.fifo[l.head]
	}
	if len(l.returned) > 0 && (f == nil || l.returned[0].ord < f.ord) {
		return heap.Pop(&l.returned).(*ref)
	}
	if f == nil {
		return nil
	}
	l.fifo[l.head] = nil
	l.head++
	if l.head == len(l.fifo) {
		l.fifo, l.head = l.fifo[:0], 0
	} else if l.head > 1024 && l.head*2 > len(l.fifo) {
		l.fifo = append(l.fifo[:0], l.fifo[l.head:]...)
		l.head = 0
	}
	return f
}

// removed records that a pending ref left without pop (lazy removal).
func (p *pendingList) removed() { p.n-- }

// each calls fn for every live pending ref, in no particular order.
func (p *pendingList) each(fn func(r *ref)) {
	for i := range p.levels {
		l := &p.levels[i]
		for _, r := range l.fifo[l.head:] {
			if r.state == refPending {
				fn(r)
			}
		}
		for _, r := range l.returned {
			if r.state == refPending {
				fn(r)
			}
		}
	}
}

// reset drops everything.
func (p *pendingList) reset() { *p = pendingList{} }

func prio(r *ref) int {
	if r.meta.Priority > 9 {
		return 9
	}
	return int(r.meta.Priority)
}

type refHeap []*ref

func (h refHeap) Len() int           { return len(h) }
func (h refHeap) Less(i, j int) bool { return h[i].ord < h[j].ord }
func (h refHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *refHeap) Push(x any)        { *h = append(*h, x.(*ref)) }
func (h *refHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
}
