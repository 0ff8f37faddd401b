package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func testMessage(id, dest, body string, headers ...string) *Message {
	m := &Message{
		ID:          id,
		Destination: dest,
		Priority:    4,
		Timestamp:   1_700_000_000_000,
		Persistent:  true,
	}
	if body != "" {
		m.Body = []byte(body)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		m.Headers = append(m.Headers, Header{Key: headers[i], Value: headers[i+1]})
	}
	return m
}

// allOps has one command of every op, with fields at their edges.
func allOps() []Command {
	return append(v1Ops(),
		Command{Op: OpEnqueue, Queue: "/queue/a", Msg: testMessage("id:3", "/queue/a", "x", "dedupe-id", "d1"), DedupeID: "d1"},
		Command{Op: OpEnqueue, Queue: "/queue/a", DedupeID: strings.Repeat("d", MaxDedupeIDLen)},
		Command{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("id:4", "/topic/t", ""), DedupeID: "\x00\xff"},
		Command{Op: OpExpireDedupe, Before: 1_700_000_000_000},
		Command{Op: OpExpireDedupe, Before: math.MinInt64},
		Command{Op: OpExpireDedupe},
		Command{Op: OpSetMember, Member: &Member{ID: "n1", RaftAddr: "10.0.0.1:7000", StompAddr: "10.0.0.1:61613", HTTPAddr: "10.0.0.1:8080"}},
		Command{Op: OpSetMember, Member: &Member{}},
		Command{Op: OpSetMember},
		Command{Op: OpRemoveMember, Member: &Member{ID: "n2"}},
		Command{Op: OpCreateQueue, Queue: "/queue/new"},
		Command{Op: OpMove, Queue: "/queue/DLQ.a", Seqs: []uint64{9, 4, 1 << 50}, Target: "/queue/a"},
		Command{Op: OpMove},
		Command{Op: OpFire, Queue: ScheduledQueue, Seqs: []uint64{1 << 33}, Due: 1_700_000_000_123},
		Command{Op: OpFire},
	)
}

// v1Ops has one command of every op of batch format 1, as
// testdata/batch-format1.hex holds them in that format.
func v1Ops() []Command {
	return []Command{
		{Op: OpEnqueue, Queue: "/queue/a", Msg: testMessage("id:1", "/queue/a", "hello", "k", "v", "", "", "ключ", "значение")},
		{Op: OpEnqueue, Queue: "/queue/a", Msg: &Message{Priority: 9, Expires: -1, Timestamp: math.MinInt64}},
		{Op: OpEnqueue, Queue: "/queue/nil-msg"},
		{Op: OpPublish, Topic: "/topic/t", Msg: testMessage("id:2", "/topic/t", strings.Repeat("x", 300))},
		{Op: OpAck, Queue: "/queue/a", Seqs: []uint64{5, 3, math.MaxUint64, 0, 1 << 40, 1 << 40}},
		{Op: OpAck, Queue: "/queue/a"},
		{Op: OpDeadLetter, Queue: "/queue/a", Seqs: []uint64{7}, Target: "/queue/ActiveMQ.DLQ", Reason: "expired"},
		{Op: OpSubscribe, Durable: &Durable{ClientID: "c1", Name: "s1", Topic: "/topic/t", Selector: "x > 1"}},
		{Op: OpSubscribe},
		{Op: OpUnsubscribe, Durable: &Durable{ClientID: "c1", Name: "s1"}},
		{Op: OpPurge, Queue: "/queue/a"},
		{Op: OpDeleteQueue, Queue: "/queue/b"},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	for _, cmds := range [][]Command{nil, allOps()} {
		b := EncodeBatch(cmds)
		got, err := DecodeBatch(b)
		if err != nil {
			t.Fatalf("DecodeBatch: %v", err)
		}
		if len(cmds) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, cmds) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, cmds)
		}
	}
}

