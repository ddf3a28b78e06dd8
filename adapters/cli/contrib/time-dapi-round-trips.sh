#!/bin/bash
# Times distributed API round trips through a running node, one `wazuh-cluster api` process per
# request (each opens the node's local socket), and prints p50/p99.
#
#   time-dapi-round-trips.sh BINARY SOCKET N FUNCTION [ARGUMENTS_JSON]
#
# For example, against `wazuh-cluster demo --keep` (it prints its master's socket):
#   time-dapi-round-trips.sh target/release/wazuh-cluster /tmp/wazuh-cluster-demo-XXXX/master01/queue/cluster/c-internal.sock \
#       200 /cluster/:node_id/status '{"node_id": "worker1"}'     # master -> worker1 -> master
#   time-dapi-round-trips.sh ... 200 /cluster/healthcheck            # answered by the master itself
#
# Each figure includes starting the client process (compare `BINARY --help` in a loop). A call
# whose answer is not `"error": 0` is reported and stops the run. Needs python3 for the figures.
set -euo pipefail

if [ $# -lt 4 ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
binary=$1
socket=$2
count=$3
function=$4
arguments=${5:-\{\}}

times=$(mktemp)
answer=$(mktemp)
trap 'rm -f "$times" "$answer"' EXIT

for i in $(seq 1 "$count"); do
    start=$(date +%s%N)
    if ! "$binary" -qq api --socket "$socket" "$function" "$arguments" > "$answer"; then
        echo "call $i failed: $(head -c 500 "$answer")" >&2
        exit 1
    fi
    end=$(date +%s%N)
    echo $(((end - start) / 1000)) >> "$times"
done

python3 - "$times" "$function" <<'EOF'
import sys
micros = sorted(int(line) for line in open(sys.argv[1]))
n = len(micros)
at = lambda q: micros[min(n - 1, int(q * n))] / 1000
print(f"{sys.argv[2]}: n={n} p50={at(0.5):.2f} ms p99={at(0.99):.2f} ms "
      f"min={micros[0] / 1000:.2f} ms max={micros[-1] / 1000:.2f} ms")
EOF
