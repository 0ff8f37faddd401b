package transport

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/stomp"
)

func TestFrameValidation(t *testing.T) {
	tests := []struct {
		name    string
		version string // accept-version
		frame   *stomp.Frame
		msg     string
	}{
		{"send without destination", "1.2", frame("SEND"), "SEND frame has no destination"},
		{"send empty destination", "1.2", frame("SEND", "destination", ""), "SEND frame has no destination"},
		{"send priority too high", "1.2", frame("SEND", "destination", "/queue/a", "priority", "10"), `invalid priority "10"`},
		{"send priority not a number", "1.2", frame("SEND", "destination", "/queue/a", "priority", "high"), `invalid priority "high"`},
		{"send priority negative", "1.2", frame("SEND", "destination", "/queue/a", "priority", "-1"), `invalid priority "-1"`},
		{"send expires not a number", "1.2", frame("SEND", "destination", "/queue/a", "expires", "soon"), `invalid expires "soon"`},
		{"send expires negative", "1.2", frame("SEND", "destination", "/queue/a", "expires", "-5"), `invalid expires "-5"`},
		{"subscribe without destination", "1.2", frame("SUBSCRIBE", "id", "s1"), "SUBSCRIBE frame has no destination"},
		{"subscribe without id 1.2", "1.2", frame("SUBSCRIBE", "destination", "/queue/a"), "SUBSCRIBE frame has no id"},
		{"subscribe without id 1.1", "1.1", frame("SUBSCRIBE", "destination", "/queue/a"), "SUBSCRIBE frame has no id"},
		{"subscribe bad ack", "1.2", frame("SUBSCRIBE", "id", "s1", "destination", "/queue/a", "ack", "sometimes"), `invalid ack "sometimes"`},
		{"subscribe zero prefetch", "1.2", frame("SUBSCRIBE", "id", "s1", "destination", "/queue/a", "activemq.prefetchSize", "0"), `invalid activemq.prefetchSize "0"`},
		{"subscribe bad prefetch", "1.2", frame("SUBSCRIBE", "id", "s1", "destination", "/queue/a", "activemq.prefetchSize", "x"), `invalid activemq.prefetchSize "x"`},
		{"subscribe empty network group", "1.2", frame("SUBSCRIBE", "id", "s1", "destination", "/queue/a", HeaderNetworkGroup, ""), "empty " + HeaderNetworkGroup},
		{"subscribe bad network ttl", "1.2", frame("SUBSCRIBE", "id", "s1", "destination", "/queue/a", HeaderNetworkGroup, "B", HeaderNetworkTTL, "0"), "invalid " + HeaderNetworkTTL},
		{"subscribe bad network priority", "1.2", frame("SUBSCRIBE", "id", "s1", "destination", "/queue/a", HeaderNetworkGroup, "B", HeaderNetworkPriority, "high"), "invalid " + HeaderNetworkPriority},
		{"unsubscribe without id 1.2", "1.2", frame("UNSUBSCRIBE", "destination", "/queue/a"), "UNSUBSCRIBE frame has no id"},
		{"unsubscribe without id 1.0", "1.0", frame("UNSUBSCRIBE"), "UNSUBSCRIBE frame has no id or destination"},
		{"ack without id 1.2", "1.2", frame("ACK", "message-id", "m1", "subscription", "s1"), "ACK frame has no id"},
		{"nack without id 1.2", "1.2", frame("NACK"), "NACK frame has no id"},
		{"ack without subscription 1.1", "1.1", frame("ACK", "message-id", "m1"), "ACK frame has no subscription"},
		{"nack without message-id 1.1", "1.1", frame("NACK", "subscription", "s1"), "NACK frame has no message-id"},
		{"ack without message-id 1.0", "1.0", frame("ACK", "id", "a1"), "ACK frame has no message-id"},
		{"nack in 1.0", "1.0", frame("NACK", "message-id", "m1"), `unknown command "NACK"`},
		{"begin without transaction", "1.2", frame("BEGIN"), "BEGIN frame has no transaction"},
		{"commit without transaction", "1.2", frame("COMMIT"), "COMMIT frame has no transaction"},
		{"abort without transaction", "1.2", frame("ABORT"), "ABORT frame has no transaction"},
		{"unknown command", "1.2", frame("PUBLISH", "destination", "/queue/a"), `unknown command "PUBLISH"`},
		{"second connect", "1.2", frame("CONNECT", "accept-version", "1.2"), "already connected"},
		{"second stomp", "1.1", frame("STOMP", "accept-version", "1.1"), "already connected"},
	}
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := e.connect(tt.version)
			c.t = t
			s := b.session(t)
			tt.frame.Add("receipt", "bad-1")
			c.write(tt.frame)
			c.expectError(tt.msg, "bad-1")
			s.waitClosed(t)
			if len(s.calls) != 0 {
				t.Errorf("the refused frame reached the session: %+v", <-s.calls)
			}
		})
	}
}

