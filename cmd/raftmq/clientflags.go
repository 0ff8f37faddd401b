package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/raftmq/raftmq/transport/failover"
)

// clientSecurity is how the client verbs log in and verify brokers: the
// same flags for STOMP (send, receive, bench) and for the admin API.
type clientSecurity struct {
	user, password string
	ca, cert, key  string
	vhost          string
}

func (c *clientSecurity) register(fs *flag.FlagSet) {
	fs.StringVar(&c.user, "user", os.Getenv("RAFTMQ_USER"), "login, when the broker requires one (also RAFTMQ_USER)")
	fs.StringVar(&c.password, "password", "", "password of --user (prefer RAFTMQ_PASSWORD: flags show in ps)")
	fs.StringVar(&c.ca, "tls-ca", "", "PEM CA bundle verifying the brokers' certificates (ssl:// URLs, and HTTPS for the admin API); default: the system's CAs")
	fs.StringVar(&c.cert, "tls-cert", "", "PEM client certificate, for brokers that ask for one")
	fs.StringVar(&c.key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.vhost, "vhost", "", "the CONNECT frame's host header, the virtual host (raftmq and ActiveMQ ignore it; RabbitMQ's default is /); default localhost")
}

// login returns the credentials, the password from RAFTMQ_PASSWORD when
// the flag left it out.
func (c *clientSecurity) login() (user, password string) {
	password = c.password
	if password == "" {
		password = os.Getenv("RAFTMQ_PASSWORD")
	}
	return c.user, password
}

// tlsConfig is the TLS template for ssl:// addresses and HTTPS; nil when
// no TLS flag was given (ssl:// then trusts the system's CAs).
func (c *clientSecurity) tlsConfig() (*tls.Config, error) {
	if c.ca == "" && c.cert == "" && c.key == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.ca != "" {
		pem, err := os.ReadFile(c.ca)
		if err != nil {
			return nil, fmt.Errorf("tls-ca: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls-ca %s: no PEM certificate in it", c.ca)
		}
	}
	if (c.cert == "") != (c.key == "") {
		return nil, usageError{fmt.Errorf("give --tls-cert and --tls-key together")}
	}
	if c.cert != "" {
		kp, err := tls.LoadX509KeyPair(c.cert, c.key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{kp}
	}
	return conf, nil
}

// dial connects send's and receive's failover client, logged in and with
// the TLS settings.
func (c *clientSecurity) dial(ctx context.Context, url string) (*failover.Client, error) {
	conf, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	user, password := c.login()
	return failover.Dial(ctx, url, failover.Options{
		Login: user, Passcode: password, TLS: conf, Host: c.vhost,
		Logger:    clientLogger(),
		HeartBeat: [2]time.Duration{5 * time.Second, 5 * time.Second},
	})
}

// adminURL is the admin API's URL of uri at addr: HTTPS when the address
// says so or TLS flags were given.
func (c *clientSecurity) adminURL(addr, uri string) string {
	switch {
	case strings.HasPrefix(addr, "https://"), strings.HasPrefix(addr, "http://"):
		return strings.TrimSuffix(addr, "/") + uri
	case c.ca != "" || c.cert != "":
		return "https://" + addr + uri
	}
	return "http://" + addr + uri
}

// httpClient is the admin API's client.
func (c *clientSecurity) httpClient() (*http.Client, error) {
	conf, err := c.tlsConfig()
	if err != nil || conf == nil {
		return http.DefaultClient, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = conf
	return &http.Client{Transport: tr}, nil
}

// authorize puts the credentials on an admin request.
func (c *clientSecurity) authorize(req *http.Request) {
	if user, password := c.login(); user != "" {
		req.SetBasicAuth(user, password)
	}
}
