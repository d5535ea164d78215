#!/usr/bin/env bash
# The cross-built embedding example crates/embed/examples/hls_serve.rs
# under qemu-user, as the streaming back-end recipe tests its broadcaster:
# the recipe's ffmpeg publish (native, the command of tests/serve.rs with a
# short test source) goes into it, curl fetches the playlist until it lists
# at least 3 segments, then a segment, which ffprobe must read as H.264 +
# AAC. Source rendition only: transcoding under emulation is too slow.
#   scripts/cross-serve.sh aarch64-unknown-linux-gnu
#   scripts/cross-serve.sh x86_64-unknown-linux-gnu   (native)
set -euo pipefail
cd "$(dirname "$0")/.."

target=$1
probe=examples/hls_serve
source scripts/cross-target.sh "$target"
example=$out/examples/hls_serve
[ -x "$example" ] || { echo "cross-serve: no binary at $example (run scripts/cross.sh)" >&2; exit 2; }

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "cross-serve: $target: $*" >&2
  echo "--- hls_serve:" >&2; cat "$dir/serve.log" >&2 || true
  echo "--- ffmpeg:" >&2; tail -n 20 "$dir/ffmpeg.log" >&2 || true
  exit 1
}

# Free ports picked by the example itself (port 0), read back from its first line.
secs=40
timeout $((secs + 30)) ${qemu[@]+"${qemu[@]}"} "$example" 127.0.0.1:0 127.0.0.1:0 "$secs" none \
  >"$dir/serve.log" 2>&1 &
serve_pid=$!
pids+=("$serve_pid")
for _ in $(seq 300); do
  grep -q "publish to rtmp://" "$dir/serve.log" 2>/dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || fail "the example exited at start"
  sleep 0.1
done
rtmp=$(sed -n 's|.*publish to rtmp://\([0-9.:]*\)/.*|\1|p' "$dir/serve.log" | head -n 1)
http=$(sed -n 's|.*play http://\([0-9.:]*\)/.*|\1|p' "$dir/serve.log" | head -n 1)
[ -n "$rtmp" ] && [ -n "$http" ] || fail "no addresses in the example's output"

# The recipe's publisher (as tests/serve.rs runs it), 20 s of test source.
ffmpeg -nostdin -re -f lavfi -i testsrc=size=640x480:rate=30,format=yuv420p -f lavfi -i sine \
  -c:v libx264 -b:v 10000k -preset ultrafast -x264-params keyint=30 -c:a aac -t 20 \
  -f flv "rtmp://$rtmp/hello_world" >"$dir/ffmpeg.log" 2>&1 &
pids+=("$!")

# The recipe's test: curl the playlist.
playlist=
for _ in $(seq 150); do
  playlist=$(curl -sf --max-time 5 "http://$http/stream/hello_world/source.m3u8" || true)
  (($(grep -c '\.ts$' <<<"$playlist") >= 3)) && break
  sleep 0.2
done
count=$(grep -c '\.ts$' <<<"$playlist" || true)
((count >= 3)) || fail "the playlist lists $count segments after 30 s: $playlist"
grep -q '^#EXTM3U' <<<"$playlist" || fail "not a playlist: $playlist"
segment=$(grep '\.ts$' <<<"$playlist" | head -n 1)
curl -sf --max-time 10 -o "$dir/seg.ts" "http://$http/stream/hello_world/$segment" ||
  fail "cannot fetch $segment"
master=$(curl -sf --max-time 5 "http://$http/stream/hello_world.m3u8" || true)
grep -q 'hello_world/source.m3u8' <<<"$master" || fail "master playlist: $master"
streams=$(ffprobe -v error -show_entries stream=codec_name,width,height -of csv=p=0 "$dir/seg.ts" | sort -u)
grep -q '^h264,640,480' <<<"$streams" || fail "$segment is not 640x480 H.264: $streams"
grep -q '^aac' <<<"$streams" || fail "$segment has no AAC: $streams"
echo "cross-serve: $target: $count segments listed; $segment ($(stat -c %s "$dir/seg.ts") bytes): $(tr '\n' ' ' <<<"$streams")" >&2

# The example stops by itself after its $secs seconds, cleanly.
wait "$serve_pid" || fail "the example failed"
grep "hls_serve: done" "$dir/serve.log" >&2 || fail "no summary"
