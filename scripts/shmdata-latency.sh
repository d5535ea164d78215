#!/bin/sh
# #15 must-show 6: capture-to-decoded latency of shmdata -> send -> recv on
# loopback, beside the same through a GStreamer shmdatasrc pipeline.
#
# Both sides read the same shmdata: pstream's own writer (`pstream bridge
# --video test --video-out shmdata:`) serves the timecoded test pattern
# (I420); the receiver is the same `pstream recv --timecode` for both, so
# both are timed the same way (capture instant painted in the picture ->
# decoded picture in recv). Only the sender differs:
#   pstream:   pstream send --video shmdata:SOCK (openh264, pstream's defaults)
#   GStreamer: shmdatasrc ! x264enc tune=zerolatency speed-preset=ultrafast
#              ! rtph264pay config-interval=-1 ! udpsink sync=false
# Runs are interleaved (pstream, GStreamer, pstream, ...).
#
# 2026-12-07, release build, 2-core machine shared with other builds (load
# 1.4-4), 3 x 10 s at 720p30: pstream median 4.8 / 6.1 / 6.6 ms (p99 16.1 /
# 12.7 / 16.6), GStreamer 5.4 / 5.7 / 4.5 ms (p99 10.2 / 11.2 / 13.0):
# ratios 0.89 / 1.07 / 1.47, 1.13 on the median of the runs.
#
# Usage: scripts/shmdata-latency.sh [RUNS=3] [SECONDS=10] [SIZE=1280x720]
#   PSTREAM=path/to/pstream (default target/release/pstream, else target/debug)
set -eu
RUNS=${1:-3}; SECS=${2:-10}; SIZE=${3:-1280x720}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PSTREAM=${PSTREAM:-$ROOT/target/release/pstream}
[ -x "$PSTREAM" ] || PSTREAM=$ROOT/target/debug/pstream
PEERS=${PSTREAM_SHMDATA_PEER:-$ROOT/target/peers/shmdata}
[ -f "$PEERS/gst/libgstshmdata.so" ] || { echo "no shmdata peer in $PEERS; run scripts/peers.sh" >&2; exit 1; }
export LD_LIBRARY_PATH="$PEERS/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GST_PLUGIN_PATH="$PEERS/gst"
W=${SIZE%x*}; H=${SIZE#*x}
TMP=$(mktemp -d /tmp/pst-shmlat.XXXXXX)
SOCK=$TMP/sock
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM

echo "pstream binary: $PSTREAM; $RUNS runs of $SECS s at ${SIZE}@30"
"$PSTREAM" bridge --video test --size "$SIZE" --fps 30 --video-out "shmdata:$SOCK" -q \
  > "$TMP/bridge.log" 2>&1 &
BRIDGE=$!; PIDS="$BRIDGE"
i=0; while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -S "$SOCK" ] || { echo "bridge made no socket" >&2; cat "$TMP/bridge.log" >&2; exit 1; }

# One side: $1 = pstream | gstreamer; prints the recv summary's latency.
side() {
  base=$((6400 + $(od -An -N1 -tu1 /dev/urandom) * 8 / 8 * 8))
  "$PSTREAM" recv --peer 127.0.0.1 --listen 127.0.0.1 --port-base $base \
    --video-out null --timecode --duration $((SECS + 4)) > "$TMP/recv.out" 2> "$TMP/recv.log" &
  R=$!
  sleep 0.5
  if [ "$1" = pstream ]; then
    "$PSTREAM" send --peer 127.0.0.1 --port-base $base --video "shmdata:$SOCK" --audio none \
      --duration "$SECS" -q > "$TMP/send.log" 2>&1
  else
    timeout "$SECS" gst-launch-1.0 -q shmdatasrc socket-path="$SOCK" \
      ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=2500 key-int-max=60 \
      ! rtph264pay config-interval=-1 pt=96 ! udpsink host=127.0.0.1 port=$base sync=false \
      > "$TMP/gst.log" 2>&1 || true
  fi
  wait $R || true
  line=$(grep "recv finished" "$TMP/recv.log" | tail -1)
  lat=$(echo "$line" | grep -o 'latency median [0-9.]* p95 [0-9.]* p99 [0-9.]* max [0-9.]* ms' || echo "no latency: $line")
  frames=$(echo "$line" | grep -o 'video [0-9.]* fps [0-9]* kbit/s frames [0-9]*' | grep -o 'frames [0-9]*' || true)
  printf '%-9s %s %s\n' "$1" "$lat" "$frames"
}

for r in $(seq 1 "$RUNS"); do
  echo "run $r"
  side pstream
  side gstreamer
done
