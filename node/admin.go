package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftmq/raftmq/node/console"
	"github.com/raftmq/raftmq/transport/auth"
)

// The admin HTTP API: every member serves it, followers included, so
// that any member can be asked about the group and any member can take a
// join. Actions that change the group (join, remove, leader transfer) run
// on the leader; a follower forwards them there.

// forwardedHeader marks a request a follower forwarded, so a node that
// lost leadership meanwhile answers 503 instead of forwarding again.
const forwardedHeader = "Raftmq-Forwarded-By"

// maxAdminBody bounds the request bodies the API reads.
const maxAdminBody = 64 << 10

// adminTimeout bounds one call from a node to another's admin API;
// forwardTimeout one request a follower relays to its leader, which may
// wait for raft (a purge, a move).
const (
	adminTimeout   = 3 * time.Second
	forwardTimeout = 30 * time.Second
)

// maxAdminResponse bounds what a node reads of another's answer (a page of
// browsed messages, the destinations of a broker with many queues).
const maxAdminResponse = 64 << 20

type admin struct {
	n      *Node
	ln     net.Listener
	srv    *http.Server
	served chan struct{}
	// serving is set by serve; close before it only closes the listener.
	serving bool
}

// newAdmin binds the admin listener; serve starts answering.
func newAdmin(n *Node) (*admin, error) {
	ln, err := net.Listen("tcp", n.cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("node: admin listener on %s: %w", n.cfg.HTTPAddr, err)
	}
	if n.cfg.TLS != nil {
		// Certificates are asked for, not required: operators and their
		// browsers log in with a password; nodes show their certificate
		// to join (nodeCertified).
		ln = tls.NewListener(ln, n.cfg.TLS.ServerConfig(tls.VerifyClientCertIfGiven))
	}
	a := &admin{n: n, ln: ln, served: make(chan struct{})}
	mux := http.NewServeMux()
	// Broker-wide reads need the broker read right, group changes the
	// broker admin right; the queue routes check the queue's own rights
	// in their handlers, since the queue may be named in the body.
	read := func(h http.HandlerFunc) http.HandlerFunc { return a.brokerRight(auth.Read, h) }
	manage := func(h http.HandlerFunc) http.HandlerFunc { return a.brokerRight(auth.Admin, h) }
	routes := []struct {
		method, path string
		h            http.HandlerFunc
	}{
		{"GET", "/api/v1/node", read(a.getNode)},
		{"GET", "/api/v1/status", read(a.getStatus)},
		{"GET", "/api/v1/members", read(a.getMembers)},
		{"POST", "/api/v1/members", manage(a.postMember)},
		{"DELETE", "/api/v1/members/{id}", manage(a.deleteMember)},
		{"POST", "/api/v1/leader-transfer", manage(a.postTransfer)},
		{"GET", "/api/v1/network", read(a.getNetwork)},
		{"GET", "/api/v1/gossip", read(a.getGossip)},
		{"GET", "/api/v1/destinations", read(a.getDestinations)},
		{"GET", "/api/v1/connections", read(a.getConnections)},
		{"GET", "/api/v1/subscriptions", read(a.getSubscriptions)},
		{"POST", "/api/v1/queues", a.postQueue},
		{"DELETE", "/api/v1/queues/{name}", a.deleteQueue},
		{"POST", "/api/v1/queues/{name}/purge", a.postPurge},
		{"POST", "/api/v1/queues/{name}/move", a.postMove},
		{"GET", "/api/v1/queues/{name}/messages", a.getMessages},
		{"GET", "/api/v1/scheduled", read(a.getScheduled)},
		{"DELETE", "/api/v1/scheduled/{id}", read(a.deleteScheduled)},
		{"GET", "/healthz", a.getHealthz},
		{"GET", "/readyz", a.getReadyz},
		{"GET", "/metrics", read(n.metrics.handler(n.log.With("logger", "metrics")).ServeHTTP)},
	}
	allowed := make(map[string][]string)
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.path, rt.h)
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// A known path with another method gets a JSON 405 rather than the
	// mux's plain-text one: a pattern without a method matches whatever
	// the ones with methods do not.
	for path, methods := range allowed {
		allow := strings.Join(methods, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: allowed: %s", r.Method, r.URL.Path, allow))
		})
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such API: %s %s", r.Method, r.URL.Path))
	})
	mux.Handle("/", console.Handler())
	a.srv = &http.Server{
		Handler:           a.authenticated(guard(mux)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	return a, nil
}

// guard refuses actions that a web page of another site could make a
// browser send to an operator's admin address (cross-site request
// forgery): an action must be a JSON request, which no page can send
// cross-origin without a CORS preflight this server never approves, and
// a request a browser marks as coming from another origin is refused.
func guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" {
			if u, err := url.Parse(origin); err != nil || u.Host != r.Host {
				writeError(w, http.StatusForbidden, fmt.Sprintf("%s %s from origin %q: actions are taken only from this node's own console or API clients", r.Method, r.URL.Path, origin))
				return
			}
		}
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("%s %s: send actions with Content-Type: application/json", r.Method, r.URL.Path))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *admin) serve() {
	a.serving = true
	go func() {
		defer close(a.served)
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.n.log.Error("admin API stopped", "err", err)
		}
	}()
	a.n.log.Info("serving admin API", "addr", a.ln.Addr().String())
}

