package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/network"
	"github.com/raftmq/raftmq/queue"
	"github.com/raftmq/raftmq/transport"
	"github.com/raftmq/raftmq/transport/auth"
	"github.com/raftmq/raftmq/transport/tlsconf"
)

// Defaults for Config. The STOMP port is ActiveMQ's, so existing clients
// find the broker where they looked before.
const (
	DefaultID                 = "n1"
	DefaultGroup              = "default"
	DefaultDataDir            = "./raftmq-data"
	DefaultStompAddr          = "127.0.0.1:61613"
	DefaultRaftAddr           = "127.0.0.1:61619"
	DefaultHTTPAddr           = "127.0.0.1:8161"
	DefaultServerHeartBeat    = time.Second
	DefaultSnapshotThreshold  = 2048
	DefaultSnapshotInterval   = 10 * time.Second
	DefaultTrailingLogs       = 1024
	DefaultMaxBatchCommands   = 1024
	DefaultMaxBatchBytes      = 4 << 20
	DefaultMaxInflightEntries = 64
	DefaultMaxConnections     = 1000
	// DefaultStoreLimit is the store limit `raftmq server` starts with
	// (queue.Config.StoreLimit): 2 GiB of messages, which also bounds the
	// leader's bookkeeping of small ones to about 8 million messages
	// (queue.MessageOverhead each). A Config used as a library leaves it
	// at 0, none.
	DefaultStoreLimit = 2 << 30
)

// Config is everything one broker process needs. Flags, a config file and
// the environment all fill this one struct; a zero field means its
// default (see Validate).
type Config struct {
	// ID names this node in its raft group, for ever: a node that comes
	// back with another ID is a new member.
	ID string
	// Group names the raft group (the broker, to clients and to other
	// groups of a network).
	Group string
	// DataDir holds the raft log, snapshots (DataDir/raft) and the state
	// (DataDir/fsm).
	DataDir string
	// StompAddr is where the leader listens for STOMP clients; a follower
	// keeps it closed. Port 0 picks a free port each time the node starts
	// serving (tests).
	StompAddr string
	// RaftAddr is where raft listens for its peers.
	RaftAddr string
	// RaftAdvertise is the address peers reach RaftAddr at, when that
	// differs (NAT, or RaftAddr on all interfaces). Empty means RaftAddr.
	RaftAdvertise string
	// StompAdvertise is the client address other members and clients are
	// told (the CONNECTED frame's raftmq-brokers header), when StompAddr
	// is not dialable as written. Empty means StompAddr.
	StompAdvertise string
	// HTTPAddr is the admin HTTP API's address, open on every member:
	// joins, status and member changes go through it. Port 0 picks a free
	// port (tests); "off" disables it, which only a node that neither
	// joins nor is joined can afford.
	HTTPAddr string
	// HTTPAdvertise is the admin address other members dial, when
	// HTTPAddr is not dialable as written. Empty means HTTPAddr.
	HTTPAdvertise string

	// BootstrapExpect is how many nodes form a new group: a node without
	// raft state waits until it has found that many (through Join and the
	// nodes they know), then all of them bootstrap the same configuration,
	// once. 0 or 1 with no Join: a single-node group. A node with raft
	// state never bootstraps again.
	BootstrapExpect int
	// Join lists admin (HTTP) addresses of members to join through. Any
	// member will do: a follower forwards the request to the leader.
	// Joining is idempotent and retried with backoff until it succeeds.
	Join []string

	// GossipAddr is where this node joins the gossip pool that every node
	// of every group of a network shares (host:port, port 7946 when
	// left out); empty means no gossip.
	GossipAddr string
	// GossipAdvertise is the gossip address others dial, when GossipAddr
	// is not dialable as written. Empty means GossipAddr.
	GossipAdvertise string
	// GossipJoin lists gossip addresses of nodes already in the pool.
	GossipJoin []string
	// GossipKeys, when set, encrypt the pool's traffic (16, 24 or 32
	// bytes each; the first encrypts, all decrypt: see gossip.Config).
	// GossipKeyring names the file they were read from, which Reload
	// reads again to rotate keys without a restart.
	GossipKeys    [][]byte
	GossipKeyring string
	// Network lists this group's links to other groups (--network).
	Network []network.Spec

	// TLS, when set, secures every connection the node makes or takes:
	// raft traffic on mutual TLS (a peer must show a certificate of
	// TLS's CA: every certificate that CA signs is a member), the admin
	// API on HTTPS, the client listener on TLS unless StompPlaintext,
	// and bridges to other groups. Nil: plaintext.
	TLS *tlsconf.Source
	// StompTLS is the client listener's certificate, with the CA of the
	// client certificates it verifies (StompClientAuth): the same
	// certificate as TLS's, but another CA, so that a client's
	// certificate never makes it a member. Nil: TLS's certificate, and
	// no client certificates.
	StompTLS *tlsconf.Source
	// StompPlaintext keeps the client listener plaintext while TLS
	// secures the rest (clients that cannot do TLS yet).
	StompPlaintext bool
	// StompClientAuth is whether the TLS client listener asks clients
	// for certificates and verifies them against StompTLS's CA.
	StompClientAuth tls.ClientAuthType
	// Guard, when it has users, makes clients and admin requests
	// authenticate and checks their rights (transport/auth).
	Guard *auth.Guard
	// BrokerUser and BrokerPassword are what this node presents to other
	// groups' brokers (bridges) and to other members' admin APIs
	// (joining), once they require a login.
	BrokerUser, BrokerPassword string

	Transport transport.Config
	// FSM tunes the pebble store of the replicated state.
	FSM fsm.Options
	// Queue holds the delivery rules. MessageIDPrefix defaults to
	// Group-ID, so message ids tell where a message was accepted.
	Queue queue.Config

	// Logger receives everything the node, raft and the layers it wires
	// log. Nil means slog.Default().
	Logger *slog.Logger

	// SnapshotThreshold is how many log entries since the last snapshot
	// make raft take one (2048). Each entry is a batch of up to
	// MaxBatchCommands commands, often a few hundred KiB under load, so
	// raft's default of 8192 entries let the log grow to gigabytes; the
	// FSM's state (pending messages only) is what a snapshot copies.
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks the threshold (10s): the
	// log grows by this much traffic beyond the threshold, and boltdb
	// keeps the high-water mark as file size (reusing the pages).
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries a snapshot leaves in the log, so a
	// follower slightly behind catches up from the log instead of a whole
	// snapshot (1024, batches as above).
	TrailingLogs uint64

	// Group commit: one raft log entry holds at most MaxBatchCommands
	// commands (1024) and about MaxBatchBytes of them (4 MiB); a single
	// larger proposal still goes, alone. At most MaxInflightEntries
	// entries (64) are in raft at once.
	MaxBatchCommands   int
	MaxBatchBytes      int
	MaxInflightEntries int

	// RaftTimeouts overrides raft's timing; zero fields keep raft's
	// defaults. Tests shorten it (see ShortRaftTimeouts).
	RaftTimeouts RaftTimeouts
}

