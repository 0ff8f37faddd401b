package transport

import (
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport/stomp"
)

// Queue browsers (SUBSCRIBE browser:true, queue/browse.go). Their
// messages are ordinary MESSAGE frames; their ack header, if the client
// uses it, names nothing to acknowledge, and the engine ignores such an
// ACK. The last delivery carries no message: it is written as ActiveMQ
// writes the end of a browse, a MESSAGE with the subscription, browser:end,
// the destination, message-id 0 and no body.

// browseEndFrame renders a browser's end marker into f, reusing f's
// header slice.
func (c *conn) browseEndFrame(f *stomp.Frame, d *queue.Delivery) {
	f.Command = stomp.MESSAGE
	f.Headers = append(f.Headers[:0],
		stomp.Header{Key: "subscription", Value: d.Subscription},
		stomp.Header{Key: "browser", Value: "end"},
		stomp.Header{Key: "destination", Value: c.shownDest(d.Destination)},
		stomp.Header{Key: "message-id", Value: "0"},
	)
	f.Body = nil
}
