package transport

import (
	"slices"
	"testing"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/stomp"
)

// TestBrowser: SUBSCRIBE browser:true asks for a queue browser (only
// "true" does, as in ActiveMQ); browsed messages are ordinary MESSAGE
// frames and the end marker is ActiveMQ's browser:end MESSAGE.
func TestBrowser(t *testing.T) {
	b := newFakeBroker(true)
	e := newEnv(t, Config{}, b)
	for _, v := range []string{"1.0", "1.1", "1.2"} {
		t.Run(v, func(t *testing.T) {
			c, _ := e.connect(v)
			c.t = t
			s := b.session(t)
			c.send(stomp.SUBSCRIBE, "id", "b", "destination", "/queue/q", "browser", "true")
			if got := s.next(t, "subscribe").spec; !got.Browser || got.ID != "b" || got.Destination != "/queue/q" {
				t.Fatalf("Subscribe(%+v), want a browser", got)
			}
			c.send(stomp.SUBSCRIBE, "id", "c", "destination", "/queue/q", "browser", "false")
			if got := s.next(t, "subscribe").spec; got.Browser {
				t.Fatalf("Subscribe(%+v) with browser:false is a browser", got)
			}

			d := delivery("m1", 3)
			d.Subscription, d.AckID, d.Browsed = "b", "b7", true
			s.out.Deliver(d)
			f := c.expect(stomp.MESSAGE, "message-id", "m1", "subscription", "b", "destination", "/queue/a")
			if string(f.Body) != "xxx" {
				t.Errorf("browsed MESSAGE body %q", f.Body)
			}
			s.out.Deliver(&queue.Delivery{
				Msg:         &fsm.Message{ID: "0", Destination: "/queue/q"},
				Destination: "/queue/q", Subscription: "b", Browsed: true, BrowseEnd: true,
			})
			f = c.expect(stomp.MESSAGE)
			want := []string{"subscription:b", "browser:end", "destination:/queue/q", "message-id:0"}
			if got := headerList(f); !slices.Equal(got, want) {
				t.Errorf("end marker headers\n got %q\nwant %q", got, want)
			}
			if len(f.Body) != 0 {
				t.Errorf("end marker body %q", f.Body)
			}
		})
	}
}
