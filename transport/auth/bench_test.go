package auth

import (
	"fmt"
	"strings"
	"testing"
)

// benchACL is an ACL of a plausible size: a few dozen entries, the one
// that matches near the end.
func benchACL() string {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "queue app%d.*.orders.> read=team%d,ops write=user:svc%d admin=admins\n", i, i, i)
		fmt.Fprintf(&b, "topic app%d.events.> read=* write=team%d\n", i, i)
	}
	b.WriteString("queue billing.> read=billing write=billing,producers\n")
	b.WriteString("broker * read=ops admin=admins\n")
	return b.String()
}

func BenchmarkAllowed(b *testing.B) {
	g := aclGuard(b, benchACL(), false)
	p := &Principal{User: "app", Groups: []string{"consumers", "billing-readers", "producers"}}
	b.ReportAllocs()
	for b.Loop() {
		if !g.Allowed(p, "/queue/billing.eu.invoices", Write) {
			b.Fatal("denied")
		}
	}
}

func BenchmarkAllowedDenied(b *testing.B) {
	g := aclGuard(b, benchACL(), false)
	p := &Principal{User: "app", Groups: []string{"consumers", "billing-readers", "producers"}}
	b.ReportAllocs()
	for b.Loop() {
		if g.Allowed(p, "/queue/app7.eu.orders.paid", Write) {
			b.Fatal("allowed")
		}
	}
}

func TestAllowedDoesNotAllocate(t *testing.T) {
	g := aclGuard(t, benchACL(), false)
	p := &Principal{User: "app", Groups: []string{"producers"}}
	n := testing.AllocsPerRun(100, func() {
		g.Allowed(p, "/queue/billing.eu.invoices", Write)
		g.Allowed(p, "/topic/app3.events.x", Read)
		g.Allowed(p, BrokerResource, Admin)
	})
	if n != 0 {
		t.Errorf("%v allocations per check", n)
	}
}
