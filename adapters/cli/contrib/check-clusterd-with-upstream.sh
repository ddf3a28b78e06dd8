#!/bin/bash
# Checks our wazuh-clusterd against upstream 3.9.5's own tools, on this machine, without touching it:
# a temporary manager tree whose bin/wazuh-clusterd is our binary, started by upstream's
# ossec-control (src/init/ossec-server.sh), then upstream's cluster_control -l / -i / -a and the
# API's status check (framework/wazuh/cluster/utils.py get_cluster_status), a real upstream worker
# (framework/scripts/wazuh-clusterd.py) joining, the distributed API both ways (upstream's
# DistributedAPI on the real worker answered by our master; a request issued at our master with
# node_id worker01 answered by the real worker), and ossec-control stop removing the pid file;
# then upstream's own 3.9.5 master (framework/scripts/wazuh-clusterd.py) in the same tree with our
# worker (worker02) joining it: listed by its cluster_control -l, requests at our worker answered
# by that master (/cluster/nodes, /cluster/:node_id/status for master01), and its DistributedAPI's
# /cluster/:node_id/status for worker02 answered by our worker.
#
#   sudo adapters/cli/contrib/check-clusterd-with-upstream.sh target/debug/wazuh-cluster UPSTREAM_GIT_DIR
#
# UPSTREAM_GIT_DIR: a clone (bare or not) of github.com/wazuh/wazuh holding the tag v3.9.5.
# Needs root (for unshare -m), python3 with `cryptography`, a free port 21519. Everything runs in a
# private mount namespace: its /etc is a copy with an `ossec` account and /etc/ossec-init.conf
# added, its /var a tmpfs holding only /var/ossec (upstream's framework reads that path whatever
# ossec-init.conf says). Upstream's other daemons are stubs that exit 0. uvloop, which upstream's
# worker only uses as its event-loop policy, is replaced by asyncio's default loop.
# Exit 0 when every check passed; each check prints "ok: ..." or "FAILED: ...".
#
# TIME_DAPI=N (optional): also times N requests /cluster/:node_id/status for worker01, issued by
# upstream's DistributedAPI at the master (dapi_forward over the local socket, answered by the
# real worker), through our master and then through upstream's 3.9.5 master (started in the same
# tree once ours stopped, a new upstream worker01 joining it next to ours); prints the p50/p99 of
# each and the load average.
set -u
TIME_DAPI=${TIME_DAPI:-0}
if [ "$#" -ne 2 ] || [ "$(id -u)" != 0 ]; then
    echo "usage (as root): $0 PATH_TO_wazuh-cluster UPSTREAM_GIT_DIR" >&2
    exit 2
fi
OURS=$(readlink -f "$1")
UPSTREAM=$2
WORK=$(mktemp -d /tmp/clusterd-upstream-check.XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT

# Three install trees from upstream's sources: the master (ours as bin/wazuh-clusterd, later
# upstream's own master), upstream's worker (worker01) and our worker (worker02, "ourworker").
for node in master worker ourworker; do
    case $node in
    master) name=master01 type=master ;;
    worker) name=worker01 type=worker ;;
    ourworker) name=worker02 type=worker ;;
    esac
    mkdir -p "$WORK/$node"
    git --git-dir="$UPSTREAM/.git" rev-parse v3.9.5 >/dev/null 2>&1 && gd="$UPSTREAM/.git" || gd="$UPSTREAM"
    # (A mirror may lack blobs elsewhere in the tree; only these two paths are needed.)
    git --git-dir="$gd" archive v3.9.5 framework src/init/ossec-server.sh 2>/dev/null | tar -x -C "$WORK/$node"
    root=$WORK/$node
    [ -f "$root/framework/scripts/cluster_control.py" ] || { echo "no v3.9.5 framework in $UPSTREAM" >&2; exit 2; }
    mkdir -p "$root"/{bin,etc/shared/default,var/run,var/db,logs/cluster,queue/cluster,queue/agent-info,queue/agent-groups,tmp,ruleset}
    printf 'RULESET_VERSION="v3.9.5"\n' >"$root/ruleset/VERSION"
    touch "$root/etc/client.keys"
    # The API's daemon check (check_wazuh_status) wants the basic daemons running: their pid
    # files name a process of this script's (written once it runs, see inside.sh).
    cat >"$root/etc/ossec.conf" <<EOF
