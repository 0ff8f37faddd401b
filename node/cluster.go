package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/fsm"
	"github.com/raftmq/raftmq/transport/tlsconf"
)

// This file forms and changes the group: bootstrapping it once
// (--bootstrap-expect), joining it (--join), registering each member's
// client and admin addresses in the replicated state, removing members
// and handing leadership over.

// Info is this node's own view of itself: GET /api/v1/node.
func (n *Node) Info() NodeInfo {
	info := NodeInfo{
		ID:              n.cfg.ID,
		Group:           n.cfg.Group,
		State:           raft.Shutdown.String(),
		LastContactMs:   -1,
		RaftAddr:        n.self.RaftAddr,
		StompAddr:       n.self.StompAddr,
		HTTPAddr:        n.self.HTTPAddr,
		Serving:         n.StompAddr() != nil,
		BootstrapExpect: n.cfg.BootstrapExpect,
		AppliedIndex:    n.fsm.AppliedIndex(),
	}
	n.mu.Lock()
	for _, p := range n.discovered {
		info.Discovered = append(info.Discovered, p)
	}
	n.mu.Unlock()
	sort.Slice(info.Discovered, func(i, j int) bool { return info.Discovered[i].ID < info.Discovered[j].ID })
	r := n.Raft()
	if r == nil {
		return info
	}
	state := r.State()
	info.State = state.String()
	info.Term = r.CurrentTerm()
	info.LastLogIndex = r.LastIndex()
	info.CommitIndex = r.CommitIndex()
	info.AppliedIndex = r.AppliedIndex()
	_, leader := r.LeaderWithID()
	info.LeaderID = string(leader)
	info.Bootstrapped = n.hasState(r)
	switch {
	case state == raft.Leader:
		info.LastContactMs = 0
	case !r.LastContact().IsZero():
		info.LastContactMs = time.Since(r.LastContact()).Milliseconds()
	}
	return info
}

// hasState reports whether raft holds a configuration or log: the node is
// (or was) a member of a formed group.
func (n *Node) hasState(r *raft.Raft) bool {
	if r.LastIndex() > 0 {
		return true
	}
	cfg, err := n.configuration(n.ctx, r)
	return err == nil && len(cfg.Servers) > 0
}

// configuration reads raft's latest configuration.
func (n *Node) configuration(ctx context.Context, r *raft.Raft) (raft.Configuration, error) {
	f := r.GetConfiguration()
	if err := n.await(ctx, r, f); err != nil {
		return raft.Configuration{}, fmt.Errorf("read raft configuration: %w", err)
	}
	return f.Configuration(), nil
}

// await waits for a raft future until raft shuts down, the node closes
// or ctx ends (see waitFuture).
func (n *Node) await(ctx context.Context, r *raft.Raft, f raft.Future) error {
	return waitFuture(ctx, n.shutdown, r.State, f)
}

