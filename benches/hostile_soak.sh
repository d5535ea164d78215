#!/usr/bin/env bash
# Hostile-client soak (issue 13, must show 1), bounded in time, loopback only.
#
# Phase 1 (SECONDS, default 60): while the recipe's ffmpeg publishes to an
# open `pstream serve` (no --keys, 144p rendition) and a viewer fetches every
# new segment, every attack on serve runs from its own process: chunk-stream
# flood (4 processes), half handshakes from one address, parameter-set
# amplification, frozen and jumping timestamps, ever new keys. Beside it, a
# second serve with `--keys` (publish key != viewing name) where an attacker
# keeps trying to publish under the name viewers see.
# Checked: the viewers miss no segment and no playlist answer takes 0.5 s or
# more; serve's peak RSS stays under 300 MB; the name cannot be published to.
#
# Phase 2 (about 20 s each): recv with a rogue sender at 127.0.0.2 that starts
# first (the real peer's pictures must come out); send under a PLI flood, from
# another address then from the peer (IDRs bounded); push to an ingest that
# answers with malformed commands (the process and its recording go on).
#
# Usage: benches/hostile_soak.sh [SECONDS]
#   PSTREAM=path/to/pstream  HOSTILE=path/to/hostile   (default: build both, dev profile)
#   BASE_PORT                first of the loopback ports used (default 19400)
# Prints one `soak:` line per check and a summary; exits 1 if a check failed.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
base=${BASE_PORT:-19400}
for tool in ffmpeg curl; do
  command -v "$tool" >/dev/null || { echo "$tool not found: run scripts/install-deps.sh" >&2; exit 1; }
done
if [ -z "${PSTREAM:-}" ] || [ -z "${HOSTILE:-}" ]; then
  cargo build -q -p pstream --bin pstream -p pstream-benches --bin hostile
  PSTREAM=${PSTREAM:-target/debug/pstream}
  HOSTILE=${HOSTILE:-target/debug/hostile}
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

failed=0
check() { # check NAME CONDITION-RESULT(0/1) DETAIL
  if [ "$2" = 0 ]; then echo "soak: ok   $1: $3"; else echo "soak: FAIL $1: $3"; failed=1; fi
}
# The value of KEY in a `name k=v k=v` summary line.
field() { sed -n "s/.*[ ]$2=\([^ ]*\).*/\1/p" "$1" | tail -n 1; }
wait_http() {
  for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  return 1
}
wait_playlist() { # wait_playlist URL: until it lists 2 segments (30 s at most)
  for _ in $(seq 300); do
    [ "$(curl -s "$1" | grep -c '^[^#]')" -ge 2 ] && return 0
    sleep 0.1
  done
  return 1
}

rtmp_open=$((base)); http_open=$((base + 1))
rtmp_keyed=$((base + 2)); http_keyed=$((base + 3))

# ---- Phase 1: serve ---------------------------------------------------------
"$PSTREAM" serve --quiet --rtmp "127.0.0.1:$rtmp_open" --http "127.0.0.1:$http_open" \
  --renditions P144p30fps16x9 >"$work/serve-open.log" 2>&1 &
serve_open=$!; pids+=("$serve_open")
echo "soakkey live" >"$work/keys"
"$PSTREAM" serve --quiet --rtmp "127.0.0.1:$rtmp_keyed" --http "127.0.0.1:$http_keyed" \
  --keys "$work/keys" >"$work/serve-keyed.log" 2>&1 &
serve_keyed=$!; pids+=("$serve_keyed")
wait_http "http://127.0.0.1:$http_open/" && wait_http "http://127.0.0.1:$http_keyed/" \
  || { echo "serve did not start" >&2; cat "$work"/serve-*.log >&2; exit 1; }