<ossec_config>
  <cluster>
    <name>wazuh</name>
    <node_name>$name</node_name>
    <node_type>$type</node_type>
    <key>checkclusterdkey0123456789abcdef</key>
    <port>21519</port>
    <bind_addr>127.0.0.1</bind_addr>
    <nodes><node>127.0.0.1</node></nodes>
    <hidden>no</hidden>
    <disabled>no</disabled>
  </cluster>
</ossec_config>
EOF
done
M=$WORK/master
# Two registered agents for cluster_control -a and the API's /agents (no agent database: our
# master reads client.keys, as upstream's framework does without one).
printf '001 agent-one any 0123456789abcdef\n002 agent-two 10.0.0.2 fedcba9876543210\n' >"$M/etc/client.keys"
mv "$M/src/init/ossec-server.sh" "$M/bin/ossec-control"
cp "$OURS" "$M/bin/wazuh-clusterd"
for d in wazuh-modulesd ossec-monitord ossec-logcollector ossec-remoted ossec-syscheckd ossec-analysisd \
    ossec-maild ossec-execd wazuh-db ossec-authd ossec-agentlessd ossec-integratord ossec-dbd ossec-csyslogd; do
    printf '#!/bin/sh\nexit 0\n' >"$M/bin/$d"
    chmod 755 "$M/bin/$d"
done
mkdir -p "$M/etc/rules"
echo '<group name="local"/>' >"$M/etc/rules/local_rules.xml"
echo '#default' >"$M/etc/shared/default/merged.mg"
mkdir -p "$WORK/shim"
printf 'import asyncio\nEventLoopPolicy = asyncio.DefaultEventLoopPolicy\n' >"$WORK/shim/uvloop.py"
cp -a /etc "$WORK/etc" 2>/dev/null
grep -q '^ossec:' "$WORK/etc/passwd" || echo 'ossec:x:54331:54331::/var/ossec:/sbin/nologin' >>"$WORK/etc/passwd"
grep -q '^ossec:' "$WORK/etc/group" || echo 'ossec:x:54331:' >>"$WORK/etc/group"
printf 'DIRECTORY="/var/ossec"\nNAME="Wazuh"\nVERSION="v3.9.5"\nREVISION="3937"\nTYPE="server"\n' >"$WORK/etc/ossec-init.conf"

cat >"$WORK/inside.sh" <<'EOF'
WORK=$1
OURS=$2
TIME_DAPI=$3
mount --bind "$WORK/etc" /etc && mount -t tmpfs none /var && mkdir /var/ossec &&
    mount --bind "$WORK/master" /var/ossec || exit 1
R=/var/ossec
chown root:ossec $R/var/run $R/etc && chmod 770 $R/var/run $R/etc
chown -R ossec:ossec $R/logs $R/queue $R/etc/shared $R/etc/rules $R/etc/client.keys
export PYTHONPATH=$R/framework:$WORK/shim
PY="python3 -W ignore"
failed=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAILED: $1"; failed=1; fi; }

