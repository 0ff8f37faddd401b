package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/gossip"
	"github.com/raftmq/raftmq/network"
)

// ErrClosed is returned by a Node's methods after Close.
var ErrClosed = errors.New("node: closed")

// Node is one broker process: a member of one raft group, serving STOMP
// clients while it is the group's leader.
type Node struct {
	cfg Config
	log *slog.Logger

	// lifeMu serializes Start and Close, so Close never releases the
	// stores under a Start still using them.
	lifeMu    sync.Mutex
	started   bool
	fsm       *fsm.FSM
	logStore  *raftboltdb.BoltStore
	snapshots *raft.FileSnapshotStore

	shutdown chan struct{} // closed by Close
	// ctx is cancelled by Close, for the background calls to other
	// members (joining, discovery), so Close does not wait them out.
	ctx         context.Context
	cancelCtx   context.CancelFunc
	monitorDone chan struct{} // closed when monitorLeadership returned; nil before Start
	bg          sync.WaitGroup
	admin       *admin       // nil before Start or with HTTPAddr "off"
	http        *http.Client // calls to other members' admin APIs
	// self is this member as the group records it: its advertised
	// addresses. Set by Start.
	self fsm.Member
	// epoch anchors the leader lease on the monotonic clock.
	epoch time.Time
	// transferring is set while this leader hands leadership over: it
	// holds every write to clients (see term.fence).
	transferring atomic.Bool
	// pool is the gossip pool, nil without gossip; net runs the bridges
	// to other groups while this node leads.
	pool *gossip.Pool
	net  *network.Manager
	roleState

	metrics *metrics

	mu         sync.Mutex
	closed     bool
	raft       *raft.Raft    // nil before Start
	current    *term         // the term serving clients, else nil
	stompAddr  net.Addr      // the client listener's address while serving, else nil
	serving    chan struct{} // closed when serving starts; replaced when it stops
	discovered []Peer        // nodes found while waiting to bootstrap
}

// New validates cfg and opens the node's stores in cfg.DataDir: the state
// (DataDir/fsm), the raft log (DataDir/raft/raft.db) and the snapshots
// (DataDir/raft/snapshots). If the state is behind the latest snapshot
// (the fsm directory was lost or wiped), New restores it from that
// snapshot. Nothing listens on the network until Start.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:      cfg,
		log:      cfg.Logger,
		shutdown: make(chan struct{}),
		serving:  make(chan struct{}),
		epoch:    time.Now(),
	}
	n.http = n.newAdminClient() // each call sets its own timeout, shorter or not
	n.metrics = newMetrics(n)
	n.ctx, n.cancelCtx = context.WithCancel(context.Background())
	if err := n.openStores(); err != nil {
		return nil, errors.Join(err, n.closeStores())
	}
	return n, nil
}

func (n *Node) openStores() error {
	raftDir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o755); err != nil {
		return fmt.Errorf("node: create data directory: %w", err)
	}
	// The state first: pebble locks its directory and fails at once when
	// another process uses it, where bolt would wait for its lock.
	var err error
	if n.fsm, err = fsm.Open(filepath.Join(n.cfg.DataDir, "fsm"), n.cfg.FSM); err != nil {
		return fmt.Errorf("node: open state: %w", err)
	}
	// The raft log keeps fsync on: it is the durable record that pebble,
	// which writes without it, is rebuilt from.
	if n.logStore, err = raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(raftDir, "raft.db"),
		// The freelist is rebuilt by scanning at open instead of being
		// written with every commit: the log's free pages pile up after
		// each compaction, and writing them on every fsync'd append cost
		// more than the entries themselves.
		BoltOptions: &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType, InitialMmapSize: 1 << 30},
	}); err != nil {
		return fmt.Errorf("node: open raft log: %w", err)
	}
	// One snapshot kept: each holds the whole stored state (every pending
	// message), so a second copy would double the disk it takes.
	if n.snapshots, err = raft.NewFileSnapshotStoreWithLogger(raftDir, 1, newHCLogger(n.log, "raft.snapshot")); err != nil {
		return fmt.Errorf("node: open snapshot store: %w", err)
	}
	return n.restoreIfBehind()
}

