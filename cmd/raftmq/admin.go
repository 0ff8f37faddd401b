package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/raftmq/raftmq/network"
	"github.com/raftmq/raftmq/node"
)

// The admin verbs talk to a member's admin HTTP API (-http). Any member
// answers; actions reach the leader because followers forward them.

// adminFlags are the flags every admin verb takes.
type adminFlags struct {
	addrs   string
	timeout time.Duration
	json    bool
	sec     clientSecurity
}

func (a *adminFlags) register(fs *flag.FlagSet, withJSON bool) {
	fs.StringVar(&a.addrs, "http", node.DefaultHTTPAddr, "admin address of any member; a comma-separated list is tried in order")
	fs.DurationVar(&a.timeout, "timeout", 10*time.Second, "give up after this long")
	a.sec.register(fs)
	if withJSON {
		fs.BoolVar(&a.json, "json", false, "print the API's JSON instead of a table")
	}
}

// call sends one request to the first member that answers and decodes a
// 2xx answer into out. An error status from a member is final: it is the
// group's answer, not a connection problem.
func (a *adminFlags) call(method, uri string, body any, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	hc, err := a.sec.httpClient()
	if err != nil {
		return err
	}
	var errs []error
	for _, addr := range strings.Split(a.addrs, ",") {
		addr = strings.TrimSpace(addr)
		if addr == "" {
			continue
		}
		u := a.sec.adminURL(addr, uri)
		if user, _ := a.sec.login(); user != "" && strings.HasPrefix(u, "http://") && !strings.HasPrefix(addr, "http://") {
			// A password must not cross the network in the clear
			// because a TLS flag was forgotten.
			return usageError{fmt.Errorf("%s: a login would go over plain HTTP: give --tls-ca (or https://%s), or http://%s to insist", addr, addr, addr)}
		}
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		a.sec.authorize(req)
		resp, err := hc.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: read answer: %w", method, addr, err)
		}
		if resp.StatusCode/100 != 2 {
			var e node.ErrorResponse
			if json.Unmarshal(b, &e) != nil || e.Error == "" {
				e.Error = strings.TrimSpace(string(b))
			}
			err := fmt.Errorf("%s: %s (%d %s)", addr, e.Error, resp.StatusCode, http.StatusText(resp.StatusCode))
			if resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusBadGateway {
				// This member cannot act now (no leader known,
				// leadership moving): another may.
				errs = append(errs, err)
				continue
			}
			return err
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("%s: bad answer: %w", addr, err)
			}
		}
		return nil
	}
	return fmt.Errorf("no member could answer: %w", errors.Join(errs...))
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func parseAdminVerb(name, usage string, args []string, withJSON bool, nargs int) (*adminFlags, []string, error) {
	var a adminFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	a.register(fs, withJSON)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: raftmq %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() != nargs {
		return nil, nil, usageError{fmt.Errorf("want %d argument(s), got %d (usage: raftmq %s)", nargs, fs.NArg(), usage)}
	}
	return &a, fs.Args(), nil
}

func runStatus(args []string) error {
	a, _, err := parseAdminVerb("status", "status [-http addr] [-json]", args, true, 0)
	if err != nil {
		return err
	}
	var st node.GroupStatus
	if err := a.call(http.MethodGet, "/api/v1/status", nil, &st); err != nil {
		return err
	}
	// The bridges live on the leader; without one there are none to show.
	var net *network.Status
	if st.LeaderID != "" {
		var ns network.Status
		if err := a.call(http.MethodGet, "/api/v1/network", nil, &ns); err == nil {
			net = &ns
		}
	}
	if a.json {
		return printJSON(struct {
			node.GroupStatus
			Network *network.Status `json:"network,omitempty"`
		}{st, net})
	}
	leader := st.LeaderID
	if leader == "" {
		leader = "none (no quorum, or an election is under way)"
	}
	fmt.Printf("group:    %s\nleader:   %s\nterm:     %d\nanswered: %s (%s)\n\n", st.Group, leader, st.Node.Term, st.Node.ID, st.Node.State)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSUFFRAGE\tSTOMP\tRAFT\tHTTP\tTERM\tLAST LOG\tCOMMIT\tAPPLIED\tLAST CONTACT")
	for _, m := range st.Members {
		contact := "-"
		switch {
		case m.Error != "":
			contact = m.Error
		case m.State == "Leader":
			contact = "(leader)"
		case m.LastContactMs >= 0:
			contact = (time.Duration(m.LastContactMs) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", m.ID, m.State, m.Suffrage,
			dash(m.StompAddr), m.RaftAddr, dash(m.HTTPAddr), m.Term, m.LastLogIndex, m.CommitIndex, m.AppliedIndex, contact)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if net != nil && (len(net.Links) > 0 || len(net.Bridges) > 0) {
		printBridges(net)
	}
	return nil
}

// printBridges prints the network part of status: one line per bridge.
func printBridges(ns *network.Status) {
	fmt.Printf("\nnetwork links: %s\n\n", dash(strings.Join(ns.Links, " ")))
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REMOTE GROUP\tDIRECTION\tSTATE\tREMOTE LEADER\tSINCE\tOUT\tIN\tDEMAND OUT\tDEMAND IN\tLINK")
	for _, b := range ns.Bridges {
		state := b.State
		if b.LastError != "" && b.State != network.StateConnected {
			state += " (" + b.LastError + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", dash(b.RemoteGroup), b.Direction, state,
			dash(b.RemoteLeader), time.Since(b.Since).Round(time.Second), b.ForwardedOut, b.ForwardedIn,
			dash(strings.Join(b.DemandOut, ",")), dash(strings.Join(b.DemandIn, ",")), b.Link)
	}
	tw.Flush()
}

func runMembers(args []string) error {
	a, _, err := parseAdminVerb("members", "members [-http addr] [-json]", args, true, 0)
	if err != nil {
		return err
	}
	var ms []node.Member
	if err := a.call(http.MethodGet, "/api/v1/members", nil, &ms); err != nil {
		return err
	}
	if a.json {
		return printJSON(ms)
	}
	printMembers(ms)
	return nil
}

func printMembers(ms []node.Member) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tSUFFRAGE\tSTOMP\tRAFT\tHTTP")
	for _, m := range ms {
		role := "follower"
		if m.Leader {
			role = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, role, m.Suffrage, dash(m.StompAddr), m.RaftAddr, dash(m.HTTPAddr))
	}
	tw.Flush()
}

func runRemoveNode(args []string) error {
	a, rest, err := parseAdminVerb("remove-node", "remove-node [-http addr] ID", args, false, 1)
	if err != nil {
		return err
	}
	var ms []node.Member
	if err := a.call(http.MethodDelete, "/api/v1/members/"+url.PathEscape(rest[0]), nil, &ms); err != nil {
		return err
	}
	fmt.Printf("removed %s; the group now has %d members:\n\n", rest[0], len(ms))
	printMembers(ms)
	return nil
}

func runLeaderTransfer(args []string) error {
	var a adminFlags
	var to string
	fs := flag.NewFlagSet("leader-transfer", flag.ContinueOnError)
	a.register(fs, false)
	fs.StringVar(&to, "to", "", "member to hand leadership to (default: the most up-to-date follower)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	var res node.TransferResult
	if err := a.call(http.MethodPost, "/api/v1/leader-transfer", node.TransferRequest{ID: to}, &res); err != nil {
		return err
	}
	fmt.Printf("leader is now %s\n", res.LeaderID)
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