// RaftTimeouts are raft's failure detection timings. See raft.Config for
// their meaning; zero means raft's default.
type RaftTimeouts struct {
	Heartbeat   time.Duration
	Election    time.Duration
	LeaderLease time.Duration
	Commit      time.Duration
}

// DefaultRaftTimeouts are the node's timings unless configured: half of
// raft's own, so a group on a LAN elects a new leader within about a
// second of losing one (followers wait 0.5-1 s of silence, then vote).
// Raft's heart-beats run on their own connections, apart from log
// replication, so a leader busy with fsyncs still sends them in time.
func DefaultRaftTimeouts() RaftTimeouts {
	return RaftTimeouts{
		Heartbeat:   500 * time.Millisecond,
		Election:    500 * time.Millisecond,
		LeaderLease: 250 * time.Millisecond,
	}
}

// ShortRaftTimeouts returns timings that make a single node or a group on
// one machine elect a leader within tens of milliseconds, for tests.
func ShortRaftTimeouts() RaftTimeouts {
	return RaftTimeouts{
		Heartbeat:   50 * time.Millisecond,
		Election:    50 * time.Millisecond,
		LeaderLease: 50 * time.Millisecond,
		Commit:      5 * time.Millisecond,
	}
}

// apply copies the non-zero timings into c.
func (t RaftTimeouts) apply(c *raft.Config) {
	set := func(dst *time.Duration, v time.Duration) {
		if v != 0 {
			*dst = v
		}
	}
	set(&c.HeartbeatTimeout, t.Heartbeat)
	set(&c.ElectionTimeout, t.Election)
	set(&c.LeaderLeaseTimeout, t.LeaderLease)
	set(&c.CommitTimeout, t.Commit)
}

