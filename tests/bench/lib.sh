# tests/bench/lib.sh — shell functions the comparison scripts share (sourced, never run).
# The caller sets DEADLINE (epoch seconds, the hard end of the whole run) and LOCK_FILE.

# Seconds left before DEADLINE.
remaining() { echo $((DEADLINE - $(date +%s))); }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port pid seconds: a bounded wait until the port accepts; fails at once if the process died.
wait_port() {
    local port=$1 pid=$2 secs=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        port_open "$port" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# pid [seconds]: stops one process we started: SIGTERM, up to `seconds` (10), then SIGKILL.
stop_pid() {
    local pid=$1 secs=${2:-10} i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# Holds the build lock (fd 9) for a measurement, waiting at most until 5 s before DEADLINE;
# fails when less than 10 s would be left. No lock file: nothing to wait for.
# SB_BENCH_LOCK_HELD=1: the caller holds the lock for the whole script (`flock LOCK script`),
# so that no build starts between two runs that are compared: nothing more to take here.
take_lock() {
    local left=$(( $(remaining) - 5 ))
    (( left >= 10 )) || return 1
    [[ ${SB_BENCH_LOCK_HELD:-0} != 1 ]] || return 0
    if [[ -e $LOCK_FILE ]]; then
        exec 9>>"$LOCK_FILE"
        flock -w "$left" 9 || { exec 9>&-; return 1; }
        left=$(( $(remaining) - 5 ))
        (( left >= 10 )) || { exec 9>&-; return 1; }
    fi
}
release_lock() { [[ ! -e $LOCK_FILE || ${SB_BENCH_LOCK_HELD:-0} == 1 ]] || exec 9>&-; }
