package failover

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The ports of addresses that name none: ActiveMQ's STOMP ports, plain
// and over TLS (its stomp+ssl connector).
const (
	DefaultPort    = "61613"
	DefaultTLSPort = "61614"
)

// schemes maps each address scheme ParseURL accepts, lower case, to the
// one it keeps: "tcp" (plain TCP) or "ssl" (TLS). stomp:// and the
// stomp+ forms are the schemes of ActiveMQ's STOMP connectors.
var schemes = map[string]string{
	"tcp":       "tcp",
	"stomp":     "tcp",
	"stomp+tcp": "tcp",
	"ssl":       "ssl",
	"stomp+ssl": "ssl",
}

// schemeNames lists the accepted schemes, for errors.
const schemeNames = "tcp, stomp, stomp+tcp, ssl, stomp+ssl"

// Addr is one broker address of a URL. Its scheme says how to connect:
// "tcp" over plain TCP, "ssl" over TLS. ParseURL gives only these two;
// DialURL also takes the other accepted spellings (stomp+ssl...).
type Addr struct {
	Scheme string // "tcp" or "ssl"
	Host   string // host:port, as net.Dial takes it
}

func (a Addr) String() string { return a.Scheme + "://" + a.Host }

// TLS reports whether the address is dialled over TLS.
func (a Addr) TLS() bool { return schemes[strings.ToLower(a.Scheme)] == "ssl" }

// URL is a parsed failover URL: the broker addresses and the reconnection
// options, with ActiveMQ's meaning and defaults (see the package doc).
// Durations are ActiveMQ's milliseconds, converted.
type URL struct {
	Addrs []Addr

	// Randomize shuffles the addresses before every pass over them.
	Randomize bool
	// InitialReconnectDelay is the wait before the first reconnection
	// after a connection is lost, and after the first failed pass.
	InitialReconnectDelay time.Duration
	// MaxReconnectDelay caps the wait between passes.
	MaxReconnectDelay time.Duration
	// UseExponentialBackOff multiplies the wait by ReconnectDelayExponent
	// after every failed pass; without it every wait is
	// InitialReconnectDelay.
	UseExponentialBackOff  bool
	ReconnectDelayExponent float64
	// MaxReconnectAttempts bounds the passes over the addresses after a
	// connection was lost: -1 without bound, 0 no reconnection at all.
	MaxReconnectAttempts int
	// StartupMaxReconnectAttempts bounds the passes before the first
	// connection (0 means one pass); -1 means MaxReconnectAttempts applies
	// (and 0 there also means one pass).
	StartupMaxReconnectAttempts int
	// Timeout is how long an operation waits for a connection while there
	// is none; 0 or negative: as long as its context allows.
	Timeout time.Duration
	// UpdateURIsSupported adds the addresses a broker announces in its
	// CONNECTED frame (raftmq-brokers header) to the ones configured.
	UpdateURIsSupported bool
}

// defaultURL returns a URL with ActiveMQ's defaults and no addresses.
func defaultURL() *URL {
	return &URL{
		Randomize:                   true,
		InitialReconnectDelay:       10 * time.Millisecond,
		MaxReconnectDelay:           30 * time.Second,
		UseExponentialBackOff:       true,
		ReconnectDelayExponent:      2,
		MaxReconnectAttempts:        -1,
		StartupMaxReconnectAttempts: -1,
		Timeout:                     -time.Millisecond,
		UpdateURIsSupported:         true,
	}
}

// option is one query option: how to parse it into a URL and how to
// render it back.
type option struct {
	set    func(u *URL, v string) error
	get    func(u *URL) string
	isZero func(u, def *URL) bool // the value is the default: String leaves it out
}

