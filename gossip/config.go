package gossip

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the gossip port when an address gives none: memberlist's,
// as in Consul and Serf.
const DefaultPort = 7946

// Config says how a node takes part in the pool.
type Config struct {
	// Bind is the host:port to listen on, TCP and UDP. "host" alone means
	// DefaultPort, ":port" means every interface; port 0 picks a free
	// port (tests). A host name is resolved once, at Start.
	Bind string
	// Advertise is the host:port others reach us at, when Bind is not
	// dialable (0.0.0.0, NAT, containers). Empty means Bind's host and
	// real port; with Bind on every interface memberlist then picks a
	// private address of this machine. A missing port means Bind's port.
	// With Bind's port 0 the advertised port is always the picked one.
	Advertise string
	// Join lists seed addresses, host[:port]. Empty starts a new pool.
	// Seeds are joined in the background, retried with backoff until one
	// answers, and again whenever this node finds itself alone.
	Join []string
	// Keys is the keyring: empty (no encryption), or 16, 24 or 32-byte
	// AES keys (see ParseKey). The first encrypts what this node sends;
	// every one is tried on what it receives, which is how a key is
	// rotated without a partition (see Pool.SetKeys). A node that shares
	// no key with the pool, or has none, is not let in.
	Keys [][]byte
	// Meta is what this node advertises at first; see Pool.SetMeta.
	Meta Meta
	// Logger receives memberlist's log lines at their level ([DEBUG] at
	// Debug, it is chatty) and the pool's own. Nil means slog.Default().
	Logger *slog.Logger
	// Fast shortens every timer for tests: probes every 200 ms, a dead
	// node is detected in about a second, joins retry every 100 ms–1 s.
	// Production keeps memberlist.DefaultLANConfig (with DeadNodeReclaimTime
	// set to 10 s, so a crashed node can come back at a new address).
	Fast bool
}

// ParseKey decodes an encryption key given as standard base64 of 16, 24 or
// 32 bytes (AES-128, -192 or -256), as Consul's `keygen` prints it.
func ParseKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip key: not standard base64: %w", err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("gossip key: %d bytes, want 16, 24 or 32 (base64 of random bytes, e.g. `head -c 32 /dev/urandom | base64`)", len(key))
}

// LoadKeyring reads a keyring file: one key per line as ParseKey takes it,
// the key to encrypt with first; blank lines and lines starting with #
// are skipped. Keep it readable by the broker's user only.
func LoadKeyring(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParseKey(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("gossip keyring %s: no key", path)
	}
	return keys, nil
}

// timing is what Fast changes besides memberlist's own timers.
type timing struct {
	joinMin, joinMax time.Duration // join retry backoff
	recheck          time.Duration // how often a joined node checks it is still not alone
	updateTimeout    time.Duration // SetMeta's wait for the broadcast
	leaveTimeout     time.Duration // Close's wait for the leave broadcast
}

var (
	lanTiming  = timing{joinMin: time.Second, joinMax: 30 * time.Second, recheck: 5 * time.Second, updateTimeout: 5 * time.Second, leaveTimeout: 2 * time.Second}
	fastTiming = timing{joinMin: 100 * time.Millisecond, joinMax: time.Second, recheck: 200 * time.Millisecond, updateTimeout: 2 * time.Second, leaveTimeout: time.Second}
)

// memberlistConfig turns cfg into memberlist's configuration (addresses
// resolved, key in a keyring) and the seeds to join, each with a port.
func (cfg Config) memberlistConfig() (*memberlist.Config, []string, error) {
	mc := timers(cfg.Fast)
	mc.Name = cfg.Meta.Name()
	bindHost, bindPort, err := splitAddr(cfg.Bind, DefaultPort)
	if err != nil {
		return nil, nil, err
	}
	if bindHost == "" {
		bindHost = "0.0.0.0"
	}
	if bindHost, err = resolveHost(bindHost); err != nil {
		return nil, nil, err
	}
	mc.BindAddr, mc.BindPort = bindHost, bindPort
	mc.AdvertisePort = bindPort
	if cfg.Advertise != "" {
		host, port, err := splitAddr(cfg.Advertise, bindPort)
		if err != nil {
			return nil, nil, err
		}
		if host == "" {
			return nil, nil, fmt.Errorf("gossip advertise %q: a host is required", cfg.Advertise)
		}
		if host, err = resolveHost(host); err != nil {
			return nil, nil, err
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	} else if net.ParseIP(bindHost).IsUnspecified() && bindHost != "0.0.0.0" {
		// memberlist finds a private address only for 0.0.0.0; it would
		// advertise "::" as it is.
		return nil, nil, fmt.Errorf("gossip bind %q: set an advertise address", cfg.Bind)
	}

	seeds := make([]string, 0, len(cfg.Join))
	for _, s := range cfg.Join {
		host, port, err := splitAddr(strings.TrimSpace(s), DefaultPort)
		if err != nil {
			return nil, nil, err
		}
		if host == "" {
			return nil, nil, fmt.Errorf("gossip join %q: a host is required", s)
		}
		// memberlist would give a port-less seed our bind port.
		seeds = append(seeds, net.JoinHostPort(host, strconv.Itoa(port)))
	}

	if len(cfg.Keys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.Keys[1:], cfg.Keys[0])
		if err != nil {
			return nil, nil, fmt.Errorf("gossip key: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	return mc, seeds, nil
}

// timers returns memberlist's configuration with its timers set: LAN
// defaults, or the fast test timers.
func timers(fast bool) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	// A crashed node may come back under its name at another address once
	// its old entry has been dead this long (0 would wait for the reap).
	c.DeadNodeReclaimTime = 10 * time.Second
	if fast {
		c.TCPTimeout = time.Second
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.SuspicionMult = 3           // suspect for 3 probe intervals (0.6 s) when confirmed...
		c.SuspicionMaxTimeoutMult = 3 // ...and at most 1.8 s when not
		c.GossipInterval = 50 * time.Millisecond
		c.PushPullInterval = time.Second
		c.GossipToTheDeadTime = 2 * time.Second
		c.DeadNodeReclaimTime = time.Second
	}
	return c
}

// splitAddr splits host[:port], with defPort for a missing port. An IPv6
// address may come bare or in brackets. It does not resolve the host.
func splitAddr(addr string, defPort int) (host string, port int, err error) {
	host, sport, err := net.SplitHostPort(addr)
	if err != nil {
		host, sport = addr, ""
		if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1]
		}
	}
	port = defPort
	if sport != "" {
		p, err := strconv.ParseUint(sport, 10, 16)
		if err != nil {
			return "", 0, fmt.Errorf("gossip address %q: bad port %q", addr, sport)
		}
		port = int(p)
	}
	return host, port, nil
}

// resolveHost returns host as an IP, resolving a name (memberlist's bind
// and advertise addresses must be IPs); IPv4 is preferred.
func resolveHost(host string) (string, error) {
	if net.ParseIP(host) != nil {
		return host, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return "", fmt.Errorf("gossip resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			return ip.String(), nil
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("gossip resolve %s: no address", host)
	}
	return ips[0].String(), nil
}
