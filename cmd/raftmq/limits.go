package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/raftmq/raftmq/queue"
)

// sizeValue is a flag of bytes: a number with an optional unit, binary
// (KiB, MiB, GiB, TiB) or decimal (KB, MB, GB, TB).
type sizeValue struct{ v *int64 }

func (s sizeValue) String() string {
	if s.v == nil {
		return ""
	}
	return formatSize(*s.v)
}

func (s sizeValue) Set(text string) error {
	n, err := parseSize(text)
	if err != nil {
		return err
	}
	*s.v = n
	return nil
}

func (sizeValue) typeName() string { return "size" }

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// parseSize reads "1024", "64MiB" or "10GB".
func parseSize(text string) (int64, error) {
	s := strings.TrimSpace(text)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a number of bytes, optionally with KiB, MiB, GiB, TiB (or KB, MB, GB, TB)", text)
	}
	return n * mult, nil
}

// formatSize writes n in the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// fullPolicyValue is --queue-full.
type fullPolicyValue struct{ p *queue.FullPolicy }

func (f fullPolicyValue) String() string {
	if f.p == nil {
		return ""
	}
	return f.p.String()
}

func (f fullPolicyValue) Set(s string) error {
	p, err := queue.ParseFullPolicy(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return err
	}
	*f.p = p
	return nil
}

func (fullPolicyValue) typeName() string { return "block|fail" }

// loadQueueLimits reads a --queue-limits file: one rule per line, a
// queue name pattern (ActiveMQ wildcards) and the settings that differ
// from the defaults (def, from the --queue-* flags):
//
//	# pattern   settings
//	orders.>    max-messages=100000 max-bytes=1GiB on-full=block block-timeout=30s
//	metrics.*   max-messages=10000 on-full=fail
//
// The first rule whose pattern matches a queue gives its limit.
func loadQueueLimits(path string, def queue.DestLimit) ([]queue.LimitRule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("queue limits: %w", err)
	}
	defer f.Close()
	var rules []queue.LimitRule
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		rule, err := parseLimitRule(fields, def)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		rules = append(rules, rule)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("queue limits %s: %w", path, err)
	}
	return rules, nil
}

func parseLimitRule(fields []string, def queue.DestLimit) (queue.LimitRule, error) {
	p, err := queue.CompilePattern(fields[0])
	if err != nil {
		return queue.LimitRule{}, err
	}
	if len(fields) == 1 {
		return queue.LimitRule{}, fmt.Errorf("pattern %s: no settings (max-messages, max-bytes, on-full, block-timeout)", fields[0])
	}
	l := def
	for _, kv := range fields[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return queue.LimitRule{}, fmt.Errorf("%q: want name=value", kv)
		}
		switch k {
		case "max-messages":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return queue.LimitRule{}, fmt.Errorf("max-messages %q: want a number, 0 for no limit", v)
			}
			l.MaxMessages = n
		case "max-bytes":
			if l.MaxBytes, err = parseSize(v); err != nil {
				return queue.LimitRule{}, fmt.Errorf("max-bytes: %w", err)
			}
		case "on-full":
			if l.OnFull, err = queue.ParseFullPolicy(v); err != nil {
				return queue.LimitRule{}, err
			}
		case "block-timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return queue.LimitRule{}, fmt.Errorf("block-timeout %q: want a duration such as 30s, 0 to wait as long as it takes", v)
			}
			l.BlockTimeout = d
		default:
			return queue.LimitRule{}, fmt.Errorf("unknown setting %q (max-messages, max-bytes, on-full, block-timeout)", k)
		}
	}
	return queue.LimitRule{Pattern: p, Limit: l}, nil
}
