package stomp

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AcceptAll is an accept-version header value offering every version this
// package speaks.
const AcceptAll = "1.0,1.1,1.2"

// NegotiateVersion returns the highest version listed in an accept-version
// header value that this package speaks. An empty value is a STOMP 1.0 client,
// which does not send the header. ok is false when no listed version is
// spoken; a server then answers with an ERROR frame whose version header is
// AcceptAll.
func NegotiateVersion(acceptVersion string) (v Version, ok bool) {
	if acceptVersion == "" {
		return V10, true
	}
	for s := range strings.SplitSeq(acceptVersion, ",") {
		switch c := Version(strings.TrimSpace(s)); c {
		case V10, V11, V12:
			if !ok || c > v { // the three compare correctly as strings
				v, ok = c, true
			}
		}
	}
	return v, ok
}

// ParseHeartBeat parses a heart-beat header value "cx,cy": the smallest
// interval at which its sender can send heart-beats, and the interval at
// which it wants to receive them, in milliseconds; 0 means none. An empty
// value means no heart-beats.
func ParseHeartBeat(value string) (send, recv time.Duration, err error) {
	if value == "" {
		return 0, 0, nil
	}
	a, b, found := strings.Cut(value, ",")
	if !found {
		return 0, 0, errorf(ErrMalformed, fmt.Sprintf("invalid heart-beat header %q", value))
	}
	if send, err = parseMillis(a); err == nil {
		recv, err = parseMillis(b)
	}
	if err != nil {
		return 0, 0, errorf(ErrMalformed, fmt.Sprintf("invalid heart-beat header %q", value))
	}
	return send, recv, nil
}

func parseMillis(s string) (time.Duration, error) {
	// At most what a Duration can hold; a larger value means "practically
	// never" and is refused rather than overflowing.
	ms, err := strconv.ParseUint(strings.TrimSpace(s), 10, 63)
	if err != nil || ms > uint64(1<<63-1)/uint64(time.Millisecond) {
		return 0, fmt.Errorf("invalid milliseconds %q", s)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// FormatHeartBeat formats a heart-beat header value. Positive intervals below
// a millisecond round up to one, so that they do not turn into "none".
func FormatHeartBeat(send, recv time.Duration) string {
	return strconv.FormatInt(millis(send), 10) + "," + strconv.FormatInt(millis(recv), 10)
}

func millis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// HeartBeatInterval is the heart-beat algebra of STOMP 1.1: heart-beats flow
// from A to B every max(canSend, wantRecv), where canSend is A's first
// heart-beat number and wantRecv is B's second, and not at all when either is
// zero. A client sends every HeartBeatInterval(cx, sy) and hears from the
// server every HeartBeatInterval(sx, cy); a server the other way round.
func HeartBeatInterval(canSend, wantRecv time.Duration) time.Duration {
	if canSend <= 0 || wantRecv <= 0 {
		return 0
	}
	return max(canSend, wantRecv)
}
