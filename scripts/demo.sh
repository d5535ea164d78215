#!/usr/bin/env bash
# The main job on its built-in defaults: the moving test pattern and a tone,
# H.264 + Opus over RTP/RTCP to 127.0.0.1 (costream ports 5000-5007),
# with the live stats line. Stops after DURATION seconds (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p pstream
exec target/release/pstream send --peer 127.0.0.1 --duration "${DURATION:-10}" "$@"