// options are the failover options honoured, by their exact name.
var options = map[string]option{
	"randomize": boolOption(func(u *URL) *bool { return &u.Randomize }),
	"initialReconnectDelay": millisOption(0, func(u *URL) *time.Duration {
		return &u.InitialReconnectDelay
	}),
	"maxReconnectDelay": millisOption(0, func(u *URL) *time.Duration {
		return &u.MaxReconnectDelay
	}),
	"useExponentialBackOff": boolOption(func(u *URL) *bool { return &u.UseExponentialBackOff }),
	"reconnectDelayExponent": {
		set: func(u *URL, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("%q is not a number", v)
			}
			if f < 1 {
				return fmt.Errorf("%v is below 1: the delay would shrink on every failure", f)
			}
			u.ReconnectDelayExponent = f
			return nil
		},
		get:    func(u *URL) string { return strconv.FormatFloat(u.ReconnectDelayExponent, 'g', -1, 64) },
		isZero: func(u, def *URL) bool { return u.ReconnectDelayExponent == def.ReconnectDelayExponent },
	},
	"maxReconnectAttempts":        attemptsOption(func(u *URL) *int { return &u.MaxReconnectAttempts }),
	"startupMaxReconnectAttempts": attemptsOption(func(u *URL) *int { return &u.StartupMaxReconnectAttempts }),
	"timeout":                     millisOption(-1, func(u *URL) *time.Duration { return &u.Timeout }),
	"updateURIsSupported":         boolOption(func(u *URL) *bool { return &u.UpdateURIsSupported }),
}

// OptionNames returns the names of the options ParseURL honours, sorted.
func OptionNames() []string {
	names := make([]string, 0, len(options))
	for k := range options {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func boolOption(field func(*URL) *bool) option {
	return option{
		set: func(u *URL, v string) error {
			// Stricter than Java's Boolean.parseBoolean, which reads any
			// word but "true" as false: a typo must not flip a setting.
			switch strings.ToLower(v) {
			case "true":
				*field(u) = true
			case "false":
				*field(u) = false
			default:
				return fmt.Errorf("%q is not true or false", v)
			}
			return nil
		},
		get:    func(u *URL) string { return strconv.FormatBool(*field(u)) },
		isZero: func(u, def *URL) bool { return *field(u) == *field(def) },
	}
}

// maxMillis is the largest millisecond count a time.Duration holds.
const maxMillis = math.MaxInt64 / int64(time.Millisecond)

func millisOption(min int64, field func(*URL) *time.Duration) option {
	return option{
		set: func(u *URL, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%q is not a whole number of milliseconds", v)
			}
			if n < min || n > maxMillis {
				return fmt.Errorf("%d out of range [%d, %d]", n, min, maxMillis)
			}
			*field(u) = time.Duration(n) * time.Millisecond
			return nil
		},
		get:    func(u *URL) string { return strconv.FormatInt(field(u).Milliseconds(), 10) },
		isZero: func(u, def *URL) bool { return *field(u) == *field(def) },
	}
}

func attemptsOption(field func(*URL) *int) option {
	return option{
		set: func(u *URL, v string) error {
			// Java's int, as ActiveMQ.
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return fmt.Errorf("%q is not a whole number", v)
			}
			if n < -1 {
				return fmt.Errorf("%d is below -1 (-1 means without limit)", n)
			}
			*field(u) = int(n)
			return nil
		},
		get:    func(u *URL) string { return strconv.Itoa(*field(u)) },
		isZero: func(u, def *URL) bool { return *field(u) == *field(def) },
	}
}

// ParseURL parses a broker URL:
//
//	failover:(tcp://h1:61613,tcp://h2:61613)?option=value&...
//	failover://(ssl://h1:61614,ssl://h2:61614)?option=value&...
//	failover:tcp://h1:61613,tcp://h2:61613
//	tcp://h1:61613
//
// The last is one address with the default options; it still reconnects.
// An address is tcp:// (also stomp:// and stomp+tcp://) for plain TCP, or
// ssl:// (also stomp+ssl://) for TLS; ParseURL keeps them as "tcp" and
// "ssl". A list may mix them. An address without a port gets DefaultPort
// (61613), or DefaultTLSPort (61614) over TLS.
// Options are the failover options of the package doc; any other, an
// option on a nested address, or a malformed value is an error naming it.
// Without the parentheses there is no place for failover options: what
// follows "?" would belong to the last address, as in ActiveMQ, and
// addresses take none.
func ParseURL(s string) (*URL, error) {
	u, err := parseURL(s)
	if err != nil {
		return nil, fmt.Errorf("failover: URL %q: %w", s, err)
	}
	return u, nil
}

