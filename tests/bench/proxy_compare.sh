#!/usr/bin/env bash
# tests/bench/proxy_compare.sh — Switchboard's relay front-end against HAProxy (Debian's 2.6) in
# front of the same fast backend, and against no proxy at all (issue 9, item 5).
#
# One backend: a Switchboard with the memory store serving STOMP and MQTT (the fastest broker that
# speaks both), or with --backend sink switchboard-bench's null broker (faster still: it shows
# what each proxy costs when the backend is not the bottleneck). Paths to it, every one a child
# of this script on 127.0.0.1:
#   direct          the bench talks to the backend
#   switchboard     a second Switchboard that only relays: `protocol: tcp` (or mqtt) + `backend:`,
#                   `balance: first`, a health check, splice(2) between the sockets
#   haproxy         `mode tcp`, `balance first`, `server ... check`, no splicing (HAProxy's default)
#   haproxy-splice  the same with `option splice-auto` (HAProxy splices when it is worth it)
# Same scenarios through each, paths alternating within every round, median of N runs; msgs/s,
# p50, p99, ratios relay ÷ HAProxy and relay ÷ direct; the proxy's CPU time, syscalls and context
# switches per message (perf, when available); then K idle MQTT connections through each proxy
# (the proxy's resident memory per relayed connection). The bulk scenario (bulk-4x64k) is raw
# TCP: 4 connections writing 64 KiB chunks for 3 s through the proxy to a discarding sink
# (switchboard-stream-bench), in MB/s and the proxy's CPU ms per GB.
#
#   tests/bench/proxy_compare.sh [--install] [--build DIR] [--out DIR] [--runs N] [--count N]
#                                [--workers N|default] [--relay-protocol tcp|mqtt] [--paths LIST]
#                                [--backend switchboard|sink] [--connections K] [--base-port P]
#                                [--max-minutes M]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/bench/lib.sh
source "$HERE/lib.sh"   # remaining, port_open, wait_port, stop_pid, take_lock, release_lock
REPO=$(cd "$HERE/../.." && pwd)
BUILD="$REPO/build"
OUT=""
INSTALL=0
RUNS=5
COUNT=300000
WORKERS=1
BACKEND_WORKERS=1
RELAY_PROTOCOL=tcp
BACKEND=switchboard
PATHS="direct,switchboard,haproxy,haproxy-splice"
CONNECTIONS=1000
BASE_PORT=23300   # below the ephemeral range; compare.sh uses 23100-23140
MAX_MINUTES=15
SIZE=64
WINDOW=1000
LAT_SECONDS=2
BULK_SECONDS=3
# Another engineer's build holding this lock would distort the numbers: each run waits for it
# and holds it while it runs.
LOCK_FILE=/tmp/sb-build.lock

usage() {
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF

Options:
  --install              apt-get install haproxy when missing (services kept from starting)
  --build DIR            build tree with switchboard and switchboard-bench (default: $BUILD)
  --out DIR              keep results here (default: a new temp dir, printed at the end)
  --runs N               runs per scenario and path (default $RUNS; the median is reported)
  --count N              messages per throughput run (default $COUNT); the window-1 latency
                         scenarios run for $LAT_SECONDS s instead
  --workers N            the relay's worker threads and HAProxy's nbthread (default $WORKERS);
                         default: neither is set (Switchboard: one worker per CPU; HAProxy:
                         one thread per CPU), both as they come
  --backend-workers N    the backend Switchboard's workers (default $BACKEND_WORKERS)
  --relay-protocol P     the relay's listeners: tcp (raw bytes from the first one) or mqtt
                         (the MQTT listener reads CONNECT first, then relays); default $RELAY_PROTOCOL
  --backend B            switchboard (memory store; default) or sink (switchboard-bench sink,
                         one process per protocol)
  --paths LIST           comma-separated subset of: $PATHS
  --scenarios LIST       comma-separated subset of: bulk-4x64k, mqtt-qos0-1to1, mqtt-qos1-1to1,
                         stomp-queue-1to1, mqtt-qos1-w1, stomp-queue-w1 (default: all)
  --connections K        idle MQTT connections through each proxy (default $CONNECTIONS; 0 skips)
  --base-port P          first of the ~40 loopback ports used (default $BASE_PORT)
  --max-minutes M        hard bound on the whole comparison (default $MAX_MINUTES)
EOF
}

