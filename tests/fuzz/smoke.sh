#!/usr/bin/env bash
# tests/fuzz/smoke.sh — a bounded libFuzzer pass: FUZZER CORPUS SECONDS.
# The seed corpus is copied so that new inputs never land in the source tree; a crash, leak
# or sanitizer report makes libFuzzer exit non-zero, and so this test fails.
set -euo pipefail
fuzzer=$1 corpus=$2 seconds=$3
[ -x "$fuzzer" ] || { echo "fuzz target $fuzzer not built (make fuzz)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus"/. "$work/"
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/" \
          -print_final_stats=1 "$work" 2>&1 | tail -n 20
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || { echo "fuzzer exited with $status"; exit 1; }
echo "fuzz smoke passed: $(basename "$fuzzer")"
