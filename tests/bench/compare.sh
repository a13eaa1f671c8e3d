#!/usr/bin/env bash
# tests/bench/compare.sh — Switchboard side by side with Debian's mosquitto, RabbitMQ and ActiveMQ:
# the same switchboard-bench scenarios against each broker (and against the bench's own sink,
# the client's ceiling), alternating brokers, median of N runs with min and max, ratios vs
# Switchboard; then K idle connections per broker (connect rate, resident memory per connection).
# --before DIR adds an earlier Switchboard build as one more target, `before` (same config, its
# own ports and dir), so a change is measured against its base in the same run.
# --persistent instead: confirmed persistent STOMP sends (a receipt per SEND, 16 producers) with
# every broker storing them on disk (journal, KahaDB, durable queues), the disk's raw fdatasync rate,
# each broker's sync calls per run, and a kill -9 check that Switchboard kept what it confirmed.
# --amqp instead: AMQP 1.0 against RabbitMQ's amqp1_0 plugin — queue 1→1 and 4→4, unsettled,
# window 1000, 64-byte bodies; 16 senders of durable messages to a durable queue — with
# Switchboard's STOMP queue 1→1 in the same run (AMQP ÷ STOMP on Switchboard itself).
# --openwire instead: OpenWire against ActiveMQ 5.17 with ActiveMQ's own JMS client
# (tests/bench/java/OpenWireBench.java, compiled here): queue 1→1 non-persistent (async sends,
# prefetch 1000), and 16 producers of persistent messages (synchronous sends) with 0 and 1 consumer;
# the broker's and the client's CPU per message.
#
# Every broker runs as a child of this script on 127.0.0.1, on its own ports, with a config the
# script writes into a temp dir. Everything is bounded in time (--max-minutes); on exit (normal,
# error or Ctrl-C) the script stops exactly the processes it started, by PID.
#
#   tests/bench/compare.sh [--quick] [--install] [--build DIR] [--out DIR] [--runs N]
#                          [--count N] [--connections K] [--brokers LIST] [--no-idle]
#                          [--base-port P] [--max-minutes M] [--before DIR]
#   tests/bench/compare.sh --persistent [--duration S] [--runs N] [--brokers LIST] [--max-minutes M] ...
#   tests/bench/compare.sh --amqp [--count N] [--runs N] [--brokers LIST] [--max-minutes M] ...
#   tests/bench/compare.sh --openwire [--count N] [--duration S] [--runs N] [--brokers LIST] ...
#   (any mode: --scenarios LIST runs only those scenarios of the mode, e.g.
#    --amqp --brokers switchboard --scenarios amqp-queue-1to1,stomp-queue-1to1)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/bench/lib.sh
source "$HERE/lib.sh"   # remaining, port_open, wait_port, stop_pid, take_lock, release_lock
REPO=$(cd "$HERE/../.." && pwd)
BUILD="$REPO/build"
OUT=""
QUICK=0
INSTALL=0
RUNS=3
COUNT=""
CONNECTIONS=""
BROKERS="switchboard,mosquitto,rabbitmq,activemq"
IDLE=1
BASE_PORT=23100   # below the ephemeral range: thousands of client sockets must not take our ports
MAX_MINUTES=20
SIZE=128
WINDOW=1000
PERSISTENT=0
AMQP=0
OPENWIRE=0
DURATION=""
BROKERS_GIVEN=0
SCENARIOS_GIVEN=""   # --scenarios: a comma-separated subset of the mode's scenarios
BEFORE=""   # --before: the build directory of an earlier Switchboard, run as target `before`
# Another engineer's build holding this lock would distort the numbers: each run waits for it
# and holds it while it runs (a build waits a few seconds at most). On a busy machine the waits
# make a comparison last long and put builds between the runs it compares; then hold the lock
# for the whole script instead: `flock /tmp/sb-build.lock env SB_BENCH_LOCK_HELD=1 compare.sh ...`
# (tests/bench/lib.sh; keep such a run short, e.g. --no-idle).
LOCK_FILE=/tmp/sb-build.lock

