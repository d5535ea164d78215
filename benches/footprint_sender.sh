#!/usr/bin/env bash
# Sender CPU and memory beside gst-launch, at equal quality (issue 14, Must
# show 3): the same 720p30 Y4M (pstream's moving test pattern with the
# timecode, made once by `pstream bridge`, plus noise: see below) and WAV
# tone, sent as H.264 +
# Opus over RTP to 127.0.0.1 by
#   - gst-launch-1.0, costream's sender: x264enc tune=zerolatency
#     speed-preset=ultrafast, opusenc, rtph264pay/rtpopuspay, udpsink
#     sync=true (paced by the file's timestamps);
#   - `pstream send --video y4m:... --audio wav:...` (paced by the file's rate),
# RUNS times each, interleaved (the order alternates per run). For each run:
# CPU seconds (user + sys) and peak RSS from GNU time; and, from the H.264
# that a separate receiver (gst-launch udpsrc ! rtph264depay, not measured)
# wrote to a file: pictures out, bitrate reached, and PSNR of the decoded
# pictures against the source (ffmpeg's psnr filter, Y/U/V average).
# Then the medians and the ratios pstream / gst-launch.
#   benches/footprint_sender.sh
#   PSTREAM_BIN=target/release/pstream RUNS=3 SECONDS_OF_MEDIA=20 benches/footprint_sender.sh
# Other knobs: SIZE (1280x720), KBPS (2500), X264_THREADS (1, as
# benches/footprint.sh; 0 = x264's own choice), PSTREAM_ARGS (extra options
# for `pstream send`, e.g. "--preset balanced"), NOISE (6; 0 = the bare
# pattern), KEEP_DIR (keep the files, and reuse its in.y4m/in.wav).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${SECONDS_OF_MEDIA:-20}
runs=${RUNS:-3}
size=${SIZE:-1280x720}
kbps=${KBPS:-2500}
x264_threads=${X264_THREADS:-1}
fps=30
keyint=$((2 * fps))
read -r -a extra <<<"${PSTREAM_ARGS:-}"

dir=${KEEP_DIR:-$(mktemp -d)}
mkdir -p "$dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${KEEP_DIR:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT

tdir=${CARGO_TARGET_DIR:-target}
if [ -n "${PSTREAM_BIN:-}" ]; then
  bin=$PSTREAM_BIN
else
  cargo build --release --locked -p pstream >&2
  bin=$tdir/release/pstream
fi

# The input, once: pstream's own pattern (motion, a box changing colour
# every frame, scrolling stripes, the timecode band) and a tone, with
# camera-like noise (ffmpeg's temporal noise, strength NOISE, default 6)
# below the timecode band. The bare pattern is too easy to compare quality
# on: at a 2500 kbit/s target x264 spends 700 kbit/s for 70 dB and
# openh264 stops at its lowest quantiser at 220 kbit/s, so neither reaches
# the bitrate; with the noise both do, at about 42 dB.
noise=${NOISE:-6}
if [ ! -s "$dir/in.y4m" ] || [ ! -s "$dir/in.wav" ]; then
  "$bin" bridge --quiet --video test --size "$size" --fps "$fps" --audio test \
    --video-out "y4m:$dir/pattern.y4m" --audio-out "wav:$dir/in.wav" --duration "$secs" 2>/dev/null
  if [ "$noise" = 0 ]; then
    mv "$dir/pattern.y4m" "$dir/in.y4m"
  else
    ffmpeg -v error -i "$dir/pattern.y4m" -filter_complex \
      "[0:v]split[a][b];[b]crop=iw:ih-16:0:16,noise=alls=$noise:allf=t+u[n];[a][n]overlay=0:16:format=yuv420" \
      -pix_fmt yuvj420p -f yuv4mpegpipe -strict -1 "$dir/in.y4m"
    rm -f "$dir/pattern.y4m"
  fi
  # Half a second more sound than pictures: `pstream send` ends with its
  # first source to end, gst-launch with its last, and pictures out must
  # be compared whole (the half second of Opus costs gst-launch ~5 ms).
  ffmpeg -v error -i "$dir/in.wav" -af apad=pad_dur=0.5 "$dir/padded.wav"
  mv "$dir/padded.wav" "$dir/in.wav"
fi
src_frames=$(ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=nb_read_frames -of csv=p=0 "$dir/in.y4m")

port=$((20000 + (RANDOM % 10000) * 2))

# receive OUT: a receiver of the video RTP on $port writing the H.264 to OUT.
receive() {
  gst-launch-1.0 -q -e udpsrc address=127.0.0.1 port="$port" buffer-size=8388608 \
    caps="application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96" \
    ! rtph264depay ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au \
    ! filesink location="$1" >"$dir/recv.log" 2>&1 &
  rpid=$!
  pids+=("$rpid")
  sleep 0.5
}

