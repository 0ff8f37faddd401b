package selector

import "testing"

func benchMatches(b *testing.B, src string) {
	s, err := Compile(src)
	if err != nil {
		b.Fatal(err)
	}
	headers := map[string]string{
		"type": "order", "price": "150", "region": "us", "customer": "acme-corp-international",
		"destination": "/queue/orders.eu.paid", "priority": "4", "JMSPriority": "4",
	}
	lookup := func(name string) (string, bool) {
		v, ok := headers[name]
		return v, ok
	}
	if !s.Matches(lookup) {
		b.Fatalf("%q does not match", src)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Matches(lookup)
	}
}

// BenchmarkMatches is the typical selector.
func BenchmarkMatches(b *testing.B) {
	benchMatches(b, "type = 'order' AND price > 100 AND region IN ('eu','us')")
}

func BenchmarkMatchesLike(b *testing.B) {
	benchMatches(b, "customer LIKE 'acme%' AND destination LIKE '%.e_.%'")
}

func BenchmarkMatchesArith(b *testing.B) {
	benchMatches(b, "price * 1.2 + 5 BETWEEN 100 AND 200 AND JMSPriority >= 4")
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile("type = 'order' AND price > 100 AND region IN ('eu','us')"); err != nil {
			b.Fatal(err)
		}
	}
}
