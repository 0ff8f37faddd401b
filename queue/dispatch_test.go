package queue

import (
	"runtime"
	"testing"

	"github.com/raftmq/raftmq/fsm"
)

// nopLog accepts proposals and reports them applied, without storing
// anything: for benchmarks of paths that propose nothing that matters.
type nopLog struct{}

func (nopLog) Propose(cmds []fsm.Command, done func([]fsm.Result, error)) {
	go done(make([]fsm.Result, len(cmds)), nil)
}

// benchOut is an Outbound for one goroutine: the benchmark itself.
type benchOut struct {
	ds       []*Delivery
	writable bool
}

func (o *benchOut) Deliver(d *Delivery) { o.ds = append(o.ds, d) }
func (o *benchOut) Writable() bool      { return o.writable }

// BenchmarkDispatch measures dispatch alone, per message: a backlog of
// non-persistent messages is handed out to four consumers at once when
// their connections become writable. Sending and acknowledging are not
// timed.
//
// local is the common case; the others measure the network dispatch path:
// a low-priority network consumer beside the local ones (never used, as
// the local ones have credit), and network consumers alone (replay), one
// of them low-priority.
func BenchmarkDispatch(b *testing.B) {
	low := &NetworkSpec{Group: "B", TTL: 1, LowPriority: true}
	b.Run("local", func(b *testing.B) { benchDispatch(b, 4) })
	b.Run("local+lowprio", func(b *testing.B) { benchDispatch(b, 4, low) })
	b.Run("network-only", func(b *testing.B) {
		benchDispatch(b, 0, &NetworkSpec{Group: "B"}, &NetworkSpec{Group: "C"}, &NetworkSpec{Group: "D"}, low)
	})
}

func benchDispatch(b *testing.B, locals int, network ...*NetworkSpec) {
	e, err := NewEngine(Config{}, nopLog{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	type consumer struct {
		s   *Session
		out *benchOut
	}
	var cs []consumer
	add := func(spec SubscribeSpec) {
		out := &benchOut{}
		s, err := e.Open("", out)
		if err != nil {
			b.Fatal(err)
		}
		spec.Destination, spec.Ack, spec.Prefetch = "/queue/bench", AckAuto, 1<<20
		if err := s.Subscribe(spec, func(error) {}); err != nil {
			b.Fatal(err)
		}
		cs = append(cs, consumer{s, out})
	}
	for i := 0; i < locals; i++ {
		add(SubscribeSpec{ID: "local"})
	}
	for _, n := range network {
		add(SubscribeSpec{ID: "network", Network: n})
	}
	p, err := e.Open("", &benchOut{})
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 100)
	const batch = 1000
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += batch {
		b.StopTimer()
		for _, c := range cs {
			c.out.writable = false
		}
		n := min(batch, b.N-sent)
		for i := 0; i < n; i++ {
			m := &fsm.Message{Destination: "/queue/bench", Body: body, Priority: 4}
			if err := p.Send(m, "", func(error) {}); err != nil {
				b.Fatal(err)
			}
		}
		for _, c := range cs {
			c.out.writable = true
		}
		b.StartTimer()
		for _, c := range cs {
			c.s.Resume()
		}
		b.StopTimer()
		got := 0
		for _, c := range cs {
			for _, d := range c.out.ds {
				d.Written()
			}
			got += len(c.out.ds)
			c.out.ds = c.out.ds[:0]
		}
		if got != n {
			b.Fatalf("%d deliveries of %d messages", got, n)
		}
		b.StartTimer()
	}
}

// BenchmarkDrainPastIneligible measures the worst case of set-aside: one
// local consumer with prefetch 1 drains a backlog of messages that came
// from group B, while a network consumer for B (which may have none of
// them) is ready, so every dispatch steps over up to maxSetAside messages
// before it stops. "local" is the same drain without the network consumer.
func BenchmarkDrainPastIneligible(b *testing.B) {
	b.Run("local", func(b *testing.B) { benchDrain(b, false) })
	b.Run("with-network", func(b *testing.B) { benchDrain(b, true) })
}

func benchDrain(b *testing.B, network bool) {
	e, err := NewEngine(Config{}, nopLog{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	out := &benchOut{}
	local, err := e.Open("", out)
	if err != nil {
		b.Fatal(err)
	}
	if err := local.Subscribe(SubscribeSpec{ID: "l", Destination: "/queue/bench", Ack: AckAuto, Prefetch: 1}, func(error) {}); err != nil {
		b.Fatal(err)
	}
	if network {
		s, err := e.Open("", &benchOut{writable: true})
		if err != nil {
			b.Fatal(err)
		}
		spec := SubscribeSpec{ID: "n", Destination: "/queue/bench", Ack: AckClientIndividual, Network: &NetworkSpec{Group: "B"}}
		if err := s.Subscribe(spec, func(error) {}); err != nil {
			b.Fatal(err)
		}
	}
	p, err := e.Open("", &benchOut{})
	if err != nil {
		b.Fatal(err)
	}
	hs := []fsm.Header{{Key: fsm.HeaderNetworkPath, Value: "B"}}
	drainBatches(b, out, local, p, func() *fsm.Message {
		return &fsm.Message{Destination: "/queue/bench", Headers: hs, Body: make([]byte, 100), Priority: 4}
	})
}

// drainBatches times an auto-ack consumer session c draining b.N
// messages: in batches of 1000, p sends msg()'s untimed while c's
// connection is full, then c resumes and each delivery is written (its
// ack), the dispatch giving the next one.
func drainBatches(b *testing.B, out *benchOut, c, p *Session, msg func() *fsm.Message) {
	const batch = 1000
	b.ReportAllocs()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += batch {
		b.StopTimer()
		out.writable = false
		n := min(batch, b.N-sent)
		for range n {
			if err := p.Send(msg(), "", func(error) {}); err != nil {
				b.Fatal(err)
			}
		}
		out.writable = true
		b.StartTimer()
		c.Resume()
		for i := range n {
			out.ds[i].Written()
		}
		b.StopTimer()
		if len(out.ds) != n {
			b.Fatalf("%d deliveries of %d messages", len(out.ds), n)
		}
		out.ds = out.ds[:0]
		b.StartTimer()
	}
}

// BenchmarkRefMemory measures what the leader keeps in memory for each
// stored message whose body is not cached: its ref, its entry in the
// queue's index and its place in the pending list (MessageOverhead is
// meant to cover it). It reports heap bytes per message.
func BenchmarkRefMemory(b *testing.B) {
	const n = 200_000
	for range b.N {
		e, err := NewEngine(Config{}, nopLog{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e.mu.Lock()
		q := e.queue("/queue/mem")
		for i := range n {
			e.insert(q, &ref{seq: uint64(i + 1), meta: fsm.Meta{Priority: 4, Size: 1024}, persistent: true, redelivered: true})
		}
		e.mu.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/msg")
		runtime.KeepAlive(q)
		e.Close()
	}
}
