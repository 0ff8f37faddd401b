package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/raftmq/raftmq/gossip"
	"github.com/raftmq/raftmq/network"
	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/stomp"
)

// serverFlags is what `raftmq server` takes beyond node.Config.
type serverFlags struct {
	logLevel    string
	logFormat   string
	pprof       string
	join        string
	gossipJoin  string
	gossipKey   gossipKeyValue
	networks    networkValue
	config      string
	security    securityFlags
	queueLimits string
}

// configFlag names the flag holding the config file's path; settings.go
// reads the file it names.
const configFlag = "config"

// newServerFlagSet defines every `raftmq server` flag, writing into cfg
// and sf. The defaults are node.Config's own (def, already validated), so
// help shows what a zero field means. It is a constructor rather than
// inline code because settings.go builds a second, throw-away set to
// check config file lines and variables that a higher level overrides.
//
// A new flag also needs a line in serverFlagGroups, or the help test
// fails.
func newServerFlagSet(cfg *node.Config, sf *serverFlags, def node.Config) *flag.FlagSet {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)

	// Node and group.
	fs.StringVar(&cfg.ID, "id", def.ID, "node id, unique in its group and never reused")
	fs.StringVar(&cfg.Group, "group", def.Group, "group name")
	fs.StringVar(&cfg.DataDir, "data", def.DataDir, "data directory (raft log, snapshots, state)")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, "form a new group once this many nodes (found through --join) are up; never bootstraps over existing state")
	fs.StringVar(&sf.join, "join", "", "admin addresses (host:port,...) of members to join through, or of the nodes to form a group with")

	// Addresses.
	fs.StringVar(&cfg.StompAddr, "stomp", def.StompAddr, "STOMP client address, opened while this node leads")
	fs.StringVar(&cfg.StompAdvertise, "stomp-advertise", "", "STOMP address clients are told (CONNECTED's raftmq-brokers), if not --stomp's")
	fs.StringVar(&cfg.RaftAddr, "raft", def.RaftAddr, "raft address")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", "", "raft address peers dial, if not --raft's")
	fs.StringVar(&cfg.HTTPAddr, "http", def.HTTPAddr, "admin HTTP address (joins, status), open on every member; \"off\" for none")
	fs.StringVar(&cfg.HTTPAdvertise, "http-advertise", "", "admin address other members dial, if not --http's")

	// Network of groups.
	fs.StringVar(&cfg.GossipAddr, "gossip", "", "join the gossip pool of a network of groups on this address (host:port, port 7946 by default); off when empty")
	fs.StringVar(&cfg.GossipAdvertise, "gossip-advertise", "", "gossip address other nodes dial, if not --gossip's")
	fs.StringVar(&sf.gossipJoin, "gossip-join", "", "gossip addresses (host:port,...) of nodes already in the pool")
	fs.Var(&sf.gossipKey, "gossip-key", "base64 key (16, 24 or 32 bytes) encrypting gossip; the same on every node")
	fs.StringVar(&cfg.GossipKeyring, "gossip-keyring", "", "file of base64 gossip keys, one per line, the one to encrypt with first; reread on SIGHUP to rotate keys (instead of --gossip-key)")
	fs.Var(&sf.networks, "network", "link to other groups: static:(tcp://h1:61613,tcp://h2:61613,...) for one group, or gossip for every group in the pool; ActiveMQ options after '?' (networkTTL, dynamicOnly, conduitSubscriptions, decreaseNetworkConsumerPriority, excludedDestinations, dynamicallyIncludedDestinations, prefetchSize; gossip: includedGroups, excludedGroups). Repeatable")

	// Raft.
	fs.DurationVar(&cfg.RaftTimeouts.Heartbeat, "raft-heartbeat-timeout", def.RaftTimeouts.Heartbeat, "silence from the leader after which a follower calls an election (randomized up to twice this)")
	fs.DurationVar(&cfg.RaftTimeouts.Election, "raft-election-timeout", def.RaftTimeouts.Election, "how long a candidate waits for votes")
	fs.DurationVar(&cfg.RaftTimeouts.LeaderLease, "raft-leader-lease", def.RaftTimeouts.LeaderLease, "a leader not confirmed by a quorum this long stops writing to clients and steps down")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", def.SnapshotThreshold, "raft log entries between snapshots")
	fs.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", def.SnapshotInterval, "how often raft checks whether a snapshot is due")
	fs.Uint64Var(&cfg.TrailingLogs, "trailing-logs", def.TrailingLogs, "raft log entries kept after a snapshot")

	// Delivery.
	fs.IntVar(&cfg.Queue.DefaultPrefetch, "prefetch", def.Queue.DefaultPrefetch, "unacknowledged messages per subscription without activemq.prefetchSize")
	fs.IntVar(&cfg.Queue.MaxDeliveries, "max-deliveries", def.Queue.MaxDeliveries, "deliveries of a message before it goes to the dead-letter queue")
	fs.BoolVar(&cfg.Queue.DropExpired, "drop-expired", false, "drop expired messages instead of moving them to the dead-letter queue")
	fs.Var(negatedBool{&cfg.Queue.ForbidAutoCreate}, "auto-create", "create a queue on its first SEND or SUBSCRIBE (false: only through the admin API; topics are always made on first use) (default true)")
	fs.DurationVar(&cfg.Queue.DedupeWindow, "dedupe-window", def.Queue.DedupeWindow, "how long the group remembers a SEND's dedupe-id header, so a resend is not stored twice")

	// Limits.
	fs.IntVar(&cfg.Transport.Limits.MaxFrameSize, "max-frame-size", def.Transport.Limits.MaxFrameSize, "largest STOMP frame accepted, in bytes")
	fs.IntVar(&cfg.Transport.Limits.MaxHeaders, "max-headers", stompDefault(def.Transport.Limits.MaxHeaders, stomp.DefaultLimits().MaxHeaders), "most headers in one STOMP frame")
	fs.IntVar(&cfg.Transport.Limits.MaxHeaderLine, "max-header-line", stompDefault(def.Transport.Limits.MaxHeaderLine, stomp.DefaultLimits().MaxHeaderLine), "longest STOMP header line, in bytes")
	fs.IntVar(&cfg.Queue.MaxTxFrames, "max-tx-frames", def.Queue.MaxTxFrames, "most SEND, ACK and NACK frames a connection's open transactions hold, all together")
	fs.Int64Var(&cfg.Queue.MaxTxBytes, "max-tx-bytes", def.Queue.MaxTxBytes, "most message bytes a connection's open transactions hold, all together")
	fs.IntVar(&cfg.Queue.MaxSubscriptions, "max-subscriptions", def.Queue.MaxSubscriptions, "most subscriptions on one connection")
	fs.IntVar(&cfg.Transport.MaxConnections, "max-connections", def.Transport.MaxConnections, "most client connections open at once; more are refused with an ERROR (ActiveMQ's maximumConnections)")
	fs.Int64Var(&cfg.Queue.QueueLimit.MaxMessages, "queue-max-messages", def.Queue.QueueLimit.MaxMessages, "most messages one queue holds (pending and unacknowledged); 0: no limit")
	fs.Var(sizeValue{&cfg.Queue.QueueLimit.MaxBytes}, "queue-max-bytes", "most message bytes one queue holds; 0: no limit")
	fs.Var(fullPolicyValue{&cfg.Queue.QueueLimit.OnFull}, "queue-full", "what a SEND to a full queue does: block (hold its RECEIPT until there is room: producer flow control) or fail (ERROR)")
	fs.DurationVar(&cfg.Queue.QueueLimit.BlockTimeout, "queue-block-timeout", def.Queue.QueueLimit.BlockTimeout, "with --queue-full block, fail a SEND held this long (0: wait as long as it takes)")
	fs.StringVar(&sf.queueLimits, "queue-limits", "", "file of per-queue limits overriding the --queue-* ones (see SECURITY.md)")
	cfg.Queue.StoreLimit = node.DefaultStoreLimit
	fs.Var(sizeValue{&cfg.Queue.StoreLimit}, "store-limit", "most persistent message bytes the group stores in all queues together, each message counting 256 bytes more for its bookkeeping; sends wait or fail beyond it, as their queue's --queue-full says (ActiveMQ's storeUsage); 0: no limit")
	fs.Var(sizeValue{&cfg.Queue.HeldBytes}, "held-sends-limit", "memory for sends held by flow control, all queues together; past it a send to a full queue is refused (default 256MiB)")
	fs.Var(sizeValue{&cfg.Queue.NonPersistentBytes}, "memory-limit", "memory for non-persistent messages waiting for consumers (persistent ones wait on disk; ActiveMQ's memoryUsage)")
	cfg.Transport.HeartBeat = def.Transport.HeartBeat
	fs.Var((*heartBeatValue)(&cfg.Transport.HeartBeat), "heartbeat",
		"STOMP heart-beats offered: how often the server can send, how often it wants to receive (0: never)")
	fs.DurationVar(&cfg.Transport.WriteTimeout, "write-timeout", def.Transport.WriteTimeout, "close a connection whose writes make no progress this long (a consumer that stopped reading)")

	// Security.
	sec := &sf.security
	fs.StringVar(&sec.cert, "tls-cert", "", "PEM certificate (chain) of this node: turns TLS on for raft (mutual), the admin API, the STOMP listener and bridges; reread on SIGHUP")
	fs.StringVar(&sec.key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&sec.ca, "tls-ca", "", "PEM CA bundle that signs the group's nodes (and client certificates); reread on SIGHUP")
	fs.BoolVar(&cfg.StompPlaintext, "stomp-plaintext", false, "keep the STOMP listener plaintext while TLS secures the rest")
	sec.clientCerts = "none"
	fs.Var(&choiceValue{&sec.clientCerts, "stomp client certificates", []string{"none", "request", "require"}}, "stomp-client-certs",
		"client certificates on the TLS STOMP listener: none, request (verify when given) or require")
	fs.StringVar(&sec.clientCA, "stomp-client-ca", "", "PEM CA bundle that signs client certificates (not the nodes' CA: its certificates are members); include other groups' node CAs for their bridges; reread on SIGHUP")
	fs.StringVar(&sec.users, "users", "", "users file (name, bcrypt hash, groups; see `raftmq passwd`): clients and the admin API must log in; reread on SIGHUP")
	fs.StringVar(&sec.acl, "acl", "", "authorization file (read, write and admin rights per destination, ActiveMQ wildcards); without it every user may do everything; reread on SIGHUP")
	fs.BoolVar(&sec.anonymous, "allow-anonymous", false, "with --users, also admit clients without a login, as the group \"anonymous\"")
	fs.StringVar(&cfg.BrokerUser, "broker-user", "", "user this node logs in as to other groups (bridges) and to other members (joining)")
	fs.StringVar(&cfg.BrokerPassword, "broker-password", "", "password of --broker-user (prefer RAFTMQ_BROKER_PASSWORD or the config file: flags show in ps)")

	// Logging and debugging.
	sf.logLevel, sf.logFormat = "info", "text"
	fs.Var(&choiceValue{&sf.logLevel, "log level", []string{"debug", "info", "warn", "error"}}, "log-level", "log level: debug, info, warn or error")
	fs.Var(&choiceValue{&sf.logFormat, "log format", []string{"text", "json"}}, "log-format", "log format: text or json")
	fs.StringVar(&sf.pprof, "pprof", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty")

	// Configuration.
	fs.StringVar(&sf.config, configFlag, "", "read settings from this file (format above); also RAFTMQ_CONFIG")
	return fs
}

