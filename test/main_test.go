package test

import (
	"fmt"
	"os"
	"testing"
)

// raftmqBin is the binary built once for the suite.
var raftmqBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "raftmq-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	raftmqBin, err = BuildBinary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
