#!/usr/bin/env bash
# tests/fuzz/smoke_test.sh SMOKE — checks smoke.sh itself with a stand-in fuzzer: a failing pass
# must fail the test and keep its crash input where it says; kept crash inputs are replayed.
set -euo pipefail
smoke=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/corpus" "$dir/crashes"
echo seed > "$dir/corpus/seed"

# A stand-in for a libFuzzer binary: with -artifact_prefix it "finds" a crash and writes it
# there (as libFuzzer does); given input files (a regression replay) it fails on one named bad*.
cat > "$dir/fake_fuzz" <<'FAKE'
#!/usr/bin/env bash
prefix=""
for a in "$@"; do
  case "$a" in
    -artifact_prefix=*) prefix=${a#-artifact_prefix=} ;;
    -*) ;;
    *) [ -f "$a" ] && [[ "$(basename "$a")" == bad* ]] && { echo "==1==ERROR: replayed crash"; exit 77; } ;;
  esac
done
if [ -n "$prefix" ] && [ -n "${FAKE_CRASH:-}" ]; then
  printf 'boom' > "${prefix}crash-0123abcd"
  echo "==1==ERROR: AddressSanitizer: heap-use-after-free"
  exit 1
fi
exit 0
FAKE
chmod +x "$dir/fake_fuzz"
fail() { echo "FAILED: $*"; exit 1; }

# 1. A clean pass succeeds and leaves no input behind.
SB_FUZZ_ARTIFACTS="$dir/art" "$smoke" "$dir/fake_fuzz" "$dir/corpus" 1 "$dir/crashes" > "$dir/out1" 2>&1 ||
  { cat "$dir/out1"; fail "a clean pass failed"; }
[ -z "$(ls -A "$dir/art/fake_fuzz")" ] || fail "a clean pass left files: $(ls "$dir/art/fake_fuzz")"

# 2. A crash fails the pass, and its input is still there afterwards, named in the output.
if FAKE_CRASH=1 SB_FUZZ_ARTIFACTS="$dir/art" "$smoke" "$dir/fake_fuzz" "$dir/corpus" 1 "$dir/crashes" > "$dir/out2" 2>&1; then
  cat "$dir/out2"; fail "a crashing pass succeeded"
fi
[ "$(cat "$dir/art/fake_fuzz/crash-0123abcd" 2>/dev/null)" = boom ] || { cat "$dir/out2"; fail "the crash input was not kept"; }
grep -q "$dir/art/fake_fuzz/crash-0123abcd" "$dir/out2" || { cat "$dir/out2"; fail "the crash input's path was not printed"; }

# 3. A kept crash input that fails again fails the pass before any fuzzing.
echo x > "$dir/crashes/bad-1"
if SB_FUZZ_ARTIFACTS="$dir/art" "$smoke" "$dir/fake_fuzz" "$dir/corpus" 1 "$dir/crashes" > "$dir/out3" 2>&1; then
  cat "$dir/out3"; fail "a failing kept input passed"
fi
grep -q "kept crash input" "$dir/out3" || { cat "$dir/out3"; fail "the replay failure was not reported"; }

# 4. Kept inputs that pass are replayed and counted.
mv "$dir/crashes/bad-1" "$dir/crashes/fixed-1"
SB_FUZZ_ARTIFACTS="$dir/art" "$smoke" "$dir/fake_fuzz" "$dir/corpus" 1 "$dir/crashes" > "$dir/out4" 2>&1 ||
  { cat "$dir/out4"; fail "a passing kept input failed"; }
grep -q "1 kept crash input(s) pass" "$dir/out4" || { cat "$dir/out4"; fail "the replay was not run"; }
echo "smoke.sh: all 4 checks held"