// TestDecodeFormat1 decodes a batch written by the version before the
// dedupe window (testdata/batch-format1.hex, made by that version's
// EncodeBatch from v1Ops): raft logs and snapshots keep such entries.
func TestDecodeFormat1(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("testdata", "batch-format1.hex"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != batchFormat1 {
		t.Fatalf("golden batch is format %d, want %d", b[0], batchFormat1)
	}
	got, err := DecodeBatch(b)
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	if want := v1Ops(); !reflect.DeepEqual(got, want) {
		t.Fatalf("format 1 batch:\n got %+v\nwant %+v", got, want)
	}
	// Written again, it is format 2 and means the same.
	again := EncodeBatch(got)
	if again[0] != batchFormat2 {
		t.Fatalf("EncodeBatch wrote format %d, want %d", again[0], batchFormat2)
	}
	if got2 := mustDecode(t, again); !reflect.DeepEqual(got2, got) {
		t.Fatalf("format 2 round trip:\n got %+v\nwant %+v", got2, got)
	}
}

func TestEncodeBatchExactSize(t *testing.T) {
	b := EncodeBatch(allOps())
	if len(b) != cap(b) {
		t.Fatalf("encoded %d bytes into a buffer of %d: the size computation is off", len(b), cap(b))
	}
}

func TestEncodeBatchUnknownOpPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("EncodeBatch accepted an unknown op")
		}
	}()
	EncodeBatch([]Command{{Op: OpSkippable | 9}})
}

func TestMessageRecordRoundTrip(t *testing.T) {
	for _, m := range []*Message{
		testMessage("id", "/queue/q", "body", "a", "1", "a", "2"),
		{},
		{Priority: 255, Expires: math.MaxInt64, Timestamp: -5, Body: bytes.Repeat([]byte{0}, 70000)},
	} {
		v := appendMessage(nil, m)
		if len(v) != messageSize(m) {
			t.Errorf("messageSize = %d, encoded %d bytes", messageSize(m), len(v))
		}
		got, err := decodeMessage(v)
		if err != nil {
			t.Fatalf("decodeMessage: %v", err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
		}
		// The decoded message must not alias the value: pebble reuses it.
		for i := range v {
			v[i] = 0xff
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatal("decoded message aliases its input")
		}
	}
	if _, err := decodeMessage(append(appendMessage(nil, &Message{}), 0)); !errors.Is(err, errCorrupt) {
		t.Fatalf("trailing byte: err = %v, want errCorrupt", err)
	}
}

func TestMetaAndDurableRecords(t *testing.T) {
	for _, m := range []Meta{
		{Priority: 7, Expires: 1 << 50, Size: 1 << 20},
		{Priority: 4, Expires: -1, Size: 0, Path: "A"},
		{Path: "A,B," + strings.Repeat("g", 300)},
	} {
		got, err := decodeMeta(appendMeta(nil, m))
		if err != nil || got != m {
			t.Fatalf("meta round trip: %+v, %v; want %+v", got, err, m)
		}
	}
	d := &Durable{ClientID: "c", Name: "n", Topic: "/topic/t", Selector: "s"}
	gotD, err := decodeDurable(appendDurable(nil, d))
	if err != nil || *gotD != *d {
		t.Fatalf("durable round trip: %+v, %v", gotD, err)
	}
	mb := &Member{ID: "n1", RaftAddr: "r:1", StompAddr: "s:2", HTTPAddr: "h:3"}
	gotM, err := decodeMember(appendMember(nil, mb))
	if err != nil || *gotM != *mb {
		t.Fatalf("member round trip: %+v, %v", gotM, err)
	}
	if _, err := decodeMember(append(appendMember(nil, mb), 0)); !errors.Is(err, errCorrupt) {
		t.Fatalf("member with a trailing byte: err = %v, want errCorrupt", err)
	}
}

// rawCommand appends a command with an arbitrary op and payload, as a newer
// version would write it.
func rawCommand(b []byte, op Op, payload []byte) []byte {
	b = append(b, byte(op))
	b = binary.AppendUvarint(b, uint64(len(payload)))
	return append(b, payload...)
}

// batchWithRaw encodes cmds with extra inserted after the first command.
func batchWithRaw(op Op, payload []byte, cmds ...Command) []byte {
	b := []byte{batchFormat2}
	b = binary.AppendUvarint(b, uint64(len(cmds)+1))
	for i, c := range cmds {
		one := EncodeBatch([]Command{c})
		b = append(b, one[2:]...) // drop version and count
		if i == 0 {
			b = rawCommand(b, op, payload)
		}
	}
	return b
}

func TestDecodeSkippableUnknownOp(t *testing.T) {
	a := Command{Op: OpPurge, Queue: "/queue/a"}
	c := Command{Op: OpDeleteQueue, Queue: "/queue/c"}
	unknown := OpSkippable | 0x33
	b := batchWithRaw(unknown, []byte("whatever a newer version puts here"), a, c)
	got, err := DecodeBatch(b)
	if err != nil {
		t.Fatalf("DecodeBatch: %v", err)
	}
	want := []Command{a, {Op: unknown}, c}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestDecodeUnknownOpFails(t *testing.T) {
	b := batchWithRaw(0x33, nil, Command{Op: OpPurge, Queue: "/queue/a"})
	if _, err := DecodeBatch(b); !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), "unknown op") {
		t.Fatalf("err = %v, want an unknown op error", err)
	}
}

