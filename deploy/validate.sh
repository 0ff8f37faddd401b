#!/usr/bin/env bash
# validate.sh checks deploy/'s files with everything this machine can run,
# offline but for Debian's packages, the Go module proxy, and nothing else:
#
#   binary     the Containerfile's build command, run here: static, no libc
#   settings   every RAFTMQ_* variable and config-file name in deploy/ is a
#              flag of `raftmq server`
#   systemd    systemd-analyze verify and security (offline) on the unit;
#              a three-node group started from the example raftmq.conf
#              (nodes 1 and 3) and raftmq.env (node 2) with their addresses
#              moved to loopback ones, in a private network namespace;
#              shutdown time against TimeoutStopSec
#   container  the binary as the image runs it: uid 65532, the image's
#              RAFTMQ_* defaults, its HEALTHCHECK command; then, with
#              buildah, the Containerfile itself built (a local image made
#              from this machine's Go stands in for golang:1.26), the
#              image's config inspected, and run with podman
#   compose    docker-compose (Debian's v1) and compose-go (v2's loader)
#              parse compose.yaml; with podman, the six services started as
#              compose would (same env, addresses, volumes, options): both
#              groups form, gossip links them, a message crosses, and the
#              groups come back after all containers are re-created
#   k8s        every manifest decoded strictly into k8s.io/api types and
#              checked (deploy/k8s/validate); west is east with names swapped
#
# Run it as root (network namespaces, uid switching, podman). It installs
# the Debian packages it lacks (systemd, docker-compose, buildah, podman,
# busybox-static, file) unless RAFTMQ_VALIDATE_INSTALL=0; a check whose
# tool is missing is reported SKIP. RAFTMQ_VALIDATE_IMAGE=0 skips the image
# build and the container runs (several minutes). RAFTMQ_VALIDATE_KEEP=1
# keeps the work directory. Exit status 1 when any check FAILs.
set -euo pipefail
# The whole script is one block, read before it runs: editing this file
# while it runs cannot change what the running copy does.
{

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/raftmq-deploy-validate.XXXXXX")
ns=rmqval$$                # network namespace for the node runs
host_ip=127.0.61.1         # podman publishes here, not on 127.0.0.1
image_validate=${RAFTMQ_VALIDATE_IMAGE:-1}
install=${RAFTMQ_VALIDATE_INSTALL:-1}

passes=0 fails=0 skips=0
pids=()
podman_used=0

pass() { echo "PASS $*"; passes=$((passes + 1)); }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
skip() { echo "SKIP $*"; skips=$((skips + 1)); }
step() { printf '\n== %s\n' "$*"; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if ((podman_used)); then
		pm ps -aq 2>/dev/null | while read -r c; do pm rm -f -t 5 "$c" >/dev/null 2>&1 || true; done
		pm volume prune -f >/dev/null 2>&1 || true
		pm network ls -q 2>/dev/null | grep -v '^podman$' | while read -r n; do pm network rm -f "$n" >/dev/null 2>&1 || true; done
	fi
	ip netns del "$ns" 2>/dev/null || true
	if [[ ${RAFTMQ_VALIDATE_KEEP:-0} == 1 ]]; then
		echo "work directory kept: $work"
	else
		# podman's vfs layers are read-only directories
		chmod -R u+w "$work" 2>/dev/null || true
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# have CMD: the command exists, installing its Debian package if allowed.
have() {
	local cmd=$1 pkg=${2:-$1}
	command -v "$cmd" >/dev/null 2>&1 && return 0
	if [[ $install == 1 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		echo "installing $pkg (for $cmd)"
		if [[ ! -e $work/.apt-updated ]]; then
			apt-get update -qq >/dev/null 2>&1 || true
			touch "$work/.apt-updated"
		fi
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$pkg" >"$work/apt-$pkg.log" 2>&1 || true
	fi
	command -v "$cmd" >/dev/null 2>&1
}

# inns CMD...: run CMD in the private network namespace.
# nsenter execs the command itself (ip netns exec forks). A process to be
# stopped later is started as `nsenter ... &`, not `inns ... &`: a function
# in the background runs in a subshell, whose PID is not the command's.
netns=(nsenter --net="/run/netns/$ns" --)
inns() { "${netns[@]}" "$@"; }

# wait_group ADDRS N: wait until the group answering at ADDRS (admin
# addresses, comma-separated) has a leader and N members that all answer
# as Leader or Follower. Runs inside the namespace.
wait_group() {
	local addrs=$1 n=$2 tries=${3:-150}
	for ((i = 0; i < tries; i++)); do
		if inns "$bin" status --json --http "$addrs" --timeout 2s 2>/dev/null | python3 2>/dev/null -c '
import json, sys
st = json.load(sys.stdin)
n = int(sys.argv[1])
states = sorted(m.get("state") for m in st.get("members", []))
ok = st.get("leader_id") and len(states) == n and states.count("Leader") == 1 \
	and states.count("Follower") == n - 1 and all(m.get("http_addr") for m in st["members"])
sys.exit(0 if ok else 1)' "$n"; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# http_code URL: the status code of GET URL, inside the namespace.
http_code() { inns curl -s -o /dev/null -m 3 -w '%{http_code}' "$1" || true; }

cd "$root"

########################################################################
step "binary: the Containerfile's build"
# The Containerfile's build, with its environment: CGO_ENABLED=0, -trimpath.
bin=$work/raftmq
if CGO_ENABLED=0 GOFLAGS=-trimpath go build -trimpath -ldflags "-s -w" -o "$bin" ./cmd/raftmq 2>"$work/build.log"; then
	pass "go build (CGO_ENABLED=0, -trimpath) of ./cmd/raftmq"
else
	cat "$work/build.log"
	fail "go build of ./cmd/raftmq: the work tree does not build; nothing else can be checked"
	exit 1
fi
grep -qF 'CGO_ENABLED=0' deploy/container/Containerfile && grep -qF 'go build -trimpath' deploy/container/Containerfile ||
	fail "the Containerfile no longer builds with CGO_ENABLED=0 and -trimpath: update this script"
if have file; then
	if file "$bin" | grep -q 'statically linked'; then
		pass "file: statically linked"
	else
		fail "file: $(file -b "$bin")"
	fi
else
	skip "file not available"
fi
lddout=$(ldd "$bin" 2>&1 || true)
if grep -q 'not a dynamic executable' <<<"$lddout"; then
	pass "ldd: not a dynamic executable"
else
	fail "ldd: $lddout"
fi

########################################################################
step "settings: every name in deploy/ is a flag"
"$bin" server -h 2>&1 | sed -nE 's/^  --?([a-z][a-z0-9-]*).*/\1/p' | sort -u >"$work/flags.txt"
nflags=$(wc -l <"$work/flags.txt")
if ((nflags < 20)); then
	fail "found only $nflags flags in \`raftmq server -h\`: update this script's parsing"
fi
for f in id group data stomp raft http join bootstrap-expect gossip gossip-join network config; do
	grep -qx "$f" "$work/flags.txt" || fail "\`raftmq server\` has no flag --$f, which deploy/ relies on"
done
bad=0
# RAFTMQ_* names outside comments (but in commented-out settings such as
# "#RAFTMQ_GOSSIP=..."): the broker's variables, except the ones these
# scripts and compose.yaml read themselves.
while read -r file var; do
	case $var in
	RAFTMQ_IMAGE | RAFTMQ_LOCAL_DIR | RAFTMQ_VALIDATE_* | RAFTMQ_) continue ;;
	esac
	flag=$(echo "${var#RAFTMQ_}" | tr 'A-Z_' 'a-z-')
	if ! grep -qx "$flag" "$work/flags.txt"; then
		fail "$file: $var names no flag (--$flag)"
		bad=1
	fi
done < <(for f in deploy/*.yaml deploy/k8s/*.yaml deploy/systemd/raftmq.env deploy/systemd/raftmq.conf deploy/systemd/raftmq.service deploy/container/Containerfile; do
		grep -vE '^[[:space:]]*#([^R]|$)' "$f" | grep -oE 'RAFTMQ_[A-Z0-9_]*' | sed "s#^#$f #"
	done | sort -u)
# Config-file lines, commented examples too ("#name value").
while read -r name; do
	if ! grep -qx "$name" "$work/flags.txt"; then
		fail "deploy/systemd/raftmq.conf: setting \"$name\" is no flag"
		bad=1
	fi
done < <(sed -nE 's/^#?([a-z][a-z0-9-]*) .*/\1/p' deploy/systemd/raftmq.conf | sort -u)
((bad)) || pass "RAFTMQ_* variables and raftmq.conf settings all name flags ($nflags flags)"

########################################################################
step "systemd"
if have systemd-analyze systemd; then
	mkdir -p "$work/systemd"
	# verify wants ExecStart's binary: the one just built.
	sed "s#^ExecStart=/usr/local/bin/raftmq #ExecStart=$bin #" deploy/systemd/raftmq.service >"$work/systemd/raftmq.service"
	grep -q "^ExecStart=$bin server --config /etc/raftmq/raftmq.conf" "$work/systemd/raftmq.service" ||
		fail "raftmq.service: ExecStart is not /usr/local/bin/raftmq server --config /etc/raftmq/raftmq.conf"
	(cd "$work/systemd" && systemd-analyze verify ./raftmq.service) >"$work/systemd/verify.log" 2>&1 && rc=0 || rc=$?
	# verify exits 0 on unknown keys and misplaced settings: any output is a failure.
	if [[ $rc == 0 && ! -s $work/systemd/verify.log ]]; then
		pass "systemd-analyze verify raftmq.service (ExecStart pointed at the built binary)"
	else
		cat "$work/systemd/verify.log"
		fail "systemd-analyze verify raftmq.service"
	fi
	# --threshold is in tenths: 20 is an exposure of 2.0 ("OK" is below 3).
	if (cd "$work/systemd" && systemd-analyze security --offline=true --threshold=20 ./raftmq.service) >"$work/systemd/security.log" 2>&1; then
		pass "systemd-analyze security --offline: $(grep -o 'Overall exposure level.*' "$work/systemd/security.log")"
	else
		tail -5 "$work/systemd/security.log"
		fail "systemd-analyze security: exposure above 2.0, or an error"
	fi
	grep -qx 'TimeoutStopSec=30s' deploy/systemd/raftmq.service || fail "raftmq.service: TimeoutStopSec is not 30s: update the shutdown check below"
else
	skip "systemd-analyze not available: the unit was not verified"
fi

# The example settings, run: nodes 1 and 3 from raftmq.conf, node 2 from
# raftmq.env, their 10.0.0.N addresses moved to 127.0.61.N in a network
# namespace of our own (same ports, nothing shared with this machine).
have ip iproute2 && have curl && have python3 || { fail "ip, curl and python3 are needed"; exit 1; }
ip netns add "$ns"
inns ip link set lo up
mkdir -p "$work/sd"
for k in 1 2 3; do
	sed -e "s/10\.0\.0\./127.0.61./g" -e "s/^id n1$/id n$k/" \
		-e "s/^\(stomp\|raft\|http\) 127\.0\.61\.1:/\1 127.0.61.$k:/" \
		deploy/systemd/raftmq.conf >"$work/sd/n$k.conf"
done
# raftmq.env, read as systemd reads it (NAME=value lines), for node 2.
sed -e "s/10\.0\.0\./127.0.61./g" -e "s/^RAFTMQ_ID=n1$/RAFTMQ_ID=n2/" \
	-e "s/^\(RAFTMQ_STOMP\|RAFTMQ_RAFT\|RAFTMQ_HTTP\)=127\.0\.61\.1:/\1=127.0.61.2:/" \
	deploy/systemd/raftmq.env | grep -E '^RAFTMQ_[A-Z_]+=' >"$work/sd/n2.env"
grep -q '^id n3$' "$work/sd/n3.conf" && grep -q '^http 127.0.61.3:8161$' "$work/sd/n3.conf" &&
	grep -q '^RAFTMQ_HTTP=127.0.61.2:8161$' "$work/sd/n2.env" ||
	fail "could not derive nodes 2 and 3 from raftmq.conf/raftmq.env: update this script"
declare -A node_pid
for k in 1 2 3; do
	mkdir -p "$work/sd/data$k"
	if ((k == 2)); then
		# shellcheck disable=SC2046
		"${netns[@]}" env -i PATH="$PATH" RAFTMQ_DATA="$work/sd/data2" $(cat "$work/sd/n2.env") \
			"$bin" server >"$work/sd/n2.log" 2>&1 &
	else
		# The file's data line is /var/lib/raftmq: the environment wins over it.
		"${netns[@]}" env -i PATH="$PATH" RAFTMQ_DATA="$work/sd/data$k" \
			"$bin" server --config "$work/sd/n$k.conf" >"$work/sd/n$k.log" 2>&1 &
	fi
	node_pid[$k]=$!
	pids+=($!)
done
sd_join=127.0.61.1:8161,127.0.61.2:8161,127.0.61.3:8161
if wait_group "$sd_join" 3; then
	pass "systemd example: a group of three formed from raftmq.conf (n1, n3) and raftmq.env (n2)"
	inns "$bin" status --http "$sd_join" | sed -n '1,2p;6,9p'
	ready=0
	for k in 1 2 3; do
		[[ $(http_code "http://127.0.61.$k:8161/healthz") == 200 ]] || fail "n$k: /healthz did not answer 200"
		[[ $(http_code "http://127.0.61.$k:8161/readyz") == 200 ]] && ready=$((ready + 1))
		[[ $(http_code "http://127.0.61.$k:8161/metrics") == 200 ]] || fail "n$k: /metrics did not answer 200"
	done
	if ((ready == 1)); then
		pass "/healthz 200 on all three, /readyz 200 on exactly one (the leader), /metrics 200"
	else
		fail "/readyz answered 200 on $ready nodes, want 1"
	fi
	grep -q '"msg":"node started"' "$work/sd/n1.log" && pass "log-format json from raftmq.conf" ||
		fail "n1 does not log JSON (raftmq.conf's log-format json)"
	url="failover:(tcp://127.0.61.1:61613,tcp://127.0.61.2:61613,tcp://127.0.61.3:61613)"
	# The failover client retries for ever: every client run is bounded.
	if inns timeout 20 "$bin" send --url "$url" --dest /queue/validate 'systemd example' >/dev/null 2>&1 &&
		inns timeout 20 "$bin" receive --url "$url" --dest /queue/validate --count 1 2>/dev/null | grep -q 'systemd example'; then
		pass "a message sent to the group is received"
	else
		fail "send/receive through $url"
	fi
else
	fail "systemd example: no group of three within 30 s"
	tail -5 "$work"/sd/n*.log
fi
# SIGTERM, as systemd stops it: each node must be gone well within 30 s.
for k in 1 2 3; do
	start=$(date +%s%N)
	kill -TERM "${node_pid[$k]}" 2>/dev/null || true
	rc=0
	wait "${node_pid[$k]}" || rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	if ((rc == 0 && ms < 25000)); then
		pass "n$k stopped cleanly on SIGTERM in ${ms} ms (TimeoutStopSec=30s)"
	else
		fail "n$k: SIGTERM stop took ${ms} ms, exit status $rc"
	fi
done

########################################################################
step "container: the binary as the image runs it"
cf=deploy/container/Containerfile
user=$(sed -nE 's/^USER +([0-9]+):([0-9]+) *$/\1:\2/p' "$cf")
[[ $user =~ ^[1-9][0-9]*:[1-9][0-9]*$ ]] && pass "Containerfile: USER $user, numeric and not root" || fail "Containerfile: USER must be numeric uid:gid, not 0"
grep -qE '^FROM scratch$' "$cf" && pass "Containerfile: final stage FROM scratch" || fail "Containerfile: final stage is not scratch"
for p in 61613/tcp 61619/tcp 8161/tcp 7946/tcp 7946/udp; do
	grep -E '^EXPOSE ' "$cf" | grep -qw "$p" || fail "Containerfile: $p not exposed"
done
grep -qE '^VOLUME \["/var/lib/raftmq"\]$' "$cf" || fail "Containerfile: no VOLUME /var/lib/raftmq"
# The image's environment and health check, taken from the Containerfile.
mapfile -t image_env < <(sed -n '/^ENV RAFTMQ_/,/[^\\]$/p' "$cf" | grep -oE 'RAFTMQ_[A-Z_]+=[^ \\]+')
health=$(sed -n '/^HEALTHCHECK/,/[^\\]$/p' "$cf" | tr -d '\\\n' | sed -nE 's/.*CMD +(\[.*\]).*/\1/p')
mapfile -t health_cmd < <(python3 -c 'import json,sys; print("\n".join(json.loads(sys.argv[1])))' "$health")
[[ ${health_cmd[0]:-} == /raftmq && ${#image_env[@]} -ge 3 ]] || fail "could not read the Containerfile's ENV and HEALTHCHECK: update this script"
uid=${user%%:*} gid=${user##*:}
cdata=$work/ctr/var/lib/raftmq
mkdir -p "$cdata"
chown "$uid:$gid" "$cdata"
chmod 0755 "$work" "$work/ctr" "$work/ctr/var" "$work/ctr/var/lib"
install -m 0755 "$bin" "$work/ctr/raftmq"
# In the namespace the image's 0.0.0.0 addresses take no port of this
# machine's. RAFTMQ_DATA is the image's path, moved under $work/ctr.
mapfile -t cenv < <(printf '%s\n' "${image_env[@]}" | sed "s#^RAFTMQ_DATA=#RAFTMQ_DATA=$work/ctr#")
cd "$cdata" # the image's WORKDIR
"${netns[@]}" setpriv --reuid="$uid" --regid="$gid" --clear-groups \
	env -i "${cenv[@]}" "$work/ctr/raftmq" server >"$work/ctr.log" 2>&1 &
ctr_pid=$!
cd "$root"
pids+=($ctr_pid)
ok=0
for _ in $(seq 1 100); do
	[[ $(http_code http://127.0.0.1:8161/healthz) == 200 ]] && ok=1 && break
	sleep 0.1
done
if ((ok)); then
	pass "as uid $uid with the image's environment (${image_env[*]}): /healthz 200"
	for _ in $(seq 1 50); do
		[[ $(http_code http://127.0.0.1:8161/readyz) == 200 ]] && break
		sleep 0.1
	done
	[[ $(http_code http://127.0.0.1:8161/readyz) == 200 ]] && pass "single node: /readyz 200 (it leads)" || fail "single node: /readyz not 200"
	if inns setpriv --reuid="$uid" --regid="$gid" --clear-groups "$work/ctr/raftmq" "${health_cmd[@]:1}" >/dev/null; then
		pass "the HEALTHCHECK command (${health_cmd[*]}) exits 0"
	else
		fail "the HEALTHCHECK command (${health_cmd[*]}) failed"
	fi
	[[ -n $(find "$cdata" -mindepth 1 -maxdepth 2 -user "$uid" -print -quit) ]] && pass "state written in the data directory, owned by uid $uid" ||
		fail "no state in $cdata"
else
	tail -5 "$work/ctr.log"
	fail "as uid $uid with the image's environment: /healthz never answered"
fi
kill -TERM "$ctr_pid" 2>/dev/null || true
wait "$ctr_pid" 2>/dev/null || true
# With the node gone the health check must fail, or it checks nothing.
if inns "$work/ctr/raftmq" "${health_cmd[@]:1}" >/dev/null 2>&1; then
	fail "the HEALTHCHECK command succeeds with no node running"
else
	pass "the HEALTHCHECK command fails once the node is stopped"
fi

########################################################################
step "container: the Containerfile built with buildah, run with podman"
image_built=0
if [[ $image_validate != 1 ]]; then
	skip "image build (RAFTMQ_VALIDATE_IMAGE=0)"
elif have buildah buildah && have busybox busybox-static && have podman podman && have runc runc; then
	# Private storage and settings, so nothing of this machine's podman is
	# touched. runc and cgroupfs: crun refuses this machine's hybrid
	# cgroups; file events: there is no journald.
	mkdir -p "$work/pm"
	cat >"$work/pm/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
	cat >"$work/pm/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$work/pm/storage"
runroot = "$work/pm/run"
EOF
	export CONTAINERS_CONF=$work/pm/containers.conf CONTAINERS_STORAGE_CONF=$work/pm/storage.conf
	pm() { podman "$@"; }
	podman_used=1
	# A stand-in for golang:1.26: this machine's Go, busybox for /bin/sh.
	goroot=$(go env GOROOT)
	ctr=$(buildah from scratch)
	mnt=$(buildah mount "$ctr")
	mkdir -p "$mnt/usr/local" "$mnt/bin" "$mnt/etc/ssl/certs" "$mnt/tmp" "$mnt/root" "$mnt/go"
	chmod 1777 "$mnt/tmp"
	cp -a "$goroot" "$mnt/usr/local/go"
	cp "$(command -v busybox)" "$mnt/bin/busybox"
	for a in sh mkdir; do ln -s busybox "$mnt/bin/$a"; done
	cp /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/"
	buildah umount "$ctr" >/dev/null
	buildah config --env PATH=/usr/local/go/bin:/bin --env GOPATH=/go --env HOME=/root \
		--env GOTOOLCHAIN=local --env GOPROXY="$(go env GOPROXY)" --workingdir /go "$ctr"
	buildah commit -q "$ctr" localhost/raftmq-validate-go:latest >/dev/null
	buildah rm "$ctr" >/dev/null
	echo "building the image (modules come from the Go module proxy; a few minutes)"
	# --format docker keeps HEALTHCHECK (OCI images have none).
	if buildah bud --isolation chroot --format docker --layers=false \
		--build-arg GO_IMAGE=localhost/raftmq-validate-go:latest \
		-f deploy/container/Containerfile -t localhost/raftmq:latest . >"$work/bud.log" 2>&1; then
		pass "buildah bud -f deploy/container/Containerfile . (builder: this machine's Go as the Go image)"
		image_built=1
	else
		tail -20 "$work/bud.log"
		fail "buildah bud of the Containerfile"
	fi
else
	skip "buildah, podman, runc or busybox-static not available: the Containerfile was not built"
fi
if ((image_built)); then
	buildah inspect --type image localhost/raftmq:latest >"$work/inspect.json"
	if python3 - "$work/inspect.json" <<'EOF'; then
import json, sys
c = json.load(open(sys.argv[1]))["Docker"]["config"]
errs = []
if c.get("User") != "65532:65532": errs.append("User %r" % c.get("User"))
want = {"61613/tcp", "61619/tcp", "8161/tcp", "7946/tcp", "7946/udp"}
if set(c.get("ExposedPorts") or {}) != want: errs.append("ExposedPorts %r" % sorted(c.get("ExposedPorts") or {}))
if set(c.get("Volumes") or {}) != {"/var/lib/raftmq"}: errs.append("Volumes %r" % c.get("Volumes"))
if c.get("Entrypoint") != ["/raftmq"] or c.get("Cmd") != ["server"]: errs.append("Entrypoint/Cmd %r %r" % (c.get("Entrypoint"), c.get("Cmd")))
if not (c.get("Healthcheck") or {}).get("Test"): errs.append("no Healthcheck")
env = dict(e.split("=", 1) for e in c.get("Env") or [])
if env.get("RAFTMQ_DATA") != "/var/lib/raftmq": errs.append("RAFTMQ_DATA %r" % env.get("RAFTMQ_DATA"))
if errs:
    print("image config: " + "; ".join(errs)); sys.exit(1)
EOF
		pass "image config: User 65532:65532, the five ports, VOLUME, ENTRYPOINT/CMD, HEALTHCHECK, RAFTMQ_DATA"
	else
		fail "image config"
	fi
	size=$(pm image inspect --format '{{.Size}}' localhost/raftmq:latest)
	pass "image size $((size / 1024 / 1024)) MiB (scratch + the binary)"
	# Run it: a published admin port, a named volume, no shell inside.
	pm volume create rmqval-single >/dev/null
	if pm run -d --name rmqval-single -p "$host_ip:18161:8161" -v rmqval-single:/var/lib/raftmq \
		--read-only --cap-drop ALL --health-interval disable localhost/raftmq:latest >/dev/null 2>"$work/podman-run.log"; then
		ok=0
		for _ in $(seq 1 100); do
			[[ $(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$host_ip:18161/readyz" || true) == 200 ]] && ok=1 && break
			sleep 0.1
		done
		((ok)) && pass "podman run: the image serves /readyz 200 through a published port, read-only, no capabilities" ||
			fail "podman run: /readyz never answered 200 ($(pm logs rmqval-single 2>&1 | tail -2))"
		if pm healthcheck run rmqval-single >/dev/null 2>&1; then
			pass "podman healthcheck run: the image's HEALTHCHECK passes"
		else
			fail "podman healthcheck run"
		fi
		owner=$(pm run --rm --entrypoint /raftmq -v rmqval-single:/var/lib/raftmq localhost/raftmq:latest version >/dev/null 2>&1 &&
			stat -c %u:%g "$(pm volume inspect --format '{{.Mountpoint}}' rmqval-single)")
		[[ $owner == 65532:65532 ]] && pass "a new named volume is owned by 65532:65532 (copied from the image)" ||
			fail "the named volume is owned by $owner"
		start=$(date +%s%N)
		pm stop -t 30 rmqval-single >/dev/null
		ms=$((($(date +%s%N) - start) / 1000000))
		code=$(pm inspect --format '{{.State.ExitCode}}' rmqval-single)
		[[ $code == 0 ]] && pass "podman stop: exit status 0 after SIGTERM, in ${ms} ms" || fail "podman stop: exit status $code"
		pm rm -f rmqval-single >/dev/null
	else
		cat "$work/podman-run.log"
		fail "podman run of the image"
	fi
	pm volume rm -f rmqval-single >/dev/null 2>&1 || true
fi

########################################################################
step "compose"
if have docker-compose docker-compose; then
	if docker-compose -f deploy/compose.yaml config -q 2>"$work/dc.log"; then
		pass "docker-compose $(docker-compose version --short 2>/dev/null) config: compose.yaml parses and validates"
	else
		cat "$work/dc.log"
		fail "docker-compose config"
	fi
else
	skip "docker-compose not available"
fi
if docker compose version >/dev/null 2>&1; then
	docker compose -f deploy/compose.yaml config -q && pass "docker compose config" || fail "docker compose config"
else
	skip "docker compose (v2) not installed here; compose-go, its loader, runs next"
fi
if (cd deploy/compose-validate && go run . -flags "$work/flags.txt" -out "$work/compose" -host-ip "$host_ip" ../compose.yaml); then
	pass "compose-go: compose.yaml loads and keeps its promises (deploy/compose-validate)"
else
	fail "compose-go validation (deploy/compose-validate)"
fi
if ((image_built)) && [[ -s $work/compose/services ]]; then
	# compose up, with podman run: the same environment, addresses,
	# volumes and options as compose.yaml, ports on $host_ip.
	read -r cnet csubnet <"$work/compose/network"
	pm network create --subnet "$csubnet" "$cnet" >/dev/null
	mapfile -t services <"$work/compose/services"
	hard=$(ulimit -Hn)
	up() {
		for s in "${services[@]}"; do
			mapfile -t args <"$work/compose/$s.args"
			# This machine allows at most $hard open files.
			args=("${args[@]/#nofile=65536:65536/nofile=$hard:$hard}")
			args=("${args[@]/#raftmq:latest/localhost/raftmq:latest}")
			# An explicit --ulimit makes podman set nproc too, above this
			# machine's limit: keep it within.
			args=(--ulimit nproc=4096:4096 "${args[@]}")
			# A port of a container just removed can take a moment to
			# be released by podman.
			for try in 1 2 3 4 5 6 7 8 9 10; do
				pm run -d "${args[@]}" >/dev/null 2>>"$work/compose-run.log" && break
				pm rm -f "raftmq_$s" >/dev/null 2>&1 || true
				if ((try == 10)) || ! tail -1 "$work/compose-run.log" | grep -q 'address already in use'; then
					fail "podman run $s: $(tail -1 "$work/compose-run.log")"
					break
				fi
				sleep 1
			done
		done
	}
	group_ready() { # GROUP: a leader and three members, asked from node 1, within 60 s
		local deadline=$((SECONDS + 60))
		while ((SECONDS < deadline)); do
			if pm exec "raftmq_$1-1" /raftmq status --json --timeout 2s 2>/dev/null | python3 2>/dev/null -c '
import json, sys
st = json.load(sys.stdin)
states = sorted(m.get("state") for m in st.get("members", []))
sys.exit(0 if st.get("leader_id") and states == ["Follower", "Follower", "Leader"] else 1)'; then
				return 0
			fi
			sleep 0.2
		done
		return 1
	}
	up
	for g in east west; do
		group_ready $g && pass "compose: group $g formed (3 members, a leader)" || fail "compose: group $g did not form"
	done
	healthy=0
	for s in "${services[@]}"; do
		pm healthcheck run "raftmq_$s" >/dev/null 2>&1 && healthy=$((healthy + 1))
	done
	((healthy == ${#services[@]})) && pass "compose: all ${#services[@]} healthchecks pass" || fail "compose: $healthy of ${#services[@]} healthchecks pass"
	E="failover:(tcp://$host_ip:61613,tcp://$host_ip:61623,tcp://$host_ip:61633)"
	W="failover:(tcp://$host_ip:62613,tcp://$host_ip:62623,tcp://$host_ip:62633)"
	# A consumer on west, a message sent to east: it crosses the bridge.
	timeout 60 "$bin" receive --url "$W" --dest /queue/validate.net --count 1 >"$work/net-recv.log" 2>&1 &
	recv=$!
	pids+=($recv)
	sleep 2
	timeout 20 "$bin" send --url "$E" --dest /queue/validate.net 'east to west' >/dev/null 2>&1 || fail "compose: send to east"
	if wait "$recv" && grep -q 'east to west' "$work/net-recv.log"; then
		pass "compose: a message sent to east reaches a consumer on west (gossip-linked groups)"
	else
		fail "compose: the message did not cross from east to west ($(tail -1 "$work/net-recv.log"))"
	fi
	curl -s -m 3 -o /dev/null -w '%{http_code}' "http://$host_ip:8161/" | grep -q 200 && pass "compose: east's console answers on $host_ip:8161" ||
		fail "compose: no console on $host_ip:8161"
	# compose down, then up: new containers, the same volumes and addresses.
	timeout 20 "$bin" send --url "$E" --dest /queue/validate.kept 'kept' >/dev/null 2>&1 || fail "compose: send before the restart"
	start=$(date +%s%N)
	stops=()
	for s in "${services[@]}"; do
		pm stop -t 30 "raftmq_$s" >/dev/null &
		stops+=($!)
	done
	wait "${stops[@]}" || true
	wait_stop=0
	for s in "${services[@]}"; do
		while [[ $(pm inspect --format '{{.State.Running}}' "raftmq_$s") == true ]]; do sleep 0.1; done
		[[ $(pm inspect --format '{{.State.ExitCode}}' "raftmq_$s") == 0 ]] || wait_stop=1
	done
	ms=$((($(date +%s%N) - start) / 1000000))
	((wait_stop == 0)) && pass "compose: all six stopped cleanly (exit 0) in ${ms} ms" || fail "compose: a node did not exit 0 on SIGTERM"
	for s in "${services[@]}"; do pm rm -f "raftmq_$s" >/dev/null; done
	up
	for g in east west; do
		group_ready $g && pass "compose: group $g is back after every container was re-created" || fail "compose: group $g did not come back"
	done
	if timeout 30 "$bin" receive --url "$E" --dest /queue/validate.kept --count 1 2>/dev/null | grep -q kept; then
		pass "compose: the message stored before the re-creation is still there"
	else
		fail "compose: the message stored before the re-creation is gone"
	fi
	for s in "${services[@]}"; do pm stop -t 30 "raftmq_$s" >/dev/null & done
	wait
	for s in "${services[@]}"; do pm rm -f "raftmq_$s" >/dev/null; done
else
	skip "compose run with podman (needs the image built above)"
fi

########################################################################
step "kubernetes"
if (cd deploy/k8s/validate && go run . -flags "$work/flags.txt" ../raftmq-east.yaml ../raftmq-west.yaml); then
	pass "k8s manifests: strict decode into k8s.io/api types and the README's promises (deploy/k8s/validate)"
else
	fail "k8s manifests (deploy/k8s/validate)"
fi
# The validators must catch what they promise to: a few broken copies.
mutants=0
while IFS='|' read -r what expr; do
	sed -e "$expr" deploy/k8s/raftmq-east.yaml >"$work/mutant.yaml"
	if (cd deploy/k8s/validate && go run . -flags "$work/flags.txt" "$work/mutant.yaml" ../raftmq-west.yaml) >/dev/null 2>&1; then
		fail "deploy/k8s/validate accepts a manifest with $what"
	else
		mutants=$((mutants + 1))
	fi
done <<'EOF'
a misspelt field|s/readOnlyRootFilesystem/readOnlyRootFileSystem/
followers hidden from DNS|s/publishNotReadyAddresses: true/publishNotReadyAddresses: false/
ordered pod management|s/podManagementPolicy: Parallel/podManagementPolicy: OrderedReady/
an unknown RAFTMQ_ variable|s/RAFTMQ_LOG_FORMAT/RAFTMQ_LOG_FROMAT/
no gossip seed in the other group|s/,raftmq-west-peers[^,]*svc:7946//
readiness on /healthz|s#path: /readyz#path: /healthz#
EOF
sed -e 's/ipv4_address: 172.29.61.12/ipv4_address: 172.29.61.11/' deploy/compose.yaml >"$work/mutant-compose.yaml"
if (cd deploy/compose-validate && go run . -flags "$work/flags.txt" "$work/mutant-compose.yaml") >/dev/null 2>&1; then
	fail "deploy/compose-validate accepts two services on one address"
else
	mutants=$((mutants + 1))
fi
((mutants == 7)) && pass "the validators reject $mutants broken copies of the manifests and compose file"
if diff <(sed -e 's/east/@@/g; s/west/east/g; s/@@/west/g' deploy/k8s/raftmq-east.yaml) deploy/k8s/raftmq-west.yaml >"$work/k8s-diff.log"; then
	pass "raftmq-west.yaml is raftmq-east.yaml with the group names swapped"
else
	head -20 "$work/k8s-diff.log"
	fail "raftmq-west.yaml drifted from raftmq-east.yaml (regenerate it: sed -e 's/east/@@/g; s/west/east/g; s/@@/west/g')"
fi
skip "kubeconform/kubectl --dry-run: no cluster and no schema download here"

########################################################################
step "scripts"
for s in deploy/*.sh; do
	bash -n "$s" && pass "bash -n $s" || fail "bash -n $s"
done

printf '\n%d passed, %d failed, %d skipped\n' "$passes" "$fails" "$skips"
((fails == 0)) && exit 0
exit 1
}
