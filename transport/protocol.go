package transport

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/stomp"
)

// This file holds one method per STOMP command, dispatched from exec. Each
// validates its frame, translates it into a Session call, and leaves what
// the command means to the engine. A method returns a *clientErr to end the
// connection with an ERROR frame, or errStop when it ended it itself.

// exec runs one frame of a connected client.
func (c *conn) exec(f *stomp.Frame) error {
	switch f.Command {
	case stomp.SEND:
		return c.send(f)
	case stomp.SUBSCRIBE:
		return c.subscribe(f)
	case stomp.UNSUBSCRIBE:
		return c.unsubscribe(f)
	case stomp.ACK:
		return c.ack(f)
	case stomp.NACK:
		if c.version == stomp.V10 {
			return unknownCommand(f) // NACK came with STOMP 1.1
		}
		return c.nack(f)
	case stomp.BEGIN:
		return c.begin(f)
	case stomp.COMMIT:
		return c.commit(f)
	case stomp.ABORT:
		return c.abort(f)
	case stomp.DISCONNECT:
		return c.disconnect(f)
	case stomp.CONNECT, stomp.STOMP:
		return protocolErr(f, "already connected", "A connection takes one CONNECT or STOMP frame, its first.")
	}
	return unknownCommand(f)
}

func unknownCommand(f *stomp.Frame) error {
	return protocolErr(f, fmt.Sprintf("unknown command %q", f.Command), "")
}

// connect handles the first frame: version and heart-beat negotiation, the
// engine session, and CONNECTED.
func (c *conn) connect(f *stomp.Frame) error {
	if f.Command != stomp.CONNECT && f.Command != stomp.STOMP {
		return protocolErr(f, fmt.Sprintf("expected CONNECT frame, got %q", f.Command),
			"The first frame on a connection must be CONNECT or STOMP.")
	}
	v, ok := stomp.NegotiateVersion(f.Get("accept-version"))
	if !ok {
		e := protocolErr(f, "supported protocol versions are "+stomp.AcceptAll,
			fmt.Sprintf("None of the versions in accept-version %q is supported.", f.Get("accept-version")))
		e.extra = []stomp.Header{{Key: "version", Value: stomp.AcceptAll}}
		return e
	}
	hb, err := negotiateHeartBeat(f.Get("heart-beat"), c.cfg.HeartBeat)
	if err != nil {
		return &clientErr{fatal: true, msg: "invalid heart-beat header", detail: err.Error(), receipt: f.Get("receipt"), err: err}
	}
	login := f.Get("login")
	if c.cfg.Authenticate != nil {
		p, err := c.cfg.Authenticate(login, f.Get("passcode"))
		if err != nil {
			c.srv.authFailed.Add(1)
			c.log.Warn("authentication failed", "login", login, "err", err)
			e := &clientErr{msg: "authentication failed", detail: err.Error(), receipt: f.Get("receipt"), err: err}
			if errors.Is(err, ErrRetryLater) {
				e.extra = []stomp.Header{{Key: retryHeader, Value: "true"}}
			}
			return e
		}
		c.mu.Lock()
		c.principal = p
		c.mu.Unlock()
		login = p.Name()
	}
	who := c.who()
	if _, bridge := f.Lookup(HeaderBridgeGroup); bridge && who != nil && !who.MayBridge() {
		c.srv.denied.Add(1)
		return &clientErr{msg: fmt.Sprintf("user %s is not authorized to connect as a bridge", who.Name()), receipt: f.Get("receipt")}
	}
	if c.cfg.Admit != nil {
		release, err := c.cfg.Admit(f, c.nc.RemoteAddr().String())
		if err != nil {
			return &clientErr{fatal: true, msg: err.Error(), receipt: f.Get("receipt"), err: err}
		}
		c.release = release
	}
	clientID := f.Get("client-id")
	sessionID := clientID
	if who != nil && clientID != "" && who.Scope() != "" {
		sessionID = who.Scope() + "/" + clientID
	}
	sess, err := c.srv.broker.Open(sessionID, c)
	if err != nil {
		return engineErr(f.Get("receipt"), fmt.Errorf("opening session: %w", err))
	}

	reply := &stomp.Frame{Command: stomp.CONNECTED, Headers: []stomp.Header{
		{Key: "version", Value: string(v)},
		{Key: "heart-beat", Value: stomp.FormatHeartBeat(max(c.cfg.HeartBeat[0], 0), max(c.cfg.HeartBeat[1], 0))},
		{Key: "server", Value: c.cfg.ServerName},
		{Key: "session", Value: c.id},
	}}
	if c.cfg.ConnectedHeaders != nil {
		reply.Headers = append(reply.Headers, c.cfg.ConnectedHeaders()...)
	}

	// The writer switches its version and starts heart-beats when it
	// takes CONNECTED from the queue; both are set before it is queued.
	c.mu.Lock()
	c.sess, c.version, c.hb = sess, v, hb
	c.stats.clientID, c.stats.login, c.stats.bridgeGroup = clientID, login, f.Get(HeaderBridgeGroup)
	c.mu.Unlock()
	c.stats.framesIn.Add(1) // CONNECT
	c.queueControl(reply)

	c.rd.SetVersion(v)
	if err := c.dr.setIdle(idleLimit(hb.recv)); err != nil {
		return err
	}
	c.log.Debug("connected", "version", v, "client-id", clientID, "send-heart-beat", hb.send, "recv-heart-beat", hb.recv)
	return nil
}

