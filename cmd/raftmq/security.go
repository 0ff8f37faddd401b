package main

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/raftmq/raftmq/gossip"
	"github.com/raftmq/raftmq/node"
	"github.com/raftmq/raftmq/transport/auth"
	"github.com/raftmq/raftmq/transport/tlsconf"
)

// securityFlags are the server's security settings that name files: they
// are loaded once the flags are parsed (apply), and reloaded on SIGHUP by
// the node.
type securityFlags struct {
	cert, key, ca string
	clientCA      string
	clientCerts   string
	users, acl    string
	anonymous     bool
}

// apply loads the files the flags name into cfg.
func (s *securityFlags) apply(cfg *node.Config) error {
	if s.cert != "" || s.key != "" || s.ca != "" {
		if s.cert == "" || s.key == "" || s.ca == "" {
			// Without the nodes' CA no peer could be verified: raft
			// and joins would fail at every handshake.
			return errors.New("TLS needs --tls-cert, --tls-key and --tls-ca (the CA that signs the group's nodes)")
		}
		src, err := tlsconf.Load(tlsconf.Files{Cert: s.cert, Key: s.key, CA: s.ca})
		if err != nil {
			return err
		}
		cfg.TLS = src
	}
	switch s.clientCerts {
	case "request":
		cfg.StompClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		cfg.StompClientAuth = tls.RequireAndVerifyClientCert
	}
	if (cfg.StompClientAuth != tls.NoClientCert) != (s.clientCA != "") {
		return errors.New("--stomp-client-certs request|require and --stomp-client-ca go together")
	}
	if s.clientCA != "" {
		if cfg.TLS == nil {
			return errors.New("--stomp-client-ca needs --tls-cert and --tls-key")
		}
		// The nodes' CA is trusted too: bridges from other groups present
		// node certificates (and log in like any client).
		src, err := tlsconf.Load(tlsconf.Files{Cert: s.cert, Key: s.key, CA: s.clientCA, ExtraCA: s.ca})
		if err != nil {
			return err
		}
		cfg.StompTLS = src
	}
	if s.users == "" && (s.acl != "" || s.anonymous) {
		return errors.New("--acl and --allow-anonymous need --users")
	}
	if s.users != "" {
		g, err := auth.NewGuard(auth.Options{UsersFile: s.users, ACLFile: s.acl, AllowAnonymous: s.anonymous})
		if err != nil {
			return err
		}
		cfg.Guard = g
	}
	if cfg.GossipKeyring != "" {
		if len(cfg.GossipKeys) > 0 {
			return errors.New("give either --gossip-key or --gossip-keyring, not both")
		}
		keys, err := gossip.LoadKeyring(cfg.GossipKeyring)
		if err != nil {
			return err
		}
		cfg.GossipKeys = keys
	}
	if cfg.BrokerPassword != "" && cfg.BrokerUser == "" {
		return fmt.Errorf("--broker-password needs --broker-user")
	}
	return nil
}
