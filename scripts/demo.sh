#!/usr/bin/env bash
# The main job on its built-in defaults, on loopback: `pstream send` streams the
# moving test pattern and a tone as H.264 + Opus over RTP/RTCP to 127.0.0.1
# (costream ports 5000-5007), and `pstream recv` receives, decodes and reads
# the capture-to-decoded latency off the picture's timecode. Both print their
# stats line once a second. Stops after DURATION seconds (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
# Only what building and running need: no test peers.
scripts/install-deps.sh --build
cargo build --release -p pstream
bin=target/release/pstream
duration="${DURATION:-10}"
# Piped through cat, each prints plain log lines, so the two stats lines
# interleave instead of overwriting each other on the terminal.
"$bin" recv --peer 127.0.0.1 --timecode --duration "$((duration + 2))" 2>&1 | cat &
recv=$!
trap 'kill $recv 2>/dev/null || true' EXIT
sleep 0.5
"$bin" send --peer 127.0.0.1 --duration "$duration" "$@" 2>&1 | cat
wait "$recv"
