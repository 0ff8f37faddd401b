package auth

import (
	"bytes"
	"errors"
	"testing"
	"testing/iotest"
)

// checkFuzzError checks that a parser's error is a ParseError at a line
// of data, and that reading data in one-byte pieces gives the same result.
func checkFuzzError(t *testing.T, data []byte, err, errPieces error) {
	t.Helper()
	if (err == nil) != (errPieces == nil) || err != nil && err.Error() != errPieces.Error() {
		t.Fatalf("whole: %v; in pieces: %v", err, errPieces)
	}
	if err == nil {
		return
	}
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	if pe.File != "f" || pe.Line < 1 || pe.Line > bytes.Count(data, []byte("\n"))+1 {
		t.Fatalf("error at %s:%d in %d lines: %v", pe.File, pe.Line, bytes.Count(data, []byte("\n"))+1, err)
	}
}

func FuzzParseACL(f *testing.F) {
	f.Add([]byte(testACL))
	for _, s := range []string{
		"queue a..b read=x\n",
		"broker > read=a admin=b\r\n",
		"\ufefftopic x.*.> write=user:u,*,anonymous # c\n",
		"queue a read=x read=y\n",
		"queue # read=x\n",
		"queue\ta\tread=,\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := parseACL(bytes.NewReader(data), "f")
		_, err2 := parseACL(iotest.OneByteReader(bytes.NewReader(data)), "f")
		checkFuzzError(t, data, err, err2)
		if err != nil {
			return
		}
		// Whatever parsed can be checked against.
		for _, p := range []*Principal{who["root"], who["anonymous"], who["feed"]} {
			for r := Read; r <= Admin; r++ {
				a.allowed(p, kindQueue, "a.b", r)
				a.allowed(p, kindTopic, "", r)
				if a.allowed(p, kindBroker, "", Write) {
					t.Fatal("write on the broker")
				}
			}
		}
	})
}

func FuzzParseUsers(f *testing.F) {
	h := testHash(f, "pw")
	f.Add([]byte("admin " + h + " admins\napp " + h + " producers,consumers\n"))
	for _, s := range []string{
		"a " + h + "\na " + h + "\n",
		"a " + h[:59] + "\n",
		"a " + h + " x,,y\n",
		"# c\n\n  b\t" + h + "\tg # c\r\n",
		"a $2y$31$" + h[7:] + " anonymous\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		us, err := parseUsers(bytes.NewReader(data), "f")
		_, err2 := parseUsers(iotest.OneByteReader(bytes.NewReader(data)), "f")
		checkFuzzError(t, data, err, err2)
		if err != nil {
			return
		}
		for name, u := range us.byName {
			if checkName("user", name) != nil {
				t.Fatalf("user %q accepted", name)
			}
			if _, err := hashCost(u.hash); err != nil {
				t.Fatalf("user %q: hash %q accepted", name, u.hash)
			}
			for _, g := range u.groups {
				if checkName("group", g) != nil || g == anonymousGroup {
					t.Fatalf("user %q: group %q accepted", name, g)
				}
			}
		}
	})
}