// Validate fills in defaults and rejects impossible values, including
// those of Transport and Queue.
func (c *Config) Validate() error {
	defStr := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	defStr(&c.ID, DefaultID)
	defStr(&c.Group, DefaultGroup)
	defStr(&c.DataDir, DefaultDataDir)
	defStr(&c.StompAddr, DefaultStompAddr)
	defStr(&c.RaftAddr, DefaultRaftAddr)
	defStr(&c.HTTPAddr, DefaultHTTPAddr)
	if c.Transport.HeartBeat[0] == 0 {
		// Offer heart-beats every second: a client that asks for them
		// notices a leader that froze (a long pause, a partition that
		// drops packets) within seconds and fails over, where the
		// transport's own default of 10s would leave it waiting ~20s.
		// An idle connection costs one byte a second.
		c.Transport.HeartBeat[0] = DefaultServerHeartBeat
	}
	defStr(&c.Queue.MessageIDPrefix, c.Group+"-"+c.ID)
	if c.Transport.MaxConnections == 0 {
		// ActiveMQ's example configurations set maximumConnections to
		// 1000; a broker without a bound runs out of file descriptors,
		// and then serves nobody, when a client leaks connections.
		c.Transport.MaxConnections = DefaultMaxConnections
	}
	if c.RaftTimeouts == (RaftTimeouts{}) {
		c.RaftTimeouts = DefaultRaftTimeouts()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defInt(&c.MaxBatchCommands, DefaultMaxBatchCommands)
	defInt(&c.MaxBatchBytes, DefaultMaxBatchBytes)
	defInt(&c.MaxInflightEntries, DefaultMaxInflightEntries)

	var errs []error
	if _, _, err := net.SplitHostPort(c.StompAddr); err != nil {
		errs = append(errs, fmt.Errorf("stomp address: %w", err))
	}
	if host, _, err := net.SplitHostPort(c.RaftAddr); err != nil {
		errs = append(errs, fmt.Errorf("raft address: %w", err))
	} else if ip := net.ParseIP(host); c.RaftAdvertise == "" && (host == "" || ip != nil && ip.IsUnspecified()) {
		// Raft would refuse it too, less clearly.
		errs = append(errs, fmt.Errorf("raft address %q listens on every interface: set an advertise address peers can dial", c.RaftAddr))
	}
	if c.RaftAdvertise != "" {
		if _, err := resolveAdvertise(c.RaftAdvertise); err != nil {
			errs = append(errs, err)
		}
	}
	if len(c.ID) > 128 || strings.ContainsAny(c.ID, " ,/\t\r\n") {
		errs = append(errs, fmt.Errorf("node id %q: at most 128 characters, without spaces, commas or slashes", c.ID))
	}
	if c.Group == "" || len(c.Group) > 128 || strings.ContainsAny(c.Group, " ,/\t\r\n") {
		// Group names travel in comma-separated network paths and in
		// group/id gossip names.
		errs = append(errs, fmt.Errorf("group %q: at most 128 characters, without spaces, commas or slashes", c.Group))
	}
	for _, l := range c.Network {
		if l.Kind == network.Gossip && c.GossipAddr == "" {
			errs = append(errs, errors.New("network gossip: join a gossip pool with -gossip"))
		}
	}
	if c.GossipAddr == "" && (len(c.GossipJoin) > 0 || len(c.GossipKeys) > 0) {
		errs = append(errs, errors.New("gossip-join and gossip-key need -gossip"))
	}
	if c.TLS == nil && (c.StompPlaintext || c.StompClientAuth != tls.NoClientCert) {
		errs = append(errs, errors.New("stomp TLS settings need a certificate (-tls-cert, -tls-key)"))
	}
	if c.TLS != nil {
		// Members admit each other by the group their certificates name.
		if err := c.TLS.RequireGroup(c.Group); err != nil {
			errs = append(errs, err)
		}
	}
	if c.StompPlaintext && c.StompClientAuth != tls.NoClientCert {
		errs = append(errs, errors.New("client certificates need the TLS client listener: drop stomp-plaintext"))
	}
	if c.StompClientAuth != tls.NoClientCert && c.StompTLS == nil {
		errs = append(errs, errors.New("client certificates need a CA to verify them with (-stomp-client-ca)"))
	}
	if c.StompAdvertise != "" {
		if err := dialable(c.StompAdvertise); err != nil {
			errs = append(errs, fmt.Errorf("stomp advertise address: %w", err))
		}
	}
	if c.HTTPAddr != HTTPOff {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("http address: %w", err))
		}
	} else if len(c.Join) > 0 || c.BootstrapExpect > 1 {
		errs = append(errs, errors.New("joining a group needs the admin HTTP address (-http)"))
	}
	if (len(c.Join) > 0 || c.BootstrapExpect > 1) && c.HTTPAdvertise == "" && c.HTTPAddr != HTTPOff {
		// Members reach each other through the admin address they
		// register; one on every interface says nothing dialable.
		if host, _, err := net.SplitHostPort(c.HTTPAddr); err == nil {
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				errs = append(errs, fmt.Errorf("http address %q listens on every interface: set -http-advertise to an address other members can dial", c.HTTPAddr))
			}
		}
	}
	if c.HTTPAdvertise != "" {
		if err := dialable(c.HTTPAdvertise); err != nil {
			errs = append(errs, fmt.Errorf("http advertise address: %w", err))
		}
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("bootstrap-expect %d: want 0 or more", c.BootstrapExpect))
	}
	if c.BootstrapExpect > 1 && len(c.Join) == 0 {
		errs = append(errs, fmt.Errorf("bootstrap-expect %d: list the other nodes' admin addresses with join", c.BootstrapExpect))
	}
	if c.BootstrapExpect == 1 && len(c.Join) > 0 {
		errs = append(errs, errors.New("bootstrap-expect 1 forms a single-node group: drop join, or raise bootstrap-expect"))
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			errs = append(errs, fmt.Errorf("join address %q: %w", j, err))
		}
	}
	if c.MaxBatchCommands < 0 || c.MaxBatchBytes < 0 || c.MaxInflightEntries < 0 {
		errs = append(errs, errors.New("negative group commit limit"))
	}
	if err := raft.ValidateConfig(c.raftConfig()); err != nil {
		errs = append(errs, fmt.Errorf("raft: %w", err))
	}
	if err := c.FSM.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Transport.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Queue.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("node config: %w", err)
	}
	return nil
}

