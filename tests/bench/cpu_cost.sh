#!/usr/bin/env bash
# tests/bench/cpu_cost.sh — the broker's CPU cost per message, before vs after a change, in
# numbers that a loaded machine moves much less than throughput: user-space instructions per
# message counted by valgrind (callgrind) on the broker during a fixed-count switchboard-bench
# run after a warm-up (repeatable to 1-3 %; more under heavy load, which changes how much a
# worker finds to do per wake-up), and, natively, system calls per message (perf's
# raw_syscalls tracepoint) and CPU milliseconds per 100,000 messages (perf's task-clock; without
# perf, utime+stime from /proc). Wall-clock rates on a shared machine swing by ±30 %.
#
#   tests/bench/cpu_cost.sh [--runs N] [--count N] [--scenarios LIST] [--no-valgrind]
#                           [--no-native] [--no-perf] [--out DIR] [--base-port P] NAME=BINARY...
#
# Each NAME=BINARY is a `switchboard` build (e.g. before=/tmp/base/switchboard
# after=build/switchboard); runs alternate between them, a fresh broker per run (memory store,
# journal for `persist`; the bench client is this tree's build/switchboard-bench, window 1000,
# 128-byte messages). Scenarios: sq (STOMP queue 1→1, receipts), sq0 (STOMP queue 1→1),
# st (STOMP topic 1→1, receipts), m0 / m1 (MQTT QoS 0 / 1, 1→1), m04 / m14 (the same 4→1,
# not run unless named in --scenarios), persist (STOMP persistent
# sends with receipts, journal synced, 4 producers, window 16, 1 consumer). Prints one line per
# run and a table of medians with the ratio of each binary to the first.
# Every broker runs as a child of this script on 127.0.0.1 and is stopped by PID.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BENCH=${BENCH:-$REPO/build/switchboard-bench}
RUNS=3
COUNT=20000
SCENARIOS="sq sq0 st m0 m1 persist"
VALGRIND=1
NATIVE=1
PERF=1
OUT=""
BASE_PORT=25900
TARGETS=()

while (($#)); do
    case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --count) COUNT=$2; shift 2 ;;
    --scenarios) SCENARIOS=${2//,/ }; shift 2 ;;
    --no-valgrind) VALGRIND=0; shift ;;
    --no-native) NATIVE=0; shift ;;
    --no-perf) PERF=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    --base-port) BASE_PORT=$2; shift 2 ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *=*) TARGETS+=("$1"); shift ;;
    *) echo "cpu_cost.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
((${#TARGETS[@]})) || { echo "cpu_cost.sh: name at least one NAME=BINARY" >&2; exit 2; }
[[ -x $BENCH ]] || { echo "cpu_cost.sh: no $BENCH (build switchboard-bench)" >&2; exit 2; }
((VALGRIND == 0)) || command -v valgrind >/dev/null || { echo "cpu_cost.sh: valgrind missing (--no-valgrind)" >&2; exit 2; }
((PERF == 0)) || command -v perf >/dev/null || PERF=0
OUT=${OUT:-$(mktemp -d /tmp/sb-cpu-cost.XXXXXX)}
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"
BROKER=""
cleanup() { [[ -z $BROKER ]] || { kill "$BROKER" 2>/dev/null || true; wait "$BROKER" 2>/dev/null || true; }; }
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

bench_args() {  # scenario port
    local S="--protocol stomp --port $2" M="--protocol mqtt --port $(($2 + 1))"
    case $1 in
    sq) echo "$S --destination queue --confirm --producers 1 --window 1000" ;;
    sq0) echo "$S --destination queue --producers 1 --window 1000" ;;
    st) echo "$S --destination topic --confirm --producers 1 --window 1000" ;;
    m0) echo "$M --qos 0 --producers 1 --window 1000" ;;
    m1) echo "$M --qos 1 --producers 1 --window 1000" ;;
    m04) echo "$M --qos 0 --producers 4 --window 1000" ;;
    m14) echo "$M --qos 1 --producers 4 --window 1000" ;;
    persist) echo "$S --destination queue --confirm --persistent --producers 4 --window 16" ;;
    *) echo "cpu_cost.sh: unknown scenario $1" >&2; exit 2 ;;
    esac
}

