package test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/raftmq/raftmq/transport/stomp"
)

// Queue browsers (SUBSCRIBE browser:true), as ActiveMQ has them over
// STOMP: every message of the queue, then a browser:end MESSAGE, and
// nothing consumed.

// TestBrowsePythonStomp runs testdata/browse.py with Debian's
// python3-stomp against the built binary: five messages browsed in
// consumer order, the end marker, a harmless ACK, a selector, a STOMP 1.1
// browser, then a consumer that still gets all five, and a topic browse
// refused.
func TestBrowsePythonStomp(t *testing.T) {
	t.Parallel()
	runPythonStomp(t, "browse.py")
}

// TestBrowseFrames checks the frames exactly, with the built binary: the
// browsed MESSAGEs, the end marker's headers, the subscription staying
// quiet afterwards, the queue left whole for a consumer, and a NACK of a
// browsed message refused as ActiveMQ refuses it.
func TestBrowseFrames(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, raftmqBin, t.TempDir())
	const q = "/queue/browse-frames"

	p, _ := rawConnect(t, srv.Stomp, "1.2")
	for i := range 5 {
		p.write(frame(stomp.SEND, fmt.Sprint("m", i), "destination", q, "receipt", fmt.Sprint("s", i)))
		p.expectReceipt(fmt.Sprint("s", i))
	}

	b, _ := rawConnect(t, srv.Stomp, "1.2")
	b.write(frame(stomp.SUBSCRIBE, "", "id", "br", "destination", q, "browser", "true", "ack", "client", "receipt", "sub"))
	var got []string
	var acks []string
	receipted := false // the RECEIPT may come before, among or after the MESSAGEs
	for len(got) < 5 {
		f := b.read()
		switch {
		case f.Command == stomp.RECEIPT && f.Get("receipt-id") == "sub":
			receipted = true
		case f.Command == stomp.MESSAGE && f.Get("browser") == "":
			got = append(got, string(f.Body))
			acks = append(acks, f.Get("ack"))
			if f.Get("subscription") != "br" || f.Get("destination") != q || f.Get("message-id") == "" || f.Get("ack") == "" {
				t.Errorf("browsed MESSAGE %v", f.Headers)
			}
		default:
			t.Fatalf("got %s %v %q while browsing", f.Command, f.Headers, f.Body)
		}
	}
	if want := []string{"m0", "m1", "m2", "m3", "m4"}; !slices.Equal(got, want) {
		t.Fatalf("browsed %q, want %q", got, want)
	}
	end := b.read()
	if end.Command == stomp.RECEIPT && !receipted {
		end, receipted = b.read(), true
	}
	if !receipted {
		b.expectReceipt("sub")
	}
	var hs []string
	for _, h := range end.Headers {
		hs = append(hs, h.Key+":"+h.Value)
	}
	if want := []string{"subscription:br", "browser:end", "destination:" + q, "message-id:0"}; end.Command != stomp.MESSAGE || !slices.Equal(hs, want) || len(end.Body) != 0 {
		t.Fatalf("end marker %s %q %q, want MESSAGE %q", end.Command, hs, end.Body, want)
	}
	// A client-mode ACK of a browsed message is receipted and does nothing;
	// then nothing more comes.
	b.write(frame(stomp.ACK, "", "id", acks[4], "receipt", "ack"))
	b.expectReceipt("ack")
	b.expectNothing()

	// A consumer gets all five.
	c, _ := rawConnect(t, srv.Stomp, "1.2")
	c.write(frame(stomp.SUBSCRIBE, "", "id", "c", "destination", q, "ack", "auto"))
	for i := range 5 {
		f := c.expect(stomp.MESSAGE)
		if string(f.Body) != fmt.Sprint("m", i) || f.Get("redelivered") != "" || f.Get("delivery-count") != "1" {
			t.Fatalf("consumer's message %d: %v %q", i, f.Headers, f.Body)
		}
	}

	// A NACK of a browsed message is refused, as ActiveMQ refuses it.
	b.write(frame(stomp.NACK, "", "id", acks[0], "receipt", "nack"))
	b.expectError("cannot NACK a message of a queue browser", "nack")

	// Browsing a topic is refused.
	tc, _ := rawConnect(t, srv.Stomp, "1.2")
	tc.write(frame(stomp.SUBSCRIBE, "", "id", "t", "destination", "/topic/browse", "browser", "true", "receipt", "t"))
	tc.expectError("browsing needs a queue", "t")
}
