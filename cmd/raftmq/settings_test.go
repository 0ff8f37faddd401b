package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/raftmq/raftmq/node"
)

// clearRaftmqEnv unsets every RAFTMQ_* variable for the test, so the
// machine's environment cannot change what the test sees; t.Setenv puts
// them back afterwards.
func clearRaftmqEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, envPrefix) {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// writeConfig writes a config file named raftmq.conf and returns its path.
func writeConfig(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "raftmq.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustParse(t *testing.T, args ...string) (node.Config, serverFlags) {
	t.Helper()
	cfg, sf, err := parseServerFlags(args, io.Discard)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return cfg, sf
}

// parseErr parses args expecting a usage error containing want.
func parseErr(t *testing.T, want string, args ...string) {
	t.Helper()
	_, _, err := parseServerFlags(args, io.Discard)
	if err == nil {
		t.Fatalf("%q: accepted, want an error containing %q", args, want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("%q: error %q lacks %q", args, err, want)
	}
	if _, ok := err.(usageError); !ok {
		t.Errorf("%q: error %T is not a usage error", args, err)
	}
}

func TestConfigFile(t *testing.T) {
	clearRaftmqEnv(t)
	dataDir := filepath.Join(t.TempDir(), "a dir with spaces")
	path := writeConfig(t,
		"# a comment, then a blank line",
		"",
		"id n7",
		"  group\teast  ", // tab between name and value, spaces around
		"data "+dataDir,   // the rest of the line, spaces and all
		"bootstrap-expect 3",
		"join a:8161,b:8161",
		"gossip-join a:7946,b:7946",
		"prefetch 10",
		"drop-expired", // a boolean alone is true
		"heartbeat 0,5s",
		"raft-election-timeout 2s",
		"   # an indented comment",
		"network gossip?excludedGroups=staging",
		"network static:(tcp://w1:61613,tcp://w2:61613)",
		"log-level debug",
	)
	cfg, sf := mustParse(t, "--config", path)
	if cfg.ID != "n7" || cfg.Group != "east" || cfg.DataDir != dataDir || cfg.BootstrapExpect != 3 ||
		cfg.Queue.DefaultPrefetch != 10 || !cfg.Queue.DropExpired ||
		cfg.Transport.HeartBeat != [2]time.Duration{-1, 5 * time.Second} ||
		cfg.RaftTimeouts.Election != 2*time.Second || sf.logLevel != "debug" {
		t.Errorf("config file not applied: %+v %+v", cfg, sf)
	}
	if !slices.Equal(cfg.Join, []string{"a:8161", "b:8161"}) || !slices.Equal(cfg.GossipJoin, []string{"a:7946", "b:7946"}) {
		t.Errorf("join = %q, gossip-join = %q", cfg.Join, cfg.GossipJoin)
	}
	if len(cfg.Network) != 2 || cfg.Network[0].Kind != "gossip" || cfg.Network[1].Kind != "static" ||
		!slices.Equal(cfg.Network[1].URIs, []string{"tcp://w1:61613", "tcp://w2:61613"}) {
		t.Errorf("network = %+v", cfg.Network)
	}
	// What the file does not name keeps its default.
	def, _ := mustParse(t)
	if cfg.StompAddr != def.StompAddr || cfg.Queue.MaxDeliveries != def.Queue.MaxDeliveries {
		t.Errorf("defaults lost: stomp %q, max-deliveries %d", cfg.StompAddr, cfg.Queue.MaxDeliveries)
	}

	// A boolean may also be spelt out.
	cfg, _ = mustParse(t, "--config", writeConfig(t, "drop-expired false"))
	if cfg.Queue.DropExpired {
		t.Error("drop-expired false: still true")
	}
}

func TestEnvironment(t *testing.T) {
	clearRaftmqEnv(t)
	t.Setenv("RAFTMQ_BOOTSTRAP_EXPECT", "3")
	t.Setenv("RAFTMQ_GOSSIP_JOIN", "a:7946,b:7946") // commas are not separators
	t.Setenv("RAFTMQ_HTTP", "0.0.0.0:8161")
	t.Setenv("RAFTMQ_DROP_EXPIRED", "true")
	t.Setenv("RAFTMQ_MAX_TX_BYTES", "4096")
	t.Setenv("RAFTMQ_HEARTBEAT", "2s,0")
	// Variables naming no flag are none of our business: scripts set
	// these.
	t.Setenv("RAFTMQ", "/usr/local/bin/raftmq")
	t.Setenv("RAFTMQ_LOCAL_DIR", "/tmp/somewhere")
	t.Setenv("RAFTMQ_STOMP_ADRESS", "typo:1")
	// An empty variable counts as unset.
	t.Setenv("RAFTMQ_GROUP", "")

	cfg, _ := mustParse(t)
	def := node.Config{}
	def.Validate()
	if cfg.BootstrapExpect != 3 || cfg.HTTPAddr != "0.0.0.0:8161" || !cfg.Queue.DropExpired ||
		cfg.Queue.MaxTxBytes != 4096 || cfg.Transport.HeartBeat != [2]time.Duration{2 * time.Second, -1} ||
		cfg.Group != def.Group {
		t.Errorf("environment not applied: %+v", cfg)
	}
	if !slices.Equal(cfg.GossipJoin, []string{"a:7946", "b:7946"}) {
		t.Errorf("gossip-join = %q", cfg.GossipJoin)
	}
}

func TestSettingsPrecedence(t *testing.T) {
	clearRaftmqEnv(t)
	path := writeConfig(t,
		"id from-file",
		"group from-file",
		"data from-file",
		"prefetch 7",
	)
	t.Setenv("RAFTMQ_CONFIG", path)
	t.Setenv("RAFTMQ_ID", "from-env")
	t.Setenv("RAFTMQ_GROUP", "from-env")

	cfg, _ := mustParse(t, "--id", "from-flag")
	if cfg.ID != "from-flag" || cfg.Group != "from-env" || cfg.DataDir != "from-file" ||
		cfg.Queue.DefaultPrefetch != 7 {
		t.Errorf("id %q group %q data %q prefetch %d; want from-flag, from-env, from-file, 7",
			cfg.ID, cfg.Group, cfg.DataDir, cfg.Queue.DefaultPrefetch)
	}

	// --config on the command line beats RAFTMQ_CONFIG.
	other := writeConfig(t, "data other-file")
	cfg, _ = mustParse(t, "--config", other)
	if cfg.DataDir != "other-file" || cfg.Queue.DefaultPrefetch == 7 {
		t.Errorf("--config did not replace RAFTMQ_CONFIG: data %q prefetch %d", cfg.DataDir, cfg.Queue.DefaultPrefetch)
	}
}

func TestNetworkPrecedence(t *testing.T) {
	clearRaftmqEnv(t)
	static := "static:(tcp://w1:61613,tcp://w2:61613)?networkTTL=2"
	t.Setenv("RAFTMQ_CONFIG", writeConfig(t, "network gossip", "network "+static))
	kinds := func(cfg node.Config) []string {
		var k []string
		for _, s := range cfg.Network {
			k = append(k, s.Kind)
		}
		return k
	}

	// From the file's lines, each adding one.
	cfg, sf := mustParse(t)
	if !slices.Equal(kinds(cfg), []string{"gossip", "static"}) || cfg.Network[1].Options.NetworkTTL != 2 {
		t.Errorf("from file: %+v", cfg.Network)
	}
	if !slices.Equal(sf.networks.raw, []string{"gossip", static}) {
		t.Errorf("from file: raw %q", sf.networks.raw)
	}

	// The environment replaces the file's, with several specs in one
	// variable separated by any whitespace.
	t.Setenv("RAFTMQ_NETWORK", " static:(tcp://e1:61613,tcp://e2:61613)\tstatic:(tcp://e3:61613) ")
	cfg, sf = mustParse(t)
	if !slices.Equal(sf.networks.raw, []string{"static:(tcp://e1:61613,tcp://e2:61613)", "static:(tcp://e3:61613)"}) {
		t.Errorf("from env: %q", sf.networks.raw)
	}
	if !slices.Equal(cfg.Network[0].URIs, []string{"tcp://e1:61613", "tcp://e2:61613"}) {
		t.Errorf("from env: %+v", cfg.Network)
	}

	// The command line replaces both.
	cfg, sf = mustParse(t, "--network", "gossip")
	if !slices.Equal(sf.networks.raw, []string{"gossip"}) || !slices.Equal(kinds(cfg), []string{"gossip"}) {
		t.Errorf("from flag: %q", sf.networks.raw)
	}
}

func TestConfigFileErrors(t *testing.T) {
	clearRaftmqEnv(t)
	for _, tc := range []struct {
		lines []string
		want  string // after "<path>:"
	}{
		{[]string{"# ok", "id n1", "", "", "", "", "stomp-adress 127.0.0.1:61613"}, `7: unknown setting "stomp-adress"`},
		{[]string{"--stomp 127.0.0.1:61613"}, `1: unknown setting "--stomp" (write names without dashes)`},
		{[]string{"id n1", "prefetch lots"}, `2: invalid value "lots" for prefetch`},
		{[]string{"heartbeat soon"}, `1: invalid value "soon" for heartbeat`},
		{[]string{"network nowhere"}, `1: invalid value "nowhere" for network`},
		{[]string{"gossip-key not-base64!"}, `1: invalid value "not-base64!" for gossip-key`},
		{[]string{"log-format xml"}, `1: invalid value "xml" for log-format`},
		{[]string{"drop-expired maybe"}, `1: invalid value "maybe" for drop-expired`},
		{[]string{"stomp"}, `1: setting "stomp" needs a value`},
		{[]string{"id n1", "id n2"}, `2: "id" already set on line 1`},
		{[]string{"config other.conf"}, `1: "config" cannot be set in a config file`},
	} {
		path := writeConfig(t, tc.lines...)
		parseErr(t, path+":"+tc.want, "--config", path)
	}

	// A bad line is an error even while a higher level overrides it.
	path := writeConfig(t, "prefetch lots")
	parseErr(t, path+`:1: invalid value "lots" for prefetch`, "--config", path, "--prefetch", "5")
}

func TestEnvironmentErrors(t *testing.T) {
	clearRaftmqEnv(t)
	t.Setenv("RAFTMQ_BOOTSTRAP_EXPECT", "three")
	parseErr(t, `RAFTMQ_BOOTSTRAP_EXPECT: invalid value "three" for --bootstrap-expect`)
	// Also when the command line overrides it.
	parseErr(t, "RAFTMQ_BOOTSTRAP_EXPECT", "--bootstrap-expect", "3")

	clearRaftmqEnv(t)
	t.Setenv("RAFTMQ_NETWORK", "gossip nowhere")
	parseErr(t, `RAFTMQ_NETWORK: invalid value "nowhere" for --network`)

	clearRaftmqEnv(t)
	t.Setenv("RAFTMQ_LOG_LEVEL", "loud")
	parseErr(t, `RAFTMQ_LOG_LEVEL: invalid value "loud" for --log-level: log level "loud"`)
}

func TestConfigFileMissing(t *testing.T) {
	clearRaftmqEnv(t)
	missing := filepath.Join(t.TempDir(), "nope.conf")
	parseErr(t, "config file "+missing+": no such file or directory", "--config", missing)

	t.Setenv("RAFTMQ_CONFIG", missing)
	parseErr(t, "config file "+missing+" (from RAFTMQ_CONFIG): no such file or directory")

	// Through the binary's entry point: a usage error, exit status 2.
	var stderr bytes.Buffer
	if code := run([]string{"server", "--config", missing}, io.Discard, &stderr); code != 2 {
		t.Errorf("exit %d, want 2 (stderr %q)", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "raftmq server: config file "+missing) {
		t.Errorf("stderr %q", stderr.String())
	}
}

// TestServerFlagGroups fails when a flag is added without a help group.
func TestServerFlagGroups(t *testing.T) {
	var def node.Config
	def.Validate()
	fs := newServerFlagSet(new(node.Config), new(serverFlags), def)
	group := map[string]string{}
	for _, g := range serverFlagGroups {
		for _, name := range g.flags {
			if other, dup := group[name]; dup {
				t.Errorf("flag %q is in groups %q and %q", name, other, g.title)
			}
			group[name] = g.title
			if fs.Lookup(name) == nil {
				t.Errorf("group %q lists %q, which is no flag", g.title, name)
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if group[f.Name] == "" {
			t.Errorf("flag --%s is in no group of serverFlagGroups", f.Name)
		}
	})
}

// TestServerHelp reads `raftmq server --help` as a person would: every
// flag once, under a heading, and the config example in it is valid.
func TestServerHelp(t *testing.T) {
	clearRaftmqEnv(t)
	var out bytes.Buffer
	if _, _, err := parseServerFlags([]string{"--help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: err = %v", err)
	}
	help := out.String()
	for _, want := range []string{"RAFTMQ_BOOTSTRAP_EXPECT=3", "--config FILE", "RAFTMQ_NETWORK"} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if strings.Contains(help, "\nOther:\n") {
		t.Error("help has flags outside the groups")
	}

	// Flag lines are "  --name [type]"; headings are unindented lines
	// ending in ':'.
	headings := map[string]bool{}
	for _, g := range serverFlagGroups {
		headings[g.title+":"] = true
	}
	under := map[string]string{}
	heading := ""
	for _, line := range strings.Split(help, "\n") {
		if headings[line] {
			heading = line
			continue
		}
		if rest, ok := strings.CutPrefix(line, "  --"); ok {
			name, _, _ := strings.Cut(rest, " ")
			if heading == "" {
				t.Errorf("--%s shown before any heading", name)
			}
			if under[name] != "" {
				t.Errorf("--%s shown twice", name)
			}
			under[name] = heading
		}
	}
	var def node.Config
	def.Validate()
	newServerFlagSet(new(node.Config), new(serverFlags), def).VisitAll(func(f *flag.Flag) {
		if under[f.Name] == "" {
			t.Errorf("--%s not in the help", f.Name)
		}
	})
	if !strings.Contains(help, "  --prefetch int\n") || !strings.Contains(help, "(default 1000)") ||
		!strings.Contains(help, `(default "127.0.0.1:61613")`) {
		t.Errorf("flag lines lack type or default:\n%s", help)
	}

	// The example config file in the help parses.
	_, example, ok := strings.Cut(help, "For example:\n\n")
	if !ok {
		t.Fatal("no example in the help")
	}
	example, _, _ = strings.Cut(example, "\n\n")
	var lines []string
	for _, l := range strings.Split(example, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "    "))
	}
	cfg, _ := mustParse(t, "--config", writeConfig(t, lines...))
	if cfg.BootstrapExpect != 3 || len(cfg.Network) != 2 {
		t.Errorf("example config gave %+v", cfg)
	}
}

func TestBadCommandLineIsUsageError(t *testing.T) {
	clearRaftmqEnv(t)
	var stderr bytes.Buffer
	if code := run([]string{"server", "--prefetch", "lots"}, io.Discard, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), `invalid value "lots" for flag -prefetch`) {
		t.Errorf("stderr %q", stderr.String())
	}
}
