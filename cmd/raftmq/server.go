package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/raftmq/raftmq/gossip"
	"github.com/raftmq/raftmq/network"
	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/stomp"
)

// serverFlags is what `raftmq server` takes beyond node.Config.
type serverFlags struct {
	logLevel   string
	logFormat  string
	heartbeat  string
	pprof      string
	join       string
	gossipJoin string
	gossipKey  string
	networks   listFlag
}

// parseServerFlags turns the command line into a node configuration and
// the logging choices. The flags' defaults are node.Config's own, so help
// shows what a zero field means.
func parseServerFlags(args []string, output io.Writer) (node.Config, serverFlags, error) {
	var def node.Config
	if err := def.Validate(); err != nil {
		return node.Config{}, serverFlags{}, fmt.Errorf("default configuration: %w", err)
	}
	var (
		cfg node.Config
		sf  serverFlags
	)
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.ID, "id", def.ID, "node id, unique in its group and never reused")
	fs.StringVar(&cfg.Group, "group", def.Group, "group name")
	fs.StringVar(&cfg.DataDir, "data", def.DataDir, "data directory (raft log, snapshots, state)")
	fs.StringVar(&cfg.StompAddr, "stomp", def.StompAddr, "STOMP client address, opened while this node leads")
	fs.StringVar(&cfg.RaftAddr, "raft", def.RaftAddr, "raft address")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", "", "raft address peers dial, if not -raft's")
	fs.StringVar(&cfg.StompAdvertise, "stomp-advertise", "", "STOMP address clients are told (CONNECTED's raftmq-brokers), if not -stomp's")
	fs.StringVar(&cfg.HTTPAddr, "http", def.HTTPAddr, "admin HTTP address (joins, status), open on every member; \"off\" for none")
	fs.StringVar(&cfg.HTTPAdvertise, "http-advertise", "", "admin address other members dial, if not -http's")
	fs.IntVar(&cfg.BootstrapExpect, "bootstrap-expect", 0, "form a new group once this many nodes (found through -join) are up; never bootstraps over existing state")
	fs.StringVar(&cfg.GossipAddr, "gossip", "", "join the gossip pool of a network of groups on this address (host:port, port 7946 by default); off when empty")
	fs.StringVar(&cfg.GossipAdvertise, "gossip-advertise", "", "gossip address other nodes dial, if not -gossip's")
	fs.StringVar(&sf.gossipJoin, "gossip-join", "", "gossip addresses (host:port,...) of nodes already in the pool")
	fs.StringVar(&sf.gossipKey, "gossip-key", "", "base64 key (16, 24 or 32 bytes) encrypting gossip; the same on every node")
	fs.Var(&sf.networks, "network", "link to other groups: static:(tcp://h1:61613,tcp://h2:61613,...) for one group, or gossip for every group in the pool; ActiveMQ options after '?' (networkTTL, dynamicOnly, conduitSubscriptions, decreaseNetworkConsumerPriority, excludedDestinations, dynamicallyIncludedDestinations, prefetchSize; gossip: includedGroups, excludedGroups). Repeatable")
	fs.StringVar(&sf.join, "join", "", "admin addresses (host:port,...) of members to join through, or of the nodes to form a group with")
	fs.DurationVar(&cfg.RaftTimeouts.Heartbeat, "raft-heartbeat-timeout", def.RaftTimeouts.Heartbeat, "silence from the leader after which a follower calls an election (randomized up to twice this)")
	fs.DurationVar(&cfg.RaftTimeouts.Election, "raft-election-timeout", def.RaftTimeouts.Election, "how long a candidate waits for votes")
	fs.DurationVar(&cfg.RaftTimeouts.LeaderLease, "raft-leader-lease", def.RaftTimeouts.LeaderLease, "a leader not confirmed by a quorum this long stops writing to clients and steps down")
	fs.StringVar(&sf.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&sf.logFormat, "log-format", "text", "log format: text or json")
	fs.IntVar(&cfg.Transport.Limits.MaxFrameSize, "max-frame-size", def.Transport.Limits.MaxFrameSize, "largest STOMP frame accepted, in bytes")
	fs.StringVar(&sf.heartbeat, "heartbeat", formatHeartBeat(def.Transport.HeartBeat),
		"STOMP heart-beats offered: how often the server can send, how often it wants to receive (0: never)")
	fs.IntVar(&cfg.Queue.MaxDeliveries, "max-deliveries", def.Queue.MaxDeliveries, "deliveries of a message before it goes to the dead-letter queue")
	fs.IntVar(&cfg.Queue.DefaultPrefetch, "prefetch", def.Queue.DefaultPrefetch, "unacknowledged messages per subscription without activemq.prefetchSize")
	fs.BoolVar(&cfg.Queue.DropExpired, "drop-expired", false, "drop expired messages instead of moving them to the dead-letter queue")
	fs.IntVar(&cfg.Transport.Limits.MaxHeaders, "max-headers", stompDefault(def.Transport.Limits.MaxHeaders, stomp.DefaultLimits().MaxHeaders), "most headers in one STOMP frame")
	fs.IntVar(&cfg.Transport.Limits.MaxHeaderLine, "max-header-line", stompDefault(def.Transport.Limits.MaxHeaderLine, stomp.DefaultLimits().MaxHeaderLine), "longest STOMP header line, in bytes")
	fs.DurationVar(&cfg.Transport.WriteTimeout, "write-timeout", def.Transport.WriteTimeout, "close a connection whose writes make no progress this long (a consumer that stopped reading)")
	fs.IntVar(&cfg.Queue.MaxTxFrames, "max-tx-frames", def.Queue.MaxTxFrames, "most SEND, ACK and NACK frames in one transaction")
	fs.Int64Var(&cfg.Queue.MaxTxBytes, "max-tx-bytes", def.Queue.MaxTxBytes, "most message bytes in one transaction")
	fs.IntVar(&cfg.Queue.MaxSubscriptions, "max-subscriptions", def.Queue.MaxSubscriptions, "most subscriptions on one connection")
	fs.StringVar(&sf.pprof, "pprof", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty")
	fs.DurationVar(&cfg.Queue.DedupeWindow, "dedupe-window", def.Queue.DedupeWindow, "how long the group remembers a SEND's dedupe-id header, so a resend is not stored twice")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", def.SnapshotThreshold, "raft log entries between snapshots")
	fs.DurationVar(&cfg.SnapshotInterval, "snapshot-interval", def.SnapshotInterval, "how often raft checks whether a snapshot is due")
	fs.Uint64Var(&cfg.TrailingLogs, "trailing-logs", def.TrailingLogs, "raft log entries kept after a snapshot")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: raftmq server [flags]\n\n"+
			"Runs a broker node. With no flags: a single-node group serving STOMP on\n"+
			"127.0.0.1:61613 with its data in ./raftmq-data. SIGINT or SIGTERM stops it\n"+
			"cleanly.\n\n"+
			"A three-node group: on each node give a unique -id, its own -data, -stomp,\n"+
			"-raft and -http addresses, -bootstrap-expect 3 and -join naming the\n"+
			"others' -http addresses. To add a node to a running group: -join with any\n"+
			"member's -http address. Only the leader opens its -stomp port.\n\n"+
			"A network of groups: give each group its own -group name and link them,\n"+
			"either with -network static:(...) listing another group's -stomp\n"+
			"addresses (one side is enough: bridges are duplex), or with -gossip on\n"+
			"every node, -gossip-join naming any node already in the pool, and\n"+
			"-network gossip.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return node.Config{}, serverFlags{}, err
	}
	if fs.NArg() > 0 {
		return node.Config{}, serverFlags{}, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	hb, err := parseHeartBeat(sf.heartbeat)
	if err != nil {
		return node.Config{}, serverFlags{}, usageError{err}
	}
	cfg.Transport.HeartBeat = hb
	cfg.Join = splitAddrs(sf.join)
	cfg.GossipJoin = splitAddrs(sf.gossipJoin)
	if sf.gossipKey != "" {
		if cfg.GossipKey, err = gossip.ParseKey(sf.gossipKey); err != nil {
			return node.Config{}, serverFlags{}, usageError{fmt.Errorf("gossip-key: %w", err)}
		}
	}
	for _, v := range sf.networks {
		spec, err := network.ParseSpec(v)
		if err != nil {
			return node.Config{}, serverFlags{}, usageError{err}
		}
		cfg.Network = append(cfg.Network, spec)
	}
	return cfg, sf, nil
}

