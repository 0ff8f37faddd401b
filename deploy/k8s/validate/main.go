// Command validate checks deploy/k8s's manifests offline, without a
// cluster or downloaded schemas. Every document decodes strictly into the
// k8s.io/api type of its kind, as the API server decodes it (unknown,
// misspelt, wrongly cased or duplicate fields are errors), and the
// manifests keep the promises deploy/README.md makes about them: a
// headless peer Service publishing pods that are not ready, parallel pod
// management, probes on /readyz and /healthz, one volume per pod, an id
// from the pod name, join addresses through stable DNS names, the groups
// seeding each other's gossip, and so on.
//
//	go run . -flags FLAGS.txt ../raftmq-east.yaml ../raftmq-west.yaml
//
// FLAGS.txt lists `raftmq server`'s flag names, one per line (validate.sh
// takes them from `raftmq server -h`): each RAFTMQ_ variable must name one.
//
// It is its own module, so the broker's go.mod does not depend on
// Kubernetes.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// group is one raftmq group as its manifest describes it.
type group struct {
	file     string
	name     string // RAFTMQ_GROUP
	sts      *appsv1.StatefulSet
	peers    *corev1.Service // headless
	client   *corev1.Service
	pdb      *policyv1.PodDisruptionBudget
	env      map[string]string // the raftmq container's literal env values
	services []*corev1.Service
}

type checker struct {
	errs  []string
	flags map[string]bool // flag names; nil: not checked
}

func (c *checker) errorf(where, format string, args ...any) {
	c.errs = append(c.errs, where+": "+fmt.Sprintf(format, args...))
}

func main() {
	flagsFile := flag.String("flags", "", "file listing `raftmq server` flag names, one per line")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: validate [-flags FILE] MANIFEST.yaml...")
		os.Exit(2)
	}
	c := &checker{}
	if *flagsFile != "" {
		b, err := os.ReadFile(*flagsFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		c.flags = map[string]bool{}
		for _, f := range strings.Fields(string(b)) {
			c.flags[f] = true
		}
	}
	var groups []*group
	docs := 0
	for _, file := range flag.Args() {
		g, n := c.load(file)
		docs += n
		if g != nil {
			groups = append(groups, g)
		}
	}
	c.crossGroup(groups)
	if len(c.errs) > 0 {
		for _, e := range c.errs {
			fmt.Fprintln(os.Stderr, "FAIL", e)
		}
		os.Exit(1)
	}
	fmt.Printf("ok: %d files, %d documents, %d groups\n", flag.NArg(), docs, len(groups))
}

// splitDocs splits a multi-document YAML stream on its "---" lines and
// drops documents that hold only comments.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	flush := func() {
		content := false
		for _, l := range strings.Split(cur.String(), "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				content = true
			}
		}
		if content {
			docs = append(docs, slices.Clone(cur.Bytes()))
		}
		cur.Reset()
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.TrimRight(sc.Text(), " ") == "---" {
			flush()
			continue
		}
		cur.Write(sc.Bytes())
		cur.WriteByte('\n')
	}
	flush()
	return docs
}

