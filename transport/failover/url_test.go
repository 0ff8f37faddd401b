package failover

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func tcp(hostport string) Addr { return Addr{Scheme: "tcp", Host: hostport} }
func ssl(hostport string) Addr { return Addr{Scheme: "ssl", Host: hostport} }

// withDefaults returns the default URL for addrs, changed by edit.
func withDefaults(edit func(u *URL), addrs ...Addr) *URL {
	u := defaultURL()
	u.Addrs = addrs
	if edit != nil {
		edit(u)
	}
	return u
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in   string
		want *URL
	}{
		{"tcp://a:61613", withDefaults(nil, tcp("a:61613"))},
		{"tcp://a", withDefaults(nil, tcp("a:61613"))},
		{"TCP://127.0.0.1:1234/", withDefaults(nil, tcp("127.0.0.1:1234"))},
		{"tcp://[::1]:61614", withDefaults(nil, tcp("[::1]:61614"))},
		{"tcp://[::1]", withDefaults(nil, tcp("[::1]:61613"))},
		{"  tcp://a:1\n", withDefaults(nil, tcp("a:1"))},
		{"stomp://a:1", withDefaults(nil, tcp("a:1"))},
		{"stomp://a", withDefaults(nil, tcp("a:61613"))},
		{"stomp+tcp://a", withDefaults(nil, tcp("a:61613"))},
		{"STOMP+TCP://a:2", withDefaults(nil, tcp("a:2"))},
		{"ssl://a:61614", withDefaults(nil, ssl("a:61614"))},
		{"ssl://a", withDefaults(nil, ssl("a:61614"))},
		{"ssl://a:61613", withDefaults(nil, ssl("a:61613"))},
		{"SSL://a/", withDefaults(nil, ssl("a:61614"))},
		{"ssl://[::1]", withDefaults(nil, ssl("[::1]:61614"))},
		{"ssl://127.0.0.1:9", withDefaults(nil, ssl("127.0.0.1:9"))},
		{"stomp+ssl://a", withDefaults(nil, ssl("a:61614"))},
		{"Stomp+SSL://a:3", withDefaults(nil, ssl("a:3"))},
		{"failover:tcp://a:1", withDefaults(nil, tcp("a:1"))},
		{"failover:(ssl://a,ssl://b)", withDefaults(nil, ssl("a:61614"), ssl("b:61614"))},
		{"failover:(ssl://a,tcp://a,stomp://b,stomp+ssl://b:1)?randomize=false",
			withDefaults(func(u *URL) { u.Randomize = false }, ssl("a:61614"), tcp("a:61613"), tcp("b:61613"), ssl("b:1"))},
		{"failover:ssl://a,tcp://b", withDefaults(nil, ssl("a:61614"), tcp("b:61613"))},
		{"failover:tcp://a:1,tcp://b:2", withDefaults(nil, tcp("a:1"), tcp("b:2"))},
		{"failover:(tcp://a:1,tcp://b:2)", withDefaults(nil, tcp("a:1"), tcp("b:2"))},
		{"failover://(tcp://a:1, tcp://b:2)", withDefaults(nil, tcp("a:1"), tcp("b:2"))},
		{"FAILOVER:(tcp://a:1)?", withDefaults(nil, tcp("a:1"))},
		{"failover:(tcp://a:1)?randomize=false", withDefaults(func(u *URL) { u.Randomize = false }, tcp("a:1"))},
		{"failover:(tcp://a:1)?randomize=TRUE&", withDefaults(nil, tcp("a:1"))},
		{"failover:(tcp://a:1)?initialReconnectDelay=0", withDefaults(func(u *URL) { u.InitialReconnectDelay = 0 }, tcp("a:1"))},
		{"failover:(tcp://a:1)?initialReconnectDelay=250", withDefaults(func(u *URL) { u.InitialReconnectDelay = 250 * time.Millisecond }, tcp("a:1"))},
		{"failover:(tcp://a:1)?maxReconnectDelay=5000", withDefaults(func(u *URL) { u.MaxReconnectDelay = 5 * time.Second }, tcp("a:1"))},
		{"failover:(tcp://a:1)?useExponentialBackOff=false", withDefaults(func(u *URL) { u.UseExponentialBackOff = false }, tcp("a:1"))},
		{"failover:(tcp://a:1)?reconnectDelayExponent=1.5", withDefaults(func(u *URL) { u.ReconnectDelayExponent = 1.5 }, tcp("a:1"))},
		{"failover:(tcp://a:1)?reconnectDelayExponent=3", withDefaults(func(u *URL) { u.ReconnectDelayExponent = 3 }, tcp("a:1"))},
		{"failover:(tcp://a:1)?maxReconnectAttempts=0", withDefaults(func(u *URL) { u.MaxReconnectAttempts = 0 }, tcp("a:1"))},
		{"failover:(tcp://a:1)?maxReconnectAttempts=7", withDefaults(func(u *URL) { u.MaxReconnectAttempts = 7 }, tcp("a:1"))},
		{"failover:(tcp://a:1)?startupMaxReconnectAttempts=3", withDefaults(func(u *URL) { u.StartupMaxReconnectAttempts = 3 }, tcp("a:1"))},
		{"failover:(tcp://a:1)?timeout=3000", withDefaults(func(u *URL) { u.Timeout = 3 * time.Second }, tcp("a:1"))},
		{"failover:(tcp://a:1)?timeout=0", withDefaults(func(u *URL) { u.Timeout = 0 }, tcp("a:1"))},
		{"failover:(tcp://a:1)?updateURIsSupported=false", withDefaults(func(u *URL) { u.UpdateURIsSupported = false }, tcp("a:1"))},
		{"failover:(tcp://a:1)?maxReconnectDelay=%31%30", withDefaults(func(u *URL) { u.MaxReconnectDelay = 10 * time.Millisecond }, tcp("a:1"))},
		{
			"failover:(tcp://a:61613,tcp://b:61613)?randomize=false&initialReconnectDelay=10&maxReconnectDelay=30000&useExponentialBackOff=true&reconnectDelayExponent=2&maxReconnectAttempts=-1&startupMaxReconnectAttempts=-1&timeout=-1",
			withDefaults(func(u *URL) { u.Randomize = false }, tcp("a:61613"), tcp("b:61613")),
		},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		// String renders what ParseURL reads back to the same URL.
		again, err := ParseURL(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseURL(%q).String() = %q, reparsed: %+v, %v", tt.in, got.String(), again, err)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "want scheme://host:port"},
		{"a:61613", "want scheme://host:port"},
		{"nio://a:1", `unsupported scheme "nio" (supported: tcp, stomp, stomp+tcp, ssl, stomp+ssl)`},
		{"nio+ssl://a:1", `unsupported scheme "nio+ssl"`},
		{"stomp+nio://a:1", `unsupported scheme "stomp+nio"`},
		{"tls://a:1", `unsupported scheme "tls"`},
		{"failover:(ssl://a:1,https://b:2)", `unsupported scheme "https"`},
		{"ssl://a:1?transport.verifyHostName=false", `option "transport.verifyHostName": addresses take no options; failover options go after the list: failover:(ssl://a:1)?option=value; TLS settings go in Options.TLS`},
		{"ssl://", "no host"},
		{"ssl://a:0", `invalid port "0"`},
		{"stomp+ssl://::1", "needs brackets"},
		{"tcp://a:1?randomize=false", `option "randomize": addresses take no options`},
		{"failover:tcp://a:1,tcp://b:2?randomize=false", `option "randomize": addresses take no options; failover options go after the list: failover:(tcp://b:2)?option=value`},
		{"failover:(tcp://a:1?wireFormat.maxInactivityDuration=0)", `option "wireFormat.maxInactivityDuration"`},
		{"tcp://a:1#x", "a fragment is not allowed"},
		{"tcp://a:1/path", "a path is not allowed"},
		{"tcp://u:p@a:1", "user info is not allowed"},
		{"tcp://:1", "no host"},
		{"tcp://a:0", `invalid port "0"`},
		{"tcp://a:65536", `invalid port "65536"`},
		{"tcp://a:x", `invalid port "x"`},
		{"tcp://a:01", `invalid port "01"`},
		{"tcp://::1", "needs brackets"},
		{"tcp://[::1", "missing ']'"},
		{"tcp://[1.2.3.4]:1", "is not an IPv6 address"},
		{"tcp://a b:1", `invalid character ' '`},
		{"failover:()", "empty address"},
		{"failover:(tcp://a:1,,tcp://b:2)", "empty address"},
		{"failover:(tcp://a:1", "missing ')'"},
		{"failover:(tcp://a:1)x", `unexpected "x" after the address list`},
		{"failover:(static:(tcp://a:1))", "nested composite URIs are not supported"},
		{"failover:tcp://a:1)", "unbalanced parentheses"},
		{"failover:(tcp://a:1)?backup=true", `unknown option "backup" (supported: initialReconnectDelay, maxReconnectAttempts, maxReconnectDelay, randomize, reconnectDelayExponent, startupMaxReconnectAttempts, timeout, updateURIsSupported, useExponentialBackOff)`},
		{"failover:(tcp://a:1)?Randomize=false", `unknown option "Randomize" (option names are case-sensitive: did you mean "randomize"?)`},
		{"failover:(tcp://a:1)?jms.prefetchPolicy.all=1", `unknown option "jms.prefetchPolicy.all"`},
		{"failover:(tcp://a:1)?randomize", `option "randomize" has no value`},
		{"failover:(tcp://a:1)?randomize=yes", `option randomize: "yes" is not true or false`},
		{"failover:(tcp://a:1)?randomize=false&randomize=true", `option "randomize" given twice`},
		{"failover:(tcp://a:1)?initialReconnectDelay=-1", "option initialReconnectDelay: -1 out of range"},
		{"failover:(tcp://a:1)?initialReconnectDelay=1.5", "not a whole number of milliseconds"},
		{"failover:(tcp://a:1)?maxReconnectDelay=99999999999999999999", "not a whole number of milliseconds"},
		{"failover:(tcp://a:1)?maxReconnectDelay=9223372036855", "out of range"},
		{"failover:(tcp://a:1)?timeout=-2", "option timeout: -2 out of range"},
		{"failover:(tcp://a:1)?reconnectDelayExponent=0.5", "below 1"},
		{"failover:(tcp://a:1)?reconnectDelayExponent=NaN", "not a number"},
		{"failover:(tcp://a:1)?reconnectDelayExponent=+Inf", "not a number"},
		{"failover:(tcp://a:1)?maxReconnectAttempts=-2", "below -1"},
		{"failover:(tcp://a:1)?maxReconnectAttempts=3000000000", "not a whole number"},
		{"failover:(tcp://a:1)?startupMaxReconnectAttempts=x", "not a whole number"},
		{"failover:(tcp://a:1)?timeout=%zz", `invalid URL escape "%zz"`},
	}
	for _, tt := range tests {
		u, err := ParseURL(tt.in)
		if err == nil {
			t.Errorf("ParseURL(%q) = %v, want an error", tt.in, u)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseURL(%q) error %q, want it to contain %q", tt.in, err, tt.want)
		}
		if !strings.HasPrefix(err.Error(), "failover: URL ") {
			t.Errorf("ParseURL(%q) error %q does not name the URL", tt.in, err)
		}
	}
}

