#!/usr/bin/env bash
# A short run of every cargo-fuzz target (FUZZ_SECONDS each, default 15:
# fourteen targets take about 4 minutes once built).
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. Longer runs: see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-15}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in $(cargo fuzz list); do
  echo "fuzz: $t for ${seconds}s" >&2
  # -rss_limit_mb keeps a runaway allocation a crash, not a stall.
  if ! cargo fuzz run "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $t failed; the input is in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E "^Done [0-9]+ runs" "$log" >&2 || true
done
echo "fuzz: all targets ran ${seconds}s without a crash (${SECONDS}s in all)" >&2