// load decodes one manifest file and checks each object, then the group
// they make together.
func (c *checker) load(file string) (*group, int) {
	b, err := os.ReadFile(file)
	if err != nil {
		c.errorf(file, "%v", err)
		return nil, 0
	}
	g := &group{file: file}
	docs := splitDocs(b)
	for i, doc := range docs {
		where := fmt.Sprintf("%s#%d", file, i+1)
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			c.errorf(where, "not YAML: %v", err)
			continue
		}
		where += " " + tm.Kind
		strict := func(into any) bool {
			// As the API server decodes: YAML to JSON (duplicate keys
			// are errors), then case-sensitive JSON, unknown and
			// duplicate fields reported. encoding/json alone (which
			// yaml.UnmarshalStrict uses) would accept a field spelt
			// in another case, which the API server drops.
			j, err := yaml.YAMLToJSONStrict(doc)
			if err != nil {
				c.errorf(where, "YAML: %v", err)
				return false
			}
			strictErrs, err := sjson.UnmarshalStrict(j, into)
			if err != nil {
				c.errorf(where, "decode: %v", err)
				return false
			}
			for _, e := range strictErrs {
				c.errorf(where, "strict decode: %v", e)
			}
			return len(strictErrs) == 0
		}
		switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
		case "v1/Service":
			var s corev1.Service
			if strict(&s) {
				c.meta(where, s.ObjectMeta, true)
				g.services = append(g.services, &s)
			}
		case "apps/v1/StatefulSet":
			var s appsv1.StatefulSet
			if strict(&s) {
				c.meta(where, s.ObjectMeta, false)
				if g.sts != nil {
					c.errorf(where, "a second StatefulSet in one group's file")
				}
				g.sts = &s
			}
		case "policy/v1/PodDisruptionBudget":
			var p policyv1.PodDisruptionBudget
			if strict(&p) {
				c.meta(where, p.ObjectMeta, false)
				g.pdb = &p
			}
		default:
			c.errorf(where, "unexpected kind %q", gvk)
		}
	}
	if g.sts == nil {
		c.errorf(file, "no StatefulSet")
		return nil, len(docs)
	}
	c.group(g)
	return g, len(docs)
}

func (c *checker) meta(where string, m metav1.ObjectMeta, service bool) {
	if m.Namespace != "" {
		c.errorf(where, "namespace %q set: the manifests take the namespace from kubectl -n", m.Namespace)
	}
	check := validation.IsDNS1123Subdomain
	if service {
		check = validation.IsDNS1035Label
	}
	for _, e := range check(m.Name) {
		c.errorf(where, "name %q: %s", m.Name, e)
	}
	c.labels(where, m.Labels)
}

