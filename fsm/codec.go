package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Command batch format, version 2. One raft log entry holds one batch.
//
//	batch   = version:byte count:uvarint command{count}
//	command = op:byte len:uvarint payload[len]
//
// Every command carries its payload length so that a node which does not
// know an op flagged OpSkippable can step over it. The payload holds the
// fields the op uses (see payloadSize), in a fixed order:
//
//	OpEnqueue                     queue:string message dedupeID:string
//	OpPublish                     topic:string message dedupeID:string
//	OpAck                         queue:string seqs
//	OpDeadLetter                  queue:string seqs target:string reason:string
//	OpSubscribe, OpUnsubscribe    durable
//	OpPurge, OpDeleteQueue        queue:string
//	OpExpireDedupe                before:varint
//	OpSetMember, OpRemoveMember   member
//	OpCreateQueue                 queue:string
//	OpMove                        queue:string seqs target:string
//	OpFire                        queue:string seqs due:varint
//
//	string  = len:uvarint bytes
//	seqs    = n:uvarint (zigzag varint of seq minus the previous seq){n}
//	message = present:byte [flags:byte priority:byte expires:varint
//	          timestamp:varint nheaders:uvarint idLen:uvarint destLen:uvarint
//	          (keyLen:uvarint valueLen:uvarint){nheaders} text body:string]
//	durable = present:byte [clientID:string name:string topic:string selector:string]
//	member  = present:byte [id:string raftAddr:string stompAddr:string httpAddr:string]
//
// Version 1 is version 2 without the dedupeID of OpEnqueue and OpPublish
// (it had no dedupe window). Logs written by version 1 stay in raft until
// a snapshot covers them, so DecodeBatch reads both; EncodeBatch writes
// version 2 only. A node that knows only version 1 refuses a version 2
// batch as a whole, which is the safe failure: it cannot apply a dedupe
// id, and applying the message without it would diverge from the group.
// The ops added with version 2 (OpExpireDedupe, OpSetMember,
// OpRemoveMember, and later OpCreateQueue and OpMove, which only the
// admin API proposes) change state, so they are not skippable either: a
// node too old to know one stops applying rather than diverge, so a group
// is upgraded before its operators use those actions. The same holds for
// OpFire, added later still without a new batch format: a group is
// upgraded before its clients schedule messages.
//
// A message's text fields (id, destination, header keys and values) are
// concatenated in text, after all their lengths: the decoder makes one
// string of text and slices it, one allocation instead of one per field.
// Pebble values reuse the message and durable encodings without the
// presence byte, so a message is laid out the same in the log and in the
// store.
//
// Decoding is strict: a count or length larger than the bytes left, unknown
// flag bits, a short or long payload are all errors, found before anything
// is allocated for them.
const (
	batchFormat1 = 1
	batchFormat2 = 2 // adds the dedupe id to OpEnqueue and OpPublish
)

const flagPersistent = 1 << 0

// errCorrupt is wrapped by every decoding error.
var errCorrupt = errors.New("fsm: corrupt encoding")

// EncodeBatch encodes cmds as one log entry. It panics on an op this
// package does not know: proposing one is a programming error, and failing
// here keeps it out of the log, where it would stop every node.
func EncodeBatch(cmds []Command) []byte {
	n := 1 + uvarintLen(uint64(len(cmds)))
	for i := range cmds {
		p := payloadSize(&cmds[i])
		n += 1 + uvarintLen(uint64(p)) + p
	}
	b := make([]byte, 0, n)
	b = append(b, batchFormat2)
	b = binary.AppendUvarint(b, uint64(len(cmds)))
	for i := range cmds {
		c := &cmds[i]
		b = append(b, byte(c.Op))
		// Sizing twice is arithmetic only; it saves a buffer per command.
		b = binary.AppendUvarint(b, uint64(payloadSize(c)))
		b = appendPayload(b, c)
	}
	return b
}

// DecodeBatch decodes a batch made by EncodeBatch, of this version or
// version 1. A command whose op is unknown but flagged OpSkippable comes
// back with only its Op set; an unknown op without the flag is an error.
func DecodeBatch(b []byte) ([]Command, error) { return decodeBatch(b, false) }