func parseURL(s string) (*URL, error) {
	u := defaultURL()
	s = strings.TrimSpace(s)
	rest, ok := cutPrefixFold(s, "failover:")
	if !ok {
		a, err := parseAddr(s)
		if err != nil {
			return nil, err
		}
		u.Addrs = []Addr{a}
		return u, nil
	}
	rest = strings.TrimPrefix(rest, "//")

	var list, query string
	hasQuery := false
	if strings.HasPrefix(rest, "(") {
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return nil, errors.New("missing ')' after the address list")
		}
		list = rest[1:end]
		if strings.ContainsRune(list, '(') {
			return nil, errors.New("nested composite URIs are not supported")
		}
		switch after := rest[end+1:]; {
		case after == "":
		case after[0] == '?':
			query, hasQuery = after[1:], true
		default:
			return nil, fmt.Errorf("unexpected %q after the address list (options follow '?')", after)
		}
	} else {
		if strings.ContainsAny(rest, "()") {
			return nil, errors.New("unbalanced parentheses")
		}
		list = rest
	}

	for part := range strings.SplitSeq(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, errors.New("empty address in the list")
		}
		a, err := parseAddr(part)
		if err != nil {
			return nil, err
		}
		u.Addrs = append(u.Addrs, a)
	}
	if hasQuery {
		if err := u.parseOptions(query); err != nil {
			return nil, err
		}
	}
	return u, nil
}

func (u *URL) parseOptions(query string) error {
	seen := make(map[string]bool)
	for kv := range strings.SplitSeq(query, "&") {
		if kv == "" {
			continue // "a=1&&b=2", a trailing '&': no option there
		}
		rawKey, rawVal, hasVal := strings.Cut(kv, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return fmt.Errorf("option %q: %w", rawKey, err)
		}
		if !hasVal {
			return fmt.Errorf("option %q has no value", key)
		}
		val, err := url.QueryUnescape(rawVal)
		if err != nil {
			return fmt.Errorf("option %q: value %q: %w", key, rawVal, err)
		}
		opt, ok := options[key]
		if !ok {
			return unknownOption(key)
		}
		if seen[key] {
			return fmt.Errorf("option %q given twice", key)
		}
		seen[key] = true
		if err := opt.set(u, val); err != nil {
			return fmt.Errorf("option %s: %w", key, err)
		}
	}
	return nil
}

// unknownOption explains an option we do not honour. Option names are
// case-sensitive, as in ActiveMQ; a near miss gets a hint.
func unknownOption(key string) error {
	for name := range options {
		if strings.EqualFold(name, key) {
			return fmt.Errorf("unknown option %q (option names are case-sensitive: did you mean %q?)", key, name)
		}
	}
	return fmt.Errorf("unknown option %q (supported: %s)", key, strings.Join(OptionNames(), ", "))
}

// parseAddr parses one nested address: scheme://host[:port], the scheme
// one of schemes.
func parseAddr(s string) (Addr, error) {
	raw, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Addr{}, fmt.Errorf("address %q: want scheme://host:port, as tcp://127.0.0.1:61613", s)
	}
	scheme, ok := schemes[strings.ToLower(raw)]
	if !ok {
		return Addr{}, fmt.Errorf("address %q: unsupported scheme %q (supported: %s)", s, raw, schemeNames)
	}
	defPort := DefaultPort
	if scheme == "ssl" {
		defPort = DefaultTLSPort
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		if rest[i] == '#' {
			return Addr{}, fmt.Errorf("address %q: a fragment is not allowed", s)
		}
		key, _, _ := strings.Cut(rest[i+1:], "&")
		key, _, _ = strings.Cut(key, "=")
		hint := ""
		if scheme == "ssl" {
			hint = "; TLS settings go in Options.TLS"
		}
		return Addr{}, fmt.Errorf("address %q: option %q: addresses take no options; failover options go after the list: failover:(%s)?option=value%s",
			s, key, s[:len(s)-len(rest)+i], hint)
	}
	rest = strings.TrimSuffix(rest, "/")
	if strings.ContainsAny(rest, "/") {
		return Addr{}, fmt.Errorf("address %q: a path is not allowed", s)
	}
	if strings.ContainsRune(rest, '@') {
		return Addr{}, fmt.Errorf("address %q: user info is not allowed (set Options.Login and Passcode)", s)
	}
	host, port, err := splitHostPort(rest, defPort)
	if err != nil {
		return Addr{}, fmt.Errorf("address %q: %w", s, err)
	}
	return Addr{Scheme: scheme, Host: net.JoinHostPort(host, port)}, nil
}

