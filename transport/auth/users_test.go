package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestParseUsers(t *testing.T) {
	h1, h2 := testHash(t, "one"), testHash(t, "two")
	h5, err := HashPassword("five", 5)
	if err != nil {
		t.Fatal(err)
	}
	in := "\ufeff# a comment\n" +
		"\n" +
		"admin\t" + h1 + "\tadmins   # trailing comment\r\n" +
		"   app " + h2 + " producers,consumers\n" +
		"solo " + h5 + "\n" +
		"m.e_x@y-z " + h5 + "  #no groups\n"
	us, err := parseUsers(strings.NewReader(in), "users")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]user{
		"admin":     {h1, []string{"admins"}},
		"app":       {h2, []string{"producers", "consumers"}},
		"solo":      {h5, nil},
		"m.e_x@y-z": {h5, nil},
	}
	if len(us.byName) != len(want) {
		t.Errorf("%d users, want %d", len(us.byName), len(want))
	}
	for name, w := range want {
		u := us.byName[name]
		if u == nil {
			t.Errorf("user %q missing", name)
			continue
		}
		if u.hash != w.hash || !slices.Equal(u.groups, w.groups) {
			t.Errorf("user %q = %q %q, want %q %q", name, u.hash, u.groups, w.hash, w.groups)
		}
	}
	// Two users at cost 5, two at MinCost: the tie goes to the higher.
	if us.cost != 5 {
		t.Errorf("dummy cost %d, want 5", us.cost)
	}
}

func TestParseUsersEmpty(t *testing.T) {
	us, err := parseUsers(strings.NewReader("# nobody yet\n"), "users")
	if err != nil {
		t.Fatal(err)
	}
	if len(us.byName) != 0 || us.cost != bcrypt.DefaultCost {
		t.Errorf("got %d users, cost %d", len(us.byName), us.cost)
	}
}

// The package documentation's example must be a valid file.
func TestParseUsersDocExample(t *testing.T) {
	in := `
admin   $2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy  admins
app     $2a$10$T3wc7NgZWmQ4GrWMqmsFQeCvnjYHSmHkMejZsOUoLV5BkvL8QSOd2  producers,consumers
viewer  $2a$12$fWl3n1qC6F2DaQ2hAnvvVOtD6J0wS4i4yGqH1NmM7D4l3qGcN9OIu
`
	if _, err := parseUsers(strings.NewReader(in), "doc"); err != nil {
		t.Fatal(err)
	}
}

func TestParseUsersErrors(t *testing.T) {
	h := testHash(t, "pw")
	cases := []struct {
		name, in string
		line     int
		want     string
	}{
		{"duplicate", "a " + h + "\n\nb " + h + "\na " + h + "\n", 4, `duplicate user "a"`},
		{"no hash", "# c\na\n", 2, "no password hash"},
		{"not bcrypt", "a secret\n", 1, "not a bcrypt hash"},
		{"md5 crypt", "a $1$abcdefgh$abcdefghijklmnopqrstuv\n", 1, "not a bcrypt hash"},
		{"2x", "a " + "$2x$" + h[4:] + "\n", 1, "not a bcrypt hash"},
		{"short", "a " + h[:59] + "\n", 1, "not a bcrypt hash"},
		{"long", "a " + h + "x\n", 1, "not a bcrypt hash"},
		{"bad char", "a " + h[:59] + "!\n", 1, "bad character"},
		{"cost too low", "a " + h[:4] + "03" + h[6:] + "\n", 1, "cost 3"},
		{"cost too high", "a " + h[:4] + "32" + h[6:] + "\n", 1, "cost 32"},
		{"cost not digits", "a " + h[:4] + "1x" + h[6:] + "\n", 1, "not a bcrypt hash"},
		{"bad user", "a:b " + h + "\n", 1, `bad user name "a:b"`},
		{"unicode user", "é " + h + "\n", 1, "bad user name"},
		{"long user", strings.Repeat("u", 129) + " " + h + "\n", 1, "longer than 128"},
		{"bad group", "a " + h + " ok,b/c\n", 1, `bad group name "b/c"`},
		{"empty group", "a " + h + " ok,,c\n", 1, "empty group name"},
		{"trailing comma", "a " + h + " ok,\n", 1, "empty group name"},
		{"long group", "a " + h + " " + strings.Repeat("g", 129) + "\n", 1, "longer than 128"},
		{"anonymous group", "a " + h + " x,anonymous\n", 1, "reserved"},
		{"group twice", "a " + h + " x,y,x\n", 1, `group "x" given twice`},
		{"spaces in groups", "a " + h + " x, y\n", 1, "4 fields"},
		{"line too long", "a " + h + "\n" + strings.Repeat("x", maxLine+1) + "\n", 2, "longer than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseUsers(strings.NewReader(c.in), "users.txt")
			checkParseError(t, err, "users.txt", c.line, c.want)
		})
	}
	// Longest names are fine.
	long := strings.Repeat("n", maxName)
	if _, err := parseUsers(strings.NewReader(long+" "+h+" "+long+"\n"), "f"); err != nil {
		t.Errorf("%d-byte names: %v", maxName, err)
	}
}

func TestHashPassword(t *testing.T) {
	for _, pw := range []string{"x", "correct horse battery staple", "ünïcödé", strings.Repeat("p", 72)} {
		h, err := HashPassword(pw, bcrypt.MinCost)
		if err != nil {
			t.Fatalf("HashPassword(%d bytes): %v", len(pw), err)
		}
		if bcrypt.CompareHashAndPassword([]byte(h), []byte(pw)) != nil {
			t.Errorf("hash of %q does not match it", pw)
		}
		if bcrypt.CompareHashAndPassword([]byte(h), []byte(pw+"!")) == nil && len(pw) < 72 {
			t.Errorf("hash of %q matches %q", pw, pw+"!")
		}
		// What HashPassword makes, the users file takes.
		if c, err := hashCost(h); err != nil || c != bcrypt.MinCost {
			t.Errorf("hashCost(%q) = %d, %v", h, c, err)
		}
	}
	if _, err := HashPassword(strings.Repeat("p", 73), bcrypt.MinCost); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("73 bytes: %v, want ErrPasswordTooLong", err)
	}
	if _, err := HashPassword("", bcrypt.MinCost); err == nil {
		t.Error("empty password hashed")
	}
	for _, cost := range []int{-1, 1, bcrypt.MinCost - 1, bcrypt.MaxCost + 1} {
		if _, err := HashPassword("pw", cost); err == nil {
			t.Errorf("cost %d accepted", cost)
		}
	}
}

func TestHashPasswordDefaultCost(t *testing.T) {
	if testing.Short() {
		t.Skip("bcrypt at the default cost")
	}
	h, err := HashPassword("pw", 0)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost([]byte(h)); c != bcrypt.DefaultCost {
		t.Errorf("cost %d, want %d", c, bcrypt.DefaultCost)
	}
}
