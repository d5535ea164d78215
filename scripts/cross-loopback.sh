#!/usr/bin/env bash
# `pstream send` -> `pstream recv` on loopback at 320x240, both running the
# cross-built binary under qemu-user: checks that the ARM build encodes,
# packetizes, receives and decodes, by counting the frames recv wrote.
# With --example the sender is the embedding example instead
# (crates/embed/examples/rtp_send.rs, built by scripts/cross.sh); with
# --recv-example the receiver is the embedding example
# crates/embed/examples/rtp_recv.rs under qemu-user, fed by this machine's
# own (x86) `pstream send`.
#   scripts/cross-loopback.sh aarch64-unknown-linux-gnu [--example|--recv-example]
#   scripts/cross-loopback.sh x86_64-unknown-linux-gnu --example   (native)
set -euo pipefail
cd "$(dirname "$0")/.."

target=$1
mode=${2:-}
case $mode in
  ""|--example|--recv-example) ;;
  *) echo "cross-loopback: unknown mode $mode" >&2; exit 2 ;;
esac
probe=pstream
source scripts/cross-target.sh "$target"
bin=$out/pstream
sender=$out/examples/rtp_send
receiver=$out/examples/rtp_recv
needed=("$bin")
case $mode in
  --example) needed+=("$sender") ;;
  --recv-example)
    needed=("$receiver")
    # The sender runs natively: a release build if there is one, else a
    # debug one (built here if missing), in the cross builds' target
    # directory or the host's own (scripts/test.sh gives the cross builds
    # target/cross while the host's tests use target).
    host=
    for h in "${CARGO_TARGET_DIR:-target}"/{release,debug}/pstream target/{release,debug}/pstream; do
      [ -x "$h" ] && { host=$h; break; }
    done
    if [ -z "$host" ]; then
      cargo build --locked -p pstream >&2
      host=${CARGO_TARGET_DIR:-target}/debug/pstream
    fi
    needed+=("$host")
    ;;
esac
for b in "${needed[@]}"; do
  [ -x "$b" ] || { echo "cross-loopback: no binary at $b (run scripts/cross.sh)" >&2; exit 2; }
done

width=320 height=240 fps=15 secs=5
dir=$(mktemp -d)
run=("${qemu[@]}")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# An even port base away from the defaults (5000-5007) used by other tests.
base=$((20000 + (RANDOM % 10000) * 2))

if [ "$mode" = --recv-example ]; then
  # The example's arguments: PEER PORT_BASE SECONDS VIDEO_OUT AUDIO_OUT.
  recv=("$receiver" 127.0.0.1 "$base" $((secs + 6)) "y4m:$dir/out.y4m" "wav:$dir/out.wav")
else
  recv=("$bin" recv --peer 127.0.0.1 --listen 127.0.0.1 --port-base "$base"
        --video-out "y4m:$dir/out.y4m" --audio-out "wav:$dir/out.wav" --duration $((secs + 6)))
fi
timeout 60 ${run[@]+"${run[@]}"} "${recv[@]}" >"$dir/recv.log" 2>&1 &
recv_pid=$!
pids+=("$recv_pid")
# The receiver's sockets must be bound before the first IDR leaves; qemu
# may take seconds to start on a loaded machine.
for _ in $(seq 300); do
  grep -q "receiving from" "$dir/recv.log" 2>/dev/null && break
  kill -0 "$recv_pid" 2>/dev/null || break
  sleep 0.1
done
send_run=(${run[@]+"${run[@]}"})
case $mode in
  # The example's own settings: 320x240 at 15 fps.
  --example) send=("$sender" 127.0.0.1 "$base" "$secs") ;;
  --recv-example)
    send=("$host" send --peer 127.0.0.1 --listen 127.0.0.1 --port-base "$base"
          --size ${width}x${height} --fps $fps --duration $secs)
    send_run=()
    ;;
  *) send=("$bin" send --peer 127.0.0.1 --listen 127.0.0.1 --port-base "$base"
           --size ${width}x${height} --fps $fps --duration $secs) ;;
esac
timeout 60 ${send_run[@]+"${send_run[@]}"} "${send[@]}" >"$dir/send.log" 2>&1 || {
  echo "cross-loopback: send failed:" >&2; cat "$dir/send.log" >&2; exit 1; }
wait "$recv_pid" || { echo "cross-loopback: recv failed:" >&2; cat "$dir/recv.log" >&2; exit 1; }

# Y4M: one header line, then per frame "FRAME\n" + the 4:2:0 picture.
header=$(head -n 1 "$dir/out.y4m")
case $header in
  "YUV4MPEG2 W$width H$height "*) ;;
  *) echo "cross-loopback: unexpected Y4M header: $header" >&2; exit 1 ;;
esac
size=$(stat -c %s "$dir/out.y4m")
frame=$((6 + width * height * 3 / 2))
body=$((size - ${#header} - 1))
if ((body % frame != 0)); then
  echo "cross-loopback: Y4M body of $body bytes is not a whole number of frames" >&2; exit 1
fi
frames=$((body / frame))
# Under emulation on a busy machine the encoder may not keep up: pstream
# then drops frames before the encoder (src-drop on the sender's summary).
# What is checked does not depend on speed: something was encoded, and on
# loopback every frame the sender sent was received, decoded and written.
summary=$(grep -h "send finished" "$dir/send.log" | tail -n 1)
sent=$(sed -n 's/.* frames \([0-9]*\) .*/\1/p' <<<"${summary%%|*}")
echo "cross-loopback $target ($(basename "${send[0]}") -> $(basename "${recv[0]}")): sender sent $sent frames, receiver wrote $frames" >&2
echo "$summary" >&2
grep -h "recv finished" "$dir/recv.log" >&2 || true
if [ -z "$sent" ] || ((sent < 5 || frames < sent - 1 || frames > sent)); then
  echo "cross-loopback: expected the $sent frames sent (at least 5) in the Y4M" >&2
  cat "$dir/send.log" "$dir/recv.log" >&2
  exit 1
fi