// serverFlagGroups orders `raftmq server --help`. Every flag belongs to
// exactly one group (TestServerFlagGroups checks), so a new flag cannot
// hide at the end of the help.
var serverFlagGroups = []struct {
	title string
	flags []string
}{
	{"Node and group", []string{"id", "group", "data", "bootstrap-expect", "join"}},
	{"Addresses", []string{"stomp", "stomp-advertise", "raft", "raft-advertise", "http", "http-advertise"}},
	{"Network of groups", []string{"gossip", "gossip-advertise", "gossip-join", "gossip-key", "gossip-keyring", "network"}},
	{"Security", []string{"tls-cert", "tls-key", "tls-ca", "stomp-plaintext", "stomp-client-certs", "stomp-client-ca", "users", "acl", "allow-anonymous", "broker-user", "broker-password"}},
	{"Raft", []string{"raft-heartbeat-timeout", "raft-election-timeout", "raft-leader-lease", "snapshot-threshold", "snapshot-interval", "trailing-logs"}},
	{"Delivery", []string{"prefetch", "max-deliveries", "drop-expired", "dedupe-window", "auto-create"}},
	{"Limits", []string{"max-frame-size", "max-headers", "max-header-line", "max-tx-frames", "max-tx-bytes", "max-subscriptions", "heartbeat", "write-timeout",
		"max-connections", "queue-max-messages", "queue-max-bytes", "queue-full", "queue-block-timeout", "queue-limits", "store-limit", "memory-limit", "held-sends-limit"}},
	{"Logging and debugging", []string{"log-level", "log-format", "pprof"}},
	{"Configuration", []string{"config"}},
}