func TestAddrTLS(t *testing.T) {
	for scheme, want := range map[string]bool{
		"tcp": false, "stomp": false, "stomp+tcp": false, "STOMP": false, "nio": false, "": false,
		"ssl": true, "SSL": true, "stomp+ssl": true, "Stomp+Ssl": true,
	} {
		if got := (Addr{Scheme: scheme, Host: "a:1"}).TLS(); got != want {
			t.Errorf("Addr{Scheme: %q}.TLS() = %v, want %v", scheme, got, want)
		}
	}
}

func TestValidateSchemes(t *testing.T) {
	// A URL built by hand may spell a scheme as ParseURL accepts it.
	for _, scheme := range []string{"tcp", "ssl", "stomp", "stomp+tcp", "stomp+ssl", "SSL"} {
		u := withDefaults(nil, Addr{Scheme: scheme, Host: "a:1"})
		if err := u.validate(); err != nil {
			t.Errorf("scheme %q: %v", scheme, err)
		}
	}
	for _, scheme := range []string{"", "nio", "tls", "https"} {
		u := withDefaults(nil, Addr{Scheme: scheme, Host: "a:1"})
		if err := u.validate(); err == nil || !strings.Contains(err.Error(), "unsupported scheme") {
			t.Errorf("scheme %q: %v, want unsupported scheme", scheme, err)
		}
	}
}

func TestParseAnnounced(t *testing.T) {
	tests := []struct {
		entry string
		via   Addr
		want  Addr
	}{
		{"tcp://b:1", tcp("a:1"), tcp("b:1")},
		{"tcp://b:1", ssl("a:1"), tcp("b:1")},
		{"ssl://b:2", tcp("a:1"), ssl("b:2")},
		{"stomp+ssl://b", tcp("a:1"), ssl("b:61614")},
		{"stomp://b", ssl("a:1"), tcp("b:61613")},
		// A bare entry is reached as the announcing broker was.
		{"b:3", tcp("a:1"), tcp("b:3")},
		{"b:3", ssl("a:1"), ssl("b:3")},
		{"b", tcp("a:1"), tcp("b:61613")},
		{"b", ssl("a:1"), ssl("b:61614")},
		{"[::1]:4", ssl("a:1"), ssl("[::1]:4")},
		{"b:3", Addr{Scheme: "stomp+ssl", Host: "a:1"}, ssl("b:3")},
	}
	for _, tt := range tests {
		got, err := parseAnnounced(tt.entry, tt.via)
		if err != nil || got != tt.want {
			t.Errorf("parseAnnounced(%q, %v) = %v, %v; want %v", tt.entry, tt.via, got, err, tt.want)
		}
	}
	for _, entry := range []string{"nio://b:1", "b:x", "b:1/path", "b:1?x=y", "::1"} {
		if a, err := parseAnnounced(entry, ssl("a:1")); err == nil {
			t.Errorf("parseAnnounced(%q) = %v, want an error", entry, a)
		}
	}
}

func TestOptionNamesAreTheDocumentedOnes(t *testing.T) {
	want := []string{"initialReconnectDelay", "maxReconnectAttempts", "maxReconnectDelay", "randomize",
		"reconnectDelayExponent", "startupMaxReconnectAttempts", "timeout", "updateURIsSupported", "useExponentialBackOff"}
	if got := OptionNames(); !reflect.DeepEqual(got, want) {
		t.Fatalf("OptionNames() = %v, want %v", got, want)
	}
}

func TestBackOff(t *testing.T) {
	u := withDefaults(func(u *URL) {
		u.InitialReconnectDelay = 10 * time.Millisecond
		u.MaxReconnectDelay = 100 * time.Millisecond
	})
	var got []time.Duration
	for d, i := u.InitialReconnectDelay, 0; i < 6; i++ {
		got = append(got, d)
		d = u.nextDelay(d)
	}
	want := []time.Duration{10, 20, 40, 80, 100, 100}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("exponential delays %v, want %v", got, want)
	}
	u.UseExponentialBackOff = false
	if d := u.nextDelay(80 * time.Millisecond); d != 10*time.Millisecond {
		t.Errorf("without back-off the delay is %v, want initialReconnectDelay", d)
	}
}

func TestAttemptLimit(t *testing.T) {
	tests := []struct {
		max, startup       int
		wantStart, wantRun int
	}{
		{-1, -1, -1, -1},
		{0, -1, 0, 0},
		{5, -1, 5, 5},
		{-1, 3, 3, -1},
		{0, 2, 2, 0},
	}
	for _, tt := range tests {
		u := withDefaults(func(u *URL) { u.MaxReconnectAttempts, u.StartupMaxReconnectAttempts = tt.max, tt.startup })
		if got := u.attemptLimit(true); got != tt.wantStart {
			t.Errorf("max %d startup %d: startup limit %d, want %d", tt.max, tt.startup, got, tt.wantStart)
		}
		if got := u.attemptLimit(false); got != tt.wantRun {
			t.Errorf("max %d startup %d: limit %d, want %d", tt.max, tt.startup, got, tt.wantRun)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"tcp://a:61613",
		"failover:(tcp://a:1,tcp://b:2)?randomize=false&timeout=100",
		"failover:tcp://a:1,tcp://[::1]:2",
		"failover://(tcp://a)?reconnectDelayExponent=1.5&maxReconnectAttempts=3",
		"failover:(tcp://a:1)?maxReconnectDelay=%31&&",
		"ssl://a:1",
		"ssl://a",
		"stomp+ssl://[::1]",
		"stomp://a,stomp+tcp://b:2",
		"failover:(ssl://a:61614,tcp://b:61613,stomp+ssl://c)?randomize=false&maxReconnectAttempts=2",
		"failover:ssl://a:1,ssl://[::1]:2",
		"ssl://a:1?transport.verifyHostName=false",
		"failover:(tcp://a:1)?x=y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			if u != nil {
				t.Fatalf("ParseURL(%q) returned a URL with error %v", s, err)
			}
			return
		}
		if len(u.Addrs) == 0 {
			t.Fatalf("ParseURL(%q) gave no address", s)
		}
		if err := u.validate(); err != nil {
			t.Fatalf("ParseURL(%q) = %+v, which does not validate: %v", s, u, err)
		}
		again, err := ParseURL(u.String())
		if err != nil {
			t.Fatalf("ParseURL(%q).String() = %q does not parse: %v", s, u.String(), err)
		}
		if !reflect.DeepEqual(again, u) {
			t.Fatalf("ParseURL(%q) = %+v, but its String %q parses to %+v", s, u, u.String(), again)
		}
	})
}
