#!/bin/bash
# Step 3 across two hosts on one machine: the controller and its workers in two network
# namespaces with their own addresses, joined by a veth pair, so that every connection
# (CAF middleman, c10d TCPStore and Gloo, UCX over TCP) crosses a real interface instead
# of loopback. Needs root (ip netns). The file system is shared, as a cluster's would be.
#
#   scripts/two_hosts.sh TROUPE_BINARY TOPOLOGY OUTPUT_DIR -- TROUPE_TRAIN_FLAGS...
#   e.g. scripts/two_hosts.sh build/bin/troupe placement/examples/step3_actor_tp2.json out -- --actor_model_name_or_path ...
#
# The topology's worker processes all start on the second host. Prints both logs.
# TROUPE_HIDE_ON_SECOND_HOST="DIR ..." hides those directories from the workers (an
# empty file system mounted over each), as on a machine without a shared file system:
# the controller then sends the files the roles need, which the workers keep under
# OUTPUT_DIR/staged.
set -euo pipefail
troupe=$(realpath "$1"); topology=$2; out=$3; shift 3
[ "${1:-}" = "--" ] && shift
tag="tr$$"
a="${tag}a" b="${tag}b"
host_a=10.77.$(( $$ % 200 )).1 host_b=10.77.$(( $$ % 200 )).2
port=$(( 20000 + $$ % 20000 ))

cleanup() {
  ip netns pids "$a" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns pids "$b" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$a"
ip netns add "$b"
ip link add "${tag}va" type veth peer name "${tag}vb"
ip link set "${tag}va" netns "$a"
ip link set "${tag}vb" netns "$b"
ip -n "$a" addr add "$host_a/24" dev "${tag}va"
ip -n "$b" addr add "$host_b/24" dev "${tag}vb"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "${tag}va" up
ip -n "$b" link set "${tag}vb" up

workers=$(python3 - "$topology" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
roles = t["roles"]
sets = t.get("colocate")
if sets is None: sets = [list(roles)]
placed = {r for s in sets for r in s}
sets += [[r] for r in roles if r not in placed]
count = 0
for s in sets:
    devices = roles[s[0]].get("devices", 1)
    count += devices - 1 if "actor" in s else devices
print(count)
PY
)
mkdir -p "$out"
export TROUPE_SECRET="two-hosts-$$"
# UCX over the veth only: TCP, as between machines without RDMA.
ip netns exec "$a" env UCX_TLS=tcp UCX_NET_DEVICES="${tag}va" \
  "$troupe" train --step 3 --topology "$topology" --listen "$host_a:$port" --output_dir "$out" "$@" \
  > "$out/controller.log" 2>&1 &
controller=$!
for _ in $(seq 1 600); do
  grep -q "waiting for" "$out/controller.log" 2>/dev/null && break
  kill -0 "$controller" 2>/dev/null || break
  sleep 0.1
done
hide=""
for dir in ${TROUPE_HIDE_ON_SECOND_HOST:-}; do hide="$hide mount -t tmpfs none '$(realpath "$dir")' &&"; done
for i in $(seq 1 "$workers"); do
  # ip netns exec gives each command its own mount namespace: the mounts stay there.
  ip netns exec "$b" env UCX_TLS=tcp UCX_NET_DEVICES="${tag}vb" TROUPE_STAGE_DIR="$(realpath "$out")/staged" \
    sh -c "$hide exec '$troupe' worker --join '$host_a:$port'" > "$out/worker$i.log" 2>&1 &
done
status=0
wait "$controller" || status=$?
wait || true
echo "--- controller on $host_a"; cat "$out/controller.log"
for i in $(seq 1 "$workers"); do echo "--- worker $i on $host_b"; cat "$out/worker$i.log"; done
exit $status