// forbidden refuses a frame the principal has no right to, in the words
// ActiveMQ uses, so that operators searching their logs find it.
func (c *conn) forbidden(f *stomp.Frame, what, dest string) error {
	c.srv.denied.Add(1)
	name := c.who().Name()
	c.log.Warn("not authorized", "user", name, "command", f.Command, "destination", dest)
	return &clientErr{msg: fmt.Sprintf("user %s is not authorized to %s %s", name, what, dest), receipt: f.Get("receipt")}
}

// call runs one Session operation with a done callback, counting it in
// flight until done runs.
func (c *conn) call(f *stomp.Frame, op func(done func(error)) error) error {
	done := c.track(f)
	if err := op(done); err != nil {
		c.untrack(len(f.Body))
		return engineErr(f.Get("receipt"), err)
	}
	return nil
}

// receipt answers a frame the Session handled synchronously.
func (c *conn) receipt(f *stomp.Frame) {
	if id, ok := f.Lookup("receipt"); ok {
		c.queueControl(receiptFrame(id))
	}
}

func (c *conn) send(f *stomp.Frame) error {
	dest := f.Get("destination")
	if dest == "" {
		return frameErr(f, "SEND frame has no destination")
	}
	if strings.Contains(dest, ",") {
		return c.sendComposite(f, dest)
	}
	who := c.who()
	if who != nil && !isTemp(dest) && !who.MaySend(dest) {
		return c.forbidden(f, "write to", dest)
	}
	// A browse of the scheduled messages (queue/schedmanage.go) sends
	// copies to the reply-to: the sender must be allowed to write there.
	if rt := f.Get("reply-to"); dest == queue.SchedulerManagement && rt != "" && who != nil && !isTemp(rt) && !who.MaySend(rt) {
		return c.forbidden(f, "write to", rt)
	}
	m, err := c.message(f, dest)
	if err != nil {
		return err
	}
	tx := f.Get("transaction")
	return c.call(f, func(done func(error)) error { return c.sess.Send(m, tx, done) })
}

// message builds the message a SEND frame carries to dest.
func (c *conn) message(f *stomp.Frame, dest string) (*fsm.Message, error) {
	dest = c.tempDest(dest)
	// The message outlives the frame (in the engine's memory, in a
	// transaction): copy what it keeps, since the reader slices every
	// header of a frame from one string, dropped headers included.
	m := &fsm.Message{Destination: strings.Clone(dest), Body: f.Body, Priority: 4, Persistent: true}
	if v, ok := f.Lookup("persistent"); ok && strings.EqualFold(v, "false") {
		m.Persistent = false
	}
	if v, ok := f.Lookup("priority"); ok {
		p, err := strconv.ParseUint(v, 10, 8)
		if err != nil || p > 9 {
			return nil, frameErr(f, "invalid priority %q: must be 0 to 9", v)
		}
		m.Priority = uint8(p)
	}
	if v, ok := f.Lookup("expires"); ok {
		e, err := strconv.ParseInt(v, 10, 64)
		if err != nil || e < 0 {
			return nil, frameErr(f, "invalid expires %q: must be a time in unix milliseconds, or 0", v)
		}
		m.Expires = e
	}
	m.Headers = ownHeaders(f.Headers)
	c.replyTo(m.Headers)
	return m, nil
}