# run SIDE N: one measured send; appends "SIDE N cpu rss_mib pictures kbps psnr" to $dir/rows.
run() {
  local side=$1 n=$2 out="$dir/$1-$2.h264"
  receive "$out"
  local cmd
  if [ "$side" = gst ]; then
    cmd=(gst-launch-1.0 -q
      filesrc location="$dir/in.y4m" ! y4mdec ! x264enc tune=zerolatency speed-preset=ultrafast
      bitrate="$kbps" key-int-max="$keyint" threads="$x264_threads"
      ! rtph264pay config-interval=-1 pt=96 mtu=1200 ! udpsink host=127.0.0.1 port="$port" sync=true
      filesrc location="$dir/in.wav" ! wavparse ! audioconvert ! audioresample
      ! opusenc bitrate=96000 ! rtpopuspay pt=97 ! udpsink host=127.0.0.1 port=$((port + 2)) sync=true)
  else
    cmd=("$bin" send --peer 127.0.0.1 --port-base "$port" --quiet
      --video "y4m:$dir/in.y4m" --audio "wav:$dir/in.wav" --bitrate "$kbps" --keyint 2
      "${extra[@]}")
  fi
  /usr/bin/time -f "%U %S %M" -o "$dir/time" "${cmd[@]}" >"$dir/send.log" 2>&1 ||
    { echo "footprint_sender: $side failed:" >&2; cat "$dir/send.log" >&2; return 1; }
  sleep 0.5
  kill -INT "$rpid" 2>/dev/null || true
  local i
  for i in $(seq 50); do kill -0 "$rpid" 2>/dev/null || break; sleep 0.1; done
  kill "$rpid" 2>/dev/null || true
  wait "$rpid" 2>/dev/null || true
  read -r user sys maxrss <"$dir/time"
  local pictures bytes psnr
  pictures=$(ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=nb_read_frames -of csv=p=0 "$out" 2>/dev/null || echo 0)
  bytes=$(stat -c %s "$out")
  # Both sides as raw I420 bytes with the same label, so that no range
  # conversion (the Y4M says C420jpeg, a decoder may say limited) enters
  # the comparison: the samples are compared as they are. Over the
  # pictures both have (a missing last picture is counted in "pictures
  # out", not compared with a repeat of the one before).
  local raw=(-f rawvideo -pix_fmt yuv420p -video_size "$size" -framerate "$fps")
  psnr=$(ffmpeg -hide_banner -nostats "${raw[@]}" -i <(ffmpeg -v error -i "$out" -f rawvideo -) \
    "${raw[@]}" -i <(ffmpeg -v error -i "$dir/in.y4m" -f rawvideo -) \
    -lavfi "[0:v][1:v]psnr=shortest=1" -f null - 2>&1 | sed -n 's/.*PSNR .* average:\([0-9.inf]*\).*/\1/p' | tail -n 1)
  awk -v s="$side" -v n="$n" -v u="$user" -v y="$sys" -v m="$maxrss" -v p="$pictures" \
    -v b="$bytes" -v f="$fps" -v q="${psnr:-nan}" \
    'BEGIN { printf "%s %d %.2f %.1f %d %.0f %s\n", s, n, u + y, m / 1024, p, b * 8 / (p / f) / 1000, q }' \
    >>"$dir/rows"
  tail -n 1 "$dir/rows" >&2
  [ -n "${KEEP_DIR:-}" ] || rm -f "$out"
}

: >"$dir/rows"
for n in $(seq "$runs"); do
  if ((n % 2)); then run gst "$n"; run pstream "$n"; else run pstream "$n"; run gst "$n"; fi
done

echo "## Sender footprint at equal quality: $size ${fps} fps, $src_frames pictures (${secs} s), H.264 ${kbps} kbit/s + Opus 96 kbit/s, $runs interleaved runs"
echo "| sender | run | CPU s | peak RSS MiB | pictures out | kbit/s | PSNR dB |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
sort -k1,1 -k2,2n "$dir/rows" | awk '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }'
awk -v k="$kbps" '
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { c[$1]++; cpu[$1, c[$1]] = $3; rss[$1, c[$1]] = $4; pic[$1, c[$1]] = $5; br[$1, c[$1]] = $6; ps[$1, c[$1]] = $7 }
  END {
    split("gst pstream", sides, " ")
    for (s = 1; s <= 2; s++) {
      x = sides[s]; n = c[x]
      for (i = 1; i <= n; i++) { a1[i] = cpu[x, i]; a2[i] = rss[x, i]; a3[i] = pic[x, i]; a4[i] = br[x, i]; a5[i] = ps[x, i] }
      mc[x] = median(a1, n); mr[x] = median(a2, n); mp[x] = median(a3, n); mb[x] = median(a4, n); mq[x] = median(a5, n)
    }
    printf "\n| median | CPU s | peak RSS MiB | pictures out | kbit/s (target %d) | PSNR dB |\n", k
    print "| --- | --- | --- | --- | --- | --- |"
    for (s = 1; s <= 2; s++) { x = sides[s]; printf "| %s | %.2f | %.1f | %d | %.0f | %.2f |\n", x, mc[x], mr[x], mp[x], mb[x], mq[x] }
    printf "\npstream / gst-launch: CPU %.2fx (target <= 0.8), peak RSS %.2fx (target <= 0.5); ", mc["pstream"] / mc["gst"], mr["pstream"] / mr["gst"]
    printf "pictures %d vs %d; bitrate %+.1f%% / %+.1f%% of target; PSNR %+.2f dB vs x264 (bar >= -1)\n", mp["pstream"], mp["gst"], 100 * (mb["pstream"] / k - 1), 100 * (mb["gst"] / k - 1), mq["pstream"] - mq["gst"]
  }' "$dir/rows"