// resolveAdvertise parses the raft advertise address. Raft needs an
// address a peer can dial: a host that resolves, and not 0.0.0.0.
func resolveAdvertise(s string) (*net.TCPAddr, error) {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		return nil, fmt.Errorf("raft advertise address: %w", err)
	}
	if a.IP == nil || a.IP.IsUnspecified() || a.Port == 0 {
		return nil, fmt.Errorf("raft advertise address %q: need a host peers can dial and a port", s)
	}
	return a, nil
}

// HTTPOff as Config.HTTPAddr turns the admin API off.
const HTTPOff = "off"

// dialable checks that s is host:port with a concrete host and port, as
// an address given to others must be.
func dialable(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() || port == "0" || port == "" {
		return fmt.Errorf("%q: need a host others can dial and a port", s)
	}
	return nil
}

// raftConfig is the raft configuration for this node. Validate checks it
// with raft's own rules, so bad timings fail before anything is opened.
func (c *Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.ID)
	c.RaftTimeouts.apply(rc)
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.TrailingLogs = c.TrailingLogs
	// The FSM keeps its applied index in pebble: a restart must not
	// restore the last snapshot over newer state. The node restores it
	// only when pebble is behind it (see restoreIfBehind).
	rc.NoSnapshotRestoreOnStart = true
	// A buffered apply channel is what makes group commit reach the disk:
	// while raft's loop syncs one append, the proposer keeps handing it
	// entries, and the loop stores everything that queued up in a single
	// append and fsync. (Unbuffered, the proposer could hand over only one
	// entry per sync.) Futures left in the channel when raft shuts down
	// are never answered; the proposer stops waiting for them then.
	rc.BatchApplyCh = true
	// Each entry is already a batch of up to MaxBatchCommands commands:
	// raft's default of 64 entries per AppendEntries RPC is plenty.
	rc.MaxAppendEntries = 64
	rc.Logger = newHCLogger(c.Logger, "raft")
	// Per-peer metrics as labels only, not also as per-peer metric names.
	rc.NoLegacyTelemetry = true
	return rc
}
