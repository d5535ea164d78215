#!/usr/bin/env bash
# The footprint table of BENCHMARKS.md: stripped binary sizes per target,
# peak RSS and threads of `pstream send` (720p30 H.264 + Opus over RTP) and
# `pstream push` (720p30 H.264 + AAC over RTMP to a local `ffmpeg -listen`),
# and CPU seconds per second of media at 360p/720p, beside gst-launch-1.0
# doing the same job on the same input (x264enc zerolatency/ultrafast and
# openh264enc, opusenc, RTP payloaders, udpsink).
#   benches/footprint.sh            (after scripts/cross.sh for the ARM sizes)
#   SECONDS_OF_MEDIA=10 benches/footprint.sh
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${SECONDS_OF_MEDIA:-10}
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# PSTREAM_BIN=path measures that binary instead of building the release one.
tdir=${CARGO_TARGET_DIR:-target}
if [ -n "${PSTREAM_BIN:-}" ]; then
  bin=$PSTREAM_BIN
else
  cargo build --release --locked -p pstream >&2
  bin=$tdir/release/pstream
fi

echo "## binary size (stripped)"
echo "| target | bytes | MiB |"
echo "| --- | --- | --- |"
# The ARM binaries where scripts/cross.sh put them (AARCH64_BIN / ARMV7_BIN /
# ARMV6_BIN when built with another CARGO_TARGET_DIR). The ARMv6 one is
# static (musl, libc++ and the rest inside); the others link glibc and
# libstdc++ dynamically.
for pair in "x86_64-unknown-linux-gnu:$bin:strip" \
            "aarch64-unknown-linux-gnu:${AARCH64_BIN:-target/aarch64-unknown-linux-gnu/release/pstream}:aarch64-linux-gnu-strip" \
            "armv7-unknown-linux-gnueabihf:${ARMV7_BIN:-target/armv7-unknown-linux-gnueabihf/release/pstream}:arm-linux-gnueabihf-strip" \
            "arm-unknown-linux-musleabihf:${ARMV6_BIN:-target/arm-unknown-linux-musleabihf/release/pstream}:arm-linux-gnueabihf-strip"; do
  IFS=: read -r t path strip <<<"$pair"
  if [ -f "$path" ]; then
    "$strip" -o "$dir/stripped" "$path"
    b=$(stat -c %s "$dir/stripped")
    echo "| $t | $b | $(awk -v b="$b" 'BEGIN { printf "%.2f", b / 1048576 }') |"
  else
    echo "| $t | not built (scripts/cross.sh) | |"
  fi
done

# The same input for every row: ffmpeg's testsrc2 pattern and a tone, as the
# Y4M/WAV files both pstream and GStreamer read (and pace in real time).
for size in 640x360 1280x720; do
  ffmpeg -loglevel error -f lavfi -i "testsrc2=size=$size:rate=30" -t "$secs" \
    -pix_fmt yuv420p "$dir/in-$size.y4m"
done
ffmpeg -loglevel error -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$secs" \
  -ac 2 -c:a pcm_s16le "$dir/in.wav"

# measure NAME COMMAND...: runs COMMAND to its end under GNU time, sampling
# its thread count; prints "| NAME | cpu s per media s | peak RSS MiB | threads |".
measure() {
  local name=$1
  shift
  /usr/bin/time -f "%U %S %M" -o "$dir/time" "$@" >"$dir/out.log" 2>&1 &
  local tpid=$! child="" threads=0 n
  while kill -0 "$tpid" 2>/dev/null; do
    [ -n "$child" ] || child=$(pgrep -P "$tpid" | head -n 1 || true)
    if [ -n "$child" ] && [ -d "/proc/$child/task" ]; then
      n=$(find "/proc/$child/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
      ((n > threads)) && threads=$n
    fi
    sleep 0.2
  done
  wait "$tpid" || { echo "footprint: $name failed:" >&2; cat "$dir/out.log" >&2; return 1; }
  read -r user sys maxrss <"$dir/time"
  awk -v n="$name" -v u="$user" -v s="$sys" -v m="$maxrss" -v t="$threads" -v d="$secs" \
    'BEGIN { printf "| %s | %.3f | %.1f | %d |\n", n, (u + s) / d, m / 1024, t }'
}

port=$((20000 + (RANDOM % 10000) * 2))
echo
echo "## send: H.264 + Opus over RTP to 127.0.0.1 (nobody listening), ${secs} s of media"
echo "| job | CPU s per s of media | peak RSS MiB | threads |"
echo "| --- | --- | --- | --- |"
for size in 640x360 1280x720; do
  kbps=2500
  [ "$size" = 640x360 ] && kbps=1000
  measure "pstream send $size (fast)" "$bin" send --peer 127.0.0.1 --port-base "$port" --quiet \
    --video "y4m:$dir/in-$size.y4m" --audio "wav:$dir/in.wav" --bitrate $kbps
  gst_tail=(filesrc location="$dir/in.wav" ! wavparse ! audioconvert ! audioresample
    ! opusenc bitrate=96000 ! rtpopuspay pt=97 ! udpsink host=127.0.0.1 port=$((port + 2)) sync=true)
  measure "gst-launch x264enc $size" gst-launch-1.0 -q \
    filesrc location="$dir/in-$size.y4m" ! y4mdec ! x264enc tune=zerolatency speed-preset=ultrafast \
    bitrate=$kbps key-int-max=60 threads=1 ! rtph264pay config-interval=-1 pt=96 \
    ! udpsink host=127.0.0.1 port="$port" sync=true "${gst_tail[@]}"
  if gst-inspect-1.0 openh264enc >/dev/null 2>&1; then
    measure "gst-launch openh264enc $size" gst-launch-1.0 -q \
      filesrc location="$dir/in-$size.y4m" ! y4mdec ! openh264enc bitrate=$((kbps * 1000)) \
      complexity=low gop-size=60 ! rtph264pay config-interval=-1 pt=96 \
      ! udpsink host=127.0.0.1 port="$port" sync=true "${gst_tail[@]}"
  fi
done

echo
echo "## push: 720p30 H.264 + AAC as FLV over RTMP to a local ffmpeg -listen, ${secs} s of media"
echo "| job | CPU s per s of media | peak RSS MiB | threads |"
echo "| --- | --- | --- | --- |"
rtmp_port=$((port + 10))
ffmpeg -loglevel error -listen 1 -i "rtmp://127.0.0.1:$rtmp_port/live/stream" -c copy -f null - \
  >"$dir/ffmpeg.log" 2>&1 &
pids+=($!)
sleep 1
measure "pstream push 1280x720 (fast)" "$bin" push --quiet "rtmp://127.0.0.1:$rtmp_port/live/stream" \
  --video "y4m:$dir/in-1280x720.y4m" --audio "wav:$dir/in.wav"
