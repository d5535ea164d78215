#!/usr/bin/env bash
# The whole test suite: installs the peers, then unit tests, peer tests
# (GStreamer, ffmpeg, tshark on loopback), formatting and lints.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each phase's time, on stderr, to see where the hour goes.
phase_start=$SECONDS
phase() {
  echo "== test.sh: $1 took $((SECONDS - phase_start)) s (total $((SECONDS / 60)) min)" >&2
  phase_start=$SECONDS
}
scripts/install-deps.sh
# Peers no registry has, built from ../shared/peers (the shmdata reference
# library for the shmdata tests).
scripts/peers.sh
phase "installing packages and peers"

# The Raspberry Pi builds and the fuzz targets are compiled in the background,
# at the lowest CPU and I/O priorities (best effort, not idle I/O, which a busy
# disk could starve), while the host's build and tests run:
# most host tests wait on real time (seconds of live streams), and under
# nice 19 a test's processes get a core whenever they want one. The cross
# builds get their own target directory (cargo locks one while it builds,
# and the host's `cargo test` takes that lock again before it runs).
cross_env=(env CARGO_TARGET_DIR="$PWD/target/cross"
  TARGETS="aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf"
  UNIT_TESTS="armv7-unknown-linux-gnueabihf")
low=(nice -n 19 ionice -c 2 -n 7)
log=$(mktemp)
bg_log=$(mktemp)
vm_log=$(mktemp)
# Its own session, so that its whole process group can be ended.
setsid bash -c "$(printf '%q ' "${low[@]}" "${cross_env[@]}" scripts/cross.sh --build-tests) &&
  $(printf '%q ' "${low[@]}" scripts/fuzz-smoke.sh --build)" >"$bg_log" 2>&1 </dev/null &
bg=$!
# The background builds end with the script, however it ends.
trap 'kill -- -"$bg" 2>/dev/null || true; rm -f "$log" "$bg_log" "$vm_log"' EXIT

# The qemu guest the V4L2 device tests boot (tests/v4l2_vm.rs): about 1 min
# cold (85 MB of Debian packages, v4l2loopback built), nothing when
# target/vm is already there; made while clippy runs.
scripts/vm/prepare.sh >"$vm_log" 2>&1 &
vm=$!

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "fmt and clippy"
if ! wait "$vm"; then
  tail -n 40 "$vm_log" >&2
  echo "test.sh: preparing the qemu guest failed" >&2
  exit 1
fi
phase "waiting for the guest's preparation"
# Peer tests take turns inside each test binary (see tests/common), and test
# binaries run one after another, so a 2-core machine is not oversubscribed.
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
phase "cargo test"
if ! wait "$bg"; then
  tail -n 80 "$bg_log" >&2
  echo "test.sh: the background builds (Raspberry Pi targets, fuzz targets) failed" >&2
  exit 1
fi
grep -E '^(== |fuzz: )' "$bg_log" >&2 || true
phase "waiting for the background builds"
# The Raspberry Pi builds (aarch64, armv7), their unit tests and a send ->
# recv loopback under qemu-user (cold: about 20 min of the CI budget).
# The ARMv6 build (Pi Zero/1) is its own command,
#   TARGETS=arm-unknown-linux-musleabihf scripts/cross.sh --test
# (about 16 min with its dependencies built; cold, with std and zig's C
# runtime built from source, it would take the test command past its hour).
# The unit tests run under qemu for armv7 only: they are the same code as on
# x86_64 (64-bit, little-endian, like aarch64), and armv7 is the one that
# differs (32-bit usize and atomics); aarch64 still runs every loopback, the
# recording, `bench encode` (its NEON codecs decoded back and checked by
# PSNR) and the HLS example. Building aarch64's unit tests in release cost
# about 4 of the hour's minutes. All targets' unit tests:
#   TARGETS="aarch64-unknown-linux-gnu" scripts/cross.sh --test
"${cross_env[@]}" scripts/cross.sh --test 2>&1 | tee -a "$log"
phase "Raspberry Pi builds and their tests"
# Every parser that takes bytes off the network, fuzzed briefly.
scripts/fuzz-smoke.sh
phase "fuzzing"

# One closing line for the whole suite (cargo's own last line is whichever
# test binary ran last, often a crate's empty doc-tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