// restoreIfBehind restores the state from the latest snapshot when the
// state's applied index is below it. Raft is told not to restore on start
// (the state normally survives restarts and is newer than any snapshot),
// yet it still resumes applying after the latest snapshot's index: state
// that lost what that snapshot holds would silently miss those entries.
func (n *Node) restoreIfBehind() error {
	metas, err := n.snapshots.List()
	if err != nil {
		return fmt.Errorf("node: list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return nil
	}
	latest := metas[0] // List sorts newest first
	applied := n.fsm.AppliedIndex()
	if latest.Index <= applied {
		return nil // the usual restart: no need to open the snapshot
	}
	// Raft's index for a snapshot counts no-op and barrier entries, which
	// never reach the FSM: compare with the applied index the snapshot's
	// state covers, from its header. (Opening it reads the whole file for
	// its checksum; only restarts after a snapshot that ended in such
	// entries, or with lost state, get here.)
	covered, err := n.snapshotAppliedIndex(latest.ID)
	if err != nil {
		return err
	}
	if covered <= applied {
		return nil
	}
	n.log.Warn("state is behind the latest snapshot; restoring it",
		"applied_index", applied, "snapshot", latest.ID, "snapshot_applied_index", covered)
	// Only the latest will do: raft resumes after its index whatever we
	// restore, so an older one would leave a gap.
	_, rc, err := n.snapshots.Open(latest.ID)
	if err != nil {
		return fmt.Errorf("node: open snapshot %s: %w", latest.ID, err)
	}
	err = n.fsm.Restore(rc)
	rc.Close() // Restore closes it too; a second Close is harmless
	if err != nil {
		return fmt.Errorf("node: restore snapshot %s: %w", latest.ID, err)
	}
	if got := n.fsm.AppliedIndex(); got != covered {
		return fmt.Errorf("node: restored snapshot %s (applied index %d) but the state's applied index is %d", latest.ID, covered, got)
	}
	n.log.Info("restored state from snapshot", "snapshot", latest.ID, "applied_index", n.fsm.AppliedIndex())
	return nil
}

// snapshotAppliedIndex reads the FSM applied index stored snapshot id covers.
func (n *Node) snapshotAppliedIndex(id string) (uint64, error) {
	_, rc, err := n.snapshots.Open(id)
	if err != nil {
		return 0, fmt.Errorf("node: open snapshot %s: %w", id, err)
	}
	defer rc.Close()
	idx, err := fsm.SnapshotAppliedIndex(rc)
	if err != nil {
		return 0, fmt.Errorf("node: snapshot %s: %w", id, err)
	}
	return idx, nil
}

// Start binds the raft transport, bootstraps a new single-node group if
// the data directory holds no raft state, and starts raft. The node then
// serves STOMP clients whenever it leads (see WaitServing). ctx bounds
// only the start itself; the node runs until Close.
func (n *Node) Start(ctx context.Context) error {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.isClosed() {
		return ErrClosed
	}
	if n.started {
		return errors.New("node: already started")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("node: start: %w", err)
	}
	n.started = true

	// The admin listener first: joining needs it, and a busy port should
	// fail before raft starts.
	if n.cfg.HTTPAddr != HTTPOff {
		a, err := newAdmin(n)
		if err != nil {
			return err
		}
		n.admin = a
	}
	trans, err := n.newTransport()
	if err != nil {
		return err
	}
	n.self = fsm.Member{
		ID:        n.cfg.ID,
		RaftAddr:  string(trans.LocalAddr()),
		StompAddr: advertised(n.cfg.StompAdvertise, n.cfg.StompAddr),
	}
	if n.admin != nil {
		n.self.HTTPAddr = advertised(n.cfg.HTTPAdvertise, n.admin.ln.Addr().String())
	}
	if err := n.startNetwork(); err != nil {
		return errors.Join(err, trans.Close())
	}
	conf := n.cfg.raftConfig()
	if err := n.bootstrapIfNew(conf, trans); err != nil {
		return errors.Join(err, trans.Close())
	}
	r, err := raft.NewRaft(conf, timedFSM{n.fsm, n.metrics.apply}, n.logStore, n.logStore, n.snapshots, trans)
	if err != nil {
		return errors.Join(fmt.Errorf("node: start raft: %w", err), trans.Close())
	}
	n.mu.Lock()
	n.raft = r
	n.mu.Unlock()
	n.monitorDone = make(chan struct{})
	go n.monitorLeadership(r)
	n.bg.Add(1)
	go n.countLeaderChanges(r)
	if n.admin != nil {
		n.admin.serve()
	}
	n.bg.Add(1)
	go n.formGroup(r)
	n.log.Info("node started", "id", n.cfg.ID, "group", n.cfg.Group,
		"raft_addr", n.self.RaftAddr, "stomp_addr", n.self.StompAddr, "http_addr", n.self.HTTPAddr,
		"data_dir", n.cfg.DataDir, "applied_index", n.fsm.AppliedIndex())
	return nil
}

// advertised is the address to tell others: adv when set, else addr when
// others can dial it as written, else "" (unknown).
func advertised(adv, addr string) string {
	if adv != "" {
		return adv
	}
	if dialable(addr) == nil {
		return addr
	}
	return ""
}

func (n *Node) newTransport() (*raft.NetworkTransport, error) {
	// A nil interface, not a nil *net.TCPAddr, tells raft to advertise
	// the bound address.
	var advertise net.Addr
	if n.cfg.RaftAdvertise != "" {
		a, err := resolveAdvertise(n.cfg.RaftAdvertise)
		if err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		advertise = a
	}
	if n.cfg.TLS != nil {
		return n.newTLSRaftTransport(advertise)
	}
	trans, err := raft.NewTCPTransportWithLogger(n.cfg.RaftAddr, advertise, 3, 10*time.Second, newHCLogger(n.log, "raft.net"))
	if err != nil {
		return nil, fmt.Errorf("node: raft transport on %s: %w", n.cfg.RaftAddr, err)
	}
	return trans, nil
}

// bootstrapIfNew makes this node the only voter of a new group when the
// data directory holds no raft state. A node with state never bootstraps
// again: its configuration comes from its log.
//
// A node given join addresses does not bootstrap: it joins a group
// (-join), or forms one with its peers (-bootstrap-expect, see
// formGroup).
func (n *Node) bootstrapIfNew(conf *raft.Config, trans raft.Transport) error {
	has, err := raft.HasExistingState(n.logStore, n.logStore, n.snapshots)
	if err != nil {
		return fmt.Errorf("node: read raft state: %w", err)
	}
	if has {
		return nil
	}
	// State without a raft log: bootstrapping a fresh log would restart
	// indexes at 1, below the state's applied index, and every command
	// would be skipped as already applied. Refuse instead of failing
	// every client operation.
	if applied := n.fsm.AppliedIndex(); applied > 0 {
		return fmt.Errorf("node: %s holds state applied up to raft index %d but no raft log or snapshot: restore %s, or remove %s to start empty",
			n.cfg.DataDir, applied, filepath.Join(n.cfg.DataDir, "raft"), filepath.Join(n.cfg.DataDir, "fsm"))
	}
	if len(n.cfg.Join) > 0 {
		return nil
	}
	servers := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       conf.LocalID,
		Address:  trans.LocalAddr(),
	}}}
	if err := raft.BootstrapCluster(conf, n.logStore, n.logStore, n.snapshots, trans, servers); err != nil {
		return fmt.Errorf("node: bootstrap group: %w", err)
	}
	n.log.Info("bootstrapped a new single-node group", "id", n.cfg.ID, "group", n.cfg.Group)
	return nil
}