# One run: mode (cg|perf) name binary scenario count -> appends "mode scenario name value..." to RESULTS.
one_run() {
    local mode=$1 name=$2 bin=$3 scen=$4 count=$5 port=$BASE_PORT d
    d=$(mktemp -d "$OUT/run.XXXX")
    local store="  type: memory"
    if [[ $scen == persist ]]; then
        mkdir -p "$d/data"
        store="  type: journal
  dir: $d/data
  sync: always"
    fi
    cat >"$d/sb.yaml" <<EOF
workers: 2
log:
  level: warn
store:
$store
broker:
  topic_max_pending: 100000000
listeners:
  - {name: stomp, protocol: stomp, address: 127.0.0.1, port: $port}
  - {name: mqtt, protocol: mqtt, address: 127.0.0.1, port: $((port + 1))}
admin: {port: 0}
EOF
    if [[ $mode == cg ]]; then
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$d/cg.out" "$bin" run -c "$d/sb.yaml" >"$d/log" 2>&1 &
    else
        "$bin" run -c "$d/sb.yaml" >"$d/log" 2>&1 &
    fi
    BROKER=$!
    local i
    for ((i = 0; i < 300; i++)); do port_open "$port" && break; sleep 0.1; done
    local args
    args="$(bench_args "$scen" "$port") --consumers 1 --size 128"
    # shellcheck disable=SC2086
    "$BENCH" $args --count $((count / 10 > 1000 ? count / 10 : 1000)) --quiet --timeout 300 >/dev/null 2>&1 || true
    local t0 t1 pp="" rc=0
    if [[ $mode == cg ]]; then
        callgrind_control -i on "$BROKER" >/dev/null 2>&1
    else
        t0=$(awk '{print $14 + $15}' "/proc/$BROKER/stat")
        if ((PERF)); then
            perf stat -x, -e task-clock,raw_syscalls:sys_enter -p "$BROKER" -o "$d/perf.txt" &
            pp=$!
            sleep 0.2
        fi
    fi
    # shellcheck disable=SC2086
    "$BENCH" $args --count "$count" --quiet --timeout 600 >/dev/null 2>&1 || rc=$?
    if [[ $mode == cg ]]; then
        callgrind_control -i off "$BROKER" >/dev/null 2>&1
        callgrind_control -d "$BROKER" >/dev/null 2>&1
    else
        [[ -z $pp ]] || { kill -INT "$pp"; wait "$pp" 2>/dev/null || true; }
        t1=$(awk '{print $14 + $15}' "/proc/$BROKER/stat")
    fi
    kill "$BROKER" 2>/dev/null || true
    wait "$BROKER" 2>/dev/null || true
    BROKER=""
    if [[ $mode == cg ]]; then
        local ir
        ir=$(cat "$d"/cg.out* | awk '/^totals:/ {s += $2} END {print s + 0}')
        echo "cg $scen $name $((ir / count)) rc=$rc" | tee -a "$RESULTS"
    else
        # CPU: perf's task-clock (ns resolution) when perf runs, else /proc's ticks (10 ms).
        local hz sys=0 cpu_ms
        hz=$(getconf CLK_TCK)
        cpu_ms=$(((t1 - t0) * 1000 / hz))
        if [[ -f $d/perf.txt ]]; then
            sys=$(awk -F, '/raw_syscalls/ && $1 ~ /^[0-9]/ {print $1}' "$d/perf.txt")
            cpu_ms=$(awk -F, '/task-clock/ && $1 ~ /^[0-9]/ {print $1}' "$d/perf.txt")
        fi
        echo "perf $scen $name $(awk -v t="${cpu_ms:-0}" -v c="$count" 'BEGIN {printf "%.0f", t * 100000 / c}') $(awk -v s="${sys:-0}" -v c="$count" 'BEGIN {printf "%.3f", s / c}') rc=$rc" |
            tee -a "$RESULTS"
    fi
    rm -rf "$d"
}

for ((r = 1; r <= RUNS; r++)); do
    for scen in $SCENARIOS; do
        c=$COUNT
        [[ $scen != persist ]] || c=$((COUNT * 2 / 5))
        for t in "${TARGETS[@]}"; do
            ((VALGRIND == 0)) || one_run cg "${t%%=*}" "${t#*=}" "$scen" "$c"
        done
        for t in "${TARGETS[@]}"; do
            ((NATIVE == 0)) || one_run perf "${t%%=*}" "${t#*=}" "$scen" $((c * 5))
        done
    done
done

python3 - "$RESULTS" "${TARGETS[@]%%=*}" <<'PYEOF'
import statistics, sys
from collections import defaultdict
path, names = sys.argv[1], sys.argv[2:]
cg, ms, sc = defaultdict(list), defaultdict(list), defaultdict(list)
scens = []
for line in open(path):
    p = line.split()
    if p[1] not in scens: scens.append(p[1])
    if p[0] == "cg": cg[(p[1], p[2])].append(int(p[3]))
    else: ms[(p[1], p[2])].append(int(p[3])); sc[(p[1], p[2])].append(float(p[4]))
def col(d, s, n, fmt):
    if not d[(s, n)]: return "–"
    m = statistics.median(d[(s, n)]); b = d[(s, names[0])]
    r = f" ({m / statistics.median(b):.3f})" if n != names[0] and b and statistics.median(b) else ""
    return fmt.format(m) + r
print("\nmedians (ratio to " + names[0] + "): user instructions/msg (callgrind) | CPU ms/100k msgs | syscalls/msg")
print("| scenario | " + " | ".join(f"{n} instr/msg" for n in names) + " | " + " | ".join(f"{n} ms/100k" for n in names)
      + " | " + " | ".join(f"{n} sys/msg" for n in names) + " |")
print("|---" * (1 + 3 * len(names)) + "|")
for s in scens:
    print(f"| {s} | " + " | ".join(col(cg, s, n, "{:.0f}") for n in names) + " | "
          + " | ".join(col(ms, s, n, "{:.0f}") for n in names) + " | "
          + " | ".join(col(sc, s, n, "{:.3f}") for n in names) + " |")
PYEOF
echo "results: $RESULTS"