const serverHelpIntro = `usage: raftmq server [flags]

Runs a broker node. With no flags: a single-node group serving STOMP on
127.0.0.1:61613 with its data in ./raftmq-data. SIGINT or SIGTERM stops it
cleanly.

A three-node group: on each node give a unique --id, its own --data,
--stomp, --raft and --http addresses, --bootstrap-expect 3 and --join
naming the others' --http addresses. To add a node to a running group:
--join with any member's --http address. Only the leader opens its --stomp
port.

A network of groups: give each group its own --group name and link them,
either with --network static:(...) listing another group's --stomp
addresses (one side is enough: bridges are duplex), or with --gossip on
every node, --gossip-join naming any node already in the pool, and
--network gossip.

Every flag can also be set in the environment or in a config file. The
command line wins over the environment, which wins over the config file,
which wins over the defaults; a repeatable flag (--network) given at one
level replaces all its values from the levels below.

Environment: RAFTMQ_ then the flag's name in capitals with '-' as '_', e.g.
RAFTMQ_BOOTSTRAP_EXPECT=3 for --bootstrap-expect 3. RAFTMQ_NETWORK holds
one or more specs separated by spaces. Empty variables, and RAFTMQ_*
variables that name no flag, are ignored.

Config file (--config FILE, or RAFTMQ_CONFIG=FILE): one setting per line,
the flag's name without dashes, then its value as on the command line (the
rest of the line, without quoting). Lines starting with '#' and blank
lines are ignored; a boolean alone means true; network may take several
lines, each adding a link. For example:

    # /etc/raftmq/raftmq.conf
    id n1
    bootstrap-expect 3
    join n1.example:8161,n2.example:8161,n3.example:8161
    network gossip
    network static:(tcp://w1.example:61613,tcp://w2.example:61613)
    drop-expired
`

