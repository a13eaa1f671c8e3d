#!/usr/bin/env bash
# tests/bench/backlog.sh — a persistent backlog much larger than a queue's memory limit: fills one
# queue with N persistent messages through STOMP (switchboard-bench: --persistent --confirm, no
# consumer), kills the broker with SIGKILL, restarts it on its journal, then drains the queue and
# checks that every confirmed message came back once (drain_queue.py). Reports the broker's peak
# resident memory (VmHWM) in each phase, its RSS at rest after recovery, recovery time, and the
# fill and drain rates. Default: 1,000,000 messages of 1 KiB with the default queue_memory_limit.
#
#   tests/bench/backlog.sh [--build DIR] [--count N] [--size B] [--producers P]
#                          [--queue-memory-limit SIZE] [--sync always|batch|never] [--out FILE]
#
# The broker runs as a child of this script on 127.0.0.1 with a config and journal in a temp dir
# (removed at the end unless --keep); on exit the script stops exactly the process it started.
# Each phase holds the build lock (/tmp/sb-build.lock) so that a build does not skew it.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD="$REPO/build"
COUNT=1000000
SIZE=1024
PRODUCERS=8
LIMIT=""
SYNC=always
OUT=""
KEEP=0
LOCK_FILE=/tmp/sb-build.lock

while [[ $# -gt 0 ]]; do
    case $1 in
        --build) BUILD=$2; shift 2 ;;
        --count) COUNT=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --producers) PRODUCERS=$2; shift 2 ;;
        --queue-memory-limit) LIMIT=$2; shift 2 ;;
        --sync) SYNC=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

SB="$BUILD/switchboard"
BENCH="$BUILD/switchboard-bench"
[[ -x $SB && -x $BENCH ]] || { echo "build switchboard and switchboard-bench in $BUILD first" >&2; exit 2; }

WORK=$(mktemp -d /tmp/sb-backlog.XXXXXX)
PID=""
cleanup() {
    if [[ -n $PID ]]; then kill -KILL "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    [[ $KEEP == 1 ]] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
QUEUE=backlog
{
    echo "workers: 2"
    echo "log: {level: info}"
    [[ -n $LIMIT ]] && echo "broker: {queue_memory_limit: $LIMIT}"
    echo "store: {type: journal, dir: $WORK/data, sync: $SYNC}"
    echo "listeners:"
    echo "  - {name: stomp, protocol: stomp, address: 127.0.0.1, port: $PORT}"
} > "$WORK/switchboard.yaml"

now() { date +%s.%N; }
kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$PID/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

start_broker() {
    "$SB" run -c "$WORK/switchboard.yaml" >> "$WORK/broker.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 6000); do   # 600 s at most
        kill -0 "$PID" 2>/dev/null || { echo "broker exited; log:" >&2; tail -20 "$WORK/broker.log" >&2; exit 1; }
        if /usr/bin/python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$PORT" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "broker did not listen" >&2
    exit 1
}

exec 9> "$LOCK_FILE"

echo "backlog: $COUNT x $SIZE B persistent messages, $PRODUCERS producers, sync $SYNC, queue_memory_limit ${LIMIT:-default}" >&2
flock 9
start_broker
BASE_RSS=$(kib VmRSS)
t0=$(now)
"$BENCH" --protocol stomp --port "$PORT" --destination queue --destinations 1 --prefix "$QUEUE" \
    --producers "$PRODUCERS" --consumers 0 --count "$COUNT" --size "$SIZE" --persistent --confirm \
    --window 1000 --timeout 900 --quiet --json "$WORK/fill.json" > "$WORK/fill.txt" || true
t1=$(now)
FILL_HWM=$(kib VmHWM)
FILL_RSS=$(kib VmRSS)
CONFIRMED=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["confirmed"])' "$WORK/fill.json")
JOURNAL_MB=$(du -sm "$WORK/data" | cut -f1)
kill -KILL "$PID"; wait "$PID" 2>/dev/null || true; PID=""
flock -u 9

flock 9
t2=$(now)
start_broker
t3=$(now)
sleep 1   # at rest
REC_HWM=$(kib VmHWM)
REC_RSS=$(kib VmRSS)
REC_LOG=$(grep 'recovered=' "$WORK/broker.log" | tail -1 | sed 's/^.*\] //')
flock -u 9

flock 9
t4=$(now)
IDLE=2
/usr/bin/python3 "$HERE/drain_queue.py" --port "$PORT" --queue "$QUEUE.0" --expect "$CONFIRMED" \
    --idle "$IDLE" --timeout 900 --label backlog > "$WORK/drain.json" || true
t5=$(now)
DRAIN_HWM=$(kib VmHWM)
DRAIN_RSS=$(kib VmRSS)
kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""
flock -u 9

REPORT=$(/usr/bin/python3 - "$WORK" "$COUNT" "$SIZE" "$CONFIRMED" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$IDLE" \
    "$BASE_RSS" "$FILL_HWM" "$FILL_RSS" "$REC_HWM" "$REC_RSS" "$DRAIN_HWM" "$DRAIN_RSS" "$JOURNAL_MB" "$REC_LOG" <<'PYEOF'
import json, sys
(work, count, size, confirmed, t0, t1, t2, t3, t4, t5, idle, base, fill_hwm, fill_rss, rec_hwm, rec_rss,
 drain_hwm, drain_rss, journal_mb, rec_log) = sys.argv[1:]
f = float
drain = json.load(open(f"{work}/drain.json"))
fill_s = f(t1) - f(t0)
drain_s = max(f(t5) - f(t4) - f(idle), 1e-9)
mib = lambda k: round(int(k) / 1024, 1)
out = {
    "messages": int(count), "size": int(size), "confirmed": int(confirmed),
    "fill_s": round(fill_s, 1), "fill_msgs_per_s": round(int(confirmed) / fill_s),
    "journal_mib_on_disk": int(journal_mb),
    "rss_mib_idle_before_fill": mib(base), "peak_rss_mib_fill": mib(fill_hwm), "rss_mib_after_fill": mib(fill_rss),
    "restart_to_listening_s": round(f(t3) - f(t2), 2), "recovery_log": rec_log,
    "peak_rss_mib_recovery": mib(rec_hwm), "rss_mib_after_recovery": mib(rec_rss),
    "drained": drain["received"], "drain_ok": drain["ok"], "duplicates": drain["duplicates"], "gaps": drain["gaps"],
    "drain_s": round(drain_s, 1), "drain_msgs_per_s": round(drain["received"] / drain_s),
    "peak_rss_mib_recovery_and_drain": mib(drain_hwm), "rss_mib_after_drain": mib(drain_rss),
}
print(json.dumps(out, indent=1))
PYEOF
)
echo "$REPORT"
[[ -n $OUT ]] && echo "$REPORT" > "$OUT"
/usr/bin/python3 -c 'import json, sys; j = json.loads(sys.argv[1]); sys.exit(0 if j["drain_ok"] and j["confirmed"] == j["messages"] else 1)' "$REPORT"