// Close stops the node: it stops serving clients first (closing their
// connections and failing what is pending), then shuts raft down, then
// closes the state and the raft log. It is safe to call more than once.
func (n *Node) Close() error {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	r := n.raft
	n.mu.Unlock()

	close(n.shutdown)
	n.cancelCtx()
	if n.admin != nil {
		n.admin.close()
	}
	n.bg.Wait()
	var errs []error
	if r != nil {
		// Leader-only work ends while raft still runs: the proposer waits
		// for the entries raft holds, and only a running raft answers them.
		<-n.monitorDone
	}
	// Leave the gossip pool once no bridge runs (leader-only work has
	// ended), so other groups learn at once that this node is gone.
	if n.pool != nil {
		if err := n.pool.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node: leave gossip pool: %w", err))
		}
	}
	if r != nil {
		// Shutdown also closes the raft transport.
		if err := r.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("node: raft shutdown: %w", err))
		}
	}
	errs = append(errs, n.closeStores())
	n.log.Info("node stopped", "id", n.cfg.ID)
	return errors.Join(errs...)
}

// closeStores closes whatever openStores opened.
func (n *Node) closeStores() error {
	var errs []error
	if n.fsm != nil {
		if err := n.fsm.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node: close state: %w", err))
		}
	}
	if n.logStore != nil {
		if err := n.logStore.Close(); err != nil {
			errs = append(errs, fmt.Errorf("node: close raft log: %w", err))
		}
	}
	// The file snapshot store holds no open files between operations.
	return errors.Join(errs...)
}

func (n *Node) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// Raft returns the node's raft instance, for status and tests; nil before
// Start.
func (n *Node) Raft() *raft.Raft {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.raft
}

// StompAddr returns the address the node serves STOMP clients on, or nil
// when it is not serving (not the leader, or not yet).
func (n *Node) StompAddr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stompAddr
}

// WaitServing waits until the node serves STOMP clients, ctx ends, or the
// node is closed.
func (n *Node) WaitServing(ctx context.Context) error {
	for {
		n.mu.Lock()
		serving, ch := n.stompAddr != nil, n.serving
		n.mu.Unlock()
		if serving {
			return nil
		}
		select {
		case <-ch:
			// Serving started; loop to check it has not stopped again.
		case <-ctx.Done():
			return fmt.Errorf("node: wait for serving: %w", ctx.Err())
		case <-n.shutdown:
			return ErrClosed
		}
	}
}

// setServing records that term t serves clients on addr.
func (n *Node) setServing(t *term, addr net.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.current, n.stompAddr = t, addr
	close(n.serving)
}

// servingTerm returns the term serving clients, nil when none is. Its
// engine and server fail with queue.ErrClosed once the term is revoked.
func (n *Node) servingTerm() *term {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.current
}

// clearServing records that the client listener is closing.
func (n *Node) clearServing() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stompAddr != nil {
		n.current, n.stompAddr = nil, nil
		n.serving = make(chan struct{})
	}
}