// printServerUsage writes the help: the introduction, then each group's
// flags, each as the flag, its value type, its usage and its default
// when not zero.
func printServerUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, serverHelpIntro)
	printed := map[string]bool{}
	for _, g := range serverFlagGroups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.flags {
			if f := fs.Lookup(name); f != nil {
				printFlag(w, f)
				printed[name] = true
			}
		}
	}
	// Should a flag be missing from the groups, it still shows; the test
	// makes sure this heading never appears in a release.
	var rest []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !printed[f.Name] {
			rest = append(rest, f)
		}
	})
	if len(rest) > 0 {
		fmt.Fprintf(w, "\nOther:\n")
		for _, f := range rest {
			printFlag(w, f)
		}
	}
}

// printFlag writes one flag as flag.PrintDefaults does, with two dashes
// (the spelling the docs use) and the usage wrapped to the terminal.
func printFlag(w io.Writer, f *flag.Flag) {
	typ, usage := flag.UnquoteUsage(f)
	if t, ok := f.Value.(interface{ typeName() string }); ok {
		typ = t.typeName()
	}
	line := "  --" + f.Name
	if typ != "" {
		line += " " + typ
	}
	words := strings.Fields(usage)
	if !isZeroDefault(f.DefValue) {
		// One word, so the default is never split over two lines.
		if typ == "string" {
			words = append(words, fmt.Sprintf("(default %q)", f.DefValue))
		} else {
			words = append(words, fmt.Sprintf("(default %s)", f.DefValue))
		}
	}
	fmt.Fprintln(w, line)
	for _, l := range wrap(words, 72) {
		fmt.Fprintln(w, "        "+l)
	}
}