usage() {
    sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF

Options:
  --quick            shorter runs (--count 20000, 2000 idle connections), still 3 runs each
  --install          apt-get install the missing Debian packages (services kept from starting)
  --build DIR        build tree with switchboard and switchboard-bench (default: $BUILD)
  --before DIR       also run DIR/switchboard (an earlier build, e.g. the base of a change) as
                     the target \`before\`: the same config as \`switchboard\`, its own ports and
                     temp dir, alternating with the others; driven by --build's switchboard-bench;
                     every row shows the ratio switchboard ÷ before. Added to the default
                     brokers; with --brokers, name it there (e.g. switchboard,before,mosquitto)
  --out DIR          keep results here (default: a new temp dir, printed at the end)
  --runs N           runs per scenario and broker (default 3; the median is reported)
  --count N          messages per run (default 100000)
  --connections K    idle connections per broker (default 10000)
  --brokers LIST     comma-separated subset of: $BROKERS (and before, with --before)
  --no-idle          skip the idle-connection scenario
  --scenarios LIST   comma-separated subset of the mode's scenarios (names as in the summary),
                     run in the mode's order; e.g. --amqp --scenarios amqp-queue-1to1,stomp-queue-1to1
  --base-port P      first of the ~40 loopback ports used, outside the ephemeral range (default $BASE_PORT)
  --max-minutes M    hard bound on the whole comparison (default $MAX_MINUTES)
  --persistent       persistent sends with confirmation instead (tests/bench/compare.sh --persistent):
                     Switchboard with the journal store (sync: always), ActiveMQ with KahaDB,
                     RabbitMQ with durable queues; STOMP, 16 producers, receipt per SEND, 64-byte
                     payloads, window 1 and 16, 0 and 1 consumer; a fresh queue per run; the disk's
                     raw fdatasync rate before and after; each broker's fsync/fdatasync calls per run
                     (perf, when available); then Switchboard is killed (SIGKILL), restarted on its
                     journal, and every recorded run's queue is drained and checked against what
                     was confirmed. Default brokers: switchboard,rabbitmq,activemq; no idle scenario
  --duration S       --persistent: seconds of sending per run (default 4; the count is what fits)
  --amqp             AMQP 1.0 instead: queue 1→1 and 4→4 (unsettled, window 1000, 64 B), 16
                     senders of durable messages to a durable queue (0 and 1 consumer), and
                     STOMP queue 1→1 (confirmed) for the AMQP ÷ STOMP ratio on Switchboard.
                     Switchboard with the journal store (sync: always) and an AMQP listener,
                     RabbitMQ with the rabbitmq_amqp1_0 plugin (/queue/<name> addresses; durable
                     termini declare durable queues). Default brokers: switchboard,rabbitmq; no
                     idle scenario; a fresh queue per run
  --openwire         OpenWire instead, with ActiveMQ's JMS client (tests/bench/java/OpenWireBench.java,
                     compiled with javac against Debian's libactivemq-java; one JVM per run, the
                     same client for every broker): queue 1→1 non-persistent (async sends,
                     prefetch 1000, --count messages), 16 producers of persistent messages with
                     synchronous sends (each waits for the broker's answer), 0 and 1 consumer
                     (--duration seconds, default 4); 64-byte BytesMessages, AUTO_ACKNOWLEDGE;
                     the broker's and the client's CPU per message. Switchboard with the journal
                     store (sync: always) and an OpenWire listener, ActiveMQ 5.17 with KahaDB
                     (journal disk syncs on). Default brokers: switchboard,activemq; no idle
                     scenario; a fresh queue per run
EOF
}

die() { echo "compare.sh: $*" >&2; exit 2; }
log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --install) INSTALL=1 ;;
        --build) BUILD=$2; shift ;;
        --before) BEFORE=$2; shift ;;
        --out) OUT=$2; shift ;;
        --runs) RUNS=$2; shift ;;
        --count) COUNT=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --brokers) BROKERS=$2; BROKERS_GIVEN=1; shift ;;
        --no-idle) IDLE=0 ;;
        --scenarios) SCENARIOS_GIVEN=$2; shift ;;
        --base-port) BASE_PORT=$2; shift ;;
        --max-minutes) MAX_MINUTES=$2; shift ;;
        --persistent) PERSISTENT=1 ;;
        --amqp) AMQP=1 ;;
        --openwire) OPENWIRE=1 ;;
        --duration) DURATION=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: expected a positive integer"
[[ $BASE_PORT =~ ^[0-9]+$ && $BASE_PORT -ge 1024 && $BASE_PORT -le 65000 ]] || die "--base-port: expected 1024..65000"
[[ $MAX_MINUTES =~ ^[1-9][0-9]*$ ]] || die "--max-minutes: expected a positive integer"
if [[ -z $COUNT ]]; then COUNT=$([[ $QUICK == 1 ]] && echo 20000 || echo 100000); fi
if [[ -z $CONNECTIONS ]]; then CONNECTIONS=$([[ $QUICK == 1 ]] && echo 2000 || echo 10000); fi
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "--count: expected a positive integer"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "--connections: expected a positive integer"
(( PERSISTENT + AMQP + OPENWIRE <= 1 )) || die "--persistent, --amqp and --openwire exclude each other"
if [[ $AMQP == 1 ]]; then
    [[ $BROKERS_GIVEN == 1 ]] || BROKERS="switchboard,rabbitmq"
    IDLE=0
    SIZE=64
fi
if [[ $OPENWIRE == 1 ]]; then
    [[ $BROKERS_GIVEN == 1 ]] || BROKERS="switchboard,activemq"
    IDLE=0
    SIZE=64
    [[ -n $DURATION ]] || DURATION=4
    [[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "--duration: expected a positive integer (seconds)"
elif [[ $PERSISTENT == 1 ]]; then
    # mosquitto speaks no STOMP; connections are not what this mode measures.
    [[ $BROKERS_GIVEN == 1 ]] || BROKERS="switchboard,rabbitmq,activemq"
    IDLE=0
    SIZE=64
    [[ -n $DURATION ]] || DURATION=4
    [[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "--duration: expected a positive integer (seconds)"
else
    [[ -z $DURATION ]] || die "--duration: only with --persistent or --openwire"
fi

SWITCHBOARD="$BUILD/switchboard"
BENCH="$BUILD/switchboard-bench"
[[ -x $SWITCHBOARD ]] || die "no $SWITCHBOARD: build first (cmake --build build)"
[[ -x $BENCH ]] || die "no $BENCH: build first (cmake --build build --target switchboard-bench)"
SWITCHBOARD_BEFORE=""
if [[ -n $BEFORE ]]; then
    SWITCHBOARD_BEFORE="$BEFORE/switchboard"
    [[ -x $SWITCHBOARD_BEFORE ]] || die "--before: no $SWITCHBOARD_BEFORE"
    [[ $BROKERS_GIVEN == 1 ]] || BROKERS="switchboard,before,${BROKERS#switchboard,}"
fi
[[ ",$BROKERS," != *",before,"* || -n $BEFORE ]] || die "--brokers: before needs --before DIR"

START_TS=$(date +%s)
DEADLINE=$((START_TS + MAX_MINUTES * 60))

# ---- packages ---------------------------------------------------------------------------------

declare -A PKG_OF=([mosquitto]="mosquitto" [rabbitmq]="rabbitmq-server" [activemq]="activemq libmqtt-client-java")
# --openwire: no MQTT connector on ActiveMQ (nothing needs the fusesource MQTT client), and
# ActiveMQ's JMS client (libactivemq-java, which activemq depends on).
[[ $OPENWIRE == 0 ]] || PKG_OF[activemq]="activemq libactivemq-java"
wanted() { [[ ",$BROKERS," == *",$1,"* ]]; }

missing_packages() {
    local b p out=()
    for b in mosquitto rabbitmq activemq; do
        wanted "$b" || continue
        for p in ${PKG_OF[$b]}; do dpkg -s "$p" >/dev/null 2>&1 || out+=("$p"); done
    done
    echo "${out[@]:-}"
}

MISSING=$(missing_packages)
if [[ -n $MISSING ]]; then
    if [[ $INSTALL == 1 ]]; then
        log "installing: $MISSING (services are kept from starting by a policy-rc.d)"
        CREATED_POLICY=0
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            CREATED_POLICY=1
        fi
        rc=0
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -o DPkg::Lock::Timeout=300 $MISSING || rc=$?
        [[ $CREATED_POLICY == 1 ]] && rm -f /usr/sbin/policy-rc.d
        [[ $rc == 0 ]] || die "apt-get install failed ($rc)"
    else
        log "missing Debian packages: $MISSING — the brokers that need them are skipped (--install installs them)"
    fi
fi
have() {
    local p
    for p in ${PKG_OF[$1]}; do dpkg -s "$p" >/dev/null 2>&1 || return 1; done
}

# ---- --openwire: the Java client ----------------------------------------------------------------

# ActiveMQ's JMS client from Debian's libactivemq-java (and what it needs), as the integration
# tests use it (tests/integration/openwire_jms_test.py).
JAVA_LIB=/usr/share/java
OW_JARS=(activemq-client.jar geronimo-jms_1.1_spec.jar geronimo-j2ee-management-1.1-spec.jar hawtbuf.jar
         slf4j-api.jar slf4j-nop.jar)
CLIENT=("$BENCH")   # what bench() runs: switchboard-bench, or (--openwire) the Java client
if [[ $OPENWIRE == 1 ]]; then
    command -v javac >/dev/null && command -v java >/dev/null ||
        die "--openwire needs a JDK (scripts/install-deps.sh installs openjdk-17-jdk-headless)"
    for j in "${OW_JARS[@]}"; do
        [[ -f $JAVA_LIB/$j ]] || die "--openwire needs Debian's libactivemq-java ($JAVA_LIB/$j)"
    done
fi

# ---- workspace, ports, process bookkeeping ----------------------------------------------------

# Many idle connections: the brokers (our children) and the bench inherit this.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

P_SB_STOMP=$((BASE_PORT + 1)); P_SB_MQTT=$((BASE_PORT + 2))
P_BEFORE_STOMP=$((BASE_PORT + 3)); P_BEFORE_MQTT=$((BASE_PORT + 4))
P_SINK_STOMP=$((BASE_PORT + 5)); P_SINK_MQTT=$((BASE_PORT + 6))
P_SB_AMQP=$((BASE_PORT + 7)); P_BEFORE_AMQP=$((BASE_PORT + 8))
P_MOSQ_MQTT=$((BASE_PORT + 10))
P_RMQ_AMQP=$((BASE_PORT + 20)); P_RMQ_DIST=$((BASE_PORT + 21)); P_RMQ_MQTT=$((BASE_PORT + 22))
P_RMQ_STOMP=$((BASE_PORT + 23)); P_RMQ_EPMD=$((BASE_PORT + 24))
P_AMQ_STOMP=$((BASE_PORT + 30)); P_AMQ_MQTT=$((BASE_PORT + 31))
P_SB_OPENWIRE=$((BASE_PORT + 11)); P_BEFORE_OPENWIRE=$((BASE_PORT + 12)); P_AMQ_OPENWIRE=$((BASE_PORT + 32))

# Client sockets (thousands in the idle scenario) take ephemeral ports; a listener inside that
# range can find its port taken, so the whole block must lie outside it.
read -r EPH_LO EPH_HI < /proc/sys/net/ipv4/ip_local_port_range || { EPH_LO=32768; EPH_HI=60999; }
if (( BASE_PORT + 40 >= EPH_LO && BASE_PORT <= EPH_HI )); then
    die "--base-port $BASE_PORT overlaps the ephemeral port range $EPH_LO-$EPH_HI: choose one below $((EPH_LO - 40))"
fi

for p in $P_SB_STOMP $P_SB_MQTT $P_BEFORE_STOMP $P_BEFORE_MQTT $P_SINK_STOMP $P_SINK_MQTT $P_SB_AMQP $P_BEFORE_AMQP $P_MOSQ_MQTT \
         $P_RMQ_AMQP $P_RMQ_DIST $P_RMQ_MQTT $P_RMQ_STOMP $P_RMQ_EPMD $P_AMQ_STOMP $P_AMQ_MQTT \
         $P_SB_OPENWIRE $P_BEFORE_OPENWIRE $P_AMQ_OPENWIRE; do
    port_open "$p" && die "port $p is in use: choose another --base-port"
done

# Configs, broker data and (without --out) the results; left in place for inspection.
WORK=$(mktemp -d /tmp/sb-compare.XXXXXX)
[[ -n $OUT ]] || OUT="$WORK/results"
mkdir -p "$OUT/runs" "$OUT/idle" "$OUT/logs"
LOGS="$OUT/logs"
if [[ $OPENWIRE == 1 ]]; then
    mkdir -p "$WORK/java"
    OW_CP="$WORK/java$(printf ":$JAVA_LIB/%s" "${OW_JARS[@]}")"
    javac -nowarn -encoding UTF-8 -d "$WORK/java" -cp "$OW_CP" "$HERE/java/OpenWireBench.java" ||
        die "javac $HERE/java/OpenWireBench.java failed"
    # C2 compiles the client's paths (no TieredStopAtLevel: these runs are long enough); a heap
    # that never makes the collector the limit.
    CLIENT=(java -Xms512m -Xmx512m -XX:+UseParallelGC -cp "$OW_CP" OpenWireBench)
fi

declare -A PID=()        # target -> the PID this script started (launcher for rabbitmq/activemq)
declare -A VM_PID=()     # target -> the process that holds the broker's memory (beam.smp, java)
declare -A STOMP_PORT=() MQTT_PORT=() AMQP_PORT=() OPENWIRE_PORT=()

# The environment of every rabbitmq-server / rabbitmqctl / epmd call: our node, ports and dirs.
RABBIT_ENV=()
set_rabbit_env() {
    local d=$WORK/rabbitmq
    RABBIT_ENV=(HOME="$d" RABBITMQ_NODENAME=bench@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$P_RMQ_AMQP" RABBITMQ_DIST_PORT="$P_RMQ_DIST" ERL_EPMD_PORT="$P_RMQ_EPMD"
        ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log"
        RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
        RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
        RABBITMQ_PID_FILE="$d/beam.pid")
}
set_rabbit_env

# ---- starting and stopping each target ----------------------------------------------------------
# A target is a broker or the sink. start_<t> sets PID, VM_PID and the ports it serves, and
# returns non-zero (after printing why) when it cannot run here.

# A Switchboard build as target NAME: start_sb NAME BINARY STOMP_PORT MQTT_PORT AMQP_PORT
# OPENWIRE_PORT (the current build as `switchboard`, --before's as `before`: the same config,
# their own ports and dirs).
start_sb() {
    local t=$1 bin=$2 p_stomp=$3 p_mqtt=$4 p_amqp=$5 p_openwire=$6
    local d=$WORK/$t
    mkdir -p "$d"
    # MQTT rows only when this build has the MQTT listener (`switchboard check` accepts it).
    cat > "$d/mqtt.yaml" <<EOF
listeners:
  - {name: mqtt, protocol: mqtt, address: 127.0.0.1, port: $p_mqtt}
EOF
    local mqtt_listener=""
    if "$bin" check -c "$d/mqtt.yaml" >/dev/null 2>&1; then
        mqtt_listener="  - {name: mqtt, protocol: mqtt, address: 127.0.0.1, port: $p_mqtt, max_connections: 100000}"
        MQTT_PORT[$t]=$p_mqtt
    fi
    # --amqp: the AMQP listener, when this build has one.
    local amqp_listener=""
    if [[ $AMQP == 1 ]]; then
        cat > "$d/amqp.yaml" <<EOF
listeners:
  - {name: amqp, protocol: amqp, address: 127.0.0.1, port: $p_amqp}
EOF
        if "$bin" check -c "$d/amqp.yaml" >/dev/null 2>&1; then
            amqp_listener="  - {name: amqp, protocol: amqp, address: 127.0.0.1, port: $p_amqp, max_connections: 100000}"
            AMQP_PORT[$t]=$p_amqp
        fi
    fi
    # --openwire: the OpenWire listener, when this build has one.
    local openwire_listener=""
    if [[ $OPENWIRE == 1 ]]; then
        cat > "$d/openwire.yaml" <<EOF
listeners:
  - {name: openwire, protocol: openwire, address: 127.0.0.1, port: $p_openwire}
EOF
        if "$bin" check -c "$d/openwire.yaml" >/dev/null 2>&1; then
            openwire_listener="  - {name: openwire, protocol: openwire, address: 127.0.0.1, port: $p_openwire, max_connections: 100000}"
            OPENWIRE_PORT[$t]=$p_openwire
        fi
    fi
    # Defaults, except: memory store (as the others run without persistence), warnings only,
    # no per-subscriber drop on topics (mosquitto and RabbitMQ do not drop either).
    # --persistent: the journal store in the temp dir, synced before every confirmation (the
    # directory is kept across a restart: the recovery check reopens it). And a 1 GiB queue
    # memory limit: a queue keeps every message in memory, persistent ones too, so the default
    # 64 MiB holds all producers of a consumer-less queue for good after ~150,000 messages of
    # 64 bytes, where ActiveMQ and RabbitMQ page persistent messages out to their stores.
    # --amqp, --openwire: the journal too (their persistent-send scenarios); non-persistent
    # messages skip it.
    local store="  type: memory" queue_limit=""
    if [[ $PERSISTENT == 1 || $AMQP == 1 || $OPENWIRE == 1 ]]; then
        mkdir -p "$d/data"
        store="  type: journal
  dir: $d/data
  sync: always"
        queue_limit="  queue_memory_limit: 1GiB"
    fi
    cat > "$d/switchboard.yaml" <<EOF
# written by tests/bench/compare.sh
log:
  level: ${SB_LOG_LEVEL:-warn}
store:
$store
broker:
  topic_max_pending: 100000000
$queue_limit
listeners:
  - {name: stomp, protocol: stomp, address: 127.0.0.1, port: $p_stomp, max_connections: 100000}
$mqtt_listener
$amqp_listener
$openwire_listener
EOF
    "$bin" run -c "$d/switchboard.yaml" > "$LOGS/$t.log" 2>&1 &
    PID[$t]=$!
    VM_PID[$t]=$!
    STOMP_PORT[$t]=$p_stomp
    # SB_START_WAIT: a restart on a big journal replays it before it listens.
    wait_port "$p_stomp" "${PID[$t]}" "${SB_START_WAIT:-10}" || { tail -20 "$LOGS/$t.log" >&2; return 1; }
    [[ -z ${MQTT_PORT[$t]:-} ]] || wait_port "$p_mqtt" "${PID[$t]}" 10
    [[ -z ${AMQP_PORT[$t]:-} ]] || wait_port "$p_amqp" "${PID[$t]}" 10
    [[ -z ${OPENWIRE_PORT[$t]:-} ]] || wait_port "$p_openwire" "${PID[$t]}" 10
}
start_switchboard() { start_sb switchboard "$SWITCHBOARD" "$P_SB_STOMP" "$P_SB_MQTT" "$P_SB_AMQP" "$P_SB_OPENWIRE"; }
stop_switchboard() { stop_pid "${PID[switchboard]}" 10; }
start_before() { start_sb before "$SWITCHBOARD_BEFORE" "$P_BEFORE_STOMP" "$P_BEFORE_MQTT" "$P_BEFORE_AMQP" "$P_BEFORE_OPENWIRE"; }
stop_before() { [[ -z ${PID[before]:-} ]] || stop_pid "${PID[before]}" 10; }

start_sink() {
    "$BENCH" sink --protocol stomp --port "$P_SINK_STOMP" > "$LOGS/sink-stomp.log" 2>&1 &
    PID[sink]=$!
    "$BENCH" sink --protocol mqtt --port "$P_SINK_MQTT" > "$LOGS/sink-mqtt.log" 2>&1 &
    PID[sink_mqtt]=$!
    VM_PID[sink]=${PID[sink]}
    STOMP_PORT[sink]=$P_SINK_STOMP
    MQTT_PORT[sink]=$P_SINK_MQTT
    wait_port "$P_SINK_STOMP" "${PID[sink]}" 10 && wait_port "$P_SINK_MQTT" "${PID[sink_mqtt]}" 10
}
stop_sink() { stop_pid "${PID[sink]}" 5; stop_pid "${PID[sink_mqtt]}" 5; }

start_mosquitto() {
    have mosquitto || { log "mosquitto: package not installed, skipped"; return 1; }
    local d=$WORK/mosquitto
    mkdir -p "$d"
    # No persistence (as the others); no per-client queue or in-flight caps: the default 20
    # in flight and 1000 queued would drop QoS 1/2 messages (and close QoS 2 publishers) under
    # a 1000-message window, which measures the limits rather than the broker.
    cat > "$d/mosquitto.conf" <<EOF
# written by tests/bench/compare.sh
listener $P_MOSQ_MQTT 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 0
max_queued_messages 0
log_dest stderr
log_type error
log_type warning
EOF
    mosquitto -c "$d/mosquitto.conf" > "$LOGS/mosquitto.log" 2>&1 &
    PID[mosquitto]=$!
    VM_PID[mosquitto]=$!
    MQTT_PORT[mosquitto]=$P_MOSQ_MQTT
    wait_port "$P_MOSQ_MQTT" "${PID[mosquitto]}" 10 || { tail -20 "$LOGS/mosquitto.log" >&2; return 1; }
}
stop_mosquitto() { [[ -z ${PID[mosquitto]:-} ]] || stop_pid "${PID[mosquitto]}" 10; }

start_rabbitmq() {
    have rabbitmq || { log "rabbitmq: package not installed, skipped"; return 1; }
    local d=$WORK/rabbitmq
    rm -rf "$d"
    mkdir -p "$d/mnesia" "$d/log"
    # AMQP 1.0 (rabbitmq_amqp1_0) shares the AMQP 0-9-1 listener: the protocol header decides.
    echo '[rabbitmq_mqtt,rabbitmq_stomp,rabbitmq_amqp1_0].' > "$d/enabled_plugins"
    : > "$d/rabbitmq-env.conf"   # not /etc/rabbitmq/rabbitmq-env.conf
    cat > "$d/rabbitmq.conf" <<EOF
# written by tests/bench/compare.sh
listeners.tcp.default = 127.0.0.1:$P_RMQ_AMQP
mqtt.listeners.tcp.default = 127.0.0.1:$P_RMQ_MQTT
stomp.listeners.tcp.1 = 127.0.0.1:$P_RMQ_STOMP
mqtt.allow_anonymous = true
log.console = false
log.file.level = warning
EOF
    echo '[].' > "$d/advanced.config"
    # +sbwt none: idle schedulers must not spin on the CPUs the other brokers' runs need.
    # The server script from the package, run as root with HOME in the temp dir (the Erlang
    # cookie goes there), not the wrapper in /usr/sbin that switches to the rabbitmq user.
    env "${RABBIT_ENV[@]}" RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none" \
        /usr/lib/rabbitmq/bin/rabbitmq-server > "$LOGS/rabbitmq.log" 2>&1 &
    PID[rabbitmq]=$!
    MQTT_PORT[rabbitmq]=$P_RMQ_MQTT
    STOMP_PORT[rabbitmq]=$P_RMQ_STOMP
    AMQP_PORT[rabbitmq]=$P_RMQ_AMQP
    if ! wait_port "$P_RMQ_STOMP" "${PID[rabbitmq]}" 90 || ! wait_port "$P_RMQ_MQTT" "${PID[rabbitmq]}" 10; then
        tail -20 "$LOGS/rabbitmq.log" >&2
        return 1
    fi
    VM_PID[rabbitmq]=$(cat "$d/beam.pid" 2>/dev/null || true)
}
stop_rabbitmq() {
    [[ -n ${PID[rabbitmq]:-} ]] || return 0
    env "${RABBIT_ENV[@]}" timeout 30 /usr/lib/rabbitmq/bin/rabbitmqctl -n bench@localhost stop >/dev/null 2>&1 || true
    [[ -n ${VM_PID[rabbitmq]:-} ]] && stop_pid "${VM_PID[rabbitmq]}" 10
    stop_pid "${PID[rabbitmq]}" 5
    # The Erlang port mapper the node started on our private port (never a shared one).
    env "${RABBIT_ENV[@]}" timeout 10 epmd -port "$P_RMQ_EPMD" -kill >/dev/null 2>&1 || true
}

start_activemq() {
    have activemq || { log "activemq: packages not installed, skipped"; return 1; }
    local d=$WORK/activemq
    mkdir -p "$d/conf" "$d/data" "$d/tmp"
    cat > "$d/conf/log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=%d %-5p %c - %m%n
EOF
    # --persistent, --openwire: KahaDB in the temp dir with its defaults, journal synced before a
    # send is acknowledged (enableJournalDiskSyncs, the default, spelled out). --openwire: an
    # OpenWire connector too (plain tcp://, ActiveMQ's default transport).
    local persistent=false store="" openwire="" mqtt="<transportConnector name=\"mqtt\" uri=\"mqtt+nio://127.0.0.1:$P_AMQ_MQTT\"/>"
    if [[ $OPENWIRE == 1 ]]; then
        openwire="<transportConnector name=\"openwire\" uri=\"tcp://127.0.0.1:$P_AMQ_OPENWIRE\"/>"
        mqtt=""
    fi
    if [[ $PERSISTENT == 1 || $OPENWIRE == 1 ]]; then
        persistent=true
        store="<persistenceAdapter><kahaDB directory=\"$d/data/kahadb\" enableJournalDiskSyncs=\"true\"/></persistenceAdapter>"
    fi
    cat > "$d/conf/activemq.xml" <<EOF
<!-- written by tests/bench/compare.sh: persistent="$persistent", no JMX, no advisories -->
<beans xmlns="http://www.springframework.org/schema/beans"
       xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
                           http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="bench" persistent="$persistent"
          useJmx="false" advisorySupport="false" schedulerSupport="false" dataDirectory="$d/data">
    $store
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp+nio://127.0.0.1:$P_AMQ_STOMP"/>
      $mqtt
      $openwire
    </transportConnectors>
  </broker>
</beans>
EOF
    # Debian's launcher in the foreground (`console`) with our conf/data/tmp dirs, as root.
    # Its MQTT transport needs the fusesource client (libmqtt-client-java) and hawtdispatch,
    # which the package does not put on the broker's class path.
    (cd "$d" && exec env ACTIVEMQ_USER=root ACTIVEMQ_CONF="$d/conf" ACTIVEMQ_DATA="$d/data" \
        ACTIVEMQ_TMP="$d/tmp" ACTIVEMQ_PIDFILE="$d/activemq.pid" INSTANCE=bench \
        ACTIVEMQ_USER_CLASSPATH=/usr/share/java/mqtt-client.jar:/usr/share/java/hawtdispatch.jar:/usr/share/java/hawtdispatch-transport.jar \
        /usr/bin/activemq console "xbean:file:$d/conf/activemq.xml") > "$LOGS/activemq.log" 2>&1 &
    PID[activemq]=$!
    STOMP_PORT[activemq]=$P_AMQ_STOMP
    MQTT_PORT[activemq]=$P_AMQ_MQTT
    if ! wait_port "$P_AMQ_STOMP" "${PID[activemq]}" 90; then
        tail -20 "$LOGS/activemq.log" >&2
        return 1
    fi
    if [[ $OPENWIRE == 1 ]]; then
        unset "MQTT_PORT[activemq]"
        wait_port "$P_AMQ_OPENWIRE" "${PID[activemq]}" 10 || { tail -20 "$LOGS/activemq.log" >&2; return 1; }
        OPENWIRE_PORT[activemq]=$P_AMQ_OPENWIRE
    elif ! wait_port "$P_AMQ_MQTT" "${PID[activemq]}" 10; then
        tail -20 "$LOGS/activemq.log" >&2
        return 1
    fi
    # The launcher's shell runs java as its child; the JVM holds the memory and is stopped first.
    VM_PID[activemq]=$(pgrep -P "${PID[activemq]}" java || true)
}
# (Also called for a broker that never started, its package missing: no PID, nothing to stop.)
stop_activemq() {
    [[ -z ${VM_PID[activemq]:-} ]] || stop_pid "${VM_PID[activemq]}" 15
    [[ -z ${PID[activemq]:-} ]] || stop_pid "${PID[activemq]}" 5
}

RUNNING=()   # targets started and not yet stopped
start_target() {
    log "starting $1"
    if "start_$1"; then
        RUNNING+=("$1")
        return 0
    fi
    log "$1 could not be started (log: $LOGS/$1.log); continuing without it"
    "stop_$1" 2>/dev/null || true
    return 1
}
stop_target() {
    local t=$1 keep=() r
    "stop_$t" || true
    for r in "${RUNNING[@]}"; do [[ $r == "$t" ]] || keep+=("$r"); done
    RUNNING=("${keep[@]}")
    unset "PID[$t]" "VM_PID[$t]" "STOMP_PORT[$t]" "MQTT_PORT[$t]" "AMQP_PORT[$t]" "OPENWIRE_PORT[$t]"
}
PERF_PID=""  # a perf counting a broker's syncs during one run
cleanup() {
    local t
    if [[ -n $PERF_PID ]]; then kill -INT "$PERF_PID" 2>/dev/null || true; PERF_PID=""; fi
    for t in "${RUNNING[@]}"; do "stop_$t" || true; done
    RUNNING=()
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---- one bench run ------------------------------------------------------------------------------

# With SYNC_PID and SYNC_OUT set, the next bench run also counts that broker process's fsync
# and fdatasync calls (all its threads, perf's syscall tracepoints) into SYNC_OUT.
SYNC_PID=""
SYNC_OUT=""
HAVE_PERF=0
if [[ $PERSISTENT == 1 ]] && command -v perf >/dev/null 2>&1 &&
   perf stat -x, -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync -- true >/dev/null 2>&1; then
    HAVE_PERF=1
fi

# Runs switchboard-bench holding the build lock, with a --timeout that never passes the
# deadline. Returns non-zero when out of time.
bench() {
    take_lock || return 1
    local left=$(( $(remaining) - 5 ))
    local t=$(( left < 120 ? left : 120 ))
    if [[ $HAVE_PERF == 1 && -n $SYNC_PID && -n $SYNC_OUT ]]; then
        perf stat -x, -o "$SYNC_OUT" -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync \
            -p "$SYNC_PID" 9>&- > /dev/null 2>&1 &
        PERF_PID=$!
        sleep 0.3   # attached to every thread before the first send
    fi
    timeout $((t + 15)) "${CLIENT[@]}" "$@" --timeout "$t" 9>&- || true
    if [[ -n $PERF_PID ]]; then
        kill -INT "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
        PERF_PID=""
    fi
    release_lock
}

# The disk's own rate: 64-byte appends, each followed by fdatasync, for 3 s in the temp dir the
# brokers write to (same filesystem), holding the build lock. Appends to a growing file, as a
# journal does.
fsync_probe() {  # label
    take_lock || return 1
    /usr/bin/python3 - "$WORK" "$1" 9>&- <<'PYEOF' >> "$OUT/fsync.txt" || true
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe.dat")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
n, start = 0, time.monotonic()
while time.monotonic() - start < 3.0:
    os.write(fd, b"x" * 64)
    os.fdatasync(fd)
    n += 1
secs = time.monotonic() - start
os.close(fd)
os.unlink(path)
print(f"{sys.argv[2]}: {n / secs:.0f} fdatasync/s ({n} in {secs:.2f} s, {secs / n * 1e6:.0f} us each)")
PYEOF
    release_lock
    log "raw fsync rate ($1): $(tail -1 "$OUT/fsync.txt")"
}

declare -A SCEN_ARGS=(
    [mqtt-qos0-1to1]="--protocol mqtt --qos 0 --producers 1 --consumers 1"
    [mqtt-qos1-1to1]="--protocol mqtt --qos 1 --producers 1 --consumers 1"
    [mqtt-qos0-4to1]="--protocol mqtt --qos 0 --producers 4 --consumers 1"
    [mqtt-qos1-4to1]="--protocol mqtt --qos 1 --producers 4 --consumers 1"
    [stomp-queue-1to1]="--protocol stomp --destination queue --confirm --producers 1 --consumers 1"
    [stomp-topic-1to1]="--protocol stomp --destination topic --confirm --producers 1 --consumers 1"
)
SCENARIOS=(mqtt-qos0-1to1 mqtt-qos1-1to1 mqtt-qos0-4to1 mqtt-qos1-4to1 stomp-queue-1to1 stomp-topic-1to1)
# Every run: a fixed count; the warm-up a tenth of it.
WARM=$(( COUNT / 10 > 1000 ? COUNT / 10 : 1000 ))
RUN_ARGS=(--count "$COUNT" --size "$SIZE" --window "$WINDOW")
WARM_ARGS=(--count "$WARM" --size "$SIZE" --window "$WINDOW")
# --openwire: a warm-up run is a second of sends (a later --duration wins in the Java client).
[[ $OPENWIRE == 0 ]] || WARM_ARGS+=(--duration 1)

if [[ $PERSISTENT == 1 ]]; then
    # 16 producers, a receipt on every persistent SEND: window 1 (each producer waits for its
    # receipt) and 16; 0 consumers (pure enqueue: every message stays on disk) and 1.
    P="--protocol stomp --destination queue --confirm --persistent --producers 16"
    SCEN_ARGS=(
        [persist-w1-16to0]="$P --window 1 --consumers 0"
        [persist-w1-16to1]="$P --window 1 --consumers 1"
        [persist-w16-16to0]="$P --window 16 --consumers 0"
        [persist-w16-16to1]="$P --window 16 --consumers 1"
    )
    SCENARIOS=(persist-w1-16to0 persist-w1-16to1 persist-w16-16to0 persist-w16-16to1)
    # A fixed time: the slowest broker bounds the run length, not the count.
    RUN_ARGS=(--duration "$DURATION" --size "$SIZE")
    WARM_ARGS=(--duration 1 --size "$SIZE")
fi
if [[ $AMQP == 1 ]]; then
    # Unsettled sends (each confirmed by the broker's accepted outcome), --window in flight per
    # sender and as each receiver's credit; durable: header durable=true and durable termini.
    A="--protocol amqp --destination queue"
    SCEN_ARGS=(
        [amqp-queue-1to1]="$A --producers 1 --consumers 1"
        [amqp-queue-4to4]="$A --producers 4 --consumers 4"
        [amqp-durable-16to0]="$A --persistent --producers 16 --consumers 0"
        [amqp-durable-16to1]="$A --persistent --producers 16 --consumers 1"
        [stomp-queue-1to1]="--protocol stomp --destination queue --confirm --producers 1 --consumers 1"
    )
    SCENARIOS=(amqp-queue-1to1 amqp-queue-4to4 amqp-durable-16to0 amqp-durable-16to1 stomp-queue-1to1)
fi
if [[ $OPENWIRE == 1 ]]; then
    # The same Java client (ActiveMQ's JMS client) against every broker; switchboard-bench's option
    # names. ow-queue-1to1: non-persistent, async sends (`jms.useAsyncSend=true`: nothing confirms
    # them), --count messages, prefetch 1000 (--window). ow-persist-*: 16 producers of persistent
    # messages, each send synchronous (the broker's Response: stored), for --duration seconds.
    # Every run: one second of the same traffic first, not counted (the client's JIT), and the
    # broker's CPU time over the measured part (--broker-pid, /proc).
    SCEN_ARGS=(
        [ow-queue-1to1]="--async --producers 1 --consumers 1"
        [ow-persist-16to0]="--persistent --producers 16 --consumers 0 --duration $DURATION"
        [ow-persist-16to1]="--persistent --producers 16 --consumers 1 --duration $DURATION"
    )
    SCENARIOS=(ow-queue-1to1 ow-persist-16to0 ow-persist-16to1)
fi
if [[ -n $SCENARIOS_GIVEN ]]; then
    IFS=, read -r -a wanted_scenarios <<< "$SCENARIOS_GIVEN"
    for w in "${wanted_scenarios[@]}"; do
        [[ -n ${SCEN_ARGS[$w]:-} ]] || die "--scenarios: unknown scenario in this mode: $w (have: ${SCENARIOS[*]})"
    done
    kept=()
    for s in "${SCENARIOS[@]}"; do
        [[ ",$SCENARIOS_GIVEN," == *",$s,"* ]] && kept+=("$s")
    done
    SCENARIOS=("${kept[@]}")
fi


# --persistent: a queue of its own per run, so no run drains an earlier one's backlog and what
# each run left on disk can be checked afterwards. (Otherwise the bench's default names.)
PREFIX_ARGS=()
# (--amqp, --openwire: a fresh queue per run too: a persistent run leaves its messages in the store.)
set_prefix() {
    PREFIX_ARGS=()
    [[ $PERSISTENT == 0 && $AMQP == 0 && $OPENWIRE == 0 ]] || PREFIX_ARGS=(--prefix "$1")
}
# --openwire: the broker process whose CPU time the client reads over the measured part.
CPU_ARGS=()
set_cpu_pid() { CPU_ARGS=(); [[ $OPENWIRE == 0 || -z ${VM_PID[$1]:-} ]] || CPU_ARGS=(--broker-pid "${VM_PID[$1]}"); }

port_for() {  # target scenario
    case $2 in
        mqtt-*) echo "${MQTT_PORT[$1]:-}" ;;
        amqp-*) echo "${AMQP_PORT[$1]:-}" ;;
        ow-*) echo "${OPENWIRE_PORT[$1]:-}" ;;
        *) echo "${STOMP_PORT[$1]:-}" ;;
    esac
}

# ---- the machine --------------------------------------------------------------------------------

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpus: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "memory: $(grep MemTotal /proc/meminfo | awk '{print $2 " kB"}')"
    echo "kernel: $(uname -r)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "switchboard: $("$SWITCHBOARD" version 2>/dev/null | head -1)" \
         "(commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)," \
         "binary built $(date -u -r "$SWITCHBOARD" +%Y-%m-%dT%H:%MZ))"
    [[ -z $BEFORE ]] || echo "before: $SWITCHBOARD_BEFORE: $("$SWITCHBOARD_BEFORE" version 2>/dev/null | head -1)" \
         "(binary built $(date -u -r "$SWITCHBOARD_BEFORE" +%Y-%m-%dT%H:%MZ))"
    for p in mosquitto rabbitmq-server activemq; do
        echo "$p: $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo 'not installed')"
    done
    if [[ $PERSISTENT == 1 ]]; then
        echo "mode: persistent  duration: ${DURATION}s  size: $SIZE  runs: $RUNS  sync counts: $([[ $HAVE_PERF == 1 ]] && echo perf || echo unavailable)"
        echo "temp filesystem: $(findmnt -n -T "$WORK" -o SOURCE,FSTYPE,OPTIONS 2>/dev/null || echo unknown)"
    elif [[ $OPENWIRE == 1 ]]; then
        echo "mode: openwire  count: $COUNT  duration: ${DURATION}s  size: $SIZE  prefetch: $WINDOW  runs: $RUNS  switchboard store: journal (sync: always)  activemq store: KahaDB"
        echo "client: $(java -version 2>&1 | head -1); ActiveMQ JMS client $(dpkg-query -W -f='${Version}' libactivemq-java 2>/dev/null || echo '?')"
        echo "temp filesystem: $(findmnt -n -T "$WORK" -o SOURCE,FSTYPE,OPTIONS 2>/dev/null || echo unknown)"
    elif [[ $AMQP == 1 ]]; then
        echo "mode: amqp  count: $COUNT  size: $SIZE  window: $WINDOW  runs: $RUNS  switchboard store: journal (sync: always)"
        echo "temp filesystem: $(findmnt -n -T "$WORK" -o SOURCE,FSTYPE,OPTIONS 2>/dev/null || echo unknown)"
    else
        echo "count: $COUNT  size: $SIZE  window: $WINDOW  runs: $RUNS  idle connections: $CONNECTIONS"
    fi
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

TARGETS=(sink)
[[ $OPENWIRE == 0 ]] || TARGETS=()   # the sink speaks no OpenWire
for b in switchboard before mosquitto rabbitmq activemq; do wanted "$b" && TARGETS+=("$b"); done

# ---- idle connections: each broker fresh, alone, one protocol at a time ------------------------

if [[ $IDLE == 1 ]]; then
    for b in "${TARGETS[@]}"; do
        [[ $b == sink ]] && continue
        for proto in mqtt stomp; do
            (( $(remaining) > 60 )) || { log "out of time: idle scenarios cut short"; break 2; }
            start_target "$b" || continue 2
            port=$([[ $proto == mqtt ]] && echo "${MQTT_PORT[$b]:-}" || echo "${STOMP_PORT[$b]:-}")
            if [[ -n $port && -n ${VM_PID[$b]:-} ]]; then
                sleep 2   # let start-up allocation settle before the first RSS reading
                log "idle $b $proto: $CONNECTIONS connections"
                bench idle --protocol "$proto" --port "$port" --connections "$CONNECTIONS" --hold 3 --concurrency 64 \
                    --broker-pid "${VM_PID[$b]}" --label "$b" --quiet --json "$OUT/idle/$proto.$b.json" \
                    > "$OUT/idle/$proto.$b.txt" 2>&1
            fi
            stop_target "$b"
        done
    done
fi

# ---- throughput and latency: all targets up, brokers alternating within each round --------------

for t in "${TARGETS[@]}"; do start_target "$t" || true; done
ACTIVE=("${RUNNING[@]}")
log "running: ${ACTIVE[*]}"

[[ $PERSISTENT == 0 ]] || fsync_probe before || true

# One unrecorded warm-up run per scenario and target (a JVM compiles its hot paths, Erlang
# and the kernel grow their buffers), a tenth of the count (--persistent: 1 s).
mkdir -p "$OUT/warmup"
for s in "${SCENARIOS[@]}"; do
    for t in "${ACTIVE[@]}"; do
        port=$(port_for "$t" "$s")
        [[ -n $port ]] || continue
        log "warm-up  $s  $t"
        set_prefix "warm-$s"
        set_cpu_pid "$t"
        # shellcheck disable=SC2086
        bench ${SCEN_ARGS[$s]} --port "$port" "${WARM_ARGS[@]}" "${PREFIX_ARGS[@]}" "${CPU_ARGS[@]}" \
            --label "$t" --quiet > "$OUT/warmup/$s.$t.txt" 2>&1 || break 2
    done
done

out_of_time=0
for ((round = 1; round <= RUNS && !out_of_time; round++)); do
    # Rotate the order every round, so no broker always runs right after the same one.
    n=${#ACTIVE[@]}
    order=()
    for ((i = 0; i < n; i++)); do order+=("${ACTIVE[$(((i + round - 1) % n))]}"); done
    # The disk's rate drifts (a shared VM's disk): measured again before every round.
    (( round == 1 )) || [[ $PERSISTENT == 0 ]] || fsync_probe "before round $round" || true
    for s in "${SCENARIOS[@]}"; do
        for t in "${order[@]}"; do
            port=$(port_for "$t" "$s")
            [[ -n $port ]] || continue
            log "round $round/$RUNS  $s  $t"
            SYNC_PID=""
            if [[ $PERSISTENT == 1 && $t != sink ]]; then
                SYNC_PID=${VM_PID[$t]:-}
                SYNC_OUT="$OUT/runs/$s.$t.$round.syncs"
            fi
            set_prefix "r$round-$s"
            set_cpu_pid "$t"
            # shellcheck disable=SC2086
            if ! bench ${SCEN_ARGS[$s]} --port "$port" "${RUN_ARGS[@]}" "${PREFIX_ARGS[@]}" "${CPU_ARGS[@]}" \
                    --label "$t" --quiet --json "$OUT/runs/$s.$t.$round.json" \
                    > "$OUT/runs/$s.$t.$round.txt" 2>&1; then
                log "out of time (--max-minutes $MAX_MINUTES): stopping the runs here"
                out_of_time=1
                break 2
            fi
        done
    done
done

# ---- --persistent: what the brokers stored, and whether Switchboard kept what it confirmed -----

# Switchboard is killed without a shutdown (SIGKILL: nothing flushed on the way out), restarted
# on the same journal, and every recorded run's queue is drained: a pure-enqueue run's queue must
# hold exactly the messages the bench saw confirmed (each producer's numbers 0..n-1, once), a
# run with a consumer left nothing behind (every message was delivered and auto-acknowledged).
recovery_check() {
    local pid=${PID[switchboard]} f name s r expect t0
    log "recovery check: switchboard SIGKILL (pid $pid), restart on its journal, drain every run's queue"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    stop_target switchboard
    mv "$LOGS/switchboard.log" "$LOGS/switchboard.before-kill.log"
    t0=$(date +%s%N)
    # Info level for the restart: the store logs what it recovered and how long it took.
    if ! SB_LOG_LEVEL=info SB_START_WAIT=$(( $(remaining) - 30 )) start_target switchboard; then
        echo '{"label": "restart", "ok": false, "error": "switchboard did not restart on its journal"}' >> "$OUT/recovery.jsonl"
        return 0
    fi
    /usr/bin/python3 -c 'import json, sys
print(json.dumps({"label": "restart", "ok": True, "listening_after_s": int(sys.argv[1]) / 1e9, "log": sys.argv[2]}))' \
        "$(( $(date +%s%N) - t0 ))" "$(grep -m1 'recovered=' "$LOGS/switchboard.log" | sed 's/^.*\] //')" >> "$OUT/recovery.jsonl"
    for f in "$OUT"/runs/persist-*.switchboard.*.json; do
        [[ -e $f ]] || continue
        (( $(remaining) > 30 )) || { log "out of time: recovery check cut short"; break; }
        name=$(basename "$f" .json)
        s=${name%%.*}
        r=${name##*.}
        expect=$(/usr/bin/python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(j["confirmed"] if j["scenario"]["consumers"] == 0 else 0)' "$f") || continue
        /usr/bin/python3 "$HERE/drain_queue.py" --port "${STOMP_PORT[switchboard]}" --queue "r$r-$s.0" \
            --expect "$expect" --timeout 60 --label "$s.$r" >> "$OUT/recovery.jsonl" || true
    done
}

if [[ $AMQP == 1 && -n ${PID[rabbitmq]:-} ]]; then
    # Which of RabbitMQ's queues the runs declared durable (the durable scenarios' must be).
    env "${RABBIT_ENV[@]}" timeout 30 /usr/lib/rabbitmq/bin/rabbitmqctl -n bench@localhost -q \
        list_queues name durable messages > "$OUT/rabbitmq-queues.txt" 2>&1 || true
fi
if [[ $PERSISTENT == 1 ]]; then
    fsync_probe "after the last round" || true
    # What the others stored: RabbitMQ's queues (declared by the STOMP plugin for /queue/
    # destinations) with their durability, ActiveMQ's KahaDB files.
    if [[ -n ${PID[rabbitmq]:-} ]]; then
        env "${RABBIT_ENV[@]}" timeout 30 /usr/lib/rabbitmq/bin/rabbitmqctl -n bench@localhost -q \
            list_queues name durable messages > "$OUT/rabbitmq-queues.txt" 2>&1 || true
    fi
    [[ -z ${PID[activemq]:-} ]] || ls -l "$WORK/activemq/data/kahadb" > "$OUT/activemq-kahadb.txt" 2>&1 || true
    if [[ -n ${PID[switchboard]:-} ]]; then
        ls -l "$WORK/switchboard/data" > "$OUT/switchboard-journal.txt" 2>&1 || true
        if (( $(remaining) > 90 )); then recovery_check; else log "out of time: no recovery check"; fi
    fi
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
cleanup

# ---- summary ------------------------------------------------------------------------------------

/usr/bin/python3 - "$OUT" "${TARGETS[*]}" "${SCENARIOS[*]}" "$PERSISTENT" "$AMQP" "$OPENWIRE" <<'PYEOF'
import glob, json, os, statistics, sys

out, targets, scenarios = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
persistent = sys.argv[4] == "1"
amqp = sys.argv[5] == "1"
openwire = sys.argv[6] == "1"
brokers = [t for t in targets if t != "sink"]
# The headline: deliveries per second; with --persistent, confirmed sends per second (a
# pure-enqueue run delivers nothing, and confirmation is what is being measured); with --amqp,
# the same for its scenarios without consumers.
rate_key = "send_msgs_per_s" if persistent else "receive_msgs_per_s"
def rate_of(s):
    return "send_msgs_per_s" if persistent or ((amqp or openwire) and s.endswith("to0")) else "receive_msgs_per_s"

def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def fmt_rate(v):
    return f"{v/1000:.1f}k" if v < 1e6 else f"{v/1e6:.2f}M"

def fmt_ms(us):
    return f"{us/1000:.2f}" if us < 100000 else f"{us/1000:.0f}"

def syncs_of(path):
    """fsync + fdatasync calls counted by perf stat -x, during one run; None when not counted."""
    try:
        with open(path) as f:
            counts = [l.split(",") for l in f if "syscalls:sys_enter_" in l]
    except OSError:
        return None
    if not counts or any(not c[0].strip().isdigit() for c in counts):
        return None
    return sum(int(c[0]) for c in counts)

summary = {"throughput": {}, "idle": {}}
lines = []
if persistent:
    lines.append("### Persistent sends: confirmed msgs/s, median of runs [min–max]; ratio = Switchboard ÷ broker\n")
elif openwire:
    lines.append("### OpenWire (ActiveMQ's JMS client): received msgs/s (…to0: confirmed sends/s), median of runs [min–max]; ratio = Switchboard ÷ broker\n")
elif amqp:
    lines.append("### AMQP 1.0: received msgs/s (…to0: confirmed sends/s), median of runs [min–max]; ratio = Switchboard ÷ broker\n")
else:
    lines.append("### Throughput: received msgs/s, median of runs [min–max]; ratio = Switchboard ÷ broker\n")
head = "| scenario | " + " | ".join(("client ceiling (sink)" if t == "sink" else t) for t in targets) + " |"
lines.append(head)
lines.append("|" + "---|" * (len(targets) + 1))
lat = ["", "### End-to-end latency (ms): p50 / p99 / p99.9 of the median-throughput run\n",
       "| scenario | " + " | ".join(("sink" if t == "sink" else t) for t in targets) + " |",
       "|" + "---|" * (len(targets) + 1)]
cpu = ["", "### CPU per message in the median run: broker / client (µs of CPU time, user + system, per message counted)\n",
       "| scenario | " + " | ".join(targets) + " |",
       "|" + "---|" * (len(targets) + 1)]
syn = ["", "### Syncs: the broker's fsync + fdatasync calls in the median run; confirmed sends per call\n",
       "| scenario | " + " | ".join(brokers) + " |",
       "|" + "---|" * (len(brokers) + 1)]
for s in scenarios:
    rate_key = rate_of(s)
    row, lrow, srow, crow = [s], [s], [s], [s]
    medians = {}
    for t in targets:
        paths = sorted(glob.glob(os.path.join(out, "runs", f"{s}.{t}.*.json")))
        runs = [(p, j) for p, j in ((p, load(p)) for p in paths) if j]
        ok = [(p, j) for p, j in runs if not j.get("errors")]
        if not runs or not ok:
            row.append("n/a" if not runs else "error: " + runs[0][1]["errors"][0][:60])
            lrow.append("n/a" if not runs else "–")
            crow.append("n/a" if not runs else "–")
            if t != "sink":
                srow.append("n/a" if not runs else "–")
            continue
        rates = sorted(j[rate_key] for _, j in ok)
        med = statistics.median(rates)
        medians[t] = med
        mid_path, mid = min(ok, key=lambda pj: abs(pj[1][rate_key] - med))
        flags = []
        incomplete = [j for _, j in ok if not j["complete"]]
        if incomplete:
            lost = max(j["expected"] - j["received"] for j in incomplete)
            flags.append(f"{len(incomplete)}/{len(ok)} runs incomplete (≤{lost} lost)")
        unconfirmed = [j for _, j in ok if j["scenario"].get("confirm") and j["confirmed"] != j["sent"]]
        if unconfirmed:
            flags.append(f"{len(unconfirmed)}/{len(ok)} runs with unconfirmed sends")
        cell = f"{fmt_rate(med)} [{fmt_rate(rates[0])}–{fmt_rate(rates[-1])}]"
        if t not in ("sink", "switchboard") and "switchboard" in medians and med > 0:
            cell += f" ×{medians['switchboard'] / med:.2f}"
        if flags:
            cell += " (" + "; ".join(flags) + ")"
        row.append(cell)
        l = mid["latency_us"]
        lrow.append(f"{fmt_ms(l['p50'])} / {fmt_ms(l['p99'])} / {fmt_ms(l['p99_9'])}" if l["count"] else "–")
        entry = {
            "runs": len(ok), "median": med, "min": rates[0], "max": rates[-1],
            "complete_runs": len(ok) - len(incomplete),
            "latency_us_of_median_run": l,
        }
        if persistent and t != "sink":
            n = syncs_of(mid_path[:-len(".json")] + ".syncs")
            if n:
                entry.update(syncs=n, confirmed=mid["confirmed"], sends_per_sync=mid["confirmed"] / n,
                             syncs_per_s=n / mid["send_s"] if mid["send_s"] else 0)
                srow.append(f"{mid['confirmed'] / n:.1f} ({n} calls, ≈{n / mid['send_s']:.0f}/s)")
            else:
                srow.append("not counted")
        if openwire:
            # Per message counted: received, or (nothing received) confirmed sends.
            n = mid["received"] or mid["confirmed"]
            b, c = mid.get("broker_cpu_s"), mid.get("client_cpu_s")
            if n and b is not None and b >= 0 and c is not None:
                entry.update(broker_cpu_us_per_msg=b / n * 1e6, client_cpu_us_per_msg=c / n * 1e6)
                crow.append(f"{b / n * 1e6:.1f} / {c / n * 1e6:.1f}")
            else:
                crow.append("not measured")
        summary["throughput"].setdefault(s, {})[t] = entry
    lines.append("| " + " | ".join(row) + " |")
    lat.append("| " + " | ".join(lrow) + " |")
    syn.append("| " + " | ".join(srow) + " |")
    cpu.append("| " + " | ".join(crow) + " |")
if amqp:
    # AMQP against STOMP on Switchboard itself: the same queue 1→1 in the same run.
    tp = summary["throughput"]
    a = tp.get("amqp-queue-1to1", {}).get("switchboard")
    st = tp.get("stomp-queue-1to1", {}).get("switchboard")
    if a and st and st["median"] > 0:
        summary["amqp_over_stomp_1to1"] = a["median"] / st["median"]
        lines += ["", f"Switchboard AMQP queue 1→1 ÷ STOMP queue 1→1 (confirmed): {a['median'] / st['median']:.2f}"]
if openwire:
    lines += cpu
if persistent:
    lines += syn
    # Latency only where something was delivered.
    lines += lat[:4] + [r for r in lat[4:] if not all(c.strip() in ("–", "n/a") for c in r.split("|")[2:-1])]
else:
    lines += lat

idle_rows = []
for proto in ("mqtt", "stomp"):
    for b in brokers:
        j = load(os.path.join(out, "idle", f"{proto}.{b}.json"))
        if not j:
            continue
        summary["idle"].setdefault(proto, {})[b] = j
        per = j.get("rss_bytes_per_connection", 0)
        idle_rows.append(f"| {proto} | {b} | {j['connected']}/{j['connections']} | {j['connects_per_s']:.0f} | "
                         f"{j.get('rss_before_kb', 0)/1024:.1f} → {j.get('rss_after_kb', 0)/1024:.1f} | {per/1024:.1f} |")
if idle_rows:
    lines += ["", "### Idle connections: connect rate and broker resident memory\n",
              "| protocol | broker | connected | connects/s | RSS MiB before → after | KiB per connection |",
              "|---|---|---|---|---|---|"] + idle_rows

if persistent:
    try:
        with open(os.path.join(out, "fsync.txt")) as f:
            probes = [l.strip() for l in f if l.strip()]
    except OSError:
        probes = []
    summary["fsync_probe"] = probes
    lines += ["", "### The disk: 64-byte append + fdatasync in a loop, 3 s, same filesystem\n"]
    lines += [f"- {p}" for p in probes] or ["- not measured"]

    checks = []
    try:
        with open(os.path.join(out, "recovery.jsonl")) as f:
            checks = [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError):
        pass
    summary["recovery"] = checks
    if checks:
        lines += ["", "### Switchboard after SIGKILL and restart on its journal: every run's queue drained\n"]
        for c in checks:
            if c["label"] == "restart":
                lines.append("- restart: " + (f"listening after {c['listening_after_s']:.2f} s ({c.get('log', '')})"
                                              if c["ok"] else c.get("error", "failed")))
                continue
            verdict = "ok" if c["ok"] else "MISMATCH"
            extra = f", error: {c['error']}" if c.get("error") else ""
            lines.append(f"- {c['label']}: {c['received']} drained of {c['expected']} confirmed and not consumed"
                         f" ({c['producers']} producers, {c['duplicates']} duplicates, {c['gaps']} gaps{extra}) — {verdict}")

if persistent or amqp:
    try:
        with open(os.path.join(out, "rabbitmq-queues.txt")) as f:
            rows = [l.split() for l in f if l.strip()]
        rows = [r for r in rows if len(r) == 3 and r[0].startswith("r") and (not amqp or "durable" in r[0])]
        summary["rabbitmq_queues"] = [{"name": r[0], "durable": r[1], "messages": r[2]} for r in rows]
        durable = sum(r[1] == "true" for r in rows)
        lines += ["", f"RabbitMQ: {durable} of {len(rows)} bench queues durable (`rabbitmqctl list_queues name durable messages`)."]
    except OSError:
        pass

text = "\n".join(lines) + "\n"
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(text)
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(text)
PYEOF
if [[ $PERSISTENT == 1 || $AMQP == 1 || $OPENWIRE == 1 ]]; then
    # The brokers' stores (hundreds of MB after a few runs); configs and logs stay.
    rm -rf "$WORK/switchboard/data" "$WORK/before/data" "$WORK/activemq/data" "$WORK/rabbitmq/mnesia"
    log "removed the brokers' stores under $WORK"
fi
log "results: $OUT (summary.md, summary.json, machine.txt, runs/, idle/, logs/)"
(( out_of_time == 0 )) || exit 1
