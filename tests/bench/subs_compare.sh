#!/usr/bin/env bash
# tests/bench/subs_compare.sh — two Switchboard builds side by side (before / after a kernel
# change) on the scenarios that show the cost of subscription matching and of the workers'
# cross-thread posts: MQTT QoS 0 1->1 with no other subscription and with N idle wildcard
# subscriptions that match nothing (switchboard-bench --background-subs), on the default
# workers; and MQTT QoS 0 1->1, STOMP queue and STOMP topic 1->1 on one worker.
#
# Every measurement gets a fresh broker (a run's background subscriptions are not left for the
# next one to clean up): start, a warm-up run, the measured run, stop. Each scenario's run is a
# pair, before and after back to back (which goes first alternates); a round (every scenario
# once) holds the build lock; the median of --runs is reported, with min and max and the ratio
# after / before.
# The same switchboard-bench (--bench) drives both builds.
#
#   tests/bench/subs_compare.sh --before BUILD_DIR --after BUILD_DIR [--bench BIN] [--subs N]
#                               [--runs R] [--count N] [--base-port P] [--max-minutes M] [--out DIR]
#                               [--scenarios LIST]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/bench/lib.sh
source "$HERE/lib.sh"
BEFORE=""
AFTER=""
BENCH=""
SUBS=100000
RUNS=3
COUNT=300000
BASE_PORT=23300
PICK=()
MAX_MINUTES=20
OUT=""
LOCK_FILE=/tmp/sb-build.lock

die() { echo "subs_compare.sh: $*" >&2; exit 2; }
log() { echo "[subs_compare $(date +%H:%M:%S)] $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --before) BEFORE=$2; shift ;;
        --after) AFTER=$2; shift ;;
        --bench) BENCH=$2; shift ;;
        --subs) SUBS=$2; shift ;;
        --runs) RUNS=$2; shift ;;
        --count) COUNT=$2; shift ;;
        --base-port) BASE_PORT=$2; shift ;;
        --max-minutes) MAX_MINUTES=$2; shift ;;
        --out) OUT=$2; shift ;;
        --scenarios) IFS=, read -r -a PICK <<< "$2"; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[[ -n $BEFORE && -n $AFTER ]] || die "--before and --after build directories are required"
[[ -x $BEFORE/switchboard && -x $AFTER/switchboard ]] || die "no switchboard binary in $BEFORE or $AFTER"
BENCH=${BENCH:-$AFTER/switchboard-bench}
[[ -x $BENCH ]] || die "no switchboard-bench at $BENCH"
"$BENCH" --help 2>/dev/null | grep -q -- --background-subs || die "$BENCH has no --background-subs"
DEADLINE=$(( $(date +%s) + MAX_MINUTES * 60 ))
OUT=${OUT:-$(mktemp -d /tmp/sb-subs-compare.XXXXXX)}
mkdir -p "$OUT"
STOMP_PORT=$BASE_PORT
MQTT_PORT=$((BASE_PORT + 1))
BROKER_PID=""

