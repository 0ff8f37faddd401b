package queue

import "github.com/raftmq/raftmq/queue/dest"

// Pattern is a destination pattern with ActiveMQ's wildcards (queue/dest).
type Pattern = dest.Pattern

// CompilePattern is dest.Compile.
func CompilePattern(s string) (Pattern, error) { return dest.Compile(s) }

// MustCompilePattern is dest.MustCompile.
func MustCompilePattern(s string) Pattern { return dest.MustCompile(s) }

// SplitDestination is dest.Split: a destination's kind ("queue" or
// "topic") and name.
func SplitDestination(d string) (kind, name string, ok bool) { return dest.Split(d) }
