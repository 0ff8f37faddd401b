package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/raftmq/raftmq/transport/auth"
)

// runPasswd prints a users file line for a user: the name, the bcrypt hash
// of a password read from stdin (one line), and the groups.
//
//	echo 's3cret' | raftmq passwd app producers,consumers >> users
func runPasswd(args []string) error {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	cost := fs.Int("cost", 0, "bcrypt cost, 4 to 31 (default 10: about 50-100 ms per check; the broker caches successful logins)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: raftmq passwd [-cost N] USER [GROUP,GROUP...] < password\n\n"+
			"Reads the password from the first line of stdin and prints the users file\n"+
			"line for USER (see SECURITY.md): append it to the file given to --users,\n"+
			"then send the servers SIGHUP.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return usageError{errors.New("want USER and optionally GROUPS (raftmq passwd -h)")}
	}
	if strings.ContainsAny(fs.Arg(0)+fs.Arg(1), " \t#") {
		return usageError{fmt.Errorf("user %q and groups %q: no spaces or #", fs.Arg(0), fs.Arg(1))}
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("read the password from stdin: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	hash, err := auth.HashPassword(password, *cost)
	if err != nil {
		return err
	}
	out := fs.Arg(0) + " " + hash
	if fs.NArg() == 2 {
		out += " " + fs.Arg(1)
	}
	// Check the line as the server will read it.
	if err := auth.ValidateUsers(strings.NewReader(out+"\n"), "line"); err != nil {
		return usageError{err}
	}
	fmt.Println(out)
	return nil
}
