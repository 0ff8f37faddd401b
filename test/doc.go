// Package test holds raftmq's multi-process suites: the built binary run
// as real child processes on loopback ports chosen at run time, killed with
// SIGKILL where a durability promise is at stake. Nothing here is needed
// by the binary.
package test