// Members returns the group's raft configuration with each member's
// registered addresses, sorted by ID.
func (n *Node) Members() ([]Member, error) {
	r := n.Raft()
	if r == nil {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	cfg, err := n.configuration(ctx, r)
	if err != nil {
		return nil, err
	}
	recs, err := n.records()
	if err != nil {
		return nil, err
	}
	_, leader := r.LeaderWithID()
	ms := make([]Member, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		m := Member{
			ID:       string(s.ID),
			RaftAddr: string(s.Address),
			Suffrage: s.Suffrage.String(),
			Leader:   s.ID == leader,
		}
		if rec, ok := recs[m.ID]; ok {
			m.StompAddr, m.HTTPAddr = rec.StompAddr, rec.HTTPAddr
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
	return ms, nil
}

// records returns the members' registered addresses by ID.
func (n *Node) records() (map[string]fsm.Member, error) {
	list, err := n.fsm.Members()
	if err != nil {
		return nil, fmt.Errorf("read member records: %w", err)
	}
	m := make(map[string]fsm.Member, len(list))
	for _, rec := range list {
		m[rec.ID] = rec
	}
	return m, nil
}

// Status asks every member about itself and returns the group as seen
// from here: GET /api/v1/status.
func (n *Node) Status(ctx context.Context) (GroupStatus, error) {
	info := n.Info()
	st := GroupStatus{Group: n.cfg.Group, LeaderID: info.LeaderID, Node: info}
	ms, err := n.Members()
	if err != nil {
		return st, err
	}
	st.Members = make([]MemberStatus, len(ms))
	done := make(chan struct{}, len(ms))
	for i, m := range ms {
		st.Members[i].Member = m
		go func(ms *MemberStatus) {
			defer func() { done <- struct{}{} }()
			var mi NodeInfo
			switch {
			case ms.ID == n.cfg.ID:
				mi = info
			case ms.HTTPAddr == "":
				ms.State, ms.Error = "unknown", "no admin address registered"
				return
			default:
				ctx, cancel := context.WithTimeout(ctx, time.Second)
				defer cancel()
				if err := n.getAdmin(ctx, ms.HTTPAddr, "/api/v1/node", &mi); err != nil {
					ms.State, ms.Error = "unreachable", err.Error()
					return
				}
			}
			ms.State, ms.Term, ms.LastLogIndex = mi.State, mi.Term, mi.LastLogIndex
			ms.CommitIndex, ms.AppliedIndex, ms.LastContactMs = mi.CommitIndex, mi.AppliedIndex, mi.LastContactMs
		}(&st.Members[i])
	}
	for range ms {
		<-done
	}
	return st, nil
}

// leaderHTTP returns the leader's admin address, from its record.
func (n *Node) leaderHTTP() (string, error) {
	r := n.Raft()
	if r == nil {
		return "", ErrClosed
	}
	_, id := r.LeaderWithID()
	if id == "" {
		return "", errors.New("no leader known yet (an election may be under way): retry")
	}
	recs, err := n.records()
	if err != nil {
		return "", err
	}
	rec, ok := recs[string(id)]
	if !ok || rec.HTTPAddr == "" {
		return "", fmt.Errorf("leader %s has not registered its admin address yet: retry", id)
	}
	return rec.HTTPAddr, nil
}

// addMember makes req's node a voter with req's raft address and records
// its addresses; on the leader only. Repeating it changes nothing.
func (n *Node) addMember(ctx context.Context, req JoinRequest) error {
	if req.ID == "" || req.RaftAddr == "" {
		return withStatus(http.StatusBadRequest, "join needs id and raft_addr")
	}
	if err := dialable(req.RaftAddr); err != nil {
		return withStatus(http.StatusBadRequest, "join %s: raft address: %v", req.ID, err)
	}
	if req.Group != n.cfg.Group {
		return withStatus(http.StatusConflict, "node %s belongs to group %q, this is group %q", req.ID, req.Group, n.cfg.Group)
	}
	r := n.Raft()
	cfg, err := n.configuration(ctx, r)
	if err != nil {
		return err
	}
	present := false
	for _, s := range cfg.Servers {
		switch {
		case string(s.ID) == req.ID && string(s.Address) == req.RaftAddr && s.Suffrage == raft.Voter:
			present = true
		case string(s.ID) != req.ID && string(s.Address) == req.RaftAddr:
			return withStatus(http.StatusConflict, "raft address %s belongs to member %s: remove it first (raftmq remove-node %s)", req.RaftAddr, s.ID, s.ID)
		}
	}
	if !present {
		// A known ID with a new address is a member that moved: raft
		// replaces the address.
		if err := n.await(ctx, r, r.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, 0)); err != nil {
			return fmt.Errorf("add voter %s at %s: %w", req.ID, req.RaftAddr, err)
		}
		n.log.Info("added group member", "member", req.ID, "raft_addr", req.RaftAddr)
	}
	return n.record(ctx, r, fsm.Member{ID: req.ID, RaftAddr: req.RaftAddr, StompAddr: req.StompAddr, HTTPAddr: req.HTTPAddr})
}

// record stores m's addresses in the replicated state unless they are
// there already; on the leader only.
func (n *Node) record(ctx context.Context, r *raft.Raft, m fsm.Member) error {
	recs, err := n.records()
	if err != nil {
		return err
	}
	if old, ok := recs[m.ID]; ok && old == m {
		return nil
	}
	return n.applyCommands(ctx, r, fsm.Command{Op: fsm.OpSetMember, Member: &m})
}

// applyCommands commits cmds through raft and returns the first command
// error; on the leader only. Admin actions are rare, so they bypass the
// group-commit proposer, which lives only while clients are served.
func (n *Node) applyCommands(ctx context.Context, r *raft.Raft, cmds ...fsm.Command) error {
	f := r.Apply(fsm.EncodeBatch(cmds), 0)
	if err := n.await(ctx, r, f); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if res, ok := f.Response().([]fsm.Result); ok {
		for _, x := range res {
			if x.Err != nil {
				return x.Err
			}
		}
	} else if err, ok := f.Response().(error); ok {
		return err
	}
	return nil
}

// removeMember drops id from the group and its record; on the leader only.
func (n *Node) removeMember(ctx context.Context, id string) error {
	r := n.Raft()
	cfg, err := n.configuration(ctx, r)
	if err != nil {
		return err
	}
	inConfig := slices.ContainsFunc(cfg.Servers, func(s raft.Server) bool { return string(s.ID) == id })
	recs, err := n.records()
	if err != nil {
		return err
	}
	if _, recorded := recs[id]; !inConfig && !recorded {
		return withStatus(http.StatusNotFound, "no member %q in group %q", id, n.cfg.Group)
	}
	if inConfig {
		if err := n.await(ctx, r, r.RemoveServer(raft.ServerID(id), 0, 0)); err != nil {
			return fmt.Errorf("remove member %s: %w", id, err)
		}
		n.log.Info("removed group member", "member", id)
	}
	if id == n.cfg.ID {
		// The leader removed itself and is stepping down: the next
		// leader has no reason to keep the record, but cannot be asked
		// from here. The record is harmless (an address nobody serves).
		return nil
	}
	return n.applyCommands(ctx, r, fsm.Command{Op: fsm.OpRemoveMember, Member: &fsm.Member{ID: id}})
}

// transferLeadership hands leadership to id (or to the most up-to-date
// follower) and waits until a new leader is known; on the leader only.
// Serving stops first: the lease is given up, so this node writes nothing
// to clients while the new leader is being elected.
func (n *Node) transferLeadership(ctx context.Context, id string) (string, error) {
	r := n.Raft()
	var target *raft.Server
	if id != "" {
		cfg, err := n.configuration(ctx, r)
		if err != nil {
			return "", err
		}
		i := slices.IndexFunc(cfg.Servers, func(s raft.Server) bool { return string(s.ID) == id })
		if i < 0 {
			return "", withStatus(http.StatusNotFound, "no member %q in group %q", id, n.cfg.Group)
		}
		if id == n.cfg.ID {
			return id, nil
		}
		target = &cfg.Servers[i]
	}
	// Give the lease up before raft starts the transfer: from here the
	// target may win an election at any moment. It stays given up after
	// a successful transfer, until this node's next term (establish).
	n.transferring.Store(true)
	var f raft.Future
	if target == nil {
		f = r.LeadershipTransfer()
	} else {
		f = r.LeadershipTransferToServer(target.ID, target.Address)
	}
	if err := n.await(ctx, r, f); err != nil {
		if r.State() == raft.Leader {
			n.transferring.Store(false) // still leading: serve again
		}
		return "", fmt.Errorf("leadership transfer: %w", err)
	}
	for {
		if _, leader := r.LeaderWithID(); leader != "" && string(leader) != n.cfg.ID {
			return string(leader), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("leadership transfer: waiting for the new leader: %w", ctx.Err())
		case <-n.shutdown:
			return "", ErrClosed
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// formGroup runs once after Start: it waits for the expected nodes and
// bootstraps the group with them (--bootstrap-expect), then keeps asking
// until this node is a voter with its addresses recorded (--join, and
// every address change).
func (n *Node) formGroup(r *raft.Raft) {
	defer n.bg.Done()
	if n.cfg.BootstrapExpect > 1 && !n.hasState(r) {
		if !n.discoverAndBootstrap(r) {
			return
		}
	}
	n.register(r)
}

// discoverAndBootstrap finds BootstrapExpect nodes through the join
// addresses (and the nodes they found) and bootstraps them all as one
// configuration. A node bootstraps only when every node it found reports
// having found exactly the same set: then each of them bootstraps the
// same configuration, which raft allows, and no two nodes can bootstrap
// different ones (which raft could not tell apart: both at index 1, term
// 1). It returns early, true, when a formed group turns up (this node
// then joins it) or this node got raft state meanwhile; false when the
// node closes.
func (n *Node) discoverAndBootstrap(r *raft.Raft) bool {
	expect := n.cfg.BootstrapExpect
	self := Peer{ID: n.cfg.ID, RaftAddr: n.self.RaftAddr, HTTPAddr: n.self.HTTPAddr}
	var lastComplaint string
	complain := func(msg string, args ...any) {
		// Once per distinct problem: discovery loops twice a second.
		if s := fmt.Sprint(msg, args); s != lastComplaint {
			lastComplaint = s
			n.log.Warn(msg, args...)
		}
	}
	var prev map[string]Peer // the last pass's set
	for {
		// Each pass starts over: a node that stopped answering drops out.
		found := map[string]Peer{self.ID: self}
		theirs := map[string][]string{} // what each peer reports having found
		addrs := slices.Clone(n.cfg.Join)
		for _, p := range prev {
			if p.ID != self.ID && !slices.Contains(addrs, p.HTTPAddr) {
				addrs = append(addrs, p.HTTPAddr)
			}
		}
		for i := 0; i < len(addrs); i++ {
			if addrs[i] == self.HTTPAddr {
				continue
			}
			var info NodeInfo
			ctx, cancel := context.WithTimeout(n.ctx, time.Second)
			err := n.getAdmin(ctx, addrs[i], "/api/v1/node", &info)
			cancel()
			var refused *adminStatusError
			switch {
			case errors.As(err, &refused):
				// Up, but it will not tell this node who it is: a
				// misconfiguration that waiting does not cure.
				if refused.status == http.StatusUnauthorized || refused.status == http.StatusForbidden {
					complain("a join address refused this node's login; give --broker-user a user with the broker read right", "addr", addrs[i], "err", err)
				} else {
					complain("a join address answered with an error", "addr", addrs[i], "err", err)
				}
				continue
			case errors.Is(err, tlsconf.ErrNotMember):
				complain("a join address is not a node of this group (its certificate names another); ignoring it", "addr", addrs[i], "err", err)
				continue
			case err != nil:
				n.log.Debug("join address not answering", "addr", addrs[i], "err", err)
				continue // not up yet
			case info.Group != n.cfg.Group:
				complain("a join address belongs to another group; ignoring it", "addr", addrs[i], "its_group", info.Group, "group", n.cfg.Group)
				continue
			case info.ID == self.ID:
				if info.RaftAddr != self.RaftAddr {
					complain("another node uses this node's id", "id", info.ID, "addr", addrs[i])
				}
				continue
			case info.Bootstrapped:
				n.log.Info("found a formed group; joining it instead of bootstrapping", "via", addrs[i], "member", info.ID)
				return true
			case info.BootstrapExpect != expect:
				complain("a node expects a different group size; leaving it out", "node", info.ID, "its_bootstrap_expect", info.BootstrapExpect, "bootstrap_expect", expect)
				continue
			}
			found[info.ID] = Peer{ID: info.ID, RaftAddr: info.RaftAddr, HTTPAddr: info.HTTPAddr}
			theirs[info.ID] = peerIDs(info.Discovered)
			for _, p := range info.Discovered {
				if !slices.Contains(addrs, p.HTTPAddr) {
					addrs = append(addrs, p.HTTPAddr) // checked in this pass
				}
			}
		}
		prev = found
		n.mu.Lock()
		n.discovered = maps2slice(found)
		n.mu.Unlock()
		mine := peerIDs(maps2slice(found))
		agreed := true
		for id, ids := range theirs {
			if !slices.Equal(ids, mine) {
				agreed = false
				complain("waiting for the nodes to agree on the group's members", "found", mine, "node", id, "its_found", ids)
				break
			}
		}

		if n.hasState(r) {
			return true // a peer bootstrapped with us and reached us first
		}
		switch {
		case len(found) == expect && agreed:
			peers := maps2slice(found)
			servers := make([]raft.Server, len(peers))
			for i, p := range peers {
				servers[i] = raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)}
			}
			err := n.await(n.ctx, r, r.BootstrapCluster(raft.Configuration{Servers: servers}))
			switch {
			case err == nil:
				n.log.Info("bootstrapped the group", "group", n.cfg.Group, "members", peerIDs(peers))
				n.mu.Lock()
				n.discovered = nil
				n.mu.Unlock()
				return true
			case errors.Is(err, raft.ErrCantBootstrap):
				return true // state arrived meanwhile
			case errors.Is(err, ErrClosed), errors.Is(err, raft.ErrRaftShutdown):
				return false
			default:
				n.log.Error("bootstrap failed; retrying", "err", err)
			}
		case len(found) > expect:
			complain("found more nodes than bootstrap-expect; refusing to bootstrap (start extra nodes with -join only)",
				"found", peerIDs(maps2slice(found)), "bootstrap_expect", expect)
		case len(found) < expect:
			complain("waiting for nodes to bootstrap the group", "found", len(found), "bootstrap_expect", expect)
		}
		select {
		case <-n.shutdown:
			return false
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func maps2slice(m map[string]Peer) []Peer {
	out := make([]Peer, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func peerIDs(ps []Peer) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

// register makes sure this node is a voter of its group with its current
// addresses recorded, asking the leader (or, before one is known, the
// join addresses, which forward) until the replicated state says so.
func (n *Node) register(r *raft.Raft) {
	self := n.self
	delay := 100 * time.Millisecond
	warned := false
	for attempt := 0; ; attempt++ {
		done, err := n.registerOnce(r, self, &warned)
		if done {
			return
		}
		if err != nil && attempt%10 == 1 {
			n.log.Warn("not yet a registered member of the group; retrying", "err", err, "attempts", attempt)
		}
		select {
		case <-n.shutdown:
			return
		case <-time.After(delay):
		}
		if err == nil {
			delay = 100 * time.Millisecond // accepted: check again soon
		} else {
			delay = min(2*delay, 5*time.Second)
		}
	}
}

// registerOnce is one round of register; done reports that nothing is
// left to do.
func (n *Node) registerOnce(r *raft.Raft, self fsm.Member, warned *bool) (done bool, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, 2*adminTimeout)
	defer cancel()
	cfg, err := n.configuration(ctx, r)
	if err != nil {
		return n.ctx.Err() != nil, err
	}
	inConfig := slices.ContainsFunc(cfg.Servers, func(s raft.Server) bool {
		return string(s.ID) == self.ID && string(s.Address) == self.RaftAddr && s.Suffrage == raft.Voter
	})
	recs, err := n.records()
	if err != nil {
		return false, err
	}
	if rec, ok := recs[self.ID]; inConfig && ok && rec == self {
		return true, nil
	}
	if r.State() == raft.Leader {
		err := n.record(ctx, r, self)
		return err == nil, err
	}
	if !inConfig && len(cfg.Servers) > 0 && len(n.cfg.Join) == 0 {
		// Removed from the group (or moved to a new raft address)
		// while it had state, and not told to join: say so, and keep
		// checking in case an operator adds it back.
		if !*warned {
			*warned = true
			n.log.Warn("this node is not a voter of its group's configuration; restart it with -join to rejoin", "id", self.ID)
		}
		return false, errors.New("not in the group's configuration")
	}
	req, _ := json.Marshal(JoinRequest{ID: self.ID, Group: n.cfg.Group, RaftAddr: self.RaftAddr, StompAddr: self.StompAddr, HTTPAddr: self.HTTPAddr})
	targets := n.cfg.Join
	if leader, err := n.leaderHTTP(); err == nil {
		targets = append([]string{leader}, targets...)
	}
	var errs []error
	for _, addr := range targets {
		if addr == self.HTTPAddr {
			continue
		}
		reply, err := n.callAdmin(ctx, http.MethodPost, addr, "/api/v1/members", req, nil)
		if err == nil && reply.status == http.StatusOK {
			if !inConfig {
				n.log.Info("joined the group", "via", addr)
			}
			return false, nil // done once the change reaches this node
		}
		if err == nil {
			err = errors.New(strconv.Itoa(reply.status) + " " + errorText(reply.body))
		}
		errs = append(errs, fmt.Errorf("join via %s: %w", addr, err))
	}
	return false, errors.Join(errs...)
}
