#!/usr/bin/env bash
# The cross-built embedding example crates/embed/examples/record_flv.rs
# under qemu-user: records the test pattern and tone for a few seconds as
# H.264 + AAC in FLV, then ffprobe (native) must read both streams.
#   scripts/cross-record.sh aarch64-unknown-linux-gnu
#   scripts/cross-record.sh x86_64-unknown-linux-gnu   (native)
set -euo pipefail
cd "$(dirname "$0")/.."

target=$1
probe=examples/record_flv
source scripts/cross-target.sh "$target"
example=$out/examples/record_flv
[ -x "$example" ] || { echo "cross-record: no binary at $example (run scripts/cross.sh)" >&2; exit 2; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
secs=4
timeout 60 ${qemu[@]+"${qemu[@]}"} "$example" "$dir/rec.flv" "$secs" >"$dir/log" 2>&1 || {
  echo "cross-record: the example failed:" >&2
  cat "$dir/log" >&2
  exit 1
}
probe=$(ffprobe -v error -count_frames -show_entries stream=codec_name,width,height,nb_read_frames \
  -of csv=p=0 "$dir/rec.flv")
video=$(awk -F, '$1 == "h264" && $2 == 640 && $3 == 360 { print $4 }' <<<"$probe")
audio=$(awk -F, '$1 == "aac" { print $NF }' <<<"$probe")
echo "cross-record: $target: ${video:-0} H.264 frames, ${audio:-0} AAC frames in $secs s ($(tail -n 1 "$dir/log"))" >&2
# Under qemu the encoder may fall behind and drop at the source (counted);
# what is written must still be a readable file with both streams.
if [ "${video:-0}" -lt 5 ] || [ "${audio:-0}" -lt $((secs * 30)) ]; then
  echo "cross-record: $dir/rec.flv is short: $probe" >&2
  exit 1
fi