func TestSendTranslation(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)
	c, _ := e.connect("1.2")
	s := b.session(t)

	c.write(&stomp.Frame{Command: stomp.SEND, Headers: []stomp.Header{
		{Key: "destination", Value: "/queue/orders"},
		{Key: "content-type", Value: "application/json"},
		{Key: "receipt", Value: "r1"},
		{Key: "transaction", Value: "tx1"},
		{Key: "x:odd", Value: "line\nbreak"},
		{Key: "priority", Value: "9"},
		{Key: "expires", Value: "1700000000000"},
		{Key: "persistent", Value: "false"},
		{Key: "message-id", Value: "forged"},
		{Key: "timestamp", Value: "1"},
		{Key: "correlation-id", Value: "c-7"},
	}, Body: []byte("{\"n\":1}\x00binary")})
	got := s.next(t, "send")
	c.expect(stomp.RECEIPT, "receipt-id", "r1")
	want := &fsm.Message{
		Destination: "/queue/orders",
		Headers: []fsm.Header{
			{Key: "content-type", Value: "application/json"},
			{Key: "x:odd", Value: "line\nbreak"},
			{Key: "correlation-id", Value: "c-7"},
		},
		Body:       []byte("{\"n\":1}\x00binary"),
		Priority:   9,
		Expires:    1700000000000,
		Persistent: false,
	}
	if !sameMessage(got.msg, want) || got.tx != "tx1" {
		t.Errorf("Send(%+v, %q), want (%+v, tx1)", got.msg, got.tx, want)
	}

	// Defaults: priority 4, persistent, never expires, no headers.
	c.send(stomp.SEND, "destination", "/topic/t", "persistent", "true", "expires", "0")
	got = s.next(t, "send")
	want = &fsm.Message{Destination: "/topic/t", Priority: 4, Persistent: true}
	if !sameMessage(got.msg, want) || got.tx != "" {
		t.Errorf("Send(%+v, %q), want (%+v, \"\")", got.msg, got.tx, want)
	}
}

func sameMessage(a, b *fsm.Message) bool {
	return a.ID == b.ID && a.Destination == b.Destination && slices.Equal(a.Headers, b.Headers) &&
		string(a.Body) == string(b.Body) && a.Priority == b.Priority && a.Expires == b.Expires &&
		a.Timestamp == b.Timestamp && a.Persistent == b.Persistent
}

func TestSubscribeTranslation(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)

	c, _ := e.connect("1.2", "client-id", "app")
	s := b.session(t)
	c.send(stomp.SUBSCRIBE, "id", "s1", "destination", "/topic/prices", "ack", "client-individual",
		"activemq.prefetchSize", "10", "activemq.subscriptionName", "ticker", "receipt", "r1")
	got := s.next(t, "subscribe").spec
	want := queue.SubscribeSpec{ID: "s1", Destination: "/topic/prices", Ack: queue.AckClientIndividual, Prefetch: 10, DurableName: "ticker"}
	if got != want {
		t.Errorf("Subscribe(%+v), want %+v", got, want)
	}
	c.expect(stomp.RECEIPT, "receipt-id", "r1")
	c.send(stomp.SUBSCRIBE, "id", "s2", "destination", "/queue/a", "ack", "client")
	if got := s.next(t, "subscribe").spec; got.Ack != queue.AckClient || got.Prefetch != 0 {
		t.Errorf("Subscribe(%+v): want ack client, default prefetch", got)
	}
	c.send(stomp.UNSUBSCRIBE, "id", "s1", "activemq.subscriptionName", "ticker", "receipt", "r2")
	if got := s.next(t, "unsubscribe"); got.id != "s1" || got.durable != "ticker" {
		t.Errorf("Unsubscribe(%q, %q), want (s1, ticker)", got.id, got.durable)
	}
	c.expect(stomp.RECEIPT, "receipt-id", "r2")

	// STOMP 1.0: the id defaults to the destination, in both directions.
	c, _ = e.connect("1.0")
	s = b.session(t)
	c.send(stomp.SUBSCRIBE, "destination", "/queue/a")
	got = s.next(t, "subscribe").spec
	want = queue.SubscribeSpec{ID: "/queue/a", Destination: "/queue/a", Ack: queue.AckAuto}
	if got != want {
		t.Errorf("Subscribe(%+v), want %+v", got, want)
	}
	c.send(stomp.UNSUBSCRIBE, "destination", "/queue/a")
	if got := s.next(t, "unsubscribe"); got.id != "/queue/a" || got.durable != "" {
		t.Errorf("Unsubscribe(%q, %q), want (/queue/a, \"\")", got.id, got.durable)
	}

	// A bridge's network subscription.
	c, _ = e.connect("1.2")
	s = b.session(t)
	c.send(stomp.SUBSCRIBE, "id", "n1", "destination", "/queue/a", HeaderNetworkGroup, "B", HeaderNetworkTTL, "2", HeaderNetworkPriority, "low")
	if got := s.next(t, "subscribe").spec.Network; got == nil || *got != (queue.NetworkSpec{Group: "B", TTL: 2, LowPriority: true}) {
		t.Errorf("network spec %+v", got)
	}
	c.send(stomp.SUBSCRIBE, "id", "n2", "destination", "/queue/a", HeaderNetworkGroup, "C")
	if got := s.next(t, "subscribe").spec.Network; got == nil || *got != (queue.NetworkSpec{Group: "C", TTL: 1}) {
		t.Errorf("network spec defaults %+v", got)
	}
}