# The recipe's publish: ffmpeg, H.264 + AAC in FLV, as long as the phase lasts.
publish() { # publish URL SIZE SECONDS LOG
  ffmpeg -hide_banner -loglevel error -nostdin -re \
    -f lavfi -i "testsrc=size=$2:rate=30,format=yuv420p" -f lavfi -i sine \
    -c:v libx264 -preset ultrafast -tune zerolatency -x264-params keyint=30 -c:a aac \
    -t "$3" -f flv "$1" >"$4" 2>&1
}
publish "rtmp://127.0.0.1:$rtmp_open/live/live" 640x480 $((secs + 15)) "$work/ffmpeg-open.log" &
pids+=($!)
publish "rtmp://127.0.0.1:$rtmp_keyed/live/soakkey" 320x240 $((secs + 15)) "$work/ffmpeg-keyed.log" &
pids+=($!)
open_pl="/stream/live/P144p30fps16x9.m3u8"
wait_playlist "http://127.0.0.1:$http_open$open_pl" \
  || { echo "the open stream did not start" >&2; cat "$work/serve-open.log" >&2; exit 1; }
keyed_pl=""
for _ in $(seq 100); do
  for p in /stream/live.m3u8 /stream/live/source.m3u8; do
    if curl -sf "http://127.0.0.1:$http_keyed$p" | grep -q '^[^#]'; then keyed_pl=$p; break 2; fi
  done
  sleep 0.1
done
if [ -z "$keyed_pl" ]; then
  check "keyed stream under its name" 1 "$(grep -m1 WARN "$work/serve-keyed.log")"
