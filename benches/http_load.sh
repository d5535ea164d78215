#!/usr/bin/env bash
# HTTP load on `pstream serve` (issue 6, must show 6): requests per second
# for one segment and for the live playlist, measured by wrk in a second
# process while the issue's ffmpeg publish is running.
#
# Usage: benches/http_load.sh [SECONDS] [CONNECTIONS]
#   PSTREAM=path/to/pstream   use that binary (default: build and use release)
#   RTMP_PORT / HTTP_PORT     loopback ports (default 19351 / 18936)
#   VIDEO_BITRATE             the publisher's -b:v (default 10000k, the issue's
#                             recipe: ~2.5 MB segments; "" for x264's default)
# Needs ffmpeg, curl and wrk (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-10}
conns=${2:-32}
rtmp_port=${RTMP_PORT:-19351}
http_port=${HTTP_PORT:-18936}
key=bench
bitrate=${VIDEO_BITRATE-10000k}
base="http://127.0.0.1:$http_port/stream/$key"

for tool in ffmpeg curl wrk; do
  command -v "$tool" >/dev/null || { echo "$tool not found: run scripts/install-deps.sh" >&2; exit 1; }
done
if [ -z "${PSTREAM:-}" ]; then
  cargo build --release -q -p pstream
  PSTREAM=target/release/pstream
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$PSTREAM" serve --rtmp "127.0.0.1:$rtmp_port" --http "127.0.0.1:$http_port" \
  >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$http_port/" && break
  sleep 0.1
done

ffmpeg -hide_banner -loglevel error -nostdin -re \
  -f lavfi -i testsrc=size=640x480:rate=30,format=yuv420p -f lavfi -i sine \
  -c:v libx264 ${bitrate:+-b:v "$bitrate"} -preset ultrafast -x264-params keyint=30 -c:a aac \
  -f flv "rtmp://127.0.0.1:$rtmp_port/$key" >"$work/ffmpeg.log" 2>&1 &
pids+=($!)

# Wait for a playlist with a few segments, then load its newest one: it
# stays in the sliding window for the whole run (6 segments of ~2 s).
segment=""
for _ in $(seq 150); do
  playlist=$(curl -s "$base/source.m3u8" || true)
  if [ "$(grep -c '\.ts$' <<<"$playlist" || true)" -ge 3 ]; then
    segment=$(grep '\.ts$' <<<"$playlist" | tail -n 1)
    break
  fi
  sleep 0.2
done
if [ -z "$segment" ]; then
  echo "no playlist with 3 segments after 30 s" >&2
  cat "$work/serve.log" "$work/ffmpeg.log" >&2
  exit 1
fi
size=$(curl -s -o /dev/null -w '%{size_download}' "$base/$segment")
echo "publisher -b:v ${bitrate:-default}; segment $base/$segment: $size bytes; wrk -t1 -c$conns -d${secs}s; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

run() {
  local what=$1 url=$2 out
  out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "$url")
  echo "== $what"
  echo "$out"
  if grep -q 'Non-2xx' <<<"$out"; then
    echo "$what: some answers were not 200 (segment evicted, or errors)" >&2
    exit 1
  fi
}
run "segment ($size bytes)" "$base/$segment"
run "media playlist" "$base/source.m3u8"
# The publisher kept going throughout: its playlist must still be live.
curl -sf "$base/source.m3u8" | grep -q '\.ts$' || { echo "stream died during the load" >&2; exit 1; }
echo "pstream serve kept the publisher live throughout"