die() { echo "proxy_compare.sh: $*" >&2; exit 2; }
log() { echo "[proxy $(date +%H:%M:%S)] $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --install) INSTALL=1 ;;
        --build) BUILD=$2; shift ;;
        --out) OUT=$2; shift ;;
        --runs) RUNS=$2; shift ;;
        --count) COUNT=$2; shift ;;
        --workers) WORKERS=$2; shift ;;
        --backend-workers) BACKEND_WORKERS=$2; shift ;;
        --relay-protocol) RELAY_PROTOCOL=$2; shift ;;
        --paths) PATHS=$2; shift ;;
        --scenarios) ONLY_SCENARIOS=$2; shift ;;
        --backend) BACKEND=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --base-port) BASE_PORT=$2; shift ;;
        --max-minutes) MAX_MINUTES=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: expected a positive integer"
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "--count: expected a positive integer"
[[ $WORKERS == default || ( $WORKERS =~ ^[1-9][0-9]*$ && $WORKERS -le 64 ) ]] || die "--workers: expected 1..64 or default"
[[ $BACKEND_WORKERS =~ ^[0-9]+$ && $BACKEND_WORKERS -le 64 ]] || die "--backend-workers: expected 0..64"
[[ $RELAY_PROTOCOL == tcp || $RELAY_PROTOCOL == mqtt ]] || die "--relay-protocol: expected tcp or mqtt"
[[ $BACKEND == switchboard || $BACKEND == sink ]] || die "--backend: expected switchboard or sink"
[[ $CONNECTIONS =~ ^[0-9]+$ ]] || die "--connections: expected a non-negative integer"
[[ $BASE_PORT =~ ^[0-9]+$ && $BASE_PORT -ge 1024 && $BASE_PORT -le 65000 ]] || die "--base-port: expected 1024..65000"
[[ $MAX_MINUTES =~ ^[1-9][0-9]*$ ]] || die "--max-minutes: expected a positive integer"
for p in ${PATHS//,/ }; do
    [[ $p =~ ^(direct|switchboard|haproxy|haproxy-splice)$ ]] || die "--paths: unknown path $p"
done
wanted() { [[ ",$PATHS," == *",$1,"* ]]; }

SWITCHBOARD="$BUILD/switchboard"
BENCH="$BUILD/switchboard-bench"
STREAM="$BUILD/switchboard-stream-bench"
[[ -x $SWITCHBOARD ]] || die "no $SWITCHBOARD: build first (cmake --build build)"
[[ -x $BENCH ]] || die "no $BENCH: build first (cmake --build build --target switchboard-bench)"
[[ -x $STREAM ]] || die "no $STREAM: build first (cmake --build build --target switchboard-stream-bench)"

START_TS=$(date +%s)
DEADLINE=$((START_TS + MAX_MINUTES * 60))

# ---- haproxy ------------------------------------------------------------------------------------

if { wanted haproxy || wanted haproxy-splice; } && ! dpkg -s haproxy >/dev/null 2>&1; then
    if [[ $INSTALL == 1 ]]; then
        log "installing haproxy (its service is kept from starting by a policy-rc.d)"
        CREATED_POLICY=0
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            CREATED_POLICY=1
        fi
        rc=0
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -o DPkg::Lock::Timeout=300 haproxy || rc=$?
        [[ $CREATED_POLICY == 1 ]] && rm -f /usr/sbin/policy-rc.d
        [[ $rc == 0 ]] || die "apt-get install haproxy failed ($rc)"
    else
        log "haproxy is not installed: the haproxy paths are skipped (--install installs it)"
    fi
fi
HAVE_HAPROXY=0
command -v haproxy >/dev/null 2>&1 && HAVE_HAPROXY=1

# ---- workspace, ports, process bookkeeping ----------------------------------------------------

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)

P_BE_STOMP=$((BASE_PORT + 1)); P_BE_MQTT=$((BASE_PORT + 2)); P_BE_STREAM=$((BASE_PORT + 3))
P_SB_STOMP=$((BASE_PORT + 11)); P_SB_MQTT=$((BASE_PORT + 12)); P_SB_STREAM=$((BASE_PORT + 13))
P_HA_STOMP=$((BASE_PORT + 21)); P_HA_MQTT=$((BASE_PORT + 22)); P_HA_STREAM=$((BASE_PORT + 23))
P_HS_STOMP=$((BASE_PORT + 31)); P_HS_MQTT=$((BASE_PORT + 32)); P_HS_STREAM=$((BASE_PORT + 33))

read -r EPH_LO EPH_HI < /proc/sys/net/ipv4/ip_local_port_range || { EPH_LO=32768; EPH_HI=60999; }
if (( BASE_PORT + 40 >= EPH_LO && BASE_PORT <= EPH_HI )); then
    die "--base-port $BASE_PORT overlaps the ephemeral port range $EPH_LO-$EPH_HI: choose one below $((EPH_LO - 40))"
