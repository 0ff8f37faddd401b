package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrClosed is returned by SetMeta after Close.
var ErrClosed = errors.New("gossip: pool closed")

// Member is one live node of the pool as this node sees it.
type Member struct {
	Name string `json:"name"` // memberlist node name: Meta.Group + "/" + Meta.ID, unique in the pool
	Addr string `json:"addr"` // gossip host:port
	Meta Meta   `json:"meta"`
}

// Pool is this node's membership in the gossip pool. Its methods are safe
// for concurrent use.
type Pool struct {
	ml      *memberlist.Memberlist
	log     *slog.Logger
	keyring *memberlist.Keyring // nil without encryption
	name    string
	addr    string   // advertised host:port, set once at Start
	seeds   []string // Join, each with a port
	tm      timing
	changed chan struct{}

	// life is held shared while memberlist is being used by SetMeta and
	// exclusively by Close, so nothing is asked of memberlist after its
	// Shutdown (Leave even panics then).
	life   sync.RWMutex
	closed bool
	done   chan struct{} // closed by Close: stops the joiner
	wg     sync.WaitGroup
	err    error // Close's result, returned again by later calls

	metaMu    sync.Mutex
	meta      Meta
	metaBytes []byte // meta encoded, what NodeMeta hands memberlist

	mu      sync.Mutex
	members map[string]Member // alive members with good meta, kept by the event callbacks

	joins atomic.Int64 // join attempts, for tests
}

// Start creates this node's memberlist, listening on cfg.Bind, and returns
// at once. Joining cfg.Join happens in the background and is retried with
// backoff until a seed answers, and again whenever this node finds itself
// alone, until Close. Start fails only for bad configuration or when it
// cannot listen.
func Start(cfg Config) (*Pool, error) {
	if err := cfg.Meta.validate(); err != nil {
		return nil, err
	}
	metaBytes, err := cfg.Meta.Encode()
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	mc, seeds, err := cfg.memberlistConfig()
	if err != nil {
		return nil, err
	}

	p := &Pool{
		log:       logger,
		keyring:   mc.Keyring,
		name:      mc.Name,
		seeds:     seeds,
		tm:        lanTiming,
		changed:   make(chan struct{}, 1),
		done:      make(chan struct{}),
		meta:      cfg.Meta,
		metaBytes: metaBytes,
		members:   make(map[string]Member),
	}
	if cfg.Fast {
		p.tm = fastTiming
	}
	mc.Logger = log.New(logWriter{logger}, "", 0)
	mc.Delegate = delegate{p}
	mc.Events = delegate{p}

	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("gossip start on %s: %w", net.JoinHostPort(mc.BindAddr, strconv.Itoa(mc.BindPort)), err)
	}
	p.ml = ml
	// memberlist announced us to ourselves in Create (NotifyJoin), with
	// the final address and the port it picked when bindPort was 0.
	p.mu.Lock()
	p.addr = p.members[p.name].Addr
	p.mu.Unlock()
	if p.addr == "" {
		p.addr = ml.LocalNode().Address()
	}
	logger.Info("gossip started", "name", p.name, "addr", p.addr, "seeds", seeds, "encrypted", mc.Keyring != nil)

	if len(seeds) > 0 {
		p.wg.Add(1)
		go p.joinLoop()
	}
	return p, nil
}

// joinLoop joins the seeds whenever this node is alone in the pool: at
// first, and after everyone else left or died. Failures back off from
// joinMin to joinMax. A seed that is this node itself answers too, so
// success means someone else is now a member.
func (p *Pool) joinLoop() {
	defer p.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		if p.ml.NumMembers() > 1 {
			failures = 0
			t.Reset(p.tm.recheck)
			continue
		}
		p.joins.Add(1)
		n, err := p.ml.Join(p.seeds)
		if err == nil && p.ml.NumMembers() > 1 {
			p.log.Info("gossip joined", "seeds", p.seeds, "answered", n, "members", p.ml.NumMembers())
			failures = 0
			t.Reset(p.tm.recheck)
			continue
		}
		if err == nil {
			err = errors.New("no other member answered")
		}
		err = fmt.Errorf("gossip join %s: %w", strings.Join(p.seeds, ","), err)
		failures++
		delay := backoff(failures, p.tm.joinMin, p.tm.joinMax)
		switch {
		case failures == 1:
			p.log.Info("gossip seeds not reachable yet, retrying", "err", err, "retry", delay)
		case failures%10 == 0:
			p.log.Warn("gossip still alone, retrying", "attempts", failures, "err", err, "retry", delay)
		default:
			p.log.Debug("gossip join failed", "attempts", failures, "err", err, "retry", delay)
		}
		t.Reset(delay)
	}
}