// splitHostPort splits host[:port], defaulting the port to defPort, and
// checks both.
func splitHostPort(hp, defPort string) (host, port string, err error) {
	switch {
	case strings.HasPrefix(hp, "["):
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", errors.New("missing ']' in IPv6 address")
		}
		host = hp[1:end]
		switch after := hp[end+1:]; {
		case after == "":
			port = defPort
		case after[0] == ':':
			port = after[1:]
		default:
			return "", "", fmt.Errorf("unexpected %q after the IPv6 address", after)
		}
		if ip := net.ParseIP(host); ip == nil || ip.To4() != nil && !strings.Contains(host, ":") {
			return "", "", fmt.Errorf("%q is not an IPv6 address", host)
		}
	default:
		var ok bool
		host, port, ok = strings.Cut(hp, ":")
		if !ok {
			port = defPort
		}
		if strings.ContainsRune(port, ':') {
			return "", "", errors.New("an IPv6 address needs brackets: [::1]:61613")
		}
		if host == "" {
			return "", "", errors.New("no host")
		}
		for _, r := range host {
			// A host name or an IPv4 address. Anything else (',', ')',
			// spaces) would make the rendered URL mean something else.
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
				return "", "", fmt.Errorf("invalid character %q in host %q", r, host)
			}
		}
	}
	n, perr := strconv.ParseUint(port, 10, 16)
	if perr != nil || n == 0 || strconv.FormatUint(n, 10) != port {
		return "", "", fmt.Errorf("invalid port %q: want 1 to 65535", port)
	}
	return host, port, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// String renders u in the parenthesized form, with the options that differ
// from the defaults in a fixed order. ParseURL reads it back to an equal
// URL.
func (u *URL) String() string {
	var b strings.Builder
	b.WriteString("failover:(")
	for i, a := range u.Addrs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.String())
	}
	b.WriteByte(')')
	def := defaultURL()
	sep := byte('?')
	for _, name := range OptionNames() {
		opt := options[name]
		if opt.isZero(u, def) {
			continue
		}
		b.WriteByte(sep)
		sep = '&'
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(opt.get(u))
	}
	return b.String()
}

// attemptLimit returns how many failed passes over the addresses end the
// attempts (-1: none), before the first connection or after one was lost.
// As in ActiveMQ, startupMaxReconnectAttempts of -1 defers to
// maxReconnectAttempts.
func (u *URL) attemptLimit(startup bool) int {
	if startup && u.StartupMaxReconnectAttempts != -1 {
		return u.StartupMaxReconnectAttempts
	}
	return u.MaxReconnectAttempts
}

// nextDelay returns the wait after d, per the back-off options.
func (u *URL) nextDelay(d time.Duration) time.Duration {
	if !u.UseExponentialBackOff {
		return u.InitialReconnectDelay
	}
	next := float64(d) * u.ReconnectDelayExponent
	if next >= float64(u.MaxReconnectDelay) {
		return u.MaxReconnectDelay
	}
	return time.Duration(next)
}

// validate checks a URL built by hand, as ParseURL does one it parsed.
func (u *URL) validate() error {
	if len(u.Addrs) == 0 {
		return errors.New("no broker address")
	}
	for _, a := range u.Addrs {
		if _, ok := schemes[strings.ToLower(a.Scheme)]; !ok {
			return fmt.Errorf("address %v: unsupported scheme %q (supported: %s)", a, a.Scheme, schemeNames)
		}
		if _, _, err := net.SplitHostPort(a.Host); err != nil {
			return fmt.Errorf("address %v: %w", a, err)
		}
	}
	switch {
	case u.InitialReconnectDelay < 0 || u.MaxReconnectDelay < 0:
		return errors.New("negative reconnect delay")
	case !(u.ReconnectDelayExponent >= 1) || math.IsInf(u.ReconnectDelayExponent, 0):
		return fmt.Errorf("reconnectDelayExponent %v: must be a number of at least 1", u.ReconnectDelayExponent)
	case u.MaxReconnectAttempts < -1 || u.StartupMaxReconnectAttempts < -1:
		return errors.New("reconnect attempts below -1")
	}
	return nil
}
