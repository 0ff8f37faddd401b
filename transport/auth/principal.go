package auth

import "strconv"

// Right is something a principal may do to a destination or the broker.
type Right uint8

// The rights, as the ACL file names them. The zero Right is none of them
// and is never allowed.
const (
	Read      Right = iota + 1 // SUBSCRIBE; for the broker, view the admin API, console and metrics
	Write                      // SEND
	Admin                      // manage a destination; for the broker, manage the group
	numRights = int(Admin)
)

func (r Right) String() string {
	switch r {
	case Read:
		return "read"
	case Write:
		return "write"
	case Admin:
		return "admin"
	}
	return "Right(" + strconv.Itoa(int(r)) + ")"
}

// Principal is who a connection logged in as. Login returns it, and the
// connection presents it to Allowed for each frame.
type Principal struct {
	User      string   // "" when Anonymous
	Groups    []string // as the users file had them at login; ["anonymous"] when Anonymous
	Anonymous bool     // admitted without a login
	// hash is the password hash the login was checked against: Refresh
	// ends a login whose password has been changed since.
	hash string
}

// String names the principal in logs.
func (p *Principal) String() string {
	if p == nil || p.Anonymous {
		return "anonymous"
	}
	return p.User
}

// InGroup reports whether p is in group g.
func (p *Principal) InGroup(g string) bool {
	for _, have := range p.Groups {
		if have == g {
			return true
		}
	}
	return false
}