$R/bin/ossec-control start >$WORK/start.txt 2>&1
# The basic daemons "run" (a sleep of ours) for the API's daemon check, on both nodes; on the
# worker ossec-maild too, which tells the worker's answer from the master's. Written after
# ossec-control start (which would take them for running daemons) and removed before its stop
# (which would kill what they name).
sleep $((300 + TIME_DAPI)) &
SLEEPER=$!
BASIC="wazuh-modulesd ossec-remoted ossec-analysisd ossec-execd wazuh-db"
for d in $BASIC; do echo $SLEEPER >$R/var/run/$d-$SLEEPER.pid; done
for d in $BASIC ossec-maild; do echo $SLEEPER >$WORK/worker/var/run/$d-$SLEEPER.pid; done
check "ossec-control start runs bin/wazuh-clusterd" "grep -q 'Started wazuh-clusterd' $WORK/start.txt"
pid=$(cat $R/var/run/wazuh-clusterd-*.pid 2>/dev/null)
check "pid file var/run/wazuh-clusterd-$pid.pid names the daemon" "[ -n '$pid' ] && kill -0 $pid"
check "ossec-control status: running" "$R/bin/ossec-control status | grep -q 'wazuh-clusterd is running'"
check "the daemon runs as ossec" "grep -q \"^Uid:.$(id -u ossec)\" /proc/$pid/status"
check "logs/cluster.log is ossec's, 0660" "[ \"\$(stat -c %U:%a $R/logs/cluster.log)\" = ossec:660 ]"
check "API status check: running" "$PY -c \"
from wazuh import Wazuh; Wazuh(get_init=True)
from wazuh.cluster.utils import get_cluster_status
assert get_cluster_status() == {'enabled': 'yes', 'running': 'yes'}, get_cluster_status()\""
# Upstream's own worker in a nested namespace whose /var/ossec is the worker tree.
# Once joined, upstream's DistributedAPI runs there as the real API would (through the worker's
# local server): /cluster/nodes goes to our master as dapi_cluster, /agents as dapi.
cat >"$WORK/dapi.py" <<'PYEOF'
import asyncio, json, logging, sys
from wazuh.cluster.dapi.dapi import DistributedAPI
arguments = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
request = {'function': sys.argv[1], 'arguments': arguments, 'from_cluster': False}
print(asyncio.run(DistributedAPI(request, logging.getLogger()).distribute_function()))
PYEOF
# TIME_DAPI: N requests /cluster/:node_id/status for worker01 from the master, one after another;
# each must be answered by the worker (its ossec-maild runs), else the run fails.
cat >"$WORK/time-dapi.py" <<'PYEOF'
import asyncio, json, logging, sys, time
from wazuh.cluster.dapi.dapi import DistributedAPI
async def main(n):
    times = []
    for _ in range(n):
        request = {'function': '/cluster/:node_id/status', 'arguments': {'node_id': 'worker01'},
                   'from_cluster': False}
        start = time.monotonic()
        answer = await DistributedAPI(request, logging.getLogger()).distribute_function()
        times.append(time.monotonic() - start)
        if json.loads(answer).get('data', {}).get('ossec-maild') != 'running':
            sys.exit('not answered by worker01: ' + answer[:300])
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000
    print('%d requests: p50 %.1f ms, p99 %.1f ms, max %.1f ms' % (n, pick(0.50), pick(0.99), times[-1] * 1000))
asyncio.run(main(int(sys.argv[1])))
PYEOF
# In the worker's namespace (its tree as /var/ossec): run "$@".
as_worker() {
    unshare -m bash -c "mount --bind $WORK/worker /var/ossec &&
        PYTHONPATH=/var/ossec/framework:$WORK/shim exec \"\$@\"" as_worker "$@"
}
# Starts upstream's worker for $1 seconds at most; WORKER is its pid (of `timeout`).
start_worker() {
    as_worker timeout "$1" python3 -W ignore /var/ossec/framework/scripts/wazuh-clusterd.py -f -r >>$WORK/worker.txt 2>&1 &
    WORKER=$!
}
chown -R ossec:ossec $WORK/worker/var $WORK/worker/logs $WORK/worker/queue $WORK/worker/etc $WORK/worker/tmp
start_worker 45
sleep 15
as_worker timeout 20 python3 -W ignore $WORK/dapi.py /cluster/nodes >$WORK/dapi-nodes.txt 2>&1 &
DAPI_NODES=$!
check "upstream cluster_control -l lists master01 and worker01" \
    "$PY $R/framework/scripts/cluster_control.py -l >$WORK/l.txt && grep -q '^master01  master' $WORK/l.txt && grep -q '^worker01  worker' $WORK/l.txt"
check "upstream cluster_control -i shows worker01's synchronisation" \
    "$PY $R/framework/scripts/cluster_control.py -i | grep 'worker01 (127.0.0.1): Integrity: 20' >/dev/null"