fi
for p in $P_BE_STOMP $P_BE_MQTT $P_BE_STREAM $P_SB_STOMP $P_SB_MQTT $P_SB_STREAM $P_HA_STOMP $P_HA_MQTT \
         $P_HA_STREAM $P_HS_STOMP $P_HS_MQTT $P_HS_STREAM; do
    port_open "$p" && die "port $p is in use: choose another --base-port"
done

WORK=$(mktemp -d /tmp/sb-proxy.XXXXXX)
[[ -n $OUT ]] || OUT="$WORK/results"
mkdir -p "$OUT/runs" "$OUT/warmup" "$OUT/idle" "$OUT/logs"
LOGS="$OUT/logs"

declare -A PID=()                      # process name -> PID this script started
declare -A STOMP_PORT=() MQTT_PORT=() STREAM_PORT=()  # path -> the port the bench connects to
declare -A PROXY_PROC=([switchboard]=relay [haproxy]=haproxy [haproxy-splice]=haproxy-splice)

PERF_PID=""
cleanup() {
    local name
    if [[ -n $PERF_PID ]]; then kill -INT "$PERF_PID" 2>/dev/null || true; PERF_PID=""; fi
    for name in "${!PID[@]}"; do [[ $name == backend_mqtt && ${PID[$name]} == "${PID[backend]:-}" ]] || stop_pid "${PID[$name]}" 10; done
    PID=()
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- the processes ------------------------------------------------------------------------------

start_backend() {
    STOMP_PORT[direct]=$P_BE_STOMP
    MQTT_PORT[direct]=$P_BE_MQTT
    STREAM_PORT[direct]=$P_BE_STREAM
    # The bulk scenario's backend: a sink that discards without copying (MSG_TRUNC).
    "$STREAM" sink --port "$P_BE_STREAM" > "$LOGS/backend-stream.log" 2>&1 &
    PID[backend_stream]=$!
    wait_port "$P_BE_STREAM" "${PID[backend_stream]}" 10 || die "the stream sink did not start"
    if [[ $BACKEND == sink ]]; then
        "$BENCH" sink --protocol stomp --port "$P_BE_STOMP" > "$LOGS/backend-stomp.log" 2>&1 &
        PID[backend]=$!
        "$BENCH" sink --protocol mqtt --port "$P_BE_MQTT" > "$LOGS/backend-mqtt.log" 2>&1 &
        PID[backend_mqtt]=$!
        { wait_port "$P_BE_STOMP" "${PID[backend]}" 10 && wait_port "$P_BE_MQTT" "${PID[backend_mqtt]}" 10; } ||
            die "the sinks did not start"
        return 0
    fi
    # As compare.sh's Switchboard: memory store, no per-subscriber drop on topics.
    cat > "$WORK/backend.yaml" <<EOF
# written by tests/bench/proxy_compare.sh: the backend every path leads to
log: {level: warn}
workers: $BACKEND_WORKERS
store: {type: memory}
broker: {topic_max_pending: 100000000}
listeners:
  - {name: stomp, protocol: stomp, address: 127.0.0.1, port: $P_BE_STOMP, max_connections: 100000}
  - {name: mqtt, protocol: mqtt, address: 127.0.0.1, port: $P_BE_MQTT, max_connections: 100000}
EOF
    "$SWITCHBOARD" run -c "$WORK/backend.yaml" > "$LOGS/backend.log" 2>&1 &
    PID[backend]=$!
    { wait_port "$P_BE_STOMP" "${PID[backend]}" 10 && wait_port "$P_BE_MQTT" "${PID[backend]}" 10; } ||
        { tail -20 "$LOGS/backend.log" >&2; die "the backend did not start"; }
    PID[backend_mqtt]=${PID[backend]}
}

start_relay() {
    # Only a relay: both listeners hand every connection to a backend (the kernel behind it is
    # idle). Health checks and timeouts as HAProxy's below: a TCP connect every 2 s, fall 3,
    # rise 2; idle relayed connections closed after 10 min (HAProxy's timeout client/server).
    local mqtt_proto=$RELAY_PROTOCOL workers="workers: $WORKERS"
    [[ $WORKERS != default ]] || workers="# workers: not set (one per CPU)"
    cat > "$WORK/relay.yaml" <<EOF
# written by tests/bench/proxy_compare.sh: a relay in front of the backend
log: {level: warn}
$workers
store: {type: memory}
backends:
  - name: be-stomp
    balance: first
    connect_timeout: 2s
    idle_timeout: 10m
    check: {type: tcp, interval: 2s, timeout: 1s, fall: 3, rise: 2}
    servers: [{name: sb, address: "127.0.0.1:$P_BE_STOMP"}]
  - name: be-mqtt
    balance: first
    connect_timeout: 2s
    idle_timeout: 10m
    check: {type: tcp, interval: 2s, timeout: 1s, fall: 3, rise: 2}
    servers: [{name: sb, address: "127.0.0.1:$P_BE_MQTT"}]
  - name: be-stream
    balance: first
    connect_timeout: 2s
    idle_timeout: 10m
    check: {type: tcp, interval: 2s, timeout: 1s, fall: 3, rise: 2}
    servers: [{name: sink, address: "127.0.0.1:$P_BE_STREAM"}]
listeners:
  - {name: stomp, protocol: tcp, address: 127.0.0.1, port: $P_SB_STOMP, max_connections: 100000, backend: be-stomp}
  - {name: mqtt, protocol: $mqtt_proto, address: 127.0.0.1, port: $P_SB_MQTT, max_connections: 100000, backend: be-mqtt}
  - {name: stream, protocol: tcp, address: 127.0.0.1, port: $P_SB_STREAM, max_connections: 100000, backend: be-stream}
EOF
    "$SWITCHBOARD" check -c "$WORK/relay.yaml" > "$LOGS/relay-check.log" 2>&1 ||
        { cat "$LOGS/relay-check.log" >&2; return 1; }
    "$SWITCHBOARD" run -c "$WORK/relay.yaml" > "$LOGS/relay.log" 2>&1 &
    PID[relay]=$!
    { wait_port "$P_SB_STOMP" "${PID[relay]}" 10 && wait_port "$P_SB_MQTT" "${PID[relay]}" 10; } ||
        { tail -20 "$LOGS/relay.log" >&2; return 1; }
    STOMP_PORT[switchboard]=$P_SB_STOMP
    MQTT_PORT[switchboard]=$P_SB_MQTT
    STREAM_PORT[switchboard]=$P_SB_STREAM
}

start_haproxy() {  # path (haproxy | haproxy-splice) stomp-port mqtt-port stream-port
    local name=$1 ps=$2 pm=$3 pt=$4 splice="" nbthread="    nbthread $WORKERS"
    [[ $name == haproxy-splice ]] && splice="    option splice-auto"
    # maxconn: HAProxy raises its own fd limit to 2 × maxconn plus 2 per splice pipe (maxpipes:
    # maxconn / 4) and refuses to start if it cannot; the same for both variants.
    local maxconn=$(( (FD_LIMIT - 200) * 2 / 5 ))
    (( maxconn > 100000 )) && maxconn=100000
    [[ $WORKERS != default ]] || nbthread="    # nbthread: not set (one per CPU)"
    cat > "$WORK/$name.cfg" <<EOF
# written by tests/bench/proxy_compare.sh: $name in front of the backend
global
$nbthread
    maxconn $maxconn
defaults
    mode tcp
$splice
    timeout connect 2s
    timeout client 10m
    timeout server 10m
    timeout check 1s
frontend stomp
    bind 127.0.0.1:$ps
    default_backend be_stomp
frontend mqtt
    bind 127.0.0.1:$pm
    default_backend be_mqtt
frontend stream
    bind 127.0.0.1:$pt
    default_backend be_stream
backend be_stomp
    balance first
    server sb 127.0.0.1:$P_BE_STOMP check inter 2s fall 3 rise 2
backend be_mqtt
    balance first
    server sb 127.0.0.1:$P_BE_MQTT check inter 2s fall 3 rise 2
backend be_stream
    balance first
    server sink 127.0.0.1:$P_BE_STREAM check inter 2s fall 3 rise 2
EOF
    haproxy -c -q -f "$WORK/$name.cfg" > "$LOGS/$name-check.log" 2>&1 || { cat "$LOGS/$name-check.log" >&2; return 1; }
    # -db: foreground, no daemon, no master process: the PID is the proxy.
    haproxy -db -f "$WORK/$name.cfg" > "$LOGS/$name.log" 2>&1 &
    PID[$name]=$!
    { wait_port "$ps" "${PID[$name]}" 10 && wait_port "$pm" "${PID[$name]}" 10; } ||
        { tail -20 "$LOGS/$name.log" >&2; return 1; }
    STOMP_PORT[$name]=$ps
    MQTT_PORT[$name]=$pm
    STREAM_PORT[$name]=$pt
}

start_path() {
    case $1 in
        direct) return 0 ;;
        switchboard) start_relay ;;
        haproxy) [[ $HAVE_HAPROXY == 1 ]] && start_haproxy haproxy "$P_HA_STOMP" "$P_HA_MQTT" "$P_HA_STREAM" ;;
        haproxy-splice) [[ $HAVE_HAPROXY == 1 ]] && start_haproxy haproxy-splice "$P_HS_STOMP" "$P_HS_MQTT" "$P_HS_STREAM" ;;
    esac
}

