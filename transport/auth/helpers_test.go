package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// hashes memoizes test hashes: even at MinCost, bcrypt is the slowest
// thing in these tests.
var hashes sync.Map // password -> hash

// testHash returns a MinCost hash of password.
func testHash(t testing.TB, password string) string {
	t.Helper()
	if h, ok := hashes.Load(password); ok {
		return h.(string)
	}
	h, err := HashPassword(password, bcrypt.MinCost)
	if err != nil {
		t.Fatalf("HashPassword(%q): %v", password, err)
	}
	hashes.Store(password, h)
	return h
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// usersFile returns a users file with a line "name hash(password) groups"
// per triple of args.
func usersFile(t testing.TB, args ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i+2 < len(args); i += 3 {
		b.WriteString(args[i] + " " + testHash(t, args[i+1]) + " " + args[i+2] + "\n")
	}
	return b.String()
}

// checkParseError checks that err is a ParseError at file:line whose text
// contains want.
func checkParseError(t *testing.T, err error, file string, line int, want string) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	if pe.File != file || pe.Line != line {
		t.Errorf("error at %s:%d, want %s:%d: %v", pe.File, pe.Line, file, line, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

// fillSem takes every bcrypt turn of g's verifier, so that a Login that
// needs bcrypt fails with ErrBusy after wait instead, and returns the
// function that gives them back. A Login that succeeds meanwhile was
// served from the cache.
func fillSem(g *Guard, wait time.Duration) (release func()) {
	g.v.wait = wait
	n := cap(g.v.sem)
	for range n {
		g.v.sem <- struct{}{}
	}
	return func() {
		for range n {
			<-g.v.sem
		}
		g.v.wait = busyWait
	}
}