// backoff is lo doubled per failure after the first, capped at hi.
func backoff(failures int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// SetMeta replaces what this node advertises and spreads it, waiting a
// bounded time for the broadcast to go out. The node calls it on every
// leadership change. Group and ID cannot change: they are the node's name.
// On a timeout the new meta is still ours and spreads by the next gossip
// or push/pull. An unchanged meta is not broadcast again.
func (p *Pool) SetMeta(m Meta) error {
	if m.Name() != p.name {
		return fmt.Errorf("gossip set meta: name %s cannot change to %s", p.name, m.Name())
	}
	b, err := m.Encode()
	if err != nil {
		return err
	}
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed {
		return ErrClosed
	}
	p.metaMu.Lock()
	same := m == p.meta
	p.meta, p.metaBytes = m, b
	p.metaMu.Unlock()
	if same {
		return nil
	}
	if err := p.ml.UpdateNode(p.tm.updateTimeout); err != nil {
		return fmt.Errorf("gossip set meta: %w", err)
	}
	return nil
}

// SetKeys replaces the keyring of a pool started with encryption: keys[0]
// becomes the key this node encrypts with, every key in keys is accepted,
// and keys not in it are dropped. Rotating a key without a partition
// takes three rounds over all nodes, each finished everywhere before the
// next: add the new key (old one first), make it first, drop the old one.
func (p *Pool) SetKeys(keys [][]byte) error {
	kr := p.keyring
	if kr == nil {
		return errors.New("gossip: the pool started without encryption; restart with a key to turn it on")
	}
	if len(keys) == 0 {
		return errors.New("gossip: an encrypted pool needs a key; restart without keys to turn encryption off")
	}
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("gossip: install key: %w", err)
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return fmt.Errorf("gossip: use key: %w", err)
	}
	for _, old := range kr.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, old) }) {
			if err := kr.RemoveKey(old); err != nil {
				return fmt.Errorf("gossip: remove key: %w", err)
			}
		}
	}
	p.log.Info("gossip keyring replaced", "keys", len(keys))
	return nil
}

// Meta returns what this node advertises now.
func (p *Pool) Meta() Meta {
	p.metaMu.Lock()
	defer p.metaMu.Unlock()
	return p.meta
}

// Members returns the alive members, this node included while it has not
// left, sorted by Name. Members whose meta cannot be decoded are left out
// (and logged when their meta arrives). Suspect members are still in; dead
// and left ones are not.
func (p *Pool) Members() []Member {
	p.mu.Lock()
	out := make([]Member, 0, len(p.members))
	for _, m := range p.members {
		out = append(out, m)
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Changed is signalled after a member joins, leaves or dies, or changes
// its meta (this node included). Signals coalesce: one pending signal
// stands for any number of changes, so read Members after receiving it.
func (p *Pool) Changed() <-chan struct{} { return p.changed }

// Addr is the gossip address this node advertises, host:port, with the
// real port when Bind asked for port 0. Others can join through it.
func (p *Pool) Addr() string { return p.addr }

// Name is this node's member name, Group+"/"+ID.
func (p *Pool) Name() string { return p.name }

// Close leaves the pool, so that the others drop this node at once
// instead of after failure detection, waiting a bounded time for the leave
// to go out, then stops memberlist and the joiner. It may wait for a join
// attempt in flight (memberlist's TCP timeout, 10 s LAN, for a seed that
// does not answer). Later calls return the first result.
func (p *Pool) Close() error {
	p.life.Lock()
	defer p.life.Unlock()
	if p.closed {
		return p.err
	}
	p.closed = true
	close(p.done)
	p.wg.Wait()
	// Leaving is an announcement, not a duty: when no member takes it in
	// time (the others are stopping too, or unreachable), they find this
	// node dead by probing instead. So a node stopping with its whole
	// network still shuts down cleanly.
	if err := p.ml.Leave(p.tm.leaveTimeout); err != nil {
		p.log.Warn("gossip: leave not acknowledged; the pool will find this node gone by probing", "err", err)
	}
	if err := p.ml.Shutdown(); err != nil {
		p.err = fmt.Errorf("gossip shutdown: %w", err)
	}
	return p.err
}

// notify signals Changed without blocking: a pending signal already
// covers this change.
func (p *Pool) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}