# ---- one bench run ------------------------------------------------------------------------------

HAVE_PERF=0
if command -v perf >/dev/null 2>&1 &&
   perf stat -x, -e task-clock,raw_syscalls:sys_enter,context-switches -- true >/dev/null 2>&1; then
    HAVE_PERF=1
fi

# bench PERF_TARGET_PID PERF_OUT ARGS...: switchboard-bench (switchboard-stream-bench when the
# first argument is `send`) holding the build lock, with a --timeout that never passes the
# deadline; with a target PID (and perf), that process's CPU time, syscalls and context switches
# during the run go to PERF_OUT. Non-zero when out of time.
bench() {
    local target=$1 perf_out=$2 prog=$BENCH
    shift 2
    [[ $1 != send ]] || prog=$STREAM
    take_lock || return 1
    local left=$(( $(remaining) - 5 ))
    local t=$(( left < 120 ? left : 120 ))
    if [[ $HAVE_PERF == 1 && -n $target && -n $perf_out ]]; then
        perf stat -x, -o "$perf_out" -e task-clock,raw_syscalls:sys_enter,context-switches \
            -p "$target" 9>&- > /dev/null 2>&1 &
        PERF_PID=$!
        sleep 0.3   # attached to every thread before the first message
    fi
    timeout $((t + 15)) "$prog" "$@" --timeout "$t" 9>&- || true
    if [[ -n $PERF_PID ]]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=""
    fi
    release_lock
}