func (c *checker) labels(where string, l map[string]string) {
	for k, v := range l {
		for _, e := range validation.IsQualifiedName(k) {
			c.errorf(where, "label key %q: %s", k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			c.errorf(where, "label %s value %q: %s", k, v, e)
		}
	}
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// group checks one group's objects against each other and the promises of
// deploy/README.md.
func (c *checker) group(g *group) {
	s := g.sts
	where := g.file + " StatefulSet " + s.Name
	spec := s.Spec
	pod := spec.Template.Spec
	podLabels := labels.Set(spec.Template.Labels)

	// The workload itself.
	sel, err := metav1.LabelSelectorAsSelector(spec.Selector)
	switch {
	case err != nil:
		c.errorf(where, "selector: %v", err)
	case sel.Empty():
		c.errorf(where, "empty selector")
	case !sel.Matches(podLabels):
		c.errorf(where, "selector %s does not match the pod template's labels", sel)
	}
	c.labels(where+" template", spec.Template.Labels)
	replicas := int32(1)
	if spec.Replicas != nil {
		replicas = *spec.Replicas
	}
	if replicas < 3 || replicas%2 == 0 {
		c.errorf(where, "replicas %d: a group needs an odd number, at least 3", replicas)
	}
	if spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		c.errorf(where, "podManagementPolicy %q: want Parallel (all nodes must start to bootstrap; followers are never ready)", spec.PodManagementPolicy)
	}
	if spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
		c.errorf(where, "updateStrategy %q: want OnDelete (a rolling update waits for followers to become ready, for ever)", spec.UpdateStrategy.Type)
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		c.errorf(where, "enableServiceLinks must be false: service links set RAFTMQ_* variables for Services named raftmq-*")
	}
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.FSGroup == nil {
		c.errorf(where, "pod securityContext: want runAsNonRoot and an fsGroup (the volume must be writable by the image's uid)")
	}
	if len(pod.Containers) != 1 {
		c.errorf(where, "want one container, have %d", len(pod.Containers))
		return
	}
	ctr := pod.Containers[0]
	cwhere := where + " container " + ctr.Name
	if sc := ctr.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		c.errorf(cwhere, "securityContext: want readOnlyRootFilesystem and no privilege escalation")
	}

	// Ports: names unique and valid; every named port used exists.
	ports := map[string]corev1.ContainerPort{}
	for _, p := range ctr.Ports {
		for _, e := range validation.IsValidPortName(p.Name) {
			c.errorf(cwhere, "port name %q: %s", p.Name, e)
		}
		if _, dup := ports[p.Name]; dup {
			c.errorf(cwhere, "port name %q twice", p.Name)
		}
		ports[p.Name] = p
	}
	portNum := func(name string) int32 { return ports[name].ContainerPort }
	for _, want := range []string{"stomp", "raft", "http", "gossip-tcp", "gossip-udp"} {
		if _, ok := ports[want]; !ok {
			c.errorf(cwhere, "no container port named %q", want)
		}
	}

	// Environment: valid names, $(VAR) only to variables defined before,
	// RAFTMQ_ names that are flags.
	g.env = map[string]string{}
	defined := map[string]bool{}
	for _, e := range ctr.Env {
		for _, m := range validation.IsEnvVarName(e.Name) {
			c.errorf(cwhere, "env %s: %s", e.Name, m)
		}
		for _, ref := range varRef.FindAllStringSubmatch(e.Value, -1) {
			if !defined[ref[1]] {
				c.errorf(cwhere, "env %s refers to $(%s), not defined before it (Kubernetes would leave it as written)", e.Name, ref[1])
			}
		}
		if e.Value != "" && e.ValueFrom != nil {
			c.errorf(cwhere, "env %s has both value and valueFrom", e.Name)
		}
		if strings.HasPrefix(e.Name, "RAFTMQ_") && c.flags != nil {
			f := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(e.Name, "RAFTMQ_"), "_", "-"))
			if !c.flags[f] {
				c.errorf(cwhere, "env %s: `raftmq server` has no flag -%s", e.Name, f)
			}
		}
		defined[e.Name] = true
		g.env[e.Name] = e.Value
		if e.ValueFrom != nil {
			g.env[e.Name] = "valueFrom"
		}
	}
	fieldRef := func(name, path string) {
		for _, e := range ctr.Env {
			if e.Name == name {
				if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
					c.errorf(cwhere, "env %s: want the downward API's %s", name, path)
				}
				return
			}
		}
		c.errorf(cwhere, "env %s (downward API %s) missing", name, path)
	}
	fieldRef("POD_NAME", "metadata.name")
	fieldRef("POD_NAMESPACE", "metadata.namespace")
	fieldRef("POD_IP", "status.podIP")
	g.name = g.env["RAFTMQ_GROUP"]
	if g.name == "" {
		c.errorf(cwhere, "RAFTMQ_GROUP not set")
	}
	wantEnv := func(name, want string) {
		if got, ok := g.env[name]; !ok {
			c.errorf(cwhere, "%s not set (want %s)", name, want)
		} else if got != want {
			c.errorf(cwhere, "%s=%s, want %s", name, got, want)
		}
	}
	podDNS := "$(POD_NAME)." + spec.ServiceName + ".$(POD_NAMESPACE).svc"
	wantEnv("RAFTMQ_ID", "$(POD_NAME)")
	wantEnv("RAFTMQ_BOOTSTRAP_EXPECT", strconv.Itoa(int(replicas)))
	wantEnv("RAFTMQ_RAFT_ADVERTISE", "$(POD_IP):"+strconv.Itoa(int(portNum("raft"))))
	wantEnv("RAFTMQ_HTTP_ADVERTISE", podDNS+":"+strconv.Itoa(int(portNum("http"))))
	wantEnv("RAFTMQ_STOMP_ADVERTISE", podDNS+":"+strconv.Itoa(int(portNum("stomp"))))
	wantEnv("RAFTMQ_GOSSIP_ADVERTISE", "$(POD_IP):"+strconv.Itoa(int(portNum("gossip-tcp"))))
	wantEnv("RAFTMQ_NETWORK", "gossip")
	var join []string
	for i := range replicas {
		join = append(join, fmt.Sprintf("%s-%d.%s.$(POD_NAMESPACE).svc:%d", s.Name, i, spec.ServiceName, portNum("http")))
	}
	wantEnv("RAFTMQ_JOIN", strings.Join(join, ","))
	// Listen addresses: every interface, on the container ports.
	for env, port := range map[string]string{"RAFTMQ_STOMP": "stomp", "RAFTMQ_RAFT": "raft", "RAFTMQ_HTTP": "http", "RAFTMQ_GOSSIP": "gossip-tcp"} {
		wantEnv(env, net.JoinHostPort("0.0.0.0", strconv.Itoa(int(portNum(port)))))
	}
	if portNum("gossip-tcp") != portNum("gossip-udp") || ports["gossip-udp"].Protocol != corev1.ProtocolUDP {
		c.errorf(cwhere, "gossip needs the same port on TCP and UDP")
	}

	// Probes: readiness is leadership, liveness and startup the process.
	probe := func(what string, p *corev1.Probe, path string) {
		switch {
		case p == nil:
			c.errorf(cwhere, "no %s probe", what)
		case p.HTTPGet == nil:
			c.errorf(cwhere, "%s probe: want httpGet %s", what, path)
		case p.HTTPGet.Path != path:
			c.errorf(cwhere, "%s probe path %q, want %s", what, p.HTTPGet.Path, path)
		case p.HTTPGet.Port.String() != "http":
			c.errorf(cwhere, "%s probe port %q, want the admin port \"http\"", what, p.HTTPGet.Port.String())
		}
	}
	probe("readiness", ctr.ReadinessProbe, "/readyz")
	probe("liveness", ctr.LivenessProbe, "/healthz")
	probe("startup", ctr.StartupProbe, "/healthz")

	// One volume per pod, mounted on the data directory.
	claims := map[string]bool{}
	for _, t := range spec.VolumeClaimTemplates {
		claims[t.Name] = true
		if _, ok := t.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
			c.errorf(where, "volumeClaimTemplate %s requests no storage", t.Name)
		}
	}
	mounted := false
	for _, m := range ctr.VolumeMounts {
		if !claims[m.Name] && !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
			c.errorf(cwhere, "volumeMount %s: no such volume or claim template", m.Name)
		}
		if claims[m.Name] && m.MountPath == g.env["RAFTMQ_DATA"] {
			mounted = true
		}
	}
	if !mounted {
		c.errorf(cwhere, "RAFTMQ_DATA (%q) is not a volumeClaimTemplate's mount", g.env["RAFTMQ_DATA"])
	}

	// Services.
	for _, svc := range g.services {
		sw := g.file + " Service " + svc.Name
		ssel := labels.SelectorFromSet(svc.Spec.Selector)
		if len(svc.Spec.Selector) == 0 || !ssel.Matches(podLabels) {
			c.errorf(sw, "selector %v does not select the StatefulSet's pods", svc.Spec.Selector)
		}
		for _, p := range svc.Spec.Ports {
			for _, e := range validation.IsValidPortName(p.Name) {
				c.errorf(sw, "port name %q: %s", p.Name, e)
			}
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			cp, ok := ports[p.TargetPort.String()]
			if p.TargetPort.Type == 0 { // a number
				ok = slices.ContainsFunc(ctr.Ports, func(x corev1.ContainerPort) bool { return x.ContainerPort == p.TargetPort.IntVal })
				cp.Protocol = proto
			}
			cproto := cp.Protocol
			if cproto == "" {
				cproto = corev1.ProtocolTCP
			}
			if !ok {
				c.errorf(sw, "port %s: targetPort %s is no container port", p.Name, p.TargetPort.String())
			} else if cproto != proto {
				c.errorf(sw, "port %s: protocol %s, the container port's is %s", p.Name, proto, cproto)
			}
		}
		if svc.Name == spec.ServiceName {
			g.peers = svc
			if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				c.errorf(sw, "the StatefulSet's serviceName must be headless (clusterIP: None)")
			}
			if !svc.Spec.PublishNotReadyAddresses {
				c.errorf(sw, "publishNotReadyAddresses must be true: only the leader is ready, followers need DNS names too")
			}
		} else {
			g.client = svc
			if svc.Spec.PublishNotReadyAddresses || svc.Spec.ClusterIP == corev1.ClusterIPNone {
				c.errorf(sw, "the client Service must route to ready pods (the leader) only, through a cluster IP")
			}
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.TargetPort.String() == "stomp" }) {
				c.errorf(sw, "the client Service has no STOMP port")
			}
		}
	}
	if g.peers == nil {
		c.errorf(where, "no headless Service named %q (serviceName)", spec.ServiceName)
	}
	if g.client == nil {
		c.errorf(where, "no client Service")
	}

	// The disruption budget.
	if g.pdb == nil {
		c.errorf(where, "no PodDisruptionBudget")
	} else {
		pw := g.file + " PodDisruptionBudget " + g.pdb.Name
		psel, err := metav1.LabelSelectorAsSelector(g.pdb.Spec.Selector)
		if err != nil || psel.Empty() || !psel.Matches(podLabels) {
			c.errorf(pw, "selector does not select the StatefulSet's pods")
		}
		if mu := g.pdb.Spec.MaxUnavailable; mu == nil || mu.String() != "1" || g.pdb.Spec.MinAvailable != nil {
			c.errorf(pw, "want maxUnavailable: 1 (and no minAvailable)")
		}
		if p := g.pdb.Spec.UnhealthyPodEvictionPolicy; p != nil && *p == policyv1.AlwaysAllow {
			c.errorf(pw, "unhealthyPodEvictionPolicy AlwaysAllow would let followers (never ready) be evicted together")
		}
	}
}