# A keyed stream's media playlist (the master lists it).
elif curl -s "http://127.0.0.1:$http_keyed$keyed_pl" | grep -q EXT-X-STREAM-INF; then
  v=$(curl -s "http://127.0.0.1:$http_keyed$keyed_pl" | grep -m1 '^[^#]')
  case $v in /*) keyed_pl=$v ;; *) keyed_pl="${keyed_pl%/*}/$v" ;; esac
fi

a="127.0.0.1:$rtmp_open"
attackers=()
"$HOSTILE" viewer "127.0.0.1:$http_open" "$open_pl" "$secs" >"$work/viewer-open.out" 2>&1 &
viewer_open=$!; pids+=("$viewer_open")
viewers=(open)
if [ -n "$keyed_pl" ]; then
  "$HOSTILE" viewer "127.0.0.1:$http_keyed" "$keyed_pl" "$secs" >"$work/viewer-keyed.out" 2>&1 &
  viewer_keyed=$!; pids+=("$viewer_keyed"); attackers+=("$viewer_keyed"); viewers+=(keyed)
fi
# Each attacker from its own loopback address, as from its own host; the
# publisher and the viewers stay on 127.0.0.1.
for i in 1 2 3 4; do
  HOSTILE_FROM=127.0.0.$((10 + i)) "$HOSTILE" chunk-flood "$a" "$secs" >"$work/chunk-flood-$i.out" 2>&1 &
  attackers+=($!); pids+=($!)
done
HOSTILE_FROM=127.0.0.20 "$HOSTILE" half-handshakes "$a" 300 "$secs" >"$work/half.out" 2>&1 &
attackers+=($!); pids+=($!)
HOSTILE_FROM=127.0.0.21 "$HOSTILE" amplify "$a" amp "$secs" >"$work/amplify.out" 2>&1 &
attackers+=($!); pids+=($!)
HOSTILE_FROM=127.0.0.22 "$HOSTILE" frozen "$a" frozen "$secs" >"$work/frozen.out" 2>&1 &
attackers+=($!); pids+=($!)
HOSTILE_FROM=127.0.0.23 "$HOSTILE" many-keys "$a" "$secs" >"$work/many-keys.out" 2>&1 &
attackers+=($!); pids+=($!)
HOSTILE_FROM=127.0.0.24 "$HOSTILE" steal "127.0.0.1:$rtmp_keyed" live "$secs" >"$work/steal.out" 2>&1 &
attackers+=($!); pids+=($!)

# Half way, a new publisher from its own address must still get in.
( sleep $((secs / 2)); HOSTILE_FROM=127.0.0.30 "$HOSTILE" steal "$a" latecomer 3 >"$work/late.out" 2>&1 ) &
pids+=($!)
( sleep $((secs * 3 / 4)); curl -s --max-time 5 "http://127.0.0.1:$http_open/stream/frozen/source.m3u8" >"$work/frozen.m3u8" ) &
pids+=($!)
# serve's peak RSS is its VmHWM, read at the end while it still runs.
peak_rss_kb=0
end=$((SECONDS + secs + 10))
while kill -0 "$viewer_open" 2>/dev/null && [ $SECONDS -lt $end ]; do
  kill -0 "$serve_open" 2>/dev/null || break
  sleep 1
done
for p in "${attackers[@]}" "$viewer_open"; do
  # Every attacker ends by itself at SECONDS; anything still there is killed.
  timeout 15 tail --pid="$p" -f /dev/null || kill "$p" 2>/dev/null || true
done
if kill -0 "$serve_open" 2>/dev/null; then
  peak_rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$serve_open/status")
  check "serve alive" 0 "open serve still running after ${secs}s of attacks"
else
  check "serve alive" 1 "open serve died: $(tail -n 3 "$work/serve-open.log")"
fi
check "serve peak RSS" $(( peak_rss_kb < 300 * 1024 ? 0 : 1 )) "$((peak_rss_kb / 1024)) MB (limit 300)"

for v in "${viewers[@]}"; do
  f="$work/viewer-$v.out"
  cat "$f"
  missed=$(field "$f" missed); slow=$(field "$f" over_500ms); segs=$(field "$f" segments)
  fails=$(field "$f" failed); bad=$(field "$f" bad_segments)
  check "viewer ($v) misses nothing" $(( ${missed:-1} == 0 && ${bad:-1} == 0 && ${fails:-1} == 0 && ${segs:-0} >= secs / 4 ? 0 : 1 )) \
    "segments=$segs missed=$missed bad=$bad failed_polls=$fails"
  check "viewer ($v) playlists under 0.5 s" $(( ${slow:-1} == 0 ? 0 : 1 )) \
    "slowest $(field "$f" slowest_ms) ms, $slow answers over 500 ms"
done
for f in "$work"/chunk-flood-*.out "$work"/half.out "$work"/amplify.out "$work"/frozen.out "$work"/many-keys.out "$work"/steal.out; do
  cat "$f"
done
check "name is not a publish key" $(( $(field "$work/steal.out" accepted) == 0 ? 0 : 1 )) \
  "$(field "$work/steal.out" accepted) publishes under the viewing name accepted"
check "a new publisher gets in during the attacks" $(( $(field "$work/late.out" accepted) >= 1 ? 0 : 1 )) \
  "$(field "$work/late.out" accepted) of $(( $(field "$work/late.out" accepted) + $(field "$work/late.out" refused) )) publish attempts in 3 s accepted"
# The open serve's cap (--max-streams, default 16) counts the real stream,
# the amplifying and the frozen one too.
check "live streams capped" $(( $(field "$work/many-keys.out" held_max) <= 16 ? 0 : 1 )) \
  "at most $(field "$work/many-keys.out" held_max) new keys live at once ($(field "$work/many-keys.out" accepted) accepted, $(field "$work/many-keys.out" refused) refused)"
grep -q "soakkey" "$work/serve-keyed.log" && check "keys masked in logs" 1 "the publish key is in serve's log" \
  || check "keys masked in logs" 0 "the publish key is not in serve's log"
# The frozen/jumping publisher's playlist, fetched while it published: cut
# into segments anyway, with sane durations.
frozen_pl=$(cat "$work/frozen.m3u8" 2>/dev/null || true)
worst=$(echo "$frozen_pl" | sed -n 's/^#EXT\(-X-TARGETDURATION:\|INF:\)\([0-9.]*\).*/\2/p' | sort -g | tail -n 1)
nseg=$(echo "$frozen_pl" | grep -c '^[^#]' || true)
check "frozen timestamps still cut, durations sane" $(awk -v w="${worst:-0}" -v n="$nseg" 'BEGIN { exit !(n >= 2 && w <= 60) }' && echo 0 || echo 1) \
  "$nseg segments, longest EXTINF/TARGETDURATION ${worst:-none} s, $(echo "$frozen_pl" | grep -c DISCONTINUITY || true) discontinuities"
kill "$serve_open" "$serve_keyed" 2>/dev/null || true