# Throughput: a fixed count, the window of compare.sh. Latency: one message in flight (QoS 1
# PUBACK / STOMP receipt before the next), so p50 is one round trip through the path.
declare -A SCEN_ARGS=(
    [bulk-4x64k]="send --connections 4 --chunk 65536 --seconds $BULK_SECONDS"
    [mqtt-qos0-1to1]="--protocol mqtt --qos 0 --producers 1 --consumers 1 --count $COUNT"
    [mqtt-qos1-1to1]="--protocol mqtt --qos 1 --producers 1 --consumers 1 --window $WINDOW --count $COUNT"
    [stomp-queue-1to1]="--protocol stomp --destination queue --confirm --producers 1 --consumers 1 --window $WINDOW --count $COUNT"
    [mqtt-qos1-w1]="--protocol mqtt --qos 1 --producers 1 --consumers 1 --window 1 --duration $LAT_SECONDS"
    [stomp-queue-w1]="--protocol stomp --destination queue --confirm --producers 1 --consumers 1 --window 1 --duration $LAT_SECONDS"
)
SCENARIOS=(bulk-4x64k mqtt-qos0-1to1 mqtt-qos1-1to1 stomp-queue-1to1 mqtt-qos1-w1 stomp-queue-w1)
[[ -z "${ONLY_SCENARIOS:-}" ]] || IFS=, read -ra SCENARIOS <<< "$ONLY_SCENARIOS"
warm_args() {  # scenario: a tenth of the count, or half a second
    if [[ $1 == bulk-* ]]; then echo "${SCEN_ARGS[$1]/--seconds $BULK_SECONDS/--seconds 0.5}"
    elif [[ $1 == *-w1 ]]; then echo "${SCEN_ARGS[$1]/--duration $LAT_SECONDS/--duration 0.5}"
    else echo "${SCEN_ARGS[$1]/--count $COUNT/--count $(( COUNT / 10 > 1000 ? COUNT / 10 : 1000 ))}"; fi
}
port_for() {  # path scenario
    if [[ $2 == bulk-* ]]; then echo "${STREAM_PORT[$1]:-}"
    elif [[ $2 == mqtt-* ]]; then echo "${MQTT_PORT[$1]:-}"; else echo "${STOMP_PORT[$1]:-}"; fi
}
proxy_pid() { local p=${PROXY_PROC[$1]:-}; [[ -z $p ]] || echo "${PID[$p]:-}"; }
# The message bench's options beyond the scenario's (the stream bench takes none of them).
msg_opts() {  # scenario prefix
    [[ $1 == bulk-* ]] || echo "--size $SIZE --prefix $2"
}

