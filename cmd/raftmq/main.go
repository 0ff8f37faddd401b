// Command raftmq is the raftmq broker and its tools: `raftmq server` runs a
// broker node; the other verbs talk to one.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// verb is one subcommand. run gets the arguments after the verb and
// returns flag.ErrHelp when help was asked for.
type verb struct {
	name    string
	summary string
	run     func(args []string) error
}

// verbs is the command table: a new verb is a file with its run function
// and one line here.
var verbs = []verb{
	{"server", "run a broker node", runServer},
	{"send", "send messages to a queue or topic and wait for their receipts", runSend},
	{"receive", "receive messages from a queue or topic and print them", runReceive},
	{"status", "show the group: leader, term, indexes, members and their state", runStatus},
	{"members", "list the group's members and their addresses", runMembers},
	{"remove-node", "drop a (dead) member from the group", runRemoveNode},
	{"leader-transfer", "hand leadership to another member, before maintenance", runLeaderTransfer},
	{"destinations", "list the queues and topics with their message counts", runDestinations},
	{"purge", "delete every message of a queue", runPurge},
	{"bench", "measure a broker's throughput and latency", runBench},
	{"cert", "make a development CA and node or client certificates", runCert},
	{"passwd", "print a users file line with a bcrypt-hashed password", runPasswd},
	{"version", "print the version", runVersion},
}

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches args to a verb and returns the exit code: 0 on success
// or help, 2 for a usage error, 1 when the verb failed.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			usage(stdout)
			return 0
		}
		// `raftmq help server` is `raftmq server -h`.
		name, rest = rest[0], []string{"-h"}
	}
	for _, v := range verbs {
		if v.name != name {
			continue
		}
		err := v.run(rest)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "raftmq %s: %v\n", name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "raftmq %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "raftmq: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

// usageError is a mistake in the command line rather than a failure.
type usageError struct{ error }

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: raftmq <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-16s %s\n", v.name, v.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'raftmq help <command>' for a command's flags.")
}

func runVersion(args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", args[0])}
	}
	fmt.Printf("raftmq %s %s %s/%s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// versionString is the release version, else the module version or VCS
// revision the binary was built from, else "dev".
func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}
