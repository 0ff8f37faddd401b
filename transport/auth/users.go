package auth

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// anonymousGroup is the group of every connection admitted without a
// login, as in ActiveMQ.
const anonymousGroup = "anonymous"

// user is a line of the users file.
type user struct {
	hash   string
	groups []string
}

// users is a parsed users file.
type users struct {
	byName map[string]*user
	// cost is the bcrypt cost most users' hashes have: the dummy hash an
	// unknown login is compared with has it, so that most users take
	// exactly as long to refuse as a name nobody has.
	cost int
}

// parseUsers reads a users file (see the package documentation); file
// names it in errors.
func parseUsers(r io.Reader, file string) (*users, error) {
	us := &users{byName: make(map[string]*user)}
	costs := make(map[int]int)
	err := parseLines(r, file, func(f []string) error {
		if len(f) > 3 {
			return fmt.Errorf("%d fields, want user, hash and groups (groups are separated by commas without spaces)", len(f))
		}
		name := f[0]
		if err := checkName("user", name); err != nil {
			return err
		}
		if _, dup := us.byName[name]; dup {
			return fmt.Errorf("duplicate user %q", name)
		}
		if len(f) < 2 {
			return fmt.Errorf("user %q has no password hash", name)
		}
		cost, err := hashCost(f[1])
		if err != nil {
			return fmt.Errorf("user %q: %w", name, err)
		}
		u := &user{hash: f[1]}
		if len(f) == 3 {
			if u.groups, err = parseGroups(f[2]); err != nil {
				return fmt.Errorf("user %q: %w", name, err)
			}
		}
		us.byName[name] = u
		costs[cost]++
		return nil
	})
	if err != nil {
		return nil, err
	}
	us.cost = bcrypt.DefaultCost
	for c, n := range costs {
		if n > costs[us.cost] || n == costs[us.cost] && c > us.cost {
			us.cost = c
		}
	}
	return us, nil
}

// parseGroups parses a user's comma-separated groups.
func parseGroups(s string) ([]string, error) {
	groups := strings.Split(s, ",")
	for i, g := range groups {
		if err := checkName("group", g); err != nil {
			return nil, err
		}
		if g == anonymousGroup {
			return nil, errors.New(`group "anonymous" is reserved for connections without a login`)
		}
		for _, prev := range groups[:i] {
			if prev == g {
				return nil, fmt.Errorf("group %q given twice", g)
			}
		}
	}
	return groups, nil
}

// hashLen is the length of bcrypt's encoding: "$2b$", two digits of cost,
// "$", 22 characters of salt and 31 of hash.
const hashLen = 60

// hashCost checks that h is a bcrypt hash and returns its cost.
// bcrypt.Cost alone checks the prefix and the cost but not the rest, and a
// hash with a byte too many or too few would only show at the first login,
// as a user who cannot log in.
func hashCost(h string) (int, error) {
	if len(h) != hashLen || !(strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$")) || h[6] != '$' {
		return 0, errors.New(`password hash is not a bcrypt hash ("$2b$10$" and 53 more characters)`)
	}
	for i := 7; i < len(h); i++ {
		if !isBcryptChar(h[i]) {
			return 0, fmt.Errorf("password hash is not a bcrypt hash: bad character %q", h[i])
		}
	}
	cost, err := bcrypt.Cost([]byte(h))
	if err != nil {
		return 0, fmt.Errorf("password hash is not a bcrypt hash: %w", err)
	}
	return cost, nil
}

// isBcryptChar reports whether c is in bcrypt's base64 alphabet.
func isBcryptChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '/'
}

// HashPassword returns the bcrypt hash of password for a users file, at
// cost (0 for bcrypt.DefaultCost, else bcrypt.MinCost to bcrypt.MaxCost).
// It refuses an empty password, and one longer than 72 bytes
// (ErrPasswordTooLong) which bcrypt would silently cut.
func HashPassword(password string, cost int) (string, error) {
	switch {
	case password == "":
		return "", errors.New("empty password")
	case len(password) > maxPassword:
		return "", ErrPasswordTooLong
	case cost == 0:
		cost = bcrypt.DefaultCost
	case cost < bcrypt.MinCost || cost > bcrypt.MaxCost:
		return "", fmt.Errorf("bcrypt cost %d: want %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(h), nil
}

// ValidateUsers reads a users file as the broker would and reports its
// first mistake (file:line), so tools can check a line before an operator
// adds it.
func ValidateUsers(r io.Reader, file string) error {
	_, err := parseUsers(r, file)
	return err
}