func TestAckTranslation(t *testing.T) {
	tests := []struct {
		version string
		frame   *stomp.Frame
		op      string
		want    queue.AckRef
		tx      string
	}{
		{"1.2", frame("ACK", "id", "a1", "transaction", "t1"), "ack", queue.AckRef{ID: "a1"}, "t1"},
		{"1.2", frame("NACK", "id", "a2"), "nack", queue.AckRef{ID: "a2"}, ""},
		{"1.1", frame("ACK", "message-id", "m1", "subscription", "s1"), "ack", queue.AckRef{MessageID: "m1", Subscription: "s1"}, ""},
		{"1.1", frame("NACK", "message-id", "m2", "subscription", "s2", "transaction", "t2"), "nack", queue.AckRef{MessageID: "m2", Subscription: "s2"}, "t2"},
		{"1.0", frame("ACK", "message-id", "m3"), "ack", queue.AckRef{MessageID: "m3"}, ""},
		{"1.0", frame("ACK", "message-id", "m4", "subscription", "s4"), "ack", queue.AckRef{MessageID: "m4", Subscription: "s4"}, ""},
	}
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)
	for _, tt := range tests {
		c, _ := e.connect(tt.version)
		s := b.session(t)
		tt.frame.Add("receipt", "r")
		c.write(tt.frame)
		got := s.next(t, tt.op)
		if got.ref != tt.want || got.tx != tt.tx {
			t.Errorf("%s %s: got %+v tx %q, want %+v tx %q", tt.version, tt.frame.Command, got.ref, got.tx, tt.want, tt.tx)
		}
		c.expect(stomp.RECEIPT, "receipt-id", "r")
	}
}

func TestTransactions(t *testing.T) {
	b := newFakeBroker(false)
	e := newEnv(t, Config{}, b)
	c, _ := e.connect("1.2")
	s := b.session(t)

	c.send(stomp.BEGIN, "transaction", "t1", "receipt", "r1")
	if got := s.next(t, "begin"); got.tx != "t1" {
		t.Errorf("Begin(%q)", got.tx)
	}
	c.expect(stomp.RECEIPT, "receipt-id", "r1")
	c.send(stomp.COMMIT, "transaction", "t1", "receipt", "r2")
	commit := s.next(t, "commit")
	c.send(stomp.ABORT, "transaction", "t2", "receipt", "r3")
	if got := s.next(t, "abort"); got.tx != "t2" {
		t.Errorf("Abort(%q)", got.tx)
	}
	// The abort's receipt comes first: the commit is still in flight.
	c.expect(stomp.RECEIPT, "receipt-id", "r3")
	commit.done(nil)
	c.expect(stomp.RECEIPT, "receipt-id", "r2")
}