// maxComposite bounds the destinations of one composite SEND.
const maxComposite = 64

// sendComposite sends one SEND to each of a comma-separated list of
// destinations (ActiveMQ's composite destinations, /queue/a,/topic/b), as
// one transaction: one raft entry stores every copy or none, and the
// RECEIPT says all are stored. Inside the client's own transaction the
// copies join it. Each copy is its own message with its own message-id;
// a dedupe-id gets the destination appended, since the group stores an
// id once whatever the destination.
func (c *conn) sendComposite(f *stomp.Frame, list string) error {
	dests := strings.Split(list, ",")
	if len(dests) > maxComposite {
		return frameErr(f, "composite destination with %d destinations: at most %d", len(dests), maxComposite)
	}
	who := c.who()
	ms := make([]*fsm.Message, 0, len(dests))
	for _, d := range dests {
		d = strings.TrimSpace(d)
		if d == "" {
			return frameErr(f, "invalid destination %q: empty element", list)
		}
		if who != nil && !isTemp(d) && !who.MaySend(d) {
			return c.forbidden(f, "write to", d)
		}
		m, err := c.message(f, d)
		if err != nil {
			return err
		}
		for i, h := range m.Headers {
			if h.Key == queue.HeaderDedupeID {
				m.Headers[i].Value = h.Value + "@" + m.Destination
			}
		}
		ms = append(ms, m)
	}
	if tx := f.Get("transaction"); tx != "" {
		return c.call(f, func(done func(error)) error {
			for i, m := range ms {
				d := func(error) {}
				if i == len(ms)-1 {
					d = done
				}
				if err := c.sess.Send(m, tx, d); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// A name no client can give: headers cannot hold NUL.
	c.composites++
	tx := "\x00composite-" + strconv.FormatUint(c.composites, 10)
	return c.call(f, func(done func(error)) error {
		if err := c.sess.Begin(tx); err != nil {
			return compositeErr(err)
		}
		for _, m := range ms {
			if err := c.sess.Send(m, tx, func(error) {}); err != nil {
				c.sess.Abort(tx)
				return compositeErr(err)
			}
		}
		return c.sess.Commit(tx, done)
	})
}

// compositeErr says, of an error about transactions, that a composite
// SEND is one: its client may use none itself.
func compositeErr(err error) error {
	if errors.Is(err, queue.ErrTooManyTxFrames) || errors.Is(err, queue.ErrTxTooLarge) || errors.Is(err, queue.ErrSchedulerTx) {
		return fmt.Errorf("a composite SEND is one transaction: %w", err)
	}
	return err
}

// ownHeaders copies the sender's own headers into one new string, so a
// stored message keeps just them and not the frame's whole header block.
func ownHeaders(hs []stomp.Header) []fsm.Header {
	n, size := 0, 0
	for _, h := range hs {
		if !transportHeader(h.Key) {
			n++
			size += len(h.Key) + len(h.Value)
		}
	}
	if n == 0 {
		return nil
	}
	var b strings.Builder
	b.Grow(size)
	for _, h := range hs {
		if !transportHeader(h.Key) {
			b.WriteString(h.Key)
			b.WriteString(h.Value)
		}
	}
	block, out := b.String(), make([]fsm.Header, 0, n)
	for _, h := range hs {
		if !transportHeader(h.Key) {
			k := block[:len(h.Key)]
			v := block[len(h.Key) : len(h.Key)+len(h.Value)]
			block = block[len(h.Key)+len(h.Value):]
			out = append(out, fsm.Header{Key: k, Value: v})
		}
	}
	return out
}

// transportHeader reports whether a SEND header is the protocol's rather
// than the sender's: it is not stored with the message, since the frame
// means it for this hop only or the message carries it in its own field
// (and MESSAGE frames write those from the fields).
func transportHeader(key string) bool {
	switch key {
	case "destination", "receipt", "transaction", "content-length",
		"persistent", "priority", "expires",
		"message-id", "subscription", "ack", "redelivered", "delivery-count", "timestamp":
		return true
	}
	return false
}

func (c *conn) subscribe(f *stomp.Frame) error {
	spec := queue.SubscribeSpec{
		ID:          f.Get("id"),
		Destination: f.Get("destination"),
		DurableName: f.Get("activemq.subscriptionName"),
	}
	if spec.Destination == "" {
		return frameErr(f, "SUBSCRIBE frame has no destination")
	}
	if who := c.who(); who != nil && !isTemp(spec.Destination) && !who.MayReceive(spec.Destination) {
		return c.forbidden(f, "read from", spec.Destination)
	}
	spec.Destination = c.tempDest(spec.Destination)
	if spec.ID == "" {
		if c.version != stomp.V10 {
			return frameErr(f, "SUBSCRIBE frame has no id")
		}
		spec.ID = spec.Destination // STOMP 1.0 made id optional
	}
	switch a := f.Get("ack"); a {
	case "", "auto":
		spec.Ack = queue.AckAuto
	case "client":
		spec.Ack = queue.AckClient
	case "client-individual":
		spec.Ack = queue.AckClientIndividual
	default:
		return frameErr(f, "invalid ack %q: must be auto, client or client-individual", a)
	}
	if v, ok := f.Lookup("activemq.prefetchSize"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return frameErr(f, "invalid activemq.prefetchSize %q: must be a positive number", v)
		}
		spec.Prefetch = n
	}
	spec.Selector = f.Get("selector")
	// A queue browser (ActiveMQ's browser:true; queue/browse.go): its
	// messages are not consumed, and a browser:end MESSAGE ends them.
	spec.Browser = f.Get("browser") == "true"
	switch v := f.Get("activemq.exclusive"); v {
	case "", "false":
	case "true":
		spec.Exclusive = true
	default:
		return frameErr(f, "invalid activemq.exclusive %q: must be true or false", v)
	}
	if v, ok := f.Lookup("activemq.priority"); ok {
		// ActiveMQ's consumer priorities run from 0 to 127.
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 127 {
			return frameErr(f, "invalid activemq.priority %q: must be a number from 0 to 127", v)
		}
		spec.Priority = n
	}
	if g, ok := f.Lookup(HeaderNetworkGroup); ok {
		ns, err := networkSpec(f, g)
		if err != nil {
			return err
		}
		spec.Network = ns
	}
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[string]string{}
	}
	c.subs[spec.ID] = spec.Destination
	c.mu.Unlock()
	return c.call(f, func(done func(error)) error { return c.sess.Subscribe(spec, done) })
}

// networkSpec reads a network subscription's headers.
func networkSpec(f *stomp.Frame, group string) (*queue.NetworkSpec, error) {
	if group == "" {
		return nil, frameErr(f, "empty %s header", HeaderNetworkGroup)
	}
	ns := &queue.NetworkSpec{Group: group, TTL: 1}
	if v, ok := f.Lookup(HeaderNetworkTTL); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, frameErr(f, "invalid %s %q: must be a positive number", HeaderNetworkTTL, v)
		}
		ns.TTL = n
	}
	switch v := f.Get(HeaderNetworkPriority); v {
	case "", "normal":
	case "low":
		ns.LowPriority = true
	default:
		return nil, frameErr(f, "invalid %s %q: must be low or normal", HeaderNetworkPriority, v)
	}
	return ns, nil
}