// splitAddrs splits a comma-separated address list.
func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// parseHeartBeat reads "send,receive" durations such as "10s,10s". As in
// STOMP's heart-beat header, 0 means never; the transport spells never as
// a negative duration, its zero being "the default".
func parseHeartBeat(s string) ([2]time.Duration, error) {
	var hb [2]time.Duration
	parts := strings.Split(s, ",")
	if len(parts) != 2 {
		return hb, fmt.Errorf("heartbeat %q: want send,receive such as 10s,10s", s)
	}
	for i, p := range parts {
		p = strings.TrimSpace(p)
		d, err := time.ParseDuration(p)
		if err != nil || d < 0 {
			return hb, fmt.Errorf("heartbeat %q: %q is not a duration", s, p)
		}
		if d == 0 {
			d = -1
		}
		hb[i] = d
	}
	return hb, nil
}

func formatHeartBeat(hb [2]time.Duration) string {
	f := func(d time.Duration) string {
		if d < 0 {
			return "0"
		}
		return d.String()
	}
	return f(hb[0]) + "," + f(hb[1])
}

// newLogger builds the process's logger on w.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		return nil, usageError{fmt.Errorf("log level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, usageError{fmt.Errorf("log format %q: want text or json", format)}
	}
}

func runServer(args []string) error {
	cfg, sf, err := parseServerFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(os.Stderr, sf.logLevel, sf.logFormat)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	// Packages that log through slog's default logger (and through the
	// standard log package, which slog then redirects: pebble does) join
	// the same stream.
	slog.SetDefault(logger)

	if sf.pprof != "" {
		if err := servePprof(sf.pprof, logger); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return errors.Join(err, n.Close())
	}
	// The node logs `msg="serving STOMP clients" addr=...` whenever it
	// starts serving; here we only wait for the signal to stop.
	<-ctx.Done()
	stop() // a second signal kills the process at once
	logger.Info("shutting down", "cause", context.Cause(ctx))
	if err := n.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// stompDefault shows the codec's default where the config leaves a limit
// at zero (meaning "the default").
func stompDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// servePprof exposes net/http/pprof on addr, for profiling a running
// broker (`go tool pprof http://addr/debug/pprof/profile`).
func servePprof(addr string, logger *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	logger.Info("serving pprof", "addr", l.Addr().String())
	go http.Serve(l, mux)
	return nil
}

// listFlag collects a repeatable flag's values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}
