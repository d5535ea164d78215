#!/usr/bin/env bash
# The whole test suite: installs the peers, then unit tests, peer tests
# (GStreamer, ffmpeg, tshark on loopback), formatting and lints.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Peer tests take turns inside each test binary (see tests/common), and test
# binaries run one after another, so a 2-core machine is not oversubscribed.
cargo test --workspace --locked
# Every parser that takes bytes off the network, fuzzed briefly.
scripts/fuzz-smoke.sh