func TestDecodeBatchRejects(t *testing.T) {
	valid := EncodeBatch(allOps())
	for n := range len(valid) {
		if _, err := DecodeBatch(valid[:n]); err == nil {
			t.Fatalf("prefix of %d/%d bytes decoded without error", n, len(valid))
		}
	}
	cases := map[string][]byte{
		"version":   append([]byte{batchFormat2 + 1}, valid[1:]...),
		"version 0": append([]byte{0}, valid[1:]...),
		"trailing":  append(append([]byte(nil), valid...), 0),
		"payload too long": rawCommand([]byte{batchFormat2, 1}, OpPurge,
			append(appendString(nil, "/queue/a"), 0)),
		"message flags": rawCommand([]byte{batchFormat2, 1}, OpEnqueue,
			append(appendString(nil, "/queue/a"), 1, 0x80)),
		"presence byte": rawCommand([]byte{batchFormat2, 1}, OpEnqueue,
			append(appendString(nil, "/queue/a"), 2)),
		// Version 2 ends an enqueue with its dedupe id; version 1 did not
		// have one, so there the same bytes are one field too many.
		"enqueue without dedupe id": rawCommand([]byte{batchFormat2, 1}, OpEnqueue,
			append(appendString(nil, "/queue/a"), 0)),
		"format 1 enqueue with dedupe id": rawCommand([]byte{batchFormat1, 1}, OpEnqueue,
			appendString(append(appendString(nil, "/queue/a"), 0), "id")),
		"huge dedupe id": rawCommand([]byte{batchFormat2, 1}, OpPublish,
			binary.AppendUvarint(append(appendString(nil, "/topic/t"), 0), 1<<40)),
		"expire without before": rawCommand([]byte{batchFormat2, 1}, OpExpireDedupe, nil),
		"member presence byte":  rawCommand([]byte{batchFormat2, 1}, OpSetMember, []byte{7}),
		"short member": rawCommand([]byte{batchFormat2, 1}, OpRemoveMember,
			append([]byte{1}, appendString(nil, "n1")...)),
		"huge count": binary.AppendUvarint([]byte{batchFormat2}, math.MaxUint64),
		"huge string": rawCommand([]byte{batchFormat2, 1}, OpPurge,
			binary.AppendUvarint(nil, 1<<62)),
		"huge seq count": rawCommand([]byte{batchFormat2, 1}, OpAck,
			binary.AppendUvarint(appendString(nil, "q"), 1<<40)),
		"huge header count": rawCommand([]byte{batchFormat2, 1}, OpEnqueue,
			binary.AppendUvarint(append(appendString(nil, "q"), 1, 0, 4, 0, 0), 1<<40)),
		// Text lengths 5 and 2^64-3 sum to 2 when they wrap.
		"wrapping text lengths": rawCommand([]byte{batchFormat2, 1}, OpEnqueue,
			append(binary.AppendUvarint(append(appendString(nil, "q"), 1, 0, 4, 0, 0, 0, 5), math.MaxUint64-2),
				"abcdefgh"...)),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeBatch(b); !errors.Is(err, errCorrupt) {
				t.Fatalf("err = %v, want errCorrupt", err)
			}
			// A length prefix larger than the input must fail before
			// anything is sized by it: only the error itself allocates.
			if perRun := allocBytes(func() { DecodeBatch(b) }); perRun > 2048+16*uint64(len(b)) {
				t.Errorf("%d bytes allocated to reject %d bytes", perRun, len(b))
			}
		})
	}
}

