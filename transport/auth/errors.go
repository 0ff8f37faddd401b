package auth

import (
	"errors"
	"fmt"
)

// Login's refusals. The STOMP server puts their text in its ERROR frame,
// so they say what the client may know and nothing more.
var (
	// ErrBadCredentials is the one error for an unknown user and a wrong
	// password, so that logins do not reveal which users exist.
	ErrBadCredentials = errors.New("bad login or passcode")
	// ErrAnonymousRefused refuses a connection without a login when
	// anonymous access is off.
	ErrAnonymousRefused = errors.New("login required")
	// ErrBusy refuses a login that waited too long for a turn at bcrypt:
	// the broker is flooded with logins. The client may retry later.
	ErrBusy = errors.New("too many logins in progress, retry later")
)

// ErrPasswordTooLong is HashPassword's refusal of a password bcrypt would
// silently cut to its first 72 bytes.
var ErrPasswordTooLong = errors.New("password longer than 72 bytes, the most bcrypt uses")

// ParseError is a mistake in a users or ACL file, at a line.
type ParseError struct {
	File string // the file's name as given in Options
	Line int    // 1-based
	Err  error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }
