package dest

import "testing"

func TestPattern(t *testing.T) {
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{">", "a", true},
		{">", "a.b.c", true},
		{"a", "a", true},
		{"a", "a.b", false},
		{"a", "ab", false},
		{"a.b", "a", false},
		{"a.>", "a", false}, // '>' is one element or more, as in ActiveMQ
		{"a.>", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "b.a", false},
		{"a.>", "ab", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{"a.*", "a.b", true},
		{"a.*", "a", false},
		{"a.*", "a.b.c", false},
		{"*.b", "x.b", true},
		{"*.b", "x.c", false},
		{"a.*.c.>", "a.x.c", false},
		{"a.*.c.>", "a.x.c.d.e", true},
		{"a.*.c.>", "a.x.d", false},
		{"orders.eu", "orders.eu", true},
		{"orders.eu", "orders.eu.paid", false},
	}
	for _, c := range cases {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.pattern, err)
		}
		if got := p.Match(c.name); got != c.want {
			t.Errorf("%q matches %q = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
	for _, bad := range []string{"", "a..b", ">.a", "a.b*", "a>", ".a", "a."} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("Compile(%q) accepted", bad)
		}
	}
}

func TestSplit(t *testing.T) {
	if k, n, ok := Split("/queue/a.b"); !ok || k != "queue" || n != "a.b" {
		t.Errorf("queue: %q %q %v", k, n, ok)
	}
	if k, n, ok := Split("/topic/x"); !ok || k != "topic" || n != "x" {
		t.Errorf("topic: %q %q %v", k, n, ok)
	}
	if _, _, ok := Split("/temp-queue/x"); ok {
		t.Error("temp-queue accepted")
	}
}

func BenchmarkPatternMatch(b *testing.B) {
	p := MustCompile("orders.*.paid.>")
	for b.Loop() {
		if !p.Match("orders.eu.paid.card.visa") {
			b.Fatal("no match")
		}
	}
}

// TestPatternCoversWildcardNames: a wildcard subscription's name matches
// a rule only when the rule covers every name it stands for.
func TestPatternCoversWildcardNames(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"prices.*", "prices.*", true},
		{"prices.*", "prices.>", false},
		{"prices.>", "prices.>", true},
		{"prices.>", "prices.*.eu", true},
		{">", "*", true},
		{"prices.eu", "prices.*", false},
		{"*.eu", "*.eu", true},
		{"*.eu", ">", false},
	} {
		if got := MustCompile(c.pattern).Match(c.name); got != c.want {
			t.Errorf("%q matches %q: %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}