// close stops the server, giving requests in progress a moment.
func (a *admin) close() {
	if !a.serving {
		a.ln.Close() // Start failed before serving
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.srv.Close()
	}
	select {
	case <-a.served:
	case <-ctx.Done():
	}
}

func (a *admin) getNode(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Info())
}

func (a *admin) getStatus(w http.ResponseWriter, r *http.Request) {
	st, err := a.n.Status(r.Context())
	if err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (a *admin) getMembers(w http.ResponseWriter, r *http.Request) {
	a.writeMembers(w, nil)
}

// writeMembers answers with the member list, or with err if an action
// before it failed.
func (a *admin) writeMembers(w http.ResponseWriter, err error) {
	var ms []Member
	if err == nil {
		ms, err = a.n.Members()
	}
	if err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ms)
}

func (a *admin) postMember(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req JoinRequest
	if !decodeStrict(w, body, &req) || !a.nodeCertified(w, r) {
		return
	}
	if !a.onLeader(w, r, body) {
		return
	}
	a.writeMembers(w, a.n.addMember(r.Context(), req))
}

func (a *admin) deleteMember(w http.ResponseWriter, r *http.Request) {
	if !a.onLeader(w, r, nil) {
		return
	}
	a.writeMembers(w, a.n.removeMember(r.Context(), r.PathValue("id")))
}

func (a *admin) postTransfer(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req TransferRequest
	if len(bytes.TrimSpace(body)) > 0 && !decodeStrict(w, body, &req) {
		return
	}
	if !a.onLeader(w, r, body) {
		return
	}
	leader, err := a.n.transferLeadership(r.Context(), req.ID)
	if err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, TransferResult{LeaderID: leader})
}

// onLeader reports whether this node leads and may act on r; otherwise it
// has answered r, by forwarding it to the leader or with an error.
func (a *admin) onLeader(w http.ResponseWriter, r *http.Request, body []byte) bool {
	rf := a.n.Raft()
	if rf == nil {
		writeError(w, http.StatusServiceUnavailable, "node is not started")
		return false
	}
	if rf.State() == raft.Leader {
		return true
	}
	if by := r.Header.Get(forwardedHeader); by != "" {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("forwarded by %s, but %s is not the leader (leadership moved): retry", by, a.n.cfg.ID))
		return false
	}
	target, err := a.n.leaderHTTP()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return false
	}
	reply, err := a.n.callAdmin(r.Context(), r.Method, target, r.URL.RequestURI(), body, r)
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("forward to leader at %s: %v", target, err))
		return false
	}
	if reply.allow != "" {
		w.Header().Set("Allow", reply.allow)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(reply.status)
	w.Write(reply.body)
	return false
}

// callAdmin sends one request to another node's admin API and returns the
// status and body. relayed, when set, is the request this call forwards to
// the leader: its credentials go along, for the leader to check.
func (n *Node) callAdmin(ctx context.Context, method, addr, uri string, body []byte, relayed *http.Request) (*adminReply, error) {
	timeout := adminTimeout
	if relayed != nil {
		timeout = forwardTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.adminScheme()+addr+uri, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if relayed != nil {
		req.Header.Set(forwardedHeader, n.cfg.ID)
	}
	n.setCredentials(req, relayed)
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json") // see guard
	}
	resp, err := n.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminResponse+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if len(b) > maxAdminResponse {
		return nil, fmt.Errorf("response larger than %d MiB", maxAdminResponse>>20)
	}
	return &adminReply{status: resp.StatusCode, body: b, allow: resp.Header.Get("Allow")}, nil
}

// adminReply is another node's answer.
type adminReply struct {
	status int
	body   []byte
	allow  string // the Allow header of a 405
}

// getAdmin fetches addr's uri into v.
func (n *Node) getAdmin(ctx context.Context, addr, uri string, v any) error {
	reply, err := n.callAdmin(ctx, http.MethodGet, addr, uri, nil, nil)
	if err != nil {
		return err
	}
	if reply.status != http.StatusOK {
		return &adminStatusError{status: reply.status, msg: errorText(reply.body)}
	}
	return json.Unmarshal(reply.body, v)
}

// adminStatusError is another node's answer other than 200 OK.
type adminStatusError struct {
	status int
	msg    string
}

func (e *adminStatusError) Error() string {
	return fmt.Sprintf("%s: %s", http.StatusText(e.status), e.msg)
}

// errorText is the message of an ErrorResponse body, or the body.
func errorText(body []byte) string {
	var e ErrorResponse
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return string(bytes.TrimSpace(body))
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAdminBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("read request body: %v", err))
		return nil, false
	}
	return body, true
}

func decodeStrict(w http.ResponseWriter, body []byte, v any) bool {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad JSON request: %v", err))
		return false
	}
	return true
}

// statusError carries an HTTP status with an error.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

func withStatus(code int, format string, args ...any) error {
	return &statusError{code: code, err: fmt.Errorf(format, args...)}
}

func writeFailure(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var se *statusError
	switch {
	case errors.As(err, &se):
		code = se.code
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, ErrClosed), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	writeError(w, code, err.Error())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
