package fsm

import "errors"

var (
	// ErrNotFound is returned by Message for an entry that does not exist.
	ErrNotFound = errors.New("fsm: not found")
	// ErrClosed is returned by an FSM after Close. Apply returns it as the
	// response of every entry it was given (none of them was applied).
	ErrClosed = errors.New("fsm: closed")
	// ErrInvalidCommand is wrapped by the Result.Err of a command that
	// cannot be applied as given (a missing message, an empty name...).
	ErrInvalidCommand = errors.New("fsm: invalid command")
	// ErrSkipped is wrapped by the Result.Err of a command whose op this
	// version does not know and which was flagged OpSkippable.
	ErrSkipped = errors.New("fsm: unknown skippable command skipped")
)
