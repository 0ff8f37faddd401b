package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/raftmq/raftmq/transport/tlsconf"
)

// runCert makes a development CA and certificates signed by it:
//
//	raftmq cert ca -dir certs
//	raftmq cert node -dir certs -name n1 -group orders -hosts n1.example.com
//	raftmq cert ca -dir clients
//	raftmq cert client -dir clients -name app
//
// A production deployment takes its certificates from the company's CA;
// these are for trying TLS out and for tests.
func runCert(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
			fmt.Print(certUsage)
			return flag.ErrHelp
		}
		return usageError{fmt.Errorf("want ca, node or client (raftmq cert -h)")}
	}
	kind, rest := args[0], args[1:]
	fs := flag.NewFlagSet("cert "+kind, flag.ContinueOnError)
	dir := fs.String("dir", "raftmq-certs", "directory of the CA (ca.crt, ca.key) and of the files made")
	name := fs.String("name", "", "CA: its common name (default raftmq-dev-ca); node or client: the files' base name and common name")
	hosts := fs.String("hosts", "", "node: comma-separated DNS names and IP addresses it is reached at (default: localhost,127.0.0.1)")
	group := fs.String("group", "default", "node: the raft group it is a member of (the server's --group)")
	days := fs.Int("days", 0, "validity in days (CA: 3650, others: 365)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), certUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	validity := func(def int) time.Duration {
		if *days > 0 {
			def = *days
		}
		return time.Duration(def) * 24 * time.Hour
	}
	switch kind {
	case "ca":
		n := *name
		if n == "" {
			n = "raftmq-dev-ca"
		}
		if err := tlsconf.NewCA(*dir, n, validity(3650)); err != nil {
			return err
		}
		fmt.Printf("wrote %s/%s and %s/%s (keep the key secret)\n", *dir, tlsconf.CACertFile, *dir, tlsconf.CAKeyFile)
		return nil
	case "node", "client":
		if *name == "" {
			return usageError{fmt.Errorf("cert %s: -name is required", kind)}
		}
		req := tlsconf.CertRequest{CADir: *dir, OutDir: *dir, Name: *name, Validity: validity(365), Client: true}
		if kind == "node" {
			// A node's certificate serves (raft, the admin API, the
			// client listener) and is shown as a client's (raft,
			// bridges, joining).
			req.Server = true
			req.Group = *group
			req.Hosts = splitAddrs(*hosts)
			if len(req.Hosts) == 0 {
				req.Hosts = []string{"localhost", "127.0.0.1"}
			}
		} else if *hosts != "" {
			return usageError{fmt.Errorf("cert client: -hosts is for node certificates")}
		} else if *group != "default" {
			return usageError{fmt.Errorf("cert client: -group is for node certificates")}
		}
		certPath, keyPath, err := tlsconf.IssueCert(req)
		if err != nil {
			return err
		}
		fmt.Printf("wrote %s and %s\n", certPath, keyPath)
		return nil
	}
	fmt.Fprint(os.Stderr, certUsage)
	return usageError{fmt.Errorf("unknown kind %q: want ca, node or client", kind)}
}

const certUsage = `usage: raftmq cert ca|node|client [flags]

Makes a development CA and certificates it signs, ECDSA P-256:

  raftmq cert ca -dir certs                         certs/ca.crt, certs/ca.key
  raftmq cert node -dir certs -name n1 -group orders -hosts n1.example.com
                                                    certs/n1.crt, certs/n1.key
  raftmq cert ca -dir clients                       a second CA, for clients
  raftmq cert client -dir clients -name app         clients/app.crt, clients/app.key

Give each node --tls-cert certs/n1.crt --tls-key certs/n1.key --tls-ca certs/ca.crt.
A node certificate names its group (a URI SAN, urn:raftmq:group:NAME); members
admit each other by that name and the CA, so one CA can sign the nodes of
several groups. Hosts are the names clients and other groups dial; members
do not check each other's host names. Client certificates come from another
CA (--stomp-client-ca clients/ca.crt).
`
