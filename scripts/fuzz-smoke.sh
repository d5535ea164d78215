#!/usr/bin/env bash
# A short run of every cargo-fuzz target (FUZZ_SECONDS each, default 15),
# FUZZ_JOBS at a time (default: one per core; a fuzzer is one thread). Once
# built, fourteen targets take about two minutes on two cores.
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. Longer runs: see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-15}"
jobs="${FUZZ_JOBS:-$(nproc)}"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
# Every target built once, before any runs, so that the runs in parallel
# do not wait on each other's build. --build stops there (scripts/test.sh
# builds while the host's tests run).
cargo fuzz build >"$logs/build" 2>&1 || { tail -n 60 "$logs/build" >&2; exit 1; }
if [ "${1:-}" = "--build" ]; then
  echo "fuzz: every target built (${SECONDS}s)" >&2
  exit 0
fi

# One target's run; its log is kept for the report below.
run() {
  # -rss_limit_mb keeps a runaway allocation a crash, not a stall.
  cargo fuzz run "$1" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$logs/$1" 2>&1
}
# Reports a finished target (its runs, or its failure) and fails on a crash.
report() {
  local t=$1 rc=$2
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$logs/$t" >&2
    echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  echo "fuzz: $t: $(grep -E -m1 "^Done [0-9]+ runs" "$logs/$t" || echo "ran")" >&2
}

declare -A running=()
for t in $(cargo fuzz list); do
  while ((${#running[@]} >= jobs)); do
    # Any run's end, with which one it was (bash 5.1's -p).
    rc=0; wait -n -p done "${!running[@]}" || rc=$?
    report "${running[$done]}" "$rc"
    unset "running[$done]"
  done
  echo "fuzz: $t for ${seconds}s" >&2
  run "$t" &
  running[$!]=$t
done
for p in "${!running[@]}"; do
  rc=0; wait "$p" || rc=$?
  report "${running[$p]}" "$rc"
done
echo "fuzz: all targets ran ${seconds}s without a crash (${SECONDS}s in all)" >&2
