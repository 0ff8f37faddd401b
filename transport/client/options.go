package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/raftmq/raftmq/transport/stomp"
)

// Options configure a connection. The zero value connects as an anonymous
// client speaking any STOMP version, without heart-beats.
type Options struct {
	// AcceptVersion is the accept-version header: the versions we offer,
	// comma-separated. Default stomp.AcceptAll.
	AcceptVersion string
	// Host is the virtual host header. Default "localhost".
	Host string
	// Login and Passcode are sent when Login is not empty.
	Login, Passcode string
	// ClientID is the client-id header, which names durable subscriptions.
	ClientID string
	// HeartBeat is what we can send and what we want to receive, the two
	// numbers of the heart-beat header. Zero means none.
	HeartBeat [2]time.Duration
	// Headers are extra CONNECT headers, sent after ours.
	Headers []stomp.Header
	// Limits bound the frames we accept from the server.
	Limits stomp.Limits
	// TLS, if set, makes Dial connect with TLS. When its ServerName is
	// empty, Dial uses a copy naming the host it dials, so the server's
	// certificate is verified against that name. NewConn ignores it.
	TLS *tls.Config
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o.HeartBeat[0] < 0 || o.HeartBeat[1] < 0 {
		return fmt.Errorf("client: negative heart-beat %v", o.HeartBeat)
	}
	if o.AcceptVersion != "" {
		for v := range strings.SplitSeq(o.AcceptVersion, ",") {
			if _, ok := stomp.NegotiateVersion(v); !ok || strings.TrimSpace(v) == "" {
				return fmt.Errorf("client: accept-version %q: unsupported version %q", o.AcceptVersion, v)
			}
		}
	}
	if strings.ContainsAny(o.Host+o.Login+o.Passcode+o.ClientID, "\n") {
		return errors.New("client: line feed in a CONNECT header")
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.AcceptVersion == "" {
		o.AcceptVersion = stomp.AcceptAll
	}
	if o.Host == "" {
		o.Host = "localhost"
	}
	return o
}

// offers reports whether v is among the versions of AcceptVersion.
func (o *Options) offers(v stomp.Version) bool {
	for s := range strings.SplitSeq(o.AcceptVersion, ",") {
		if stomp.Version(strings.TrimSpace(s)) == v {
			return true
		}
	}
	return false
}

// connectFrame builds the CONNECT frame. CONNECT rather than STOMP, because
// 1.0 servers know only CONNECT.
func (o *Options) connectFrame() *stomp.Frame {
	f := &stomp.Frame{Command: stomp.CONNECT, Headers: make([]stomp.Header, 0, 7+len(o.Headers))}
	f.Add("accept-version", o.AcceptVersion)
	f.Add("host", o.Host)
	if o.Login != "" {
		f.Add("login", o.Login)
		f.Add("passcode", o.Passcode)
	}
	if o.ClientID != "" {
		f.Add("client-id", o.ClientID)
	}
	if o.HeartBeat != [2]time.Duration{} {
		f.Add("heart-beat", stomp.FormatHeartBeat(o.HeartBeat[0], o.HeartBeat[1]))
	}
	f.Headers = append(f.Headers, o.Headers...)
	return f
}