# ---- Phase 2: recv, send, push ----------------------------------------------
rp=$((base + 10)); sp=$((base + 20)); ip=$((base + 30))
# recv with a rogue sender at 127.0.0.2 that starts 3 s before the real peer.
"$PSTREAM" recv --quiet --peer 127.0.0.1 --port-base "$rp" --duration 20 \
  --video-out "y4m:$work/recv.y4m" --audio-out null >"$work/recv.log" 2>&1 &
recv=$!; pids+=("$recv")
sleep 1
"$PSTREAM" send --quiet --peer 127.0.0.1 --listen 127.0.0.2 --port-base "$rp" \
  --size 320x240 --audio none --duration 18 >"$work/rogue.log" 2>&1 &
pids+=($!)
sleep 3
"$PSTREAM" send --quiet --peer 127.0.0.1 --listen 127.0.0.1 --port-base "$rp" \
  --size 640x360 --audio none --duration 14 >"$work/real.log" 2>&1 &
pids+=($!)
timeout 40 tail --pid="$recv" -f /dev/null || true
header=$(head -c 200 "$work/recv.y4m" 2>/dev/null | head -n 1 | tr -d '\0')
size=$(echo "$header" | sed -n 's/.* W\([0-9]*\) H\([0-9]*\).*/\1x\2/p')
check "recv keeps to its peer" $([ "$size" = 640x360 ] && echo 0 || echo 1) \
  "pictures written are ${size:-none} (real peer 640x360, rogue 320x240); $(grep -o 'not-peer [0-9]*' "$work/recv.log" | tail -n 1) datagrams from others dropped"

# send under a PLI flood: 10 s from 127.0.0.2, then 10 s from the peer.
"$PSTREAM" send --quiet --peer 127.0.0.1 --listen 127.0.0.1 --port-base "$sp" \
  --size 640x360 --audio none --keyint 2 --duration 24 >"$work/send.log" 2>&1 &
pids+=($!)
"$HOSTILE" pli-peer "127.0.0.1:$sp" "127.0.0.1:$((sp + 5))" 20 >"$work/pli.out" 2>&1
cat "$work/pli.out"
spoofed=$(field "$work/pli.out" idrs_spoofed); peer=$(field "$work/pli.out" idrs_peer)
# keyint 2 s: 10 s give 5-6 IDRs; the peer may add one per keyint/4 = 0.5 s.
check "spoofed PLIs ignored" $(( ${spoofed:-99} <= 7 ? 0 : 1 )) "$spoofed IDRs in 10 s of PLIs from 127.0.0.2 (keyint alone: 5-6)"
check "peer PLIs rate-limited" $(( ${peer:-999} <= 27 ? 0 : 1 )) "$peer IDRs in 10 s of PLIs every 2 ms from the peer (at most 20 + 6)"

# push to a rogue ingest, recording to a file.
"$HOSTILE" rogue-ingest "127.0.0.1:$ip" 22 >"$work/rogue-ingest.out" 2>&1 &
pids+=($!)
sleep 0.5
set +e
"$PSTREAM" push --quiet --size 640x360 --reconnect-max 1 --duration 20 --out "$work/rec.flv" \
  "rtmp://127.0.0.1:$ip/live/x" >"$work/push.log" 2>&1
push_rc=$?
set -e
cat "$work/rogue-ingest.out"
rec=$(stat -c %s "$work/rec.flv" 2>/dev/null || echo 0)
dur=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$work/rec.flv" 2>/dev/null || echo 0)
check "push survives a hostile ingest" $(( push_rc == 0 ? 0 : 1 )) \
  "exit $push_rc; $(grep -ci 'error\|refused\|reconnect' "$work/push.log") error/reconnect lines; $(tail -n 1 "$work/push.log")"
check "recording goes on" $(awk -v d="${dur:-0}" 'BEGIN { exit !(d >= 18) }' && echo 0 || echo 1) \
  "$rec bytes, ${dur:-0} s of FLV in 20 s"

if [ "$failed" = 0 ]; then echo "soak: all checks passed"; else echo "soak: some checks FAILED"; fi
exit "$failed"