func (c *conn) unsubscribe(f *stomp.Frame) error {
	id := f.Get("id")
	if id == "" && c.version == stomp.V10 {
		id = c.tempDest(f.Get("destination")) // the 1.0 default id, as in subscribe
	}
	if id == "" {
		if c.version == stomp.V10 {
			return frameErr(f, "UNSUBSCRIBE frame has no id or destination")
		}
		return frameErr(f, "UNSUBSCRIBE frame has no id")
	}
	durable := f.Get("activemq.subscriptionName")
	c.mu.Lock()
	delete(c.subs, id)
	c.mu.Unlock()
	return c.call(f, func(done func(error)) error { return c.sess.Unsubscribe(id, durable, done) })
}

func (c *conn) ack(f *stomp.Frame) error {
	r, err := c.ackRef(f)
	if err != nil {
		return err
	}
	tx := f.Get("transaction")
	return c.call(f, func(done func(error)) error { return c.sess.Ack(r, tx, done) })
}

func (c *conn) nack(f *stomp.Frame) error {
	r, err := c.ackRef(f)
	if err != nil {
		return err
	}
	tx := f.Get("transaction")
	return c.call(f, func(done func(error)) error { return c.sess.Nack(r, tx, done) })
}

// ackRef reads which delivery an ACK or NACK names, the way the
// connection's version does: STOMP 1.2 by id (the MESSAGE's ack header),
// 1.1 by message-id and subscription, 1.0 by message-id.
func (c *conn) ackRef(f *stomp.Frame) (queue.AckRef, error) {
	var r queue.AckRef
	switch c.version {
	case stomp.V12:
		if r.ID = f.Get("id"); r.ID == "" {
			return r, frameErr(f, "%s frame has no id", f.Command)
		}
	case stomp.V11:
		if r.MessageID = f.Get("message-id"); r.MessageID == "" {
			return r, frameErr(f, "%s frame has no message-id", f.Command)
		}
		if r.Subscription = f.Get("subscription"); r.Subscription == "" {
			return r, frameErr(f, "%s frame has no subscription", f.Command)
		}
	default:
		if r.MessageID = f.Get("message-id"); r.MessageID == "" {
			return r, frameErr(f, "%s frame has no message-id", f.Command)
		}
		r.Subscription = f.Get("subscription") // optional in 1.0
	}
	return r, nil
}

