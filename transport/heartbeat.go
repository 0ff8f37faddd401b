package transport

import (
	"math"
	"net"
	"sync"
	"time"

	"github.com/raftmq/raftmq/transport/stomp"
)

// heartBeats are the intervals agreed in CONNECT/CONNECTED (STOMP 1.1
// "Heart-beating"); zero means none in that direction.
type heartBeats struct {
	send time.Duration // the server writes something at least this often
	recv time.Duration // the client promised to write at least this often
}

// negotiateHeartBeat combines the client's heart-beat header "cx,cy" with
// the server's offer [sx, sy]: the server sends every max(sx,cy) and expects
// the client every max(cx,sy), each only when both numbers are non-zero. An
// absent header means "0,0".
func negotiateHeartBeat(header string, offer [2]time.Duration) (heartBeats, error) {
	cx, cy, err := stomp.ParseHeartBeat(header)
	if err != nil {
		return heartBeats{}, err
	}
	return heartBeats{
		send: stomp.HeartBeatInterval(offer[0], cy),
		recv: stomp.HeartBeatInterval(cx, offer[1]),
	}, nil
}

// idleLimit is how long a connection may stay silent when the client
// promised heart-beats every recv: twice the interval, the usual tolerance
// for network delay, and never overflowing.
func idleLimit(recv time.Duration) time.Duration {
	if recv > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return 2 * recv
}

// deadlineReader is the socket as the frame reader sees it. When idle is
// set, every Read must see a byte within idle: the deadline moves on each
// Read of the socket, not on each frame, so a large frame trickling in or
// bare heart-beat EOLs keep the connection alive.
//
// The lock makes sure that once stop ran no Read or setIdle moves the
// read deadline again: the writer may then be draining the socket for a
// bounded time.
type deadlineReader struct {
	nc net.Conn

	mu      sync.Mutex
	idle    time.Duration
	stopped bool
}

func (r *deadlineReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return 0, errStop
	}
	if r.idle > 0 {
		if err := r.nc.SetReadDeadline(time.Now().Add(r.idle)); err != nil {
			r.mu.Unlock()
			return 0, err
		}
	}
	r.mu.Unlock()
	return r.nc.Read(p)
}

// setDeadline sets a fixed read deadline: the one CONNECT must meet.
func (r *deadlineReader) setDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return errStop
	}
	return r.nc.SetReadDeadline(t)
}

// setIdle replaces the deadline set for CONNECT: with idle > 0 by one that
// moves with every Read, else by none.
func (r *deadlineReader) setIdle(idle time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return errStop
	}
	r.idle = idle
	if idle > 0 {
		return nil // the next Read sets it
	}
	return r.nc.SetReadDeadline(time.Time{})
}

// limit returns the silence allowed since the last Read.
func (r *deadlineReader) limit() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.idle
}

// stop makes the Read in progress, if any, return at once and every later
// Read fail.
func (r *deadlineReader) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	_ = r.nc.SetReadDeadline(time.Now()) // a closed socket needs no waking
}
