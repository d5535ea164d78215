#!/usr/bin/env bash
# Renditions as cheap as ffmpeg's (issue 19, must show 3): the CPU that
# `pstream serve` spends on its renditions (serve with the renditions minus
# serve with the source only, same publish) beside ONE ffmpeg process doing
# the same renditions (the source decoded once, split to each scale and
# x264 encode, -threads 1 everywhere), with the pictures each put out and
# their PSNR against the source scaled to the rendition's size.
#
# Usage: benches/renditions_vs_ffmpeg.sh
#   PSTREAM=path/to/pstream   use that binary (default: build and use release)
#   SIZE=1920x1080            the publish's picture size (16:9 or narrower)
#   SECONDS_OF_MEDIA=20       length of the publish
#   RUNS=3                    runs, interleaved (serve 0, serve N, ffmpeg N, ...)
#   SETS="P144p30fps16x9 P144p30fps16x9,P360p30fps16x9,P720p30fps16x9"
#                             the rendition lists compared, space-separated
#   RTMP_PORT / HTTP_PORT     loopback ports (default 19361 / 18946)
#   KEEP=dir                  keep the work files (outputs, logs) there
# Needs ffmpeg and ffprobe (scripts/install-deps.sh).
#
# The publish is the README's recipe (testsrc2, -pix_fmt yuv420p, x264
# ultrafast 10 Mbit/s, keyint 30, AAC), encoded once to an FLV file before
# the runs and sent with `ffmpeg -re -c copy`: every run gets the same
# bytes, and the publisher's 1080p x264 encode does not take a core from
# the processes being measured. ffmpeg's renditions read that same file at
# the same pace (-re).
#
# x264 preset: ultrafast. serve's rendition encoder is openh264 at low
# complexity, constrained baseline (no B-frames, CAVLC, one reference,
# IDRs where the source has them); ultrafast is x264's closest: no
# B-frames, CAVLC, one reference, diamond search, no deblocking or AQ
# (ffmpeg gets `-force_key_frames source` so its IDRs fall where serve's
# do). CPU is user + system seconds: serve's from /proc/PID/stat from just
# before the publish to when every rendition's playlist has ended; ffmpeg's
# from GNU time. PSNR: ffmpeg's psnr filter (average of Y, U, V over the
# pictures) of each output against the decoded publish scaled to the same
# size with swscale's lanczos (a reference neither side uses itself), both
# timelines started at their first picture.
set -euo pipefail
cd "$(dirname "$0")/.."

size=${SIZE:-1920x1080}
secs=${SECONDS_OF_MEDIA:-20}
runs=${RUNS:-3}
sets=${SETS:-P144p30fps16x9 P144p30fps16x9,P360p30fps16x9,P720p30fps16x9}
rtmp_port=${RTMP_PORT:-19361}
http_port=${HTTP_PORT:-18946}
key=bench
tick=$(getconf CLK_TCK)

for tool in ffmpeg ffprobe; do
  command -v "$tool" >/dev/null || { echo "$tool not found: run scripts/install-deps.sh" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "/usr/bin/time (GNU time) not found" >&2; exit 1; }
if [ -z "${PSTREAM:-}" ]; then
  cargo build --release --locked -q -p pstream
  PSTREAM=${CARGO_TARGET_DIR:-target}/release/pstream
fi

if [ -n "${KEEP:-}" ]; then
  work=$KEEP
  mkdir -p "$work"
else
  work=$(mktemp -d)
fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# The box of each rendition (what codec/src/scale.rs's Rendition says).
box() {
  case $1 in
    P144p30fps16x9) echo "256 144 400" ;;
    P240p30fps16x9) echo "426 240 600" ;;
    P360p30fps16x9) echo "640 360 1200" ;;
    P720p30fps16x9) echo "1280 720 4000" ;;
    *) echo "unknown rendition $1" >&2; exit 1 ;;
  esac
}
# WIDTHxHEIGHT of rendition $1 from the source: fitted in its box, aspect
# kept, even, never enlarged (Rendition::output_size).
out_size() {
  local bw bh kbps sw=${size%x*} sh=${size#*x}
  read -r bw bh kbps < <(box "$1")
  awk -v sw="$sw" -v sh="$sh" -v bw="$bw" -v bh="$bh" 'function fl(v) { v = int(v / 2) * 2; return v < 2 ? 2 : v }
    function ev(n, d, lim) { v = int((n + d) / (2 * d)) * 2; if (v < 2) v = 2; if (v > lim) v = lim; return v }
    BEGIN { bw = fl(bw < sw ? bw : sw); bh = fl(bh < sh ? bh : sh)
      if (sw * bh >= sh * bw) printf "%dx%d\n", ev(bw, 1, bw), ev(sh * bw, sw, bh)
      else printf "%dx%d\n", ev(sw * bh, sh, bw), ev(bh, 1, bh) }'
}
kbps_of() { local bw bh kbps; read -r bw bh kbps < <(box "$1"); echo "$kbps"; }

cpu_of() { # user + system seconds of a running PID, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Pictures in a transport stream or FLV file.
pictures() {
  ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets \
    -of csv=p=0 "$1" | awk 'NR == 1'
}

# Average PSNR (Y, U, V) of $1 against the publish scaled to $2 (WxH).
psnr() {
  local w=${2%x*} h=${2#*x}
  ffmpeg -hide_banner -nostdin -loglevel info -i "$1" -i "$work/src.flv" -lavfi \
    "[0:v]setpts=PTS-STARTPTS[d];[1:v]scale=$w:$h:flags=lanczos,setpts=PTS-STARTPTS[r];[d][r]psnr" \
    -f null - 2>&1 | sed -n 's/.*PSNR .* average:\([0-9.inf]*\).*/\1/p' | tail -n 1
}

echo "making the publish: testsrc2 $size@30, ${secs} s, x264 ultrafast 10 Mbit/s keyint 30 + AAC" >&2
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=$size:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$secs" -pix_fmt yuv420p -c:v libx264 -b:v 10000k -preset ultrafast -x264-params keyint=30 \
  -c:a aac -f flv "$work/src.flv"
src_pictures=$(pictures "$work/src.flv")

# serve with renditions $1 ("none" for the source only), run $2: sets
# $cpu to its CPU seconds over the publish and leaves each rendition's segments joined in
# $work/serve-$2-$1-<rendition>.ts.
serve_run() {
  local list=$1 run=$2 dir="$work/hls-$2-$1" pid c0 c1 ended v
  rm -rf "$dir"
  mkdir -p "$dir"
  "$PSTREAM" serve --rtmp "127.0.0.1:$rtmp_port" --http "127.0.0.1:$http_port" \
    --renditions "$list" --window 100 --hls-dir "$dir" --no-webrtc --quiet \
    >"$work/serve-$run-$list.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$rtmp_port") 2>/dev/null && break
    sleep 0.1
  done
  sleep 0.5
  c0=$(cpu_of "$pid")
  ffmpeg -hide_banner -loglevel error -nostdin -re -i "$work/src.flv" -c copy \
    -f flv "rtmp://127.0.0.1:$rtmp_port/live/$key" >"$work/publish-$run-$list.log" 2>&1
  # The stages drain their queues, then end their playlists.
  ended=0
  for _ in $(seq 300); do
    ended=1
    for v in "$dir/$key"/*.m3u8; do
      grep -q ENDLIST "$v" 2>/dev/null || ended=0
    done
    [ "$ended" = 1 ] && break
    sleep 0.1
  done
  c1=$(cpu_of "$pid")
  [ "$ended" = 1 ] || echo "serve $list run $run: playlists not ended after 30 s" >&2
  for v in "$dir/$key"/*.m3u8; do
    local name
    name=$(basename "$v" .m3u8)
    [ "$name" = source ] && continue
    grep '\.ts$' "$v" | while read -r seg; do cat "$dir/$key/$seg"; done \
      >"$work/serve-$run-$list-$name.ts"
  done
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pids=()
  cpu=$(awk -v a="$c0" -v b="$c1" -v t="$tick" 'BEGIN { printf "%.2f", (b - a) / t }')
}

# ffmpeg doing renditions $1, run $2: prints "CPU_SECONDS" and leaves each
# rendition in $work/ffmpeg-$2-$1-<rendition>.ts.
ffmpeg_run() {
  local list=$1 run=$2 n=0 split="" outs=() r wh
  IFS=, read -r -a rs <<<"$list"
  for r in "${rs[@]}"; do
    wh=$(out_size "$r")
    split+="[s$n]scale=${wh%x*}:${wh#*x}[v$n];"
    outs+=(-map "[v$n]" -map 0:a -c:v libx264 -preset ultrafast -threads 1
      -b:v "$(kbps_of "$r")k" -force_key_frames source -c:a copy
      "$work/ffmpeg-$run-$list-$r.ts")
    n=$((n + 1))
  done
  local heads=""
  for ((i = 0; i < n; i++)); do heads+="[s$i]"; done
  /usr/bin/time -f "%U %S" -o "$work/ffmpeg-$run-$list.time" \
    ffmpeg -hide_banner -loglevel error -nostdin -y -threads 1 -re -i "$work/src.flv" \
    -filter_complex_threads 1 -filter_complex "[0:v]split=$n$heads;${split%;}" \
    "${outs[@]}" >"$work/ffmpeg-$run-$list.log" 2>&1
  awk '{ printf "%.2f\n", $1 + $2 }' "$work/ffmpeg-$run-$list.time"
}

echo "# renditions: pstream serve beside ffmpeg"
echo "publish: testsrc2 $size@30, ${secs} s ($src_pictures pictures), x264 ultrafast 10 Mbit/s keyint 30, AAC;" \
  "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo
echo "| run | renditions | serve CPU s (renditions) | ffmpeg CPU s | serve/ffmpeg | pictures serve / ffmpeg | PSNR dB serve / ffmpeg |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
declare -A ratios
for run in $(seq "$runs"); do
  serve_run none "$run"
  base=$cpu
  for list in $sets; do
    serve_run "$list" "$run"
    total=$cpu
    ff=$(ffmpeg_run "$list" "$run")
    mine=$(awk -v a="$total" -v b="$base" 'BEGIN { printf "%.2f", a - b }')
    ratio=$(awk -v a="$mine" -v b="$ff" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    ratios[$list]+="$ratio "
    pics="" quality=""
    IFS=, read -r -a rs <<<"$list"
    for r in "${rs[@]}"; do
      wh=$(out_size "$r")
      s="$work/serve-$run-$list-$r.ts" f="$work/ffmpeg-$run-$list-$r.ts"
      pics+="${r%%p*}p $(pictures "$s") / $(pictures "$f"); "
      quality+="${r%%p*}p $(psnr "$s" "$wh") / $(psnr "$f" "$wh"); "
    done
    echo "| $run | $list | $total - $base = **$mine** | $ff | **${ratio}x** | ${pics%; } | ${quality%; } |"
  done
done
echo
for list in $sets; do
  # shellcheck disable=SC2086
  echo "$list: serve/ffmpeg CPU per run: ${ratios[$list]}(median $(printf '%s\n' ${ratios[$list]} | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')x)"
done
