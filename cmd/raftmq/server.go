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

	"github.com/raftmq/raftmq/node"
)

// parseServerFlags turns the command line, the RAFTMQ_* environment and
// the config file (settings.go) into a node configuration and the
// logging choices. Help, when asked for, goes to output.
func parseServerFlags(args []string, output io.Writer) (node.Config, serverFlags, error) {
	var def node.Config
	if err := def.Validate(); err != nil {
		return node.Config{}, serverFlags{}, fmt.Errorf("default configuration: %w", err)
	}
	var (
		cfg node.Config
		sf  serverFlags
	)
	fs := newServerFlagSet(&cfg, &sf, def)
	// The flag package would print the whole help after any mistake,
	// burying the one line that matters; run prints that line, and the
	// help goes out only when asked for.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printServerUsage(output, fs)
			return node.Config{}, serverFlags{}, err
		}
		return node.Config{}, serverFlags{}, usageError{fmt.Errorf("%w (raftmq server --help lists the flags)", err)}
	}
	if fs.NArg() > 0 {
		return node.Config{}, serverFlags{}, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	check := newServerFlagSet(new(node.Config), new(serverFlags), def)
	if err := applyEnvAndConfig(fs, check); err != nil {
		return node.Config{}, serverFlags{}, err
	}
	cfg.Join = splitAddrs(sf.join)
	cfg.GossipJoin = splitAddrs(sf.gossipJoin)
	if sf.gossipKey.key != nil {
		cfg.GossipKeys = [][]byte{sf.gossipKey.key}
	}
	cfg.Network = sf.networks.specs
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
	// Help asked for goes to stdout, so `raftmq server --help | less` works.
	cfg, sf, err := parseServerFlags(args, os.Stdout)
	if err != nil {
		return err
	}
	logger, err := newLogger(os.Stderr, sf.logLevel, sf.logFormat)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	if err := sf.security.apply(&cfg); err != nil {
		return usageError{err}
	}
	if sf.queueLimits != "" {
		if cfg.Queue.QueueLimits, err = loadQueueLimits(sf.queueLimits, cfg.Queue.QueueLimit); err != nil {
			return usageError{err}
		}
	}
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
	// SIGHUP rereads certificates, users and rights, and the gossip
	// keyring; a file that fails to load keeps what it replaced.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// The node logs `msg="serving STOMP clients" addr=...` whenever it
	// starts serving; here we only wait for the signal to stop.
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			if err := n.Reload(); err != nil {
				logger.Error("reload on SIGHUP failed; keeping the previous settings", "err", err)
			} else {
				logger.Info("reloaded on SIGHUP")
			}
		}
	}
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