// transaction returns the frame's transaction header, which BEGIN, COMMIT
// and ABORT require.
func transaction(f *stomp.Frame) (string, error) {
	tx := f.Get("transaction")
	if tx == "" {
		return "", frameErr(f, "%s frame has no transaction", f.Command)
	}
	return tx, nil
}

func (c *conn) begin(f *stomp.Frame) error {
	tx, err := transaction(f)
	if err != nil {
		return err
	}
	if err := c.sess.Begin(tx); err != nil {
		return engineErr(f.Get("receipt"), err)
	}
	c.receipt(f)
	return nil
}

func (c *conn) commit(f *stomp.Frame) error {
	tx, err := transaction(f)
	if err != nil {
		return err
	}
	return c.call(f, func(done func(error)) error { return c.sess.Commit(tx, done) })
}

func (c *conn) abort(f *stomp.Frame) error {
	tx, err := transaction(f)
	if err != nil {
		return err
	}
	if err := c.sess.Abort(tx); err != nil {
		return engineErr(f.Get("receipt"), err)
	}
	c.receipt(f)
	return nil
}

// disconnect waits until every earlier operation completed, so that the
// client's RECEIPT for DISCONNECT covers them all, then closes.
func (c *conn) disconnect(f *stomp.Frame) error {
	c.waitIdle()
	var final *stomp.Frame
	if id, ok := f.Lookup("receipt"); ok {
		final = receiptFrame(id)
	}
	c.shutdown(final, false)
	return errStop
}

// Headers of networks of groups (see package network). The transport
// carries them; the network package gives them meaning.
const (
	// HeaderGroup, in CONNECTED, names the group the broker serves.
	HeaderGroup = "raftmq-group"
	// HeaderBridgeGroup, in CONNECT, names the group whose bridge this
	// connection is.
	HeaderBridgeGroup = "raftmq-bridge-group"
	// HeaderNetworkGroup, in SUBSCRIBE, makes a network subscription: the
	// group its messages are forwarded to. HeaderNetworkTTL is the
	// bridge's networkTTL, HeaderNetworkPriority "low" when local
	// consumers take precedence (decreaseNetworkConsumerPriority).
	HeaderNetworkGroup    = "raftmq-network-group"
	HeaderNetworkTTL      = "raftmq-network-ttl"
	HeaderNetworkPriority = "raftmq-network-priority"
)
