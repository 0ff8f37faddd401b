#!/usr/bin/env bash
# local-group.sh starts a raftmq group of three nodes on this machine, in
# the foreground, for trying it out. Ctrl-C stops every node (SIGTERM, a
# clean shutdown); data stays in the data directory for the next start.
#
#   node  STOMP            raft             admin (HTTP)    data
#   n1    127.0.0.1:61613  127.0.0.1:61619  127.0.0.1:8161  ./raftmq-local/n1
#   n2    127.0.0.1:61623  127.0.0.1:61629  127.0.0.1:8162  ./raftmq-local/n2
#   n3    127.0.0.1:61633  127.0.0.1:61639  127.0.0.1:8163  ./raftmq-local/n3
#
# Logs go to ./raftmq-local/nK.log. Only the leader opens its STOMP port;
# clients use failover:(tcp://127.0.0.1:61613,tcp://127.0.0.1:61623,tcp://127.0.0.1:61633).
#
# Environment: RAFTMQ (the binary; default: build ./cmd/raftmq into the
# data directory), RAFTMQ_LOCAL_DIR (./raftmq-local), NODES (3), GROUP
# (default), and STOMP_BASE (61613), RAFT_BASE (61619), HTTP_BASE (8161):
# node K uses STOMP_BASE+10(K-1), RAFT_BASE+10(K-1) and HTTP_BASE+K-1.
# For a network of groups: GOSSIP_BASE (node K gossips on GOSSIP_BASE+K-1;
# unset: no gossip), GOSSIP_JOIN (a node of the pool to join) and NETWORK
# (a --network value, e.g. gossip). See local-network.sh.
set -euo pipefail

dir=${RAFTMQ_LOCAL_DIR:-./raftmq-local}
nodes=${NODES:-3}
stomp_base=${STOMP_BASE:-61613}
raft_base=${RAFT_BASE:-61619}
http_base=${HTTP_BASE:-8161}
group=${GROUP:-default}
gossip_base=${GOSSIP_BASE:-}
mkdir -p "$dir"

bin=${RAFTMQ:-}
if [[ -z $bin ]]; then
	root=$(cd "$(dirname "$0")/.." && pwd)
	bin=$(cd "$dir" && pwd)/raftmq
	echo "building $bin"
	(cd "$root" && go build -o "$bin" ./cmd/raftmq)
fi

joins=()
stomps=()
for ((k = 1; k <= nodes; k++)); do
	joins+=("127.0.0.1:$((http_base + k - 1))")
	stomps+=("tcp://127.0.0.1:$((stomp_base + 10 * (k - 1)))")
done
join=$(IFS=,; echo "${joins[*]}")
url="failover:($(IFS=,; echo "${stomps[*]}"))"

pids=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping ${#pids[@]} nodes"
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	exit 0
}
trap stop INT TERM EXIT

for ((k = 1; k <= nodes; k++)); do
	net=()
	if [[ -n $gossip_base ]]; then
		net+=(--gossip "127.0.0.1:$((gossip_base + k - 1))")
		# Node 1 joins GOSSIP_JOIN (another group's pool), the others node 1.
		if ((k > 1)); then
			net+=(--gossip-join "127.0.0.1:$gossip_base")
		elif [[ -n ${GOSSIP_JOIN:-} ]]; then
			net+=(--gossip-join "$GOSSIP_JOIN")
		fi
	fi
	if [[ -n ${NETWORK:-} ]]; then
		net+=(--network "$NETWORK")
	fi
	"$bin" server --id "n$k" --group "$group" --data "$dir/n$k" \
		--stomp "127.0.0.1:$((stomp_base + 10 * (k - 1)))" \
		--raft "127.0.0.1:$((raft_base + 10 * (k - 1)))" \
		--http "127.0.0.1:$((http_base + k - 1))" \
		--bootstrap-expect "$nodes" --join "$join" ${net[@]+"${net[@]}"} \
		>"$dir/n$k.log" 2>&1 &
	pids+=($!)
done

# Wait for a leader, then show the group.
for _ in $(seq 1 100); do
	if "$bin" status --http "$join" 2>/dev/null | grep -Eq '^leader: +n[0-9]'; then
		break
	fi
	sleep 0.2
done
"$bin" status --http "$join" || true
cat <<MSG

A $nodes-node group "$group" runs (logs in $dir/nK.log). Try:
  $bin send --url '$url' --dest /queue/hello 'hi there'
  $bin receive --url '$url' --dest /queue/hello --count 1
  $bin status --http $join
Ctrl-C stops the group.
MSG
wait
