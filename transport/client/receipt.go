package client

import (
	"context"
	"fmt"

	"github.com/raftmq/raftmq/transport/stomp"
)

// Receipt is a pending RECEIPT from the server.
type Receipt struct {
	id    string
	done  chan struct{}
	frame *stomp.Frame // set before done is closed
	err   error        // set before done is closed
}

// ID returns the receipt header value sent.
func (r *Receipt) ID() string { return r.id }

// Done is closed when the receipt has arrived or the connection has ended.
func (r *Receipt) Done() <-chan struct{} { return r.done }

// Err returns, once Done is closed, nil if the receipt arrived or why the
// connection ended before it did.
func (r *Receipt) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Frame returns the RECEIPT frame once it has arrived, or nil.
func (r *Receipt) Frame() *stomp.Frame {
	select {
	case <-r.done:
		return r.frame
	default:
		return nil
	}
}

// Wait waits for the receipt until ctx ends. It returns nil once the
// receipt has arrived, the connection's error if it ended first, or the
// context's error. Giving up on a receipt leaves the operation's outcome
// unknown.
func (r *Receipt) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	default:
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("client: waiting for receipt %s: %w", r.id, ctx.Err())
	}
}

func (r *Receipt) complete(f *stomp.Frame, err error) {
	r.frame, r.err = f, err
	close(r.done)
}