// crossGroup checks what the groups share: distinct names and objects,
// and gossip seeds that reach every group.
func (c *checker) crossGroup(groups []*group) {
	names := map[string]string{}
	objects := map[string]string{}
	for _, g := range groups {
		if other, dup := names[g.name]; dup {
			c.errorf(g.file, "group %q is also %s's", g.name, other)
		}
		names[g.name] = g.file
		for _, o := range []string{"StatefulSet/" + g.sts.Name, "PodDisruptionBudget/" + nameOf(g.pdb)} {
			if other, dup := objects[o]; dup {
				c.errorf(g.file, "%s is also in %s", o, other)
			}
			objects[o] = g.file
		}
		for _, s := range g.services {
			o := "Service/" + s.Name
			if other, dup := objects[o]; dup {
				c.errorf(g.file, "%s is also in %s", o, other)
			}
			objects[o] = g.file
		}
	}
	for _, g := range groups {
		seeds := strings.Split(g.env["RAFTMQ_GOSSIP_JOIN"], ",")
		for _, o := range groups {
			if o.peers == nil {
				continue
			}
			want := fmt.Sprintf("%s.$(POD_NAMESPACE).svc:%d", o.peers.Name, gossipPort(o))
			if !slices.Contains(seeds, want) {
				c.errorf(g.file, "RAFTMQ_GOSSIP_JOIN does not seed from group %s (%s): the groups might never meet", o.name, want)
			}
		}
	}
}

func nameOf(p *policyv1.PodDisruptionBudget) string {
	if p == nil {
		return ""
	}
	return p.Name
}

func gossipPort(g *group) int32 {
	for _, p := range g.sts.Spec.Template.Spec.Containers[0].Ports {
		if p.Name == "gossip-tcp" {
			return p.ContainerPort
		}
	}
	return 0
}
