package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/queue"
)

// TestMain lets a test run the binary's main in a child process: the test
// binary re-executes itself with RAFTMQ_TEST_MAIN=1 and the raftmq
// arguments, which is the built binary without a separate go build.
func TestMain(m *testing.M) {
	if os.Getenv("RAFTMQ_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestRunDispatch(t *testing.T) {
	clearRaftmqEnv(t)
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string
		stderrPart string
	}{
		{args: nil, code: 2, stderrPart: "usage: raftmq <command>"},
		{args: []string{"help"}, code: 0, stdout: "  server           run a broker node"},
		{args: []string{"--help"}, code: 0, stdout: "  version          print the version"},
		{args: []string{"nope"}, code: 2, stderrPart: `unknown command "nope"`},
		{args: []string{"version", "extra"}, code: 2, stderrPart: `raftmq version: unexpected argument "extra"`},
		{args: []string{"server", "--heartbeat", "soon"}, code: 2, stderrPart: "heartbeat"},
		{args: []string{"server", "--log-level", "loud"}, code: 2, stderrPart: "log level"},
		{args: []string{"server", "--stomp", "nope"}, code: 2, stderrPart: "stomp address"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, stderr.String())
		}
		if tc.stdout != "" && !strings.Contains(stdout.String(), tc.stdout) {
			t.Errorf("%v: stdout %q lacks %q", tc.args, stdout.String(), tc.stdout)
		}
		if tc.stderrPart != "" && !strings.Contains(stderr.String(), tc.stderrPart) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, stderr.String(), tc.stderrPart)
		}
	}
}

func TestParseServerFlags(t *testing.T) {
	clearRaftmqEnv(t)
	cfg, sf, err := parseServerFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// No flags is node's zero configuration: a single-node group on the
	// default ports in ./raftmq-data.
	var def node.Config
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.ID != def.ID || cfg.Group != def.Group || cfg.DataDir != def.DataDir ||
		cfg.StompAddr != def.StompAddr || cfg.RaftAddr != def.RaftAddr || cfg.RaftAdvertise != "" ||
		cfg.Transport.HeartBeat != def.Transport.HeartBeat || cfg.Transport.Limits != def.Transport.Limits ||
		cfg.Queue.StoreLimit != node.DefaultStoreLimit || !reflect.DeepEqual(withStoreLimit(def.Queue), cfg.Queue) || cfg.SnapshotThreshold != def.SnapshotThreshold ||
		cfg.Transport.MaxConnections != node.DefaultMaxConnections {
		t.Errorf("no-flag config differs from node defaults:\n got %+v\nwant %+v", cfg, def)
	}
	if sf.logLevel != "info" || sf.logFormat != "text" {
		t.Errorf("log flags = %+v", sf)
	}

	cfg, sf, err = parseServerFlags([]string{
		"--id", "e2", "--group", "east", "--data", "/d", "--stomp", ":1", "--raft", ":2",
		"--raft-advertise", "10.0.0.2:2", "--log-level", "debug", "--log-format", "json",
		"--max-frame-size", "1024", "--heartbeat", "0,5s", "--max-deliveries", "3",
		"--prefetch", "10", "--drop-expired", "--snapshot-threshold", "99",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != "e2" || cfg.Group != "east" || cfg.DataDir != "/d" || cfg.StompAddr != ":1" ||
		cfg.RaftAddr != ":2" || cfg.RaftAdvertise != "10.0.0.2:2" || cfg.Transport.Limits.MaxFrameSize != 1024 ||
		cfg.Transport.HeartBeat != [2]time.Duration{-1, 5 * time.Second} || cfg.Queue.MaxDeliveries != 3 ||
		cfg.Queue.DefaultPrefetch != 10 || !cfg.Queue.DropExpired || cfg.SnapshotThreshold != 99 ||
		sf.logLevel != "debug" || sf.logFormat != "json" {
		t.Errorf("flags not applied: %+v %+v", cfg, sf)
	}

	if _, _, err := parseServerFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v", err)
	}
	if _, _, err := parseServerFlags([]string{"stray"}, io.Discard); !errors.As(err, new(usageError)) {
		t.Errorf("stray argument: err = %v", err)
	}
}

func TestParseHeartBeat(t *testing.T) {
	for in, want := range map[string][2]time.Duration{
		"10s,10s":    {10 * time.Second, 10 * time.Second},
		"0,0":        {-1, -1},
		" 1m , 0s ":  {time.Minute, -1},
		"500ms,2.5s": {500 * time.Millisecond, 2500 * time.Millisecond},
	} {
		got, err := parseHeartBeat(in)
		if err != nil || got != want {
			t.Errorf("parseHeartBeat(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, _ := parseHeartBeat(formatHeartBeat(got)); back != got {
			t.Errorf("format(%v) = %q does not parse back", got, formatHeartBeat(got))
		}
	}
	for _, in := range []string{"", "10s", "10s,10s,10s", "x,1s", "-1s,1s", "10,10"} {
		if _, err := parseHeartBeat(in); err == nil {
			t.Errorf("parseHeartBeat(%q) accepted", in)
		}
	}
}

// withStoreLimit is q with the server's default store limit, which the
// command sets and a library Config leaves at 0.
func withStoreLimit(q queue.Config) queue.Config {
	q.StoreLimit = node.DefaultStoreLimit
	return q
}
