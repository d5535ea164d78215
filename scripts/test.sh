#!/usr/bin/env bash
# The whole test suite: installs the peers, then unit tests, peer tests
# (GStreamer, ffmpeg, tshark on loopback), formatting and lints.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Peers no registry has, built from ../shared/peers (the shmdata reference
# library for the shmdata tests).
scripts/peers.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Peer tests take turns inside each test binary (see tests/common), and test
# binaries run one after another, so a 2-core machine is not oversubscribed.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The qemu guest the V4L2 device tests boot (tests/v4l2_vm.rs): about 1 min
# cold (85 MB of Debian packages), nothing when target/vm is already there.
scripts/vm/prepare.sh >/dev/null
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
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
TARGETS="aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf" \
  UNIT_TESTS="armv7-unknown-linux-gnueabihf" \
  scripts/cross.sh --test 2>&1 | tee -a "$log"
# Every parser that takes bytes off the network, fuzzed briefly.
scripts/fuzz-smoke.sh

# One closing line for the whole suite (cargo's own last line is whichever
# test binary ran last, often a crate's empty doc-tests).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