# ---- the machine --------------------------------------------------------------------------------

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpus: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "kernel: $(uname -r)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "switchboard: $("$SWITCHBOARD" version 2>/dev/null | head -1)" \
         "(commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
         "binary built $(date -u -r "$SWITCHBOARD" +%Y-%m-%dT%H:%MZ))"
    echo "haproxy: $(dpkg-query -W -f='${Version}' haproxy 2>/dev/null || echo 'not installed')"
    echo "backend: $BACKEND$([[ $BACKEND == sink ]] || echo " (workers: $BACKEND_WORKERS)")  relay workers / haproxy nbthread: $WORKERS  relay protocol: $RELAY_PROTOCOL"
    echo "count: $COUNT  size: $SIZE  window: $WINDOW  latency runs: ${LAT_SECONDS}s  runs: $RUNS  idle connections: $CONNECTIONS"
    echo "perf counters: $([[ $HAVE_PERF == 1 ]] && echo yes || echo unavailable)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ---- start everything ---------------------------------------------------------------------------

start_backend
ACTIVE=()
for p in ${PATHS//,/ }; do
    if start_path "$p"; then ACTIVE+=("$p"); else log "$p could not be started (logs: $LOGS); continuing without it"; fi
done
# Every health check passed at least once (rise 2 at 2 s): a server still marked down would
# refuse the first connections.
sleep 4
log "paths: ${ACTIVE[*]}"

# ---- idle connections through each proxy --------------------------------------------------------

if (( CONNECTIONS > 0 )); then
    for p in "${ACTIVE[@]}"; do
        (( $(remaining) > 60 )) || { log "out of time: idle scenario cut short"; break; }
        # direct: the backend's own memory per connection, for scale.
        pid=$(proxy_pid "$p"); [[ -n $pid ]] || pid=${PID[backend_mqtt]}
        log "idle $p: $CONNECTIONS MQTT connections (RSS of pid $pid)"
        bench "" "" idle --protocol mqtt --port "${MQTT_PORT[$p]}" --connections "$CONNECTIONS" --hold 2 \
            --concurrency 64 --broker-pid "$pid" --label "$p" --quiet --json "$OUT/idle/$p.json" \
            > "$OUT/idle/$p.txt" 2>&1 || break
        sleep 1   # the relays close their backend sides
    done
fi

# ---- throughput and latency ---------------------------------------------------------------------

for s in "${SCENARIOS[@]}"; do
    for p in "${ACTIVE[@]}"; do
        log "warm-up  $s  $p"
        # shellcheck disable=SC2046
        bench "" "" $(warm_args "$s") $(msg_opts "$s" warm) --port "$(port_for "$p" "$s")" \
            --label "$p" $([[ $s == bulk-* ]] || echo --quiet) > "$OUT/warmup/$s.$p.txt" 2>&1 || break 2
    done
done

out_of_time=0
for ((round = 1; round <= RUNS && !out_of_time; round++)); do
    n=${#ACTIVE[@]}
    order=()
    for ((i = 0; i < n; i++)); do order+=("${ACTIVE[$(((i + round - 1) % n))]}"); done
    for s in "${SCENARIOS[@]}"; do
        for p in "${order[@]}"; do
            log "round $round/$RUNS  $s  $p"
            pid=$(proxy_pid "$p")
            # shellcheck disable=SC2086
            if ! bench "$pid" "${pid:+$OUT/runs/$s.$p.$round.perf}" ${SCEN_ARGS[$s]} $(msg_opts "$s" "r$round") \
                    --port "$(port_for "$p" "$s")" --label "$p" $([[ $s == bulk-* ]] || echo --quiet) \
                    --json "$OUT/runs/$s.$p.$round.json" > "$OUT/runs/$s.$p.$round.txt" 2>&1; then
                log "out of time (--max-minutes $MAX_MINUTES): stopping the runs here"
                out_of_time=1
                break 2
            fi
        done
    done
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
cleanup

# ---- summary ------------------------------------------------------------------------------------

/usr/bin/python3 - "$OUT" "${ACTIVE[*]}" "${SCENARIOS[*]}" <<'PYEOF'
import glob, json, os, statistics, sys

out, paths, scenarios = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
bulk = [s for s in scenarios if s.startswith("bulk-")]
scenarios = [s for s in scenarios if not s.startswith("bulk-")]
proxies = [p for p in paths if p != "direct"]
haproxies = [p for p in paths if p.startswith("haproxy")]

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def perf_of(path):
    """task-clock ms, syscalls, context switches of the proxy during one run (perf stat -x,)."""
    vals = {}
    try:
        with open(path) as f:
            for line in f:
                c = line.strip().split(",")
                if len(c) > 2 and c[2] in ("task-clock", "raw_syscalls:sys_enter", "context-switches"):
                    try:
                        vals[c[2]] = float(c[0])
                    except ValueError:
                        return None
    except OSError:
        return None
    return vals if len(vals) == 3 else None

def fmt_rate(v):
    return f"{v/1000:.1f}k" if v < 1e6 else f"{v/1e6:.2f}M"

def fmt_ms(us):
    return f"{us/1000:.3f}" if us < 1000 else f"{us/1000:.2f}" if us < 100000 else f"{us/1000:.0f}"

summary = {}
lines = []
# Bulk streams: MB/s through the path; the proxy's CPU per GB (task-clock) and syscalls per MB.
for s in bulk:
    for p in paths:
        runs = [j for j in (load(f) for f in sorted(glob.glob(os.path.join(out, "runs", f"{s}.{p}.*.json")))) if j]
        ok = [j for j in runs if not j.get("errors") and j.get("complete", True)]
        if not ok:
            summary.setdefault(s, {})[p] = {"runs": 0, "failed": len(runs),
                                            "error": (runs[0].get("errors") or ["incomplete"])[0] if runs else "no runs"}
            continue
        rates = sorted(j["mb_per_s"] for j in ok)
        e = {"runs": len(ok), "failed": len(runs) - len(ok), "median": statistics.median(rates),
             "min": rates[0], "max": rates[-1]}
        per = []
        for f in sorted(glob.glob(os.path.join(out, "runs", f"{s}.{p}.*.perf"))):
            j = load(f[:-len(".perf")] + ".json")
            v = perf_of(f)
            if v and j and j.get("bytes"):
                gb = j["bytes"] / 1e9
                per.append((v["task-clock"] / gb, v["raw_syscalls:sys_enter"] / gb / 1000, v["context-switches"] / gb / 1000))
        if per:
            e["proxy_cpu_ms_per_gb"] = statistics.median(x[0] for x in per)
            e["proxy_syscalls_per_mb"] = statistics.median(x[1] for x in per)
            e["proxy_ctxsw_per_mb"] = statistics.median(x[2] for x in per)
        summary.setdefault(s, {})[p] = e
if bulk:
    hs = [h for h in haproxies if "switchboard" in paths]
    lines += ["### Bulk streams: MB/s, median of runs [min–max]; the proxy's CPU ms per GB / syscalls per MB "
              "(perf stat -p, median)\n",
              "| scenario | " + " | ".join(paths) + " | " + " | ".join(f"switchboard ÷ {h}" for h in hs) +
              (" | " if hs else "") + " | ".join(f"CPU/byte switchboard ÷ {h}" for h in hs) + " |"]
    lines.append("|" + "---|" * (len(lines[-1].split("|")) - 2))
    for s in bulk:
        row = [s]
        for p in paths:
            e = summary[s][p]
            if not e["runs"]:
                row.append("error: " + str(e["error"])[:50])
                continue
            cell = f"{e['median']:,.0f} [{e['min']:,.0f}–{e['max']:,.0f}]"
            if "proxy_cpu_ms_per_gb" in e:
                cell += f"; {e['proxy_cpu_ms_per_gb']:,.0f} ms/GB / {e['proxy_syscalls_per_mb']:.1f}"
            if e.get("failed"):
                cell += f" ({e['failed']} failed)"
            row.append(cell)
        sb = summary[s].get("switchboard", {})
        for h in hs:
            eh = summary[s].get(h, {})
            row.append(f"{sb['median'] / eh['median']:.2f}" if sb.get("median") and eh.get("median") else "–")
        for h in hs:
            eh = summary[s].get(h, {})
            row.append(f"{sb['proxy_cpu_ms_per_gb'] / eh['proxy_cpu_ms_per_gb']:.2f}"
                       if sb.get("proxy_cpu_ms_per_gb") and eh.get("proxy_cpu_ms_per_gb") else "–")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")

for s in scenarios:
    for p in paths:
        runs = [j for j in (load(f) for f in sorted(glob.glob(os.path.join(out, "runs", f"{s}.{p}.*.json")))) if j]
        ok = [j for j in runs if not j.get("errors") and j.get("complete", True)]
        if not ok:
            summary.setdefault(s, {})[p] = {"runs": 0, "failed": len(runs),
                                            "error": (runs[0].get("errors") or ["incomplete"])[0] if runs else "no runs"}
            continue
        rates = sorted(j["receive_msgs_per_s"] for j in ok)
        e = {"runs": len(ok), "failed": len(runs) - len(ok), "median": statistics.median(rates),
             "min": rates[0], "max": rates[-1],
             "p50_us": statistics.median(j["latency_us"]["p50"] for j in ok),
             "p99_us": statistics.median(j["latency_us"]["p99"] for j in ok),
             "p99_us_max": max(j["latency_us"]["p99"] for j in ok)}
        per = []
        for f in sorted(glob.glob(os.path.join(out, "runs", f"{s}.{p}.*.perf"))):
            j = load(f[:-len(".perf")] + ".json")
            v = perf_of(f)
            if v and j and j.get("received"):
                n = j["received"]
                per.append((v["task-clock"] * 1000 / n, v["raw_syscalls:sys_enter"] / n, v["context-switches"] / n))
        if per:
            e["proxy_cpu_us_per_msg"] = statistics.median(x[0] for x in per)
            e["proxy_syscalls_per_msg"] = statistics.median(x[1] for x in per)
            e["proxy_ctxsw_per_msg"] = statistics.median(x[2] for x in per)
        summary.setdefault(s, {})[p] = e

lines += ["### Throughput: received msgs/s, median of runs [min–max]\n",
         "| scenario | " + " | ".join(paths) + " | " +
         " | ".join([f"switchboard ÷ {h}" for h in haproxies if "switchboard" in paths] +
                    (["switchboard ÷ direct"] if "switchboard" in paths and "direct" in paths else [])
                    + [f"{h} ÷ direct" for h in haproxies if "direct" in paths]) + " |"]
ncols = len(lines[-1].split("|")) - 2
lines.append("|" + "---|" * ncols)
def ratio(s, a, b, key="median"):
    ea, eb = summary[s].get(a, {}), summary[s].get(b, {})
    return f"{ea[key] / eb[key]:.2f}" if ea.get(key) and eb.get(key) else "–"
for s in scenarios:
    row = [s]
    for p in paths:
        e = summary[s][p]
        row.append(f"{fmt_rate(e['median'])} [{fmt_rate(e['min'])}–{fmt_rate(e['max'])}]" if e["runs"]
                   else "error: " + str(e["error"])[:50])
        if e.get("failed"):
            row[-1] += f" ({e['failed']} failed)"
    if "switchboard" in paths:
        row += [ratio(s, "switchboard", h) for h in haproxies]
        if "direct" in paths:
            row.append(ratio(s, "switchboard", "direct"))
    if "direct" in paths:
        row += [ratio(s, h, "direct") for h in haproxies]
    lines.append("| " + " | ".join(row) + " |")

lines += ["", "### Latency (ms): p50 / p99, each the median over the runs\n",
          "| scenario | " + " | ".join(paths) + " | " +
          " | ".join(f"p99 switchboard ÷ {h}" for h in haproxies if "switchboard" in paths) + " |"]
lines.append("|" + "---|" * (len(lines[-1].split("|")) - 2))
for s in scenarios:
    row = [s]
    for p in paths:
        e = summary[s][p]
        row.append(f"{fmt_ms(e['p50_us'])} / {fmt_ms(e['p99_us'])}" if e["runs"] else "–")
    if "switchboard" in paths:
        row += [ratio(s, "switchboard", h, "p99_us") for h in haproxies]
    lines.append("| " + " | ".join(row) + " |")

if any("proxy_cpu_us_per_msg" in summary[s].get(p, {}) for s in scenarios for p in proxies):
    lines += ["", "### The proxy process per delivered message (perf stat -p, median over the runs): "
              "CPU µs / syscalls / context switches\n",
              "| scenario | " + " | ".join(proxies) + " |", "|" + "---|" * (len(proxies) + 1)]
    for s in scenarios:
        row = [s]
        for p in proxies:
            e = summary[s].get(p, {})
            row.append(f"{e['proxy_cpu_us_per_msg']:.2f} / {e['proxy_syscalls_per_msg']:.2f} / {e['proxy_ctxsw_per_msg']:.3f}"
                       if "proxy_cpu_us_per_msg" in e else "–")
        lines.append("| " + " | ".join(row) + " |")

idle = []
for p in paths:
    j = load(os.path.join(out, "idle", f"{p}.json"))
    if not j:
        continue
    summary.setdefault("idle", {})[p] = j
    idle.append(f"| {p} | {'backend' if p == 'direct' else 'proxy'} | {j['connected']}/{j['connections']} | "
                f"{j['connects_per_s']:.0f} | {j.get('rss_before_kb', 0)/1024:.1f} → {j.get('rss_after_kb', 0)/1024:.1f} | "
                f"{j.get('rss_bytes_per_connection', 0):.0f} |")
if idle:
    lines += ["", "### Idle MQTT connections: connect rate through the path, resident memory of the process\n",
              "| path | process measured | connected | connects/s | RSS MiB before → after | bytes per connection |",
              "|---|---|---|---|---|---|"] + idle

text = "\n".join(lines) + "\n"
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(text)
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(text)
PYEOF
log "results: $OUT (summary.md, summary.json, machine.txt, runs/, idle/, logs/)"
(( out_of_time == 0 )) || exit 1
