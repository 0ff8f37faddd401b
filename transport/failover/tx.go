package failover

import (
	"context"
	"errors"
	"fmt"
)

// A transaction lives on the connection that began it: the broker
// discards it when that connection goes, so nothing of it is ever resent.
// SENDs join it with a transaction header (Send, SendAsync), ACKs and
// NACKs with the tx argument, and both must go to its connection.

// Begin starts transaction tx on the connection in service and waits for
// the receipt (waiting for a connection while reconnecting, and beginning
// again on the next one if the connection is lost before the receipt).
func (c *Client) Begin(ctx context.Context, tx string) error {
	if tx == "" {
		return errors.New("failover: BEGIN: empty transaction name")
	}
	for {
		c.mu.Lock()
		if s := c.txs[tx]; s != nil && !s.lost {
			c.mu.Unlock()
			// The broker would answer with an ERROR, ending the
			// connection and everything on it.
			return fmt.Errorf("failover: BEGIN %s: transaction already begun", tx)
		}
		c.mu.Unlock()
		s, err := c.acquire(ctx)
		if err != nil {
			return fmt.Errorf("failover: BEGIN %s: %w", tx, err)
		}
		err = s.conn.Begin(ctx, tx)
		s.writers.Done()
		if err == nil {
			c.mu.Lock()
			if !s.lost {
				c.txs[tx] = s
				c.mu.Unlock()
				return nil
			}
			c.mu.Unlock()
			continue
		}
		if s.conn.Err() == nil {
			return fmt.Errorf("failover: %w", err)
		}
		if se := c.requestRefusal(s, err); se != nil {
			return fmt.Errorf("failover: BEGIN %s: %w: %w", tx, ErrRefused, se)
		}
	}
}

// Commit commits transaction tx and waits for the receipt. If the
// transaction's connection was lost, the broker discarded it: Commit
// returns ErrTxRolledBack. If the connection is lost, or ctx ends, after
// COMMIT was written and before its receipt, the outcome is unknown:
// ErrTxInDoubt. Either way the transaction is over for the client.
func (c *Client) Commit(ctx context.Context, tx string) error {
	s, lost, err := c.takeTx("COMMIT", tx)
	if err != nil {
		return err
	}
	if lost || s.conn.Err() != nil {
		return fmt.Errorf("failover: COMMIT %s: %w", tx, ErrTxRolledBack)
	}
	if err := s.conn.Commit(ctx, tx); err != nil {
		return fmt.Errorf("failover: COMMIT %s: %w: %w", tx, ErrTxInDoubt, err)
	}
	return nil
}

// Abort rolls back transaction tx and waits for the receipt. If the
// transaction's connection is lost, before or during the ABORT, the
// broker discarded the transaction anyway: Abort returns nil.
func (c *Client) Abort(ctx context.Context, tx string) error {
	s, lost, err := c.takeTx("ABORT", tx)
	if err != nil {
		return err
	}
	if lost || s.conn.Err() != nil {
		return nil
	}
	if err := s.conn.Abort(ctx, tx); err != nil && s.conn.Err() == nil {
		return fmt.Errorf("failover: %w", err)
	}
	return nil
}

// takeTx ends the client's record of tx and returns its connection and
// whether that was lost.
func (c *Client) takeTx(cmd, tx string) (*session, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.usable(); err != nil {
		return nil, false, fmt.Errorf("failover: %s %s: %w", cmd, tx, err)
	}
	s := c.txs[tx]
	if s == nil {
		return nil, false, fmt.Errorf("failover: %s %s: transaction was not begun", cmd, tx)
	}
	delete(c.txs, tx)
	return s, s.lost, nil
}
