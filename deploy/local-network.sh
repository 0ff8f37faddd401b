#!/usr/bin/env bash
# local-network.sh starts two raftmq groups of three nodes on this machine,
# "east" and "west", linked by gossip (no static lists), in the
# foreground. Ctrl-C stops both; data stays in ./raftmq-local/{east,west}.
#
#   group  STOMP (n1, n2, n3)       admin (HTTP)    gossip
#   east   61613, 61623, 61633      8161-8163       7946-7948
#   west   62613, 62623, 62633      8171-8173       7956-7958
#
# A message sent to one group reaches a consumer of the other:
#   E='failover:(tcp://127.0.0.1:61613,tcp://127.0.0.1:61623,tcp://127.0.0.1:61633)'
#   W='failover:(tcp://127.0.0.1:62613,tcp://127.0.0.1:62623,tcp://127.0.0.1:62633)'
#   raftmq receive --url "$W" --dest /queue/orders --count 1 &
#   raftmq send --url "$E" --dest /queue/orders 'from east'
#   raftmq status --http 127.0.0.1:8161     # lists the bridge
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=${RAFTMQ_LOCAL_DIR:-./raftmq-local}
mkdir -p "$top"
if [[ -z ${RAFTMQ:-} ]]; then
	RAFTMQ=$(cd "$top" && pwd)/raftmq
	echo "building $RAFTMQ"
	(cd "$here/.." && go build -o "$RAFTMQ" ./cmd/raftmq)
fi
export RAFTMQ

pids=()
stop() {
	trap - INT TERM EXIT
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	exit 0
}
trap stop INT TERM EXIT

GROUP=east RAFTMQ_LOCAL_DIR="$top/east" NETWORK=gossip GOSSIP_BASE=7946 \
	STOMP_BASE=61613 RAFT_BASE=61619 HTTP_BASE=8161 "$here/local-group.sh" &
pids+=($!)
GROUP=west RAFTMQ_LOCAL_DIR="$top/west" NETWORK=gossip GOSSIP_BASE=7956 GOSSIP_JOIN=127.0.0.1:7946 \
	STOMP_BASE=62613 RAFT_BASE=62619 HTTP_BASE=8171 "$here/local-group.sh" &
pids+=($!)
wait