cleanup() { [[ -z $BROKER_PID ]] || stop_pid "$BROKER_PID" 10; BROKER_PID=""; }
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# name -> "workers|timeout|bench arguments". A build that scans every subscription per publish
# takes minutes for --count messages with the background ones: its run is cut at 60 s and
# reported from the deliveries so far (partial).
declare -A SCEN=(
    [mqtt-qos0-1to1]="0|120|--protocol mqtt --qos 0 --producers 1 --consumers 1"
    [mqtt-qos0-1to1-bg]="0|60|--protocol mqtt --qos 0 --producers 1 --consumers 1 --background-subs $SUBS"
    [w1-mqtt-qos0-1to1]="1|120|--protocol mqtt --qos 0 --producers 1 --consumers 1"
    [w1-stomp-queue-1to1]="1|120|--protocol stomp --destination queue --confirm --producers 1 --consumers 1"
    [w1-stomp-topic-1to1]="1|120|--protocol stomp --destination topic --confirm --producers 1 --consumers 1"
)
ORDER=(mqtt-qos0-1to1 mqtt-qos0-1to1-bg w1-mqtt-qos0-1to1 w1-stomp-queue-1to1 w1-stomp-topic-1to1)
if [[ ${#PICK[@]} -gt 0 ]]; then
    for s in "${PICK[@]}"; do [[ -n ${SCEN[$s]:-} ]] || die "unknown scenario $s (one of: ${ORDER[*]})"; done
    ORDER=("${PICK[@]}")
fi

start_broker() {  # build workers
    local d=$OUT/broker
    mkdir -p "$d"
    cat > "$d/switchboard.yaml" <<EOF
# written by tests/bench/subs_compare.sh
workers: $2
log:
  level: warn
store:
  type: memory
broker:
  topic_max_pending: 100000000
listeners:
  - {name: stomp, protocol: stomp, address: 127.0.0.1, port: $STOMP_PORT, max_connections: 100000}
  - {name: mqtt, protocol: mqtt, address: 127.0.0.1, port: $MQTT_PORT, max_connections: 100000}
EOF
    "$1/switchboard" run -c "$d/switchboard.yaml" >> "$OUT/broker.log" 2>&1 9>&- &
    BROKER_PID=$!
    wait_port "$STOMP_PORT" "$BROKER_PID" 10 && wait_port "$MQTT_PORT" "$BROKER_PID" 10 ||
        { tail -20 "$OUT/broker.log" >&2; die "the broker of $1 did not start"; }
}

bench() {  # json timeout args... (the caller holds the lock)
    local json=$1 limit=$2
    shift 2
    local left=$(( $(remaining) - 5 ))
    local t=$(( left < limit ? left : limit ))
    (( t > 0 )) || return 1
    timeout $((t + 15)) "$BENCH" "$@" --timeout "$t" --quiet --json "$json" 9>&- > /dev/null || true
}

for ((r = 1; r <= RUNS; r++)); do
    take_lock && (( $(remaining) > 60 )) || { log "out of time (--max-minutes $MAX_MINUTES)"; break; }
    for s in "${ORDER[@]}"; do
        IFS='|' read -r workers limit args <<< "${SCEN[$s]}"
        targets=(before after)
        (( r % 2 == 1 )) || targets=(after before)
        for target in "${targets[@]}"; do
            build=$BEFORE
            [[ $target == before ]] || build=$AFTER
            port=$MQTT_PORT
            [[ $s != *stomp* ]] || port=$STOMP_PORT
            start_broker "$build" "$workers"
            # shellcheck disable=SC2086  # the scenario's arguments are words
            warm_args=$(sed 's/--background-subs [0-9]*//' <<< "$args")
            # shellcheck disable=SC2086
            bench "$OUT/warm.json" 120 $warm_args --port "$port" --count $((COUNT / 10))
            # shellcheck disable=SC2086
            bench "$OUT/$s.$target.$r.json" "$limit" $args --port "$port" --count "$COUNT" --label "$s $target"
            stop_pid "$BROKER_PID" 10
            BROKER_PID=""
            log "$s $target run $r: $(/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%.0f msgs/s, complete=%s, setup %.1f s" % (j["receive_msgs_per_s"], j["complete"], j["setup_s"]))' "$OUT/$s.$target.$r.json" 2>/dev/null || echo "no result")"
        done
    done
    release_lock
done

/usr/bin/python3 - "$OUT" "${ORDER[@]}" <<'PYEOF' | tee "$OUT/summary.md"
import glob, json, os, statistics, sys
out, order = sys.argv[1], sys.argv[2:]
print("| scenario | before msgs/s (median [min–max]) | after msgs/s (median [min–max]) | after / before |")
print("|---|---|---|---|")
for s in order:
    med = {}
    cells = []
    for t in ("before", "after"):
        rates, partial = [], 0
        for f in sorted(glob.glob(os.path.join(out, f"{s}.{t}.*.json"))):
            j = json.load(open(f))
            # A run cut by its --timeout still measured a rate (deliveries so far / time).
            if j.get("complete") or (j.get("timed_out") and not j.get("errors") and j.get("received", 0) > 0):
                rates.append(j["receive_msgs_per_s"])
                partial += 0 if j.get("complete") else 1
        if rates:
            med[t] = statistics.median(rates)
            note = f"{len(rates)} runs" + (f", {partial} cut at the timeout" if partial else "")
            cells.append(f"{med[t]:,.0f} [{min(rates):,.0f}–{max(rates):,.0f}] ({note})")
        else:
            cells.append("no run")
    ratio = f"{med['after'] / med['before']:.2f}" if len(med) == 2 else "–"
    print(f"| {s} | {cells[0]} | {cells[1]} | {ratio} |")
PYEOF
log "results in $OUT"