check "upstream cluster_control -a lists the agents through our master" \
    "$PY $R/framework/scripts/cluster_control.py -a >$WORK/a.txt 2>&1 && grep -q '^001 *agent-one ' $WORK/a.txt && grep -q '^002 *agent-two ' $WORK/a.txt"
# Issued at our master for node_id worker01: the real worker runs manager.status over its tree.
timeout 20 $OURS api /cluster/:node_id/status '{"node_id": "worker01"}' --wazuh-path $R >$WORK/node-id.txt 2>&1
check "a request at our master for node_id worker01 is answered by the real worker" \
    "grep -q '\"ossec-maild\": \"running\"' $WORK/node-id.txt && grep -q '\"error\": 0' $WORK/node-id.txt"
wait $DAPI_NODES
as_worker timeout 20 python3 -W ignore $WORK/dapi.py /agents >$WORK/dapi-agents.txt 2>&1
if [ "$TIME_DAPI" -gt 0 ]; then
    check "TIME_DAPI: $TIME_DAPI requests through our master" \
        "timeout $((30 + TIME_DAPI)) $PY $WORK/time-dapi.py $TIME_DAPI >$WORK/time-ours.txt 2>&1"
    echo "--- our master: $(grep -E '^([0-9]+ requests:|not answered)' $WORK/time-ours.txt); load average $(cut -d' ' -f1-3 /proc/loadavg)"
fi
check "upstream DistributedAPI on the real worker: /cluster/nodes from our master" \
    "grep -q '\"name\": \"master01\"' $WORK/dapi-nodes.txt && grep -q '\"name\": \"worker01\"' $WORK/dapi-nodes.txt"
check "upstream DistributedAPI on the real worker: /agents from our master" \
    "grep -q '\"name\": \"agent-one\"' $WORK/dapi-agents.txt && grep -q '\"error\": 0' $WORK/dapi-agents.txt"