// TestReceiptAfterCompletion checks that a RECEIPT is written when the
// operation completes, not when its frame is read.
func TestReceiptAfterCompletion(t *testing.T) {
	b := newFakeBroker(false)
	e := newEnv(t, Config{}, b)
	c, _ := e.connect("1.2")
	s := b.session(t)

	c.send(stomp.SEND, "destination", "/queue/a", "receipt", "r1")
	send := s.next(t, "send")
	c.send(stomp.SUBSCRIBE, "id", "s1", "destination", "/queue/a", "receipt", "r2")
	sub := s.next(t, "subscribe")
	// BEGIN completes inside the call, so its receipt proves the frames
	// before it were read; theirs must not have come yet.
	c.send(stomp.BEGIN, "transaction", "t1", "receipt", "r3")
	s.next(t, "begin")
	c.expect(stomp.RECEIPT, "receipt-id", "r3")
	c.expectSilence()

	sub.done(nil)
	c.expect(stomp.RECEIPT, "receipt-id", "r2")
	send.done(nil)
	c.expect(stomp.RECEIPT, "receipt-id", "r1")

	// Without a receipt header nothing is written.
	c.send(stomp.SEND, "destination", "/queue/a")
	s.next(t, "send").done(nil)
	c.expectSilence()
}

func TestEngineErrors(t *testing.T) {
	t.Run("done", func(t *testing.T) {
		b := newFakeBroker(false)
		e := newEnv(t, Config{}, b)
		c, _ := e.connect("1.2")
		s := b.session(t)
		c.send(stomp.SEND, "destination", "/queue/a", "receipt", "r1")
		first := s.next(t, "send")
		c.send(stomp.ACK, "id", "nope", "receipt", "r2")
		s.next(t, "ack").done(queue.ErrUnknownAck)
		f := c.expectError(queue.ErrUnknownAck.Error(), "r2")
		if !strings.Contains(string(f.Body), queue.ErrUnknownAck.Error()) {
			t.Errorf("ERROR body %q", f.Body)
		}
		s.waitClosed(t)
		first.done(nil) // after the connection ended: writes nothing
	})
	t.Run("returned", func(t *testing.T) {
		b := newFakeBroker(true)
		b.syncErr = map[string]error{"begin": queue.ErrDuplicateTx, "subscribe": queue.ErrBadDestination}
		e := newEnv(t, Config{}, b)
		c, _ := e.connect("1.2")
		s := b.session(t)
		c.send(stomp.BEGIN, "transaction", "t1", "receipt", "r1")
		c.expectError(queue.ErrDuplicateTx.Error(), "r1")
		s.waitClosed(t)

		c, _ = e.connect("1.2")
		s = b.session(t)
		c.send(stomp.SUBSCRIBE, "id", "s1", "destination", "/bogus/a", "receipt", "r2")
		c.expectError(queue.ErrBadDestination.Error(), "r2")
		s.waitClosed(t)

		// A composite SEND is a transaction of the connection's: when
		// there is no room for one, the ERROR says so.
		b.syncErr = map[string]error{"begin": queue.ErrTooManyTxFrames}
		c, _ = e.connect("1.2")
		s = b.session(t)
		c.send(stomp.SEND, "destination", "/queue/a,/queue/b", "receipt", "r3")
		c.expectError("a composite SEND is one transaction: "+queue.ErrTooManyTxFrames.Error(), "r3")
		s.waitClosed(t)
	})
	t.Run("wrapped", func(t *testing.T) {
		// An error from below the engine, wrapped, keeps its text.
		b := newFakeBroker(false)
		e := newEnv(t, Config{}, b)
		c, _ := e.connect("1.1")
		s := b.session(t)
		c.send(stomp.COMMIT, "transaction", "t1")
		s.next(t, "commit").done(fmt.Errorf("raft apply: %w", queue.ErrClosed))
		c.expectError(queue.ErrClosed.Error(), "")
	})
}

// TestDisconnect checks that DISCONNECT's receipt waits for the operations
// before it.
func TestDisconnect(t *testing.T) {
	b := newFakeBroker(false)
	e := newEnv(t, Config{}, b)
	c, _ := e.connect("1.2")
	s := b.session(t)

	c.send(stomp.SEND, "destination", "/queue/a", "receipt", "r1")
	send := s.next(t, "send")
	c.send(stomp.SEND, "destination", "/queue/a")
	send2 := s.next(t, "send")
	c.send(stomp.DISCONNECT, "receipt", "bye")
	c.expectSilence()

	send.done(nil)
	c.expect(stomp.RECEIPT, "receipt-id", "r1")
	c.expectSilence()
	select {
	case <-s.closed:
		t.Fatal("session closed while an operation was in flight")
	default:
	}
	send2.done(nil)
	c.expect(stomp.RECEIPT, "receipt-id", "bye")
	c.expectClosed()
	s.waitClosed(t)

	// Without a receipt header DISCONNECT just closes.
	c, _ = e.connect("1.0")
	s = b.session(t)
	c.send(stomp.DISCONNECT)
	c.expectClosed()
	s.waitClosed(t)
}
