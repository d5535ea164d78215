#!/usr/bin/env bash
# `pstream bench encode` of a cross-built binary under qemu-user, with a
# frame cap: every codec's row must come out with frames encoded and a
# decoded picture or sound close to what went in (correctness under
# emulation, not speed: qemu's timings say nothing about a Pi's).
#   scripts/cross-bench.sh aarch64-unknown-linux-gnu
#   scripts/cross-bench.sh x86_64-unknown-linux-gnu   (native)
set -euo pipefail
cd "$(dirname "$0")/.."

target=$1
probe=pstream
source scripts/cross-target.sh "$target"
bin=$out/pstream
[ -x "$bin" ] || { echo "cross-bench: no binary at $bin (run scripts/cross.sh)" >&2; exit 2; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
timeout 300 ${qemu[@]+"${qemu[@]}"} "$bin" bench encode --codecs h264,mjpeg,opus,aac \
  --sizes 320x240 --presets fast,balanced --frames 10 --json >"$dir/bench.json" 2>"$dir/log" || {
  echo "cross-bench: $target: pstream bench encode failed:" >&2
  cat "$dir/log" >&2
  exit 1
}
python3 - "$dir/bench.json" "$target" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
rows = report["rows"]
codecs = sorted(r["codec"] for r in rows)
# Two H.264 presets, one MJPEG quality, one bitrate each for Opus and AAC.
want = sorted(["h264", "h264", "mjpeg", "opus", "aac"])
bad = []
if codecs != want:
    bad.append(f"rows {codecs}, wanted {want}")
for r in rows:
    db = r.get("psnr_db") or {}
    psnr = db.get("y", db.get("all"))
    floor = 30 if r["codec"] in ("h264", "mjpeg") else 10
    if r["encoded"] < 1 or not r["latency_ms"]["median"] > 0 or psnr is None or psnr < floor:
        bad.append(f"{r['codec']} {r.get('preset')}: encoded {r['encoded']}, "
                   f"median {r['latency_ms']['median']} ms, PSNR {psnr}")
def db(r):
    d = r.get("psnr_db") or {}
    v = d.get("y", d.get("all"))
    return "n/a" if v is None else f"{v:.1f} dB"
summary = ", ".join(f"{r['codec']}{'/' + r['preset'] if r.get('preset') else ''} "
                    f"{r['latency_ms']['median']:.1f} ms PSNR {db(r)}"
                    for r in rows)
print(f"cross-bench: {sys.argv[2]}: {summary}", file=sys.stderr)
if bad:
    print("cross-bench: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