for f in a node-id dapi-nodes dapi-agents; do echo "--- $f"; head -c 600 $WORK/$f.txt; echo; done
check "the upstream worker received the master's files" "grep -q local $WORK/worker/etc/rules/local_rules.xml"
rm -f $R/var/run/*-$SLEEPER.pid
$R/bin/ossec-control stop >/dev/null 2>&1
check "ossec-control stop: daemon gone, pid file removed" "! kill -0 $pid 2>/dev/null && ! ls $R/var/run/wazuh-clusterd-*.pid >/dev/null 2>&1"
check "SIGTERM logged" "grep -q 'SIGTERM received: stopping' $R/logs/cluster.log"
check "upstream cluster_control -l: Cluster is not running" \
    "$PY $R/framework/scripts/cluster_control.py -l 2>&1 | grep -q 'Cluster is not running'"
# (3.9.5's worker does not reconnect on this python: its connection_lost fails on
# asyncio.Task.all_tasks; a new one joins the next master.)
kill $WORKER 2>/dev/null
wait $WORKER
# Upstream's own 3.9.5 master in the same tree, now that ours stopped, and our worker (worker02,
# its own tree, our binary as upstream's ossec-control would run it) joining it; under TIME_DAPI
# also a new upstream worker01. The master's tree "runs" the basic daemons again (its
# DistributedAPI checks them) and ossec-csyslogd, our worker's tree ossec-authd: a status answer
# tells which tree it was read from, so a request answered by the wrong node fails its check.
for d in $BASIC ossec-csyslogd; do echo $SLEEPER >$R/var/run/$d-$SLEEPER.pid; done
OW=$WORK/ourworker
echo $SLEEPER >$OW/var/run/ossec-authd-$SLEEPER.pid
timeout $((100 + TIME_DAPI)) $PY $R/framework/scripts/wazuh-clusterd.py -f -r >$WORK/upstream-master.txt 2>&1 &
UPSTREAM_MASTER=$!
sleep 3
timeout $((90 + TIME_DAPI)) $OURS clusterd -f -r --wazuh-path $OW >$WORK/our-worker.txt 2>&1 &
OUR_WORKER=$!
[ "$TIME_DAPI" -gt 0 ] && start_worker $((80 + TIME_DAPI))
# Joined once upstream's master lists it (its worker handler exists only after the hello).
for _ in $(seq 40); do
    $PY $R/framework/scripts/cluster_control.py -l 2>/dev/null | grep -q '^worker02  worker' && break
    sleep 1
done
check "our worker joins upstream's 3.9.5 master: its cluster_control -l lists master01 and worker02" \
    "$PY $R/framework/scripts/cluster_control.py -l >$WORK/l2.txt 2>&1 && grep -q '^master01  master' $WORK/l2.txt && grep -q '^worker02  worker' $WORK/l2.txt"
# Issued at our worker: /cluster/nodes (local_master) is answered by the master, which knows
# both nodes; /cluster/:node_id/status for master01 (distributed_master) is run by the master over
# its tree (ossec-csyslogd running, ossec-authd not: the opposite of our worker's tree).
timeout 30 $OURS api /cluster/nodes --wazuh-path $OW >$WORK/ours-nodes.txt 2>&1
check "a request /cluster/nodes at our worker is answered by upstream's master" \
    "grep -q '\"name\": \"master01\"' $WORK/ours-nodes.txt && grep -q '\"name\": \"worker02\"' $WORK/ours-nodes.txt && grep -q '\"error\": 0' $WORK/ours-nodes.txt"
timeout 30 $OURS api /cluster/:node_id/status '{"node_id": "master01"}' --wazuh-path $OW >$WORK/ours-status.txt 2>&1
check "a request at our worker for node_id master01 is run by upstream's master over its tree" \
    "grep -q '\"ossec-csyslogd\": \"running\"' $WORK/ours-status.txt && grep -q '\"ossec-authd\": \"stopped\"' $WORK/ours-status.txt && grep -q '\"error\": 0' $WORK/ours-status.txt"
# Issued at upstream's master by its own DistributedAPI (dapi_forward over its local socket) for
# node_id worker02: our worker runs manager.status over its tree.
timeout 30 $PY $WORK/dapi.py /cluster/:node_id/status '{"node_id": "worker02"}' >$WORK/master-node-id.txt 2>&1
check "upstream DistributedAPI at upstream's master for node_id worker02 is answered by our worker" \
    "grep -q '\"ossec-authd\": \"running\"' $WORK/master-node-id.txt && grep -q '\"ossec-csyslogd\": \"stopped\"' $WORK/master-node-id.txt && grep -q '\"error\": 0' $WORK/master-node-id.txt"
for f in l2 ours-nodes ours-status master-node-id; do echo "--- $f"; head -c 600 $WORK/$f.txt; echo; done
if [ "$TIME_DAPI" -gt 0 ]; then
    for _ in $(seq 60); do
        $PY $R/framework/scripts/cluster_control.py -l 2>/dev/null | grep -q '^worker01  worker' && break
        sleep 1
    done
    check "TIME_DAPI: $TIME_DAPI requests through upstream's master" \
        "timeout $((30 + TIME_DAPI)) $PY $WORK/time-dapi.py $TIME_DAPI >$WORK/time-upstream.txt 2>&1"
    echo "--- upstream's master: $(grep -E '^([0-9]+ requests:|not answered)' $WORK/time-upstream.txt); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    kill $WORKER 2>/dev/null
    wait $WORKER 2>/dev/null
fi
if [ "$failed" != 0 ]; then
    echo "--- upstream's master"; tail -n 20 $WORK/upstream-master.txt
    echo "--- our worker"; tail -n 30 $WORK/our-worker.txt $OW/logs/cluster.log
    [ "$TIME_DAPI" -gt 0 ] && { echo "--- upstream's worker"; tail -n 30 $WORK/worker.txt; }
fi
kill $OUR_WORKER $UPSTREAM_MASTER 2>/dev/null
wait $OUR_WORKER $UPSTREAM_MASTER 2>/dev/null
kill $SLEEPER
exit $failed
EOF
unshare -m bash "$WORK/inside.sh" "$WORK" "$OURS" "$TIME_DAPI" 2>&1 | grep -v '^ERROR: No such file /etc/ossec-init.conf'
exit "${PIPESTATUS[0]}"