// decodeBatch decodes a batch; with aliasBodies, message bodies point into
// b (see decoder).
func decodeBatch(b []byte, aliasBodies bool) ([]Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty batch", errCorrupt)
	}
	format := b[0]
	if format != batchFormat1 && format != batchFormat2 {
		return nil, fmt.Errorf("%w: unknown batch format %d", errCorrupt, format)
	}
	d := decoder{b: b[1:]}
	n := d.uvarint()
	// Each command takes at least two bytes (op and length).
	if d.err == nil && n > uint64(len(d.b))/2 {
		return nil, fmt.Errorf("%w: batch of %d commands in %d bytes", errCorrupt, n, len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	cmds := make([]Command, n)
	var lastName string
	for i := range cmds {
		op := Op(d.byte())
		payload := d.bytes()
		if d.err != nil {
			return nil, fmt.Errorf("command %d: %w", i, d.err)
		}
		cmds[i].Op = op
		if !knownOp(op) {
			if op&OpSkippable == 0 {
				return nil, fmt.Errorf("%w: command %d: unknown op %#x", errCorrupt, i, byte(op))
			}
			continue
		}
		pd := decoder{b: payload, aliasBodies: aliasBodies, lastName: &lastName}
		pd.payload(&cmds[i], format)
		if pd.err == nil && len(pd.b) != 0 {
			pd.err = fmt.Errorf("%w: %d bytes after the fields", errCorrupt, len(pd.b))
		}
		if pd.err != nil {
			return nil, fmt.Errorf("command %d (op %d): %w", i, op, pd.err)
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last command", errCorrupt, len(d.b))
	}
	return cmds, nil
}

// knownOp reports whether this version can decode and apply op. Extend it,
// payloadSize, appendPayload, payload and applier.apply together.
func knownOp(op Op) bool {
	return op >= OpEnqueue && op <= OpFire
}

func payloadSize(c *Command) int {
	switch c.Op {
	case OpEnqueue:
		return stringSize(c.Queue) + optMessageSize(c.Msg) + stringSize(c.DedupeID)
	case OpPublish:
		return stringSize(c.Topic) + optMessageSize(c.Msg) + stringSize(c.DedupeID)
	case OpAck:
		return stringSize(c.Queue) + seqsSize(c.Seqs)
	case OpDeadLetter:
		return stringSize(c.Queue) + seqsSize(c.Seqs) + stringSize(c.Target) + stringSize(c.Reason)
	case OpSubscribe, OpUnsubscribe:
		return optDurableSize(c.Durable)
	case OpPurge, OpDeleteQueue, OpCreateQueue:
		return stringSize(c.Queue)
	case OpMove:
		return stringSize(c.Queue) + seqsSize(c.Seqs) + stringSize(c.Target)
	case OpFire:
		return stringSize(c.Queue) + seqsSize(c.Seqs) + varintLen(c.Due)
	case OpExpireDedupe:
		return varintLen(c.Before)
	case OpSetMember, OpRemoveMember:
		return optMemberSize(c.Member)
	}
	panic(fmt.Sprintf("fsm: EncodeBatch: unknown op %#x", byte(c.Op)))
}

func appendPayload(b []byte, c *Command) []byte {
	switch c.Op {
	case OpEnqueue:
		b = appendString(b, c.Queue)
		b = appendOptMessage(b, c.Msg)
		b = appendString(b, c.DedupeID)
	case OpPublish:
		b = appendString(b, c.Topic)
		b = appendOptMessage(b, c.Msg)
		b = appendString(b, c.DedupeID)
	case OpAck:
		b = appendString(b, c.Queue)
		b = appendSeqs(b, c.Seqs)
	case OpDeadLetter:
		b = appendString(b, c.Queue)
		b = appendSeqs(b, c.Seqs)
		b = appendString(b, c.Target)
		b = appendString(b, c.Reason)
	case OpSubscribe, OpUnsubscribe:
		b = appendOptDurable(b, c.Durable)
	case OpPurge, OpDeleteQueue, OpCreateQueue:
		b = appendString(b, c.Queue)
	case OpMove:
		b = appendString(b, c.Queue)
		b = appendSeqs(b, c.Seqs)
		b = appendString(b, c.Target)
	case OpFire:
		b = appendString(b, c.Queue)
		b = appendSeqs(b, c.Seqs)
		b = binary.AppendVarint(b, c.Due)
	case OpExpireDedupe:
		b = binary.AppendVarint(b, c.Before)
	case OpSetMember, OpRemoveMember:
		b = appendOptMember(b, c.Member)
	}
	return b
}

// payload decodes the fields of c.Op, which must be known, as batch
// format writes them.
func (d *decoder) payload(c *Command, format byte) {
	switch c.Op {
	case OpEnqueue:
		c.Queue = d.name()
		c.Msg = d.optMessage()
		if format >= batchFormat2 {
			c.DedupeID = d.string()
		}
	case OpPublish:
		c.Topic = d.name()
		c.Msg = d.optMessage()
		if format >= batchFormat2 {
			c.DedupeID = d.string()
		}
	case OpAck:
		c.Queue = d.name()
		c.Seqs = d.seqs()
	case OpDeadLetter:
		c.Queue = d.name()
		c.Seqs = d.seqs()
		c.Target = d.name()
		c.Reason = d.string()
	case OpSubscribe, OpUnsubscribe:
		c.Durable = d.optDurable()
	case OpPurge, OpDeleteQueue, OpCreateQueue:
		c.Queue = d.name()
	case OpMove:
		c.Queue = d.name()
		c.Seqs = d.seqs()
		c.Target = d.name()
	case OpFire:
		c.Queue = d.name()
		c.Seqs = d.seqs()
		c.Due = d.varint()
	case OpExpireDedupe:
		c.Before = d.varint()
	case OpSetMember, OpRemoveMember:
		c.Member = d.optMember()
	}
}

// Sizes.

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func varintLen(x int64) int { return uvarintLen(zigzag(x)) }

func zigzag(x int64) uint64 { return uint64(x<<1) ^ uint64(x>>63) }

func stringSize[S string | []byte](s S) int { return uvarintLen(uint64(len(s))) + len(s) }

func seqsSize(seqs []uint64) int {
	n := uvarintLen(uint64(len(seqs)))
	var prev uint64
	for _, s := range seqs {
		n += varintLen(int64(s - prev))
		prev = s
	}
	return n
}

func messageSize(m *Message) int {
	n := 2 + varintLen(m.Expires) + varintLen(m.Timestamp) + uvarintLen(uint64(len(m.Headers)))
	n += stringSize(m.ID) + stringSize(m.Destination)
	for _, h := range m.Headers {
		n += stringSize(h.Key) + stringSize(h.Value)
	}
	return n + stringSize(m.Body)
}

func optMessageSize(m *Message) int {
	if m == nil {
		return 1
	}
	return 1 + messageSize(m)
}

func durableSize(d *Durable) int {
	return stringSize(d.ClientID) + stringSize(d.Name) + stringSize(d.Topic) + stringSize(d.Selector)
}

func optDurableSize(d *Durable) int {
	if d == nil {
		return 1
	}
	return 1 + durableSize(d)
}

func memberSize(m *Member) int {
	return stringSize(m.ID) + stringSize(m.RaftAddr) + stringSize(m.StompAddr) + stringSize(m.HTTPAddr)
}

func optMemberSize(m *Member) int {
	if m == nil {
		return 1
	}
	return 1 + memberSize(m)
}

// Encoders.

func appendString[S string | []byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendSeqs stores each seq as the signed difference from the previous
// one: the seqs of one ack are usually close, so most take one byte.
// The subtraction wraps, and decoding wraps back, so any uint64 survives.
func appendSeqs(b []byte, seqs []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(seqs)))
	var prev uint64
	for _, s := range seqs {
		b = binary.AppendVarint(b, int64(s-prev))
		prev = s
	}
	return b
}

// appendMessage appends m in the message encoding; it is also the pebble
// value of an entry.
func appendMessage(b []byte, m *Message) []byte {
	var flags byte
	if m.Persistent {
		flags |= flagPersistent
	}
	b = append(b, flags, m.Priority)
	b = binary.AppendVarint(b, m.Expires)
	b = binary.AppendVarint(b, m.Timestamp)
	b = binary.AppendUvarint(b, uint64(len(m.Headers)))
	b = binary.AppendUvarint(b, uint64(len(m.ID)))
	b = binary.AppendUvarint(b, uint64(len(m.Destination)))
	for _, h := range m.Headers {
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = binary.AppendUvarint(b, uint64(len(h.Value)))
	}
	b = append(b, m.ID...)
	b = append(b, m.Destination...)
	for _, h := range m.Headers {
		b = append(b, h.Key...)
		b = append(b, h.Value...)
	}
	return appendString(b, m.Body)
}

func appendOptMessage(b []byte, m *Message) []byte {
	if m == nil {
		return append(b, 0)
	}
	return appendMessage(append(b, 1), m)
}

// appendDurable appends d; it is also the pebble value of a durable record.
func appendDurable(b []byte, d *Durable) []byte {
	b = appendString(b, d.ClientID)
	b = appendString(b, d.Name)
	b = appendString(b, d.Topic)
	return appendString(b, d.Selector)
}

func appendOptDurable(b []byte, d *Durable) []byte {
	if d == nil {
		return append(b, 0)
	}
	return appendDurable(append(b, 1), d)
}

// appendMember appends m; it is also the pebble value of a member record.
func appendMember(b []byte, m *Member) []byte {
	b = appendString(b, m.ID)
	b = appendString(b, m.RaftAddr)
	b = appendString(b, m.StompAddr)
	return appendString(b, m.HTTPAddr)
}

func appendOptMember(b []byte, m *Member) []byte {
	if m == nil {
		return append(b, 0)
	}
	return appendMember(append(b, 1), m)
}

// appendMeta appends the index value of an entry:
//
//	meta = priority:byte expires:varint size:uvarint [path:string [due:varint]]
//
// path is optional and trailing: it is written only when not empty, so
// an entry that never crossed a bridge costs no byte more, and the records
// of stores written before it existed decode as they are (with no path).
// A version without paths refuses a record with one (bytes after the
// meta): such records appear only once bridges forward messages, and a
// snapshot carries them to every node, so a group must be upgraded whole
// before it joins a network.
//
// due (Meta.Due, entries of ScheduledQueue only) follows the path, which
// is then written even when empty; it is never 0 when written. A version
// without it refuses such a record (bytes after the path), the safe
// failure: such records appear only once a client schedules a message,
// which also needs OpFire.
func appendMeta(b []byte, m Meta) []byte {
	b = append(b, m.Priority)
	b = binary.AppendVarint(b, m.Expires)
	b = binary.AppendUvarint(b, uint64(m.Size))
	if m.Path != "" || m.Due != 0 {
		b = appendString(b, m.Path)
	}
	if m.Due != 0 {
		b = binary.AppendVarint(b, m.Due)
	}
	return b
}

// Decoder.

// decoder reads fields from b. The first failure is kept in err and empties
// b, so a caller checks err once after a run of reads.
type decoder struct {
	b   []byte
	err error
	// aliasBodies lets message bodies share b instead of being copied, for
	// messages that do not outlive b.
	aliasBodies bool
	// lastName is the previous queue or topic name of the batch: the
	// commands of one batch mostly name the same queue, and reusing the
	// string saves an allocation per command.
	lastName *string
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{errCorrupt}, args...)...)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a length-prefixed field, aliasing the input.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("length %d exceeds the %d bytes left", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

// name reads a queue or topic name.
func (d *decoder) name() string {
	b := d.bytes()
	if d.lastName == nil {
		return string(b)
	}
	if string(b) != *d.lastName { // the conversion in a comparison does not allocate
		*d.lastName = string(b)
	}
	return *d.lastName
}

// count reads an element count and checks that the bytes left could hold
// that many elements of at least minSize bytes, so that a corrupt count
// never sizes an allocation.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minSize) {
		d.fail("count %d exceeds the %d bytes left", n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) seqs() []uint64 {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	seqs := make([]uint64, n)
	var prev uint64
	for i := range seqs {
		prev += uint64(d.varint())
		seqs[i] = prev
	}
	return seqs
}

// message decodes a message. It copies everything it keeps (unless
// aliasBodies): the input may be a pebble value, valid only until its
// closer is closed.
func (d *decoder) message() *Message {
	flags := d.byte()
	if flags&^flagPersistent != 0 {
		d.fail("unknown message flags %#x", flags)
		return nil
	}
	m := &Message{Persistent: flags&flagPersistent != 0, Priority: d.byte()}
	m.Expires = d.varint()
	m.Timestamp = d.varint()
	nh := d.count(2) // two lengths of at least a byte each per header

	// Sum the text lengths, then read them again to slice the text.
	lens := d.b
	var total uint64
	for range 2 + 2*nh {
		// The text follows the lengths, so neither one length nor their
		// sum can exceed what is left; checking each first keeps the sum
		// from wrapping.
		n := d.uvarint()
		if n > uint64(len(d.b)) || total+n > uint64(len(d.b)) {
			d.fail("text of %d+%d bytes exceeds the %d bytes left", total, n, len(d.b))
		}
		if d.err != nil {
			return nil
		}
		total += n
	}
	text := string(d.b[:total])
	d.b = d.b[total:]
	ld := decoder{b: lens}
	m.ID = ld.textField(&text)
	m.Destination = ld.textField(&text)
	if nh > 0 {
		m.Headers = make([]Header, nh)
		for i := range m.Headers {
			m.Headers[i].Key = ld.textField(&text)
			m.Headers[i].Value = ld.textField(&text)
		}
	}

	if body := d.bytes(); len(body) > 0 {
		if d.aliasBodies {
			m.Body = body
		} else {
			m.Body = append([]byte(nil), body...)
		}
	}
	if d.err != nil {
		return nil
	}
	return m
}

// textField reads the next length, already checked by message, and cuts
// that much off the front of text.
func (d *decoder) textField(text *string) string {
	n := d.uvarint()
	s := (*text)[:n]
	*text = (*text)[n:]
	return s
}

func (d *decoder) optMessage() *Message {
	switch d.byte() {
	case 0:
		return nil
	case 1:
		return d.message()
	}
	d.fail("bad message presence byte")
	return nil
}

func (d *decoder) durable() *Durable {
	v := &Durable{ClientID: d.string(), Name: d.string(), Topic: d.string(), Selector: d.string()}
	if d.err != nil {
		return nil
	}
	return v
}

func (d *decoder) optDurable() *Durable {
	switch d.byte() {
	case 0:
		return nil
	case 1:
		return d.durable()
	}
	d.fail("bad durable presence byte")
	return nil
}

func (d *decoder) member() *Member {
	m := &Member{ID: d.string(), RaftAddr: d.string(), StompAddr: d.string(), HTTPAddr: d.string()}
	if d.err != nil {
		return nil
	}
	return m
}

func (d *decoder) optMember() *Member {
	switch d.byte() {
	case 0:
		return nil
	case 1:
		return d.member()
	}
	d.fail("bad member presence byte")
	return nil
}

func (d *decoder) meta() Meta {
	m := Meta{Priority: d.byte(), Expires: d.varint()}
	size := d.uvarint()
	if size > uint64(maxInt) {
		d.fail("meta size %d overflows int", size)
	}
	m.Size = int(size)
	// The optional trailing path and due (see appendMeta): a meta is
	// always a whole value, so bytes left after the size can only be the
	// path, and after the path the due time.
	if d.err == nil && len(d.b) > 0 {
		m.Path = d.string()
	}
	if d.err == nil && len(d.b) > 0 {
		if m.Due = d.varint(); d.err == nil && m.Due == 0 {
			d.fail("meta with a zero due time")
		}
	}
	return m
}

const maxInt = int(^uint(0) >> 1)

// Whole values, as stored in pebble.

func decodeMessage(b []byte) (*Message, error) {
	d := decoder{b: b}
	m := d.message()
	return m, d.done("message")
}

func decodeDurable(b []byte) (*Durable, error) {
	d := decoder{b: b}
	v := d.durable()
	return v, d.done("durable")
}

func decodeMember(b []byte) (*Member, error) {
	d := decoder{b: b}
	m := d.member()
	return m, d.done("member")
}

func decodeMeta(b []byte) (Meta, error) {
	d := decoder{b: b}
	m := d.meta()
	return m, d.done("meta")
}

// done reports the first error, or trailing bytes, of a whole-value decode.
func (d *decoder) done(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the %s", len(d.b), what)
	}
	if d.err != nil {
		return fmt.Errorf("decode %s: %w", what, d.err)
	}
	return nil
}
