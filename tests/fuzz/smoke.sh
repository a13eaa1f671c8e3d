#!/usr/bin/env bash
# tests/fuzz/smoke.sh — a bounded libFuzzer pass: FUZZER CORPUS SECONDS [CRASHES].
#
# First every kept crash input in CRASHES (tests/fuzz/crashes/<target>/, committed once a
# crash is fixed) is run as a regression; then a time-bounded pass over a copy of the seed
# corpus (new inputs never land in the source tree). A crash, leak, timeout or sanitizer
# report makes libFuzzer exit non-zero, and so this test fails. The input that caused it is
# kept in $SB_FUZZ_ARTIFACTS/<target>/ (default: fuzz-artifacts/ in the working directory, the
# build tree under ctest) and the command that reproduces it is printed.
set -euo pipefail
fuzzer=$1 corpus=$2 seconds=$3 crashes=${4:-}
[ -x "$fuzzer" ] || { echo "fuzz target $fuzzer not built (make fuzz)"; exit 1; }
name=$(basename "$fuzzer")
artifacts=${SB_FUZZ_ARTIFACTS:-$PWD/fuzz-artifacts}/$name
mkdir -p "$artifacts"
artifacts=$(cd "$artifacts" && pwd)

if [ -n "$crashes" ] && [ -d "$crashes" ]; then
  inputs=()
  while IFS= read -r -d '' f; do inputs+=("$f"); done < <(find "$crashes" -type f -print0 | sort -z)
  if [ ${#inputs[@]} -gt 0 ]; then
    if ! "$fuzzer" -timeout=10 -rss_limit_mb=2048 "${inputs[@]}" > "$artifacts/regressions.log" 2>&1; then
      tail -n 40 "$artifacts/regressions.log"
      echo "a kept crash input of $crashes fails again (log: $artifacts/regressions.log)"
      exit 1
    fi
    echo "${#inputs[@]} kept crash input(s) pass"
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus"/. "$work/"
set +e
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$artifacts/" \
          -print_final_stats=1 "$work" > "$work.log" 2>&1
status=$?
set -e
tail -n 20 "$work.log"
rm -f "$work.log"
if [ "$status" -ne 0 ]; then
  echo "fuzzer exited with $status; inputs kept in $artifacts:"
  ls -1 "$artifacts" | grep -v '^regressions.log$' | sed "s|^|  $artifacts/|" || true
  echo "reproduce: $fuzzer $artifacts/<input>   (then add it to tests/fuzz/crashes/$name/)"
  exit 1
fi
echo "fuzz smoke passed: $name"
