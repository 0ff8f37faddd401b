// Package auth decides who may connect to the broker and what they may do,
// as ActiveMQ's simple authentication plugin and authorization plugin do.
// The STOMP server asks it on CONNECT (Guard.Login), SEND (Write) and
// SUBSCRIBE (Read); the admin HTTP API asks it for Basic credentials and
// for broker-wide Read and Admin. It reads two files and does no network
// I/O.
//
// # Users file
//
// One user per line: a name, a bcrypt hash of the user's password, and
// optionally the user's groups, separated by commas without spaces:
//
//	# user  bcrypt hash                                                   groups
//	admin   $2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy  admins
//	app     $2a$10$T3wc7NgZWmQ4GrWMqmsFQeCvnjYHSmHkMejZsOUoLV5BkvL8QSOd2  producers,consumers
//	viewer  $2a$12$fWl3n1qC6F2DaQ2hAnvvVOtD6J0wS4i4yGqH1NmM7D4l3qGcN9OIu
//
// Fields are separated by spaces or tabs. Blank lines are ignored, and a
// field that starts with "#" starts a comment that runs to the end of the
// line, so whole-line and trailing comments both work. User and group
// names are 1 to 128 ASCII letters, digits and the characters "._@-";
// names are case-sensitive. A user may appear once. The group "anonymous"
// is reserved for connections without a login (see below) and may not be
// given to a user. Hashes are bcrypt's 60-character "$2a$", "$2b$" or
// "$2y$" form at any cost from 4 to 31; "raftmq passwd" prints one
// (HashPassword). bcrypt reads at most 72 bytes of a password, so longer
// passwords are refused rather than silently cut.
//
// # ACL file
//
// One authorization entry per line: a kind, a destination pattern, and one
// to three rights, each a key, "=", and a comma-separated list of
// principals without spaces:
//
//	# kind  pattern   rights
//	queue   >         read=admins write=admins admin=admins
//	queue   orders.>  read=consumers write=producers
//	topic   prices.*  read=*  write=user:feed
//	broker  *         read=ops,admins admin=admins
//
// Blank lines and comments are as in the users file. The kind is "queue"
// or "topic", for the destinations /queue/NAME and /topic/NAME, or
// "broker" for the broker as a whole.
//
// Patterns match destination names (without /queue/ or /topic/) with
// ActiveMQ's wildcards: names are elements separated by ".", "*" stands
// for exactly one element and ">", only as the last element, for one or
// more of them: "orders.>" matches "orders.eu" and "orders.eu.paid" but
// not "orders", "prices.*" matches "prices.eur" but
// neither "prices" nor "prices.eur.spot". A broker entry's pattern must be
// "*" or ">" (both mean the whole broker).
//
// The rights are:
//
//	read   queue/topic: SUBSCRIBE (consume, browse)
//	       broker: view the admin API, console and metrics
//	write  queue/topic: SEND
//	       broker: not allowed
//	admin  queue/topic: manage the destination through the admin API
//	       (create, purge, move, delete)
//	       broker: manage the group (join and remove members, ...)
//
// A principal is one of:
//
//	NAME       every user in group NAME
//	user:NAME  the user NAME
//	*          every user who logged in (not anonymous connections)
//	anonymous  every connection admitted without a login
//
// Everything is denied unless granted. A right on a destination is
// granted when any entry of its kind whose pattern matches its name gives
// that right to the user, to "*", or to one of the user's groups: the
// rights of all matching entries add up, as in ActiveMQ's
// DefaultAuthorizationMap, and no entry takes away what another gives.
// Destinations other than /queue/ and /topic/ ones are denied.
//
// # Options
//
// Without a users file, authentication is off: every connection is
// admitted, whatever its login, and has every right. This is the default
// of a single embedded node.
//
// With a users file and no ACL file, every user who logs in has every
// right, as with ActiveMQ's simple authentication plugin alone. If
// anonymous connections are allowed too, they may read and write every
// queue and topic but administer none, and have no broker-wide rights:
// those (the admin API, console and metrics, managing the group, deleting
// or purging destinations, sending to the scheduler's management topic)
// need a login or an ACL file that grants them to "anonymous". ActiveMQ
// likewise protects its console apart from anonymous messaging access.
//
// With an ACL file, anonymous connections, if allowed, have exactly the
// rights entries give to "anonymous". An ACL file without a users file is
// refused: without users, authentication is off and the ACL would be
// ignored.
//
// # Reloading
//
// Guard.Reload re-reads both files (on SIGHUP). If either is bad, the old
// rules stay in force and the error names the file and line. Rights are
// checked against the rules in force at each check, so a new ACL applies
// to the next frame of connections made before the reload; a connection's
// user and groups are those it logged in with, until it reconnects.
//
// # Cost of logins
//
// bcrypt is deliberately slow (tens of milliseconds of CPU at cost 10). To
// keep a flood of CONNECT frames from starving the broker, at most one
// comparison per CPU runs at a time, and a login that waits more than five
// seconds for its turn fails with ErrBusy. A successful login is
// remembered for ten minutes (by a keyed hash of login and password, never
// the password itself), so that a failover client reconnecting does not
// pay bcrypt again; a new hash for the user, once reloaded, ends this at
// once. Failures are never remembered. A wrong password and an unknown user fail alike, with
// the same error after the same work (a comparison with a made-up hash at
// the cost most users' hashes have), so logins do not reveal which users
// exist. Keep all hashes at one cost: a user whose hash has another cost
// takes a different time to refuse.
package auth
