package auth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxLine bounds a line of a users or ACL file; a longer one is surely not
// one of ours (a binary file given by mistake, say).
const maxLine = 64 << 10

// maxName bounds user and group names.
const maxName = 128

// parseLines calls fn with the fields of each line of r that has any,
// comments removed, and makes fn's error a ParseError at that line.
func parseLines(r io.Reader, file string, fn func(fields []string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			// Editors on Windows may start the file with a byte order mark.
			text = strings.TrimPrefix(text, "\ufeff")
		}
		fields := strings.Fields(text)
		for i, f := range fields {
			// Only a field may start a comment: "#" inside a pattern is
			// part of a destination name.
			if strings.HasPrefix(f, "#") {
				fields = fields[:i]
				break
			}
		}
		if len(fields) == 0 {
			continue
		}
		if err := fn(fields); err != nil {
			return &ParseError{File: file, Line: line, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxLine)
		}
		return &ParseError{File: file, Line: line + 1, Err: err}
	}
	return nil
}

// checkName validates a user or group name. Names are restricted to ASCII
// so that two names that look alike are alike, and so that the files'
// separators (space, comma, "=", ":", "#") cannot appear in them.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s name", what)
	}
	if len(s) > maxName {
		return fmt.Errorf("%s name %.20q... longer than %d bytes", what, s, maxName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '@', c == '-':
		default:
			return fmt.Errorf("bad %s name %q: only letters, digits and ._@- are allowed", what, s)
		}
	}
	return nil
}
