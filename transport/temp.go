package transport

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/queue"
)

// Temporary destinations (queue/temp.go): a client names its own as
// /temp-queue/NAME or /temp-topic/NAME; the connection makes the name its
// own by prefixing a random token of its own, so two clients'
// /temp-queue/reply are two destinations. A reply-to header naming one is
// rewritten to the remote form, /remote-temp-queue/TOKEN.NAME, which the
// responder sends to from its own connection, as ActiveMQ does. The token
// is not the connection's id (CONNECTED tells that to anyone): only those
// given the reply-to can send to it. MESSAGE frames show the owner its
// own short name again.

// tempDest returns the engine's name for dest as this connection means it.
func (c *conn) tempDest(dest string) string {
	for _, p := range []string{queue.TempQueuePrefix, queue.TempTopicPrefix} {
		if name, ok := strings.CutPrefix(dest, p); ok {
			return p + c.tempToken() + "." + name
		}
	}
	return dest
}

// replyTo rewrites a reply-to header naming one of this connection's
// temporary destinations to the form other connections can send to.
func (c *conn) replyTo(hs []fsm.Header) {
	for i, h := range hs {
		if h.Key != "reply-to" {
			continue
		}
		for p, remote := range map[string]string{
			queue.TempQueuePrefix: queue.RemoteTempQueuePrefix,
			queue.TempTopicPrefix: queue.RemoteTempTopicPrefix,
		} {
			if name, ok := strings.CutPrefix(h.Value, p); ok {
				hs[i].Value = remote + c.tempToken() + "." + name
			}
		}
	}
}

// shownDest is the destination header of a MESSAGE for this connection:
// its own temporary destinations under the name it gave them.
func (c *conn) shownDest(dest string) string {
	for _, p := range []string{queue.TempQueuePrefix, queue.TempTopicPrefix} {
		if rest, ok := strings.CutPrefix(dest, p); ok {
			if name, ok := strings.CutPrefix(rest, c.tempToken()+"."); ok {
				return p + name
			}
		}
	}
	return dest
}

// tempToken is the connection's secret prefix of its temporary
// destinations, made on first use: 128 random bits.
func (c *conn) tempToken() string {
	c.tempOnce.Do(func() {
		var b [16]byte
		rand.Read(b[:])
		c.temp = hex.EncodeToString(b[:])
	})
	return c.temp
}

// isTemp reports whether dest names a temporary destination, in either
// form. They need no rights: only the connection that made one can read
// it, and whoever was given its reply-to may write to it.
func isTemp(dest string) bool {
	for _, p := range []string{queue.TempQueuePrefix, queue.TempTopicPrefix, queue.RemoteTempQueuePrefix, queue.RemoteTempTopicPrefix} {
		if strings.HasPrefix(dest, p) {
			return true
		}
	}
	return false
}