// allocBytes returns the bytes fn allocates, averaged over a few runs.
func allocBytes(fn func()) uint64 {
	const runs = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		fn()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / runs
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(EncodeBatch(allOps()))
	f.Add(EncodeBatch(nil))
	f.Add(EncodeBatch(benchBatch(2, 64)))
	f.Add(batchWithRaw(OpSkippable|1, []byte{1, 2, 3}, Command{Op: OpPurge, Queue: "q"}))
	if golden, err := os.ReadFile(filepath.Join("testdata", "batch-format1.hex")); err == nil {
		if b, err := hex.DecodeString(strings.TrimSpace(string(golden))); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cmds, err := DecodeBatch(b)
		if err != nil {
			return
		}
		// Whatever decodes must survive a round trip.
		for _, c := range cmds {
			if !knownOp(c.Op) {
				return // EncodeBatch refuses ops it does not know
			}
		}
		again, err := DecodeBatch(EncodeBatch(cmds))
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if len(cmds) != 0 && !reflect.DeepEqual(again, cmds) {
			t.Fatalf("round trip changed the batch:\n got %+v\nwant %+v", again, cmds)
		}
	})
}

// benchBatch is n enqueues of size-byte bodies with typical headers.
func benchBatch(n, size int) []Command {
	cmds := make([]Command, n)
	body := bytes.Repeat([]byte("m"), size)
	for i := range cmds {
		m := testMessage("ID:node1-1700000000000-1:1:"+strings.Repeat("9", 6), "/queue/orders", "",
			"content-type", "application/json", "correlation-id", "abc-123")
		m.Body = body
		cmds[i] = Command{Op: OpEnqueue, Queue: "/queue/orders", Msg: m}
	}
	return cmds
}