// isZeroDefault tells a default not worth printing. The flag package's
// own test is unexported; these are the zero values of our flag types.
func isZeroDefault(s string) bool {
	switch s {
	case "", "0", "0s", "false":
		return true
	}
	return false
}

// wrap joins words into lines of at most width bytes; a word longer
// than width gets a line of its own.
func wrap(words []string, width int) []string {
	var lines []string
	line := ""
	for _, word := range words {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// The flag types below check their value in Set, rather than after
// parsing, so that a bad value is reported with where it came from: the
// flag, the RAFTMQ_* variable or the config file's line.

// heartBeatValue is --heartbeat: "send,receive" durations.
type heartBeatValue [2]time.Duration

func (h *heartBeatValue) String() string { return formatHeartBeat(*h) }

func (h *heartBeatValue) Set(s string) error {
	hb, err := parseHeartBeat(s)
	if err != nil {
		return err
	}
	*h = hb
	return nil
}

func (*heartBeatValue) typeName() string { return "send,receive" }

// networkValue is the repeatable --network: each value is one link.
type networkValue struct {
	raw   []string
	specs []network.Spec
}

func (n *networkValue) String() string { return strings.Join(n.raw, " ") }

func (n *networkValue) Set(s string) error {
	sp, err := network.ParseSpec(s)
	if err != nil {
		return err
	}
	n.raw = append(n.raw, s)
	n.specs = append(n.specs, sp)
	return nil
}

func (*networkValue) typeName() string { return "spec" }

// repeatable marks a flag that collects values (see settings.go).
func (*networkValue) repeatable() {}

// gossipKeyValue is --gossip-key; empty means no encryption.
type gossipKeyValue struct {
	text string
	key  []byte
}

func (k *gossipKeyValue) String() string { return k.text }

func (k *gossipKeyValue) Set(s string) error {
	var key []byte
	if s != "" {
		var err error
		if key, err = gossip.ParseKey(s); err != nil {
			return err
		}
	}
	k.text, k.key = s, key
	return nil
}

func (*gossipKeyValue) typeName() string { return "base64" }

// choiceValue is a string flag taking one of a few words, any case.
type choiceValue struct {
	val     *string
	what    string // for errors: "log level"
	choices []string
}

func (c *choiceValue) String() string {
	if c.val == nil { // flag's zero-value probe
		return ""
	}
	return *c.val
}

func (c *choiceValue) Set(s string) error {
	l := strings.ToLower(s)
	if !slices.Contains(c.choices, l) {
		return fmt.Errorf("%s %q: want %s or %s", c.what, s,
			strings.Join(c.choices[:len(c.choices)-1], ", "), c.choices[len(c.choices)-1])
	}
	*c.val = l
	return nil
}

func (*choiceValue) typeName() string { return "string" }

// negatedBool is a boolean flag that sets the opposite of what it says:
// --auto-create=false sets ForbidAutoCreate, whose zero value is the
// default.
type negatedBool struct{ v *bool }

func (b negatedBool) String() string {
	if b.v == nil {
		return "true"
	}
	return strconv.FormatBool(!*b.v)
}

func (b negatedBool) Set(text string) error {
	on, err := strconv.ParseBool(text)
	if err != nil {
		return err
	}
	*b.v = !on
	return nil
}

func (negatedBool) IsBoolFlag() bool { return true }
