// Package tlsconf owns the broker's TLS material: this node's certificate
// and key and the CA bundle it trusts, read from PEM files, and the
// *tls.Config values built from them for every TLS endpoint: the STOMP
// client listener, raft traffic between the nodes of a group (mutual TLS),
// bridges to other groups (a STOMP client presenting the node certificate),
// and the admin HTTP server and node-to-node HTTP calls.
//
// Reload model. A Source holds one immutable snapshot of the material
// (certificate chain, key, CA pool) behind an atomic pointer. Reload, called
// on SIGHUP, reads the files again and swaps in a new snapshot only when all
// of them parse and the key matches the certificate; on any error the old
// snapshot stays and the error names the file. Connections never see a
// swap: a TLS connection keeps whatever it handshook with, and only new
// handshakes read the new snapshot. So a reload drops nothing.
//
// The server config built by ServerConfig reads the current snapshot at
// every handshake (through GetConfigForClient), both the certificate it
// presents and the CA pool it verifies clients against. crypto/tls checks a
// resumed session's client chain against that same pool, so a CA removed by
// a reload is not let back in through a session ticket. The client config
// built by ClientConfig fixes the CA pool when it is built and reads the
// client certificate at every handshake; users that keep one client config
// for many connections, like http.Transport, should dial through
// Source.DialContext, which builds one per connection.
//
// NewCA and IssueCert make a development CA and node certificates (ECDSA
// P-256) for the `raftmq cert` command and for tests.
//
// PlaintextOnTLS lets a TLS listener tell a plaintext client that it is on
// the wrong port, in the client's own protocol, instead of closing on it.
package tlsconf