func BenchmarkEncodeBatch(b *testing.B) {
	cmds := benchBatch(64, 1024)
	b.SetBytes(int64(len(EncodeBatch(cmds))))
	b.ReportAllocs()
	for b.Loop() {
		EncodeBatch(cmds)
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	data := EncodeBatch(benchBatch(64, 1024))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBatch(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMetaRecordPath checks the optional trailing path of the index
// record: stores written before it existed hold records without it, which
// must read as they are, and a message without a path must cost nothing.
func TestMetaRecordPath(t *testing.T) {
	// A record as the version without paths wrote it.
	old := []byte{9}
	old = binary.AppendVarint(old, 1_700_000_000_000)
	old = binary.AppendUvarint(old, 300)
	want := Meta{Priority: 9, Expires: 1_700_000_000_000, Size: 300}
	if got, err := decodeMeta(old); err != nil || got != want {
		t.Fatalf("record without a path: %+v, %v; want %+v", got, err, want)
	}
	if got := appendMeta(nil, want); !bytes.Equal(got, old) {
		t.Fatalf("meta without a path encodes as %x, want %x (no extra byte)", got, old)
	}

	withPath := want
	withPath.Path = "A,B"
	v := appendMeta(nil, withPath)
	if !bytes.Equal(v, appendString(bytes.Clone(old), "A,B")) {
		t.Fatalf("meta with a path encodes as %x", v)
	}
	got, err := decodeMeta(v)
	if err != nil || got != withPath {
		t.Fatalf("record with a path: %+v, %v; want %+v", got, err, withPath)
	}
	// The decoded path must not alias the value: pebble reuses it.
	for i := range v {
		v[i] = 0
	}
	if got.Path != "A,B" {
		t.Fatalf("decoded path aliases its input: %q", got.Path)
	}

	for name, bad := range map[string][]byte{
		"path longer than the record": append(bytes.Clone(old), 5, 'A'),
		"bytes after the path":        append(appendString(bytes.Clone(old), "A"), 0),
		"truncated size":              {9, 0, 0x80},
	} {
		if _, err := decodeMeta(bad); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: err = %v, want errCorrupt", name, err)
		}
	}
}

// TestMetaRecordDue checks the optional due time after the path: it
// costs nothing to entries without one, forces an (empty) path before it,
// and a zero due is never written nor read.
func TestMetaRecordDue(t *testing.T) {
	base := Meta{Priority: 4, Size: 120}
	plain := appendMeta(nil, base)
	for _, m := range []Meta{
		{Priority: 4, Size: 120, Due: 1_700_000_000_500},
		{Priority: 4, Size: 120, Due: -5},
		{Priority: 4, Size: 120, Path: "A", Due: 1},
	} {
		v := appendMeta(nil, m)
		want := appendString(bytes.Clone(plain), m.Path)
		want = binary.AppendVarint(want, m.Due)
		if !bytes.Equal(v, want) {
			t.Fatalf("%+v encodes as %x, want %x", m, v, want)
		}
		if got, err := decodeMeta(v); err != nil || got != m {
			t.Fatalf("%+v decodes as %+v, %v", m, got, err)
		}
	}
	zero := binary.AppendVarint(appendString(bytes.Clone(plain), ""), 0)
	if _, err := decodeMeta(zero); !errors.Is(err, errCorrupt) {
		t.Fatalf("zero due: err = %v, want errCorrupt", err)
	}
	extra := append(binary.AppendVarint(appendString(bytes.Clone(plain), ""), 7), 0)
	if _, err := decodeMeta(extra); !errors.Is(err, errCorrupt) {
		t.Fatalf("bytes after the due: err = %v, want errCorrupt", err)
	}
}

func TestScheduleHeader(t *testing.T) {
	s := Schedule{Due: -1_700_000_000_000, Period: 5, Remaining: 1000, Fired: 3}
	got, err := ParseSchedule(s.String())
	if err != nil || got != s {
		t.Fatalf("round trip of %+v: %+v, %v", s, got, err)
	}
	for _, bad := range []string{"", "1 2 3", "1 2 3 4 5", "1 -2 3 4", "1 2 -3 4", "1 2 3 -4", "a 2 3 4", "1  2 3", " 1 2 3 4"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted it", bad)
		}
	}
	m := testMessage("id", ScheduledQueue, "b", HeaderSchedule, "10 0 0 0", HeaderSchedule, "20 0 0 0")
	if got := MetaOf(m); got.Due != 10 {
		t.Fatalf("MetaOf due = %d, want the first header's 10", got.Due)
	}
	SetSchedule(m, Schedule{Due: 30})
	if got, ok := ScheduleOf(m); !ok || got.Due != 30 {
		t.Fatalf("after SetSchedule: %+v %v", got, ok)
	}
	if got := MetaOf(testMessage("id", "/queue/q", "b", HeaderSchedule, "junk")); got.Due != 0 {
		t.Fatalf("unreadable schedule: due %d, want 0", got.Due)
	}
}

func TestMetaOf(t *testing.T) {
	m := testMessage("id", "/queue/q", "body", "k", "v",
		HeaderNetworkPath, "A,B", HeaderNetworkPath, "ignored")
	m.Priority, m.Expires = 7, 123
	want := Meta{Priority: 7, Expires: 123, Size: m.Size(), Path: "A,B"}
	if got := MetaOf(m); got != want {
		t.Fatalf("MetaOf = %+v, want %+v", got, want)
	}
	if got := MetaOf(testMessage("id", "/queue/q", "body")); got.Path != "" {
		t.Fatalf("MetaOf of a local message: path %q", got.Path)
	}
}
