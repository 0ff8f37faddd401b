// Command compose-validate loads deploy/compose.yaml with compose-go, the
// loader `docker compose` itself uses (schema validation, interpolation,
// merge keys), offline, and checks that the file keeps the promises
// deploy/README.md makes: every node has its own id, fixed address and
// named volume; its advertised addresses are its own service name; each
// group's join list names exactly its members and bootstrap-expect their
// number; every node seeds gossip from every group; ports are published on
// the loopback only; every RAFTMQ_ variable names a `raftmq server` flag.
//
//	go run . -flags FLAGS.txt [-out DIR] ../compose.yaml
//
// With -out, it writes what validate.sh needs to start the same project
// with plain `podman run` (podman-compose 1.0.3, Debian 12's, cannot read
// a service network with a fixed address): DIR/SERVICE.env (NAME=value
// lines), DIR/SERVICE.args (podman run's arguments, one per line, image
// last), DIR/services, DIR/network (name and subnet) and DIR/hosts.
// -host-ip moves the published ports to another loopback address, so a
// validation run takes no port another program on 127.0.0.1 may use.
//
// It is its own module, so the broker's go.mod does not depend on it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

var errs []string

func errorf(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }

func main() {
	flagsFile := flag.String("flags", "", "file listing `raftmq server` flag names, one per line")
	out := flag.String("out", "", "write each service's environment and podman run arguments here")
	hostIP := flag.String("host-ip", "", "publish ports on this address instead (with -out)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-validate [-flags FILE] [-out DIR] compose.yaml")
		os.Exit(2)
	}
	var flags map[string]bool
	if *flagsFile != "" {
		b, err := os.ReadFile(*flagsFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		flags = map[string]bool{}
		for _, f := range strings.Fields(string(b)) {
			flags[f] = true
		}
	}
	// No OS environment: the file's defaults (${RAFTMQ_IMAGE:-...}) are
	// what is checked, whatever this shell has set.
	opts, err := cli.NewProjectOptions(flag.Args(), cli.WithName("raftmq"), cli.WithEnv(nil), cli.WithInterpolation(true))
	if err != nil {
		fail(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	check(p, flags)
	if len(errs) > 0 {
		for _, e := range errs {
			fmt.Fprintln(os.Stderr, "FAIL", e)
		}
		os.Exit(1)
	}
	if *out != "" {
		if err := write(p, *out, *hostIP); err != nil {
			fail(err)
		}
	}
	fmt.Printf("ok: %d services, %d volumes, %d networks\n", len(p.Services), len(p.Volumes), len(p.Networks))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "FAIL", err)
	os.Exit(1)
}

func env(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

func check(p *types.Project, flags map[string]bool) {
	names := p.ServiceNames()
	sort.Strings(names)
	groups := map[string][]string{} // group -> its services
	ips := map[netip.Addr]string{}
	vols := map[string]string{}
	hostPorts := map[string]string{}
	for _, name := range names {
		s := p.Services[name]
		where := "service " + name
		// Every RAFTMQ_ variable is a flag.
		for k := range s.Environment {
			if !strings.HasPrefix(k, "RAFTMQ_") || flags == nil {
				continue
			}
			f := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "RAFTMQ_"), "_", "-"))
			if !flags[f] {
				errorf("%s: %s: `raftmq server` has no flag --%s", where, k, f)
			}
		}
		g := env(s, "RAFTMQ_GROUP")
		if g == "" {
			errorf("%s: RAFTMQ_GROUP not set", where)
		}
		groups[g] = append(groups[g], name)
		if id := env(s, "RAFTMQ_ID"); id != name {
			errorf("%s: RAFTMQ_ID %q: want the service's name", where, id)
		}
		// Advertised addresses: this service's name, on the port it
		// listens on.
		for _, a := range []string{"RAFT", "STOMP", "HTTP", "GOSSIP"} {
			listen, adv := env(s, "RAFTMQ_"+a), env(s, "RAFTMQ_"+a+"_ADVERTISE")
			_, lport, err1 := net.SplitHostPort(listen)
			ahost, aport, err2 := net.SplitHostPort(adv)
			if err1 != nil || err2 != nil || ahost != name || aport != lport {
				errorf("%s: RAFTMQ_%s=%q, RAFTMQ_%s_ADVERTISE=%q: want the service's name and the same port", where, a, listen, a, adv)
			}
		}
		// Its own fixed address on the project's network.
		if len(s.Networks) != 1 {
			errorf("%s: want exactly one network, have %d", where, len(s.Networks))
		}
		for netName, nc := range s.Networks {
			if nc == nil || nc.Ipv4Address == "" {
				errorf("%s: network %s: no ipv4_address (raft keeps the IP a name resolved to)", where, netName)
				continue
			}
			ip, err := netip.ParseAddr(nc.Ipv4Address)
			if err != nil {
				errorf("%s: ipv4_address: %v", where, err)
				continue
			}
			if other, dup := ips[ip]; dup {
				errorf("%s: ipv4_address %s is also %s's", where, ip, other)
			}
			ips[ip] = name
			inSubnet := false
			if n, ok := p.Networks[netName]; ok {
				for _, pool := range n.Ipam.Config {
					if pre, err := netip.ParsePrefix(pool.Subnet); err == nil && pre.Contains(ip) {
						inSubnet = true
					}
				}
			}
			if !inSubnet {
				errorf("%s: ipv4_address %s is in no subnet of network %s", where, ip, netName)
			}
		}
		// Its own named volume on the data directory.
		data := env(s, "RAFTMQ_DATA")
		mounted := false
		for _, v := range s.Volumes {
			if v.Target != data {
				continue
			}
			mounted = true
			if v.Type != types.VolumeTypeVolume {
				errorf("%s: %s is a %s, want a named volume", where, data, v.Type)
			}
			if other, dup := vols[v.Source]; dup {
				errorf("%s: volume %s is also %s's: each node needs its own", where, v.Source, other)
			}
			vols[v.Source] = name
		}
		if !mounted || data == "" {
			errorf("%s: RAFTMQ_DATA (%q) is not on a volume", where, data)
		}
		// Published ports: loopback only (no authentication yet), and
		// not twice.
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				errorf("%s: port %d published on %q: want 127.0.0.1 (the admin API has no authentication)", where, port.Target, port.HostIP)
			}
			key := port.HostIP + ":" + port.Published + "/" + port.Protocol
			if other, dup := hostPorts[key]; dup {
				errorf("%s: host port %s is also %s's", where, key, other)
			}
			hostPorts[key] = name
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 || s.HealthCheck.Disable {
			errorf("%s: no healthcheck", where)
		}
		if s.StopGracePeriod == nil {
			errorf("%s: no stop_grace_period", where)
		}
	}
	// Each group: join lists its members, bootstrap-expect their number;
	// everyone seeds gossip from every node.
	for g, members := range groups {
		var join []string
		for _, m := range members {
			_, port, _ := net.SplitHostPort(env(p.Services[m], "RAFTMQ_HTTP"))
			join = append(join, m+":"+port)
		}
		for _, m := range members {
			s := p.Services[m]
			got := strings.Split(env(s, "RAFTMQ_JOIN"), ",")
			if !sameSet(got, join) {
				errorf("service %s: RAFTMQ_JOIN %v: want group %s's members %v", m, got, g, join)
			}
			if n, err := strconv.Atoi(env(s, "RAFTMQ_BOOTSTRAP_EXPECT")); err != nil || n != len(members) {
				errorf("service %s: RAFTMQ_BOOTSTRAP_EXPECT %q: group %s has %d members", m, env(s, "RAFTMQ_BOOTSTRAP_EXPECT"), g, len(members))
			}
		}
	}
	if len(groups) < 2 {
		errorf("want at least two groups, have %d", len(groups))
	}
	for _, name := range names {
		s := p.Services[name]
		seeds := strings.Split(env(s, "RAFTMQ_GOSSIP_JOIN"), ",")
		for _, other := range names {
			_, port, _ := net.SplitHostPort(env(p.Services[other], "RAFTMQ_GOSSIP"))
			if !slices.Contains(seeds, other+":"+port) {
				errorf("service %s: RAFTMQ_GOSSIP_JOIN does not name %s:%s", name, other, port)
			}
		}
		if env(s, "RAFTMQ_NETWORK") != "gossip" {
			errorf("service %s: RAFTMQ_NETWORK %q, want gossip", name, env(s, "RAFTMQ_NETWORK"))
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// write leaves each service's environment and podman run arguments, the
// network and the hosts lines in dir.
func write(p *types.Project, dir, hostIP string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var hosts, services, nets strings.Builder
	for _, name := range p.NetworkNames() {
		n := p.Networks[name]
		for _, pool := range n.Ipam.Config {
			fmt.Fprintf(&nets, "%s_%s %s\n", p.Name, name, pool.Subnet)
		}
	}
	names := p.ServiceNames()
	sort.Strings(names)
	for _, name := range names {
		s := p.Services[name]
		for _, nc := range s.Networks {
			if nc != nil && nc.Ipv4Address != "" {
				fmt.Fprintf(&hosts, "%s\t%s\n", nc.Ipv4Address, name)
			}
		}
	}
	for _, name := range names {
		s := p.Services[name]
		fmt.Fprintln(&services, name)
		var b strings.Builder
		keys := make([]string, 0, len(s.Environment))
		for k := range s.Environment {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s=%s\n", k, env(s, k))
		}
		envFile := filepath.Join(dir, name+".env")
		if err := os.WriteFile(envFile, []byte(b.String()), 0o644); err != nil {
			return err
		}
		args := []string{"--name", p.Name + "_" + name, "--hostname", name, "--env-file", envFile}
		for netName, nc := range s.Networks {
			args = append(args, "--network", p.Name+"_"+netName)
			if nc != nil && nc.Ipv4Address != "" {
				args = append(args, "--ip", nc.Ipv4Address)
			}
		}
		// Compose resolves service names through the network's DNS; fixed
		// host entries do the same here without depending on it.
		for _, l := range strings.Split(strings.TrimSpace(hosts.String()), "\n") {
			if f := strings.Fields(l); len(f) == 2 {
				args = append(args, "--add-host", f[1]+":"+f[0])
			}
		}
		for _, v := range s.Volumes {
			args = append(args, "--volume", p.Name+"_"+v.Source+":"+v.Target)
		}
		for _, port := range s.Ports {
			ip := port.HostIP
			if hostIP != "" {
				ip = hostIP
			}
			args = append(args, "--publish", fmt.Sprintf("%s:%s:%d/%s", ip, port.Published, port.Target, port.Protocol))
		}
		if s.ReadOnly {
			args = append(args, "--read-only")
		}
		for _, c := range s.CapDrop {
			args = append(args, "--cap-drop", c)
		}
		for _, o := range s.SecurityOpt {
			args = append(args, "--security-opt", o)
		}
		for k, u := range s.Ulimits {
			if u.Single != 0 {
				args = append(args, "--ulimit", fmt.Sprintf("%s=%d", k, u.Single))
			} else {
				args = append(args, "--ulimit", fmt.Sprintf("%s=%d:%d", k, u.Soft, u.Hard))
			}
		}
		if s.StopSignal != "" {
			args = append(args, "--stop-signal", s.StopSignal)
		}
		if s.StopGracePeriod != nil {
			args = append(args, "--stop-timeout", strconv.Itoa(int(time.Duration(*s.StopGracePeriod).Seconds())))
		}
		if hc := s.HealthCheck; hc != nil && len(hc.Test) > 1 && hc.Test[0] == "CMD" {
			cmd, _ := json.Marshal(hc.Test[1:])
			// No timer (it would need systemd): validate.sh runs the
			// check itself with `podman healthcheck run`.
			args = append(args, "--health-cmd", string(cmd), "--health-interval", "disable")
		}
		args = append(args, s.Image)
		args = append(args, s.Command...)
		if err := os.WriteFile(filepath.Join(dir, name+".args"), []byte(strings.Join(args, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	for file, content := range map[string]string{"hosts": hosts.String(), "services": services.String(), "network": nets.String()} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
