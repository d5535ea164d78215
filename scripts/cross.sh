#!/usr/bin/env bash
# Cross builds for Raspberry Pis, from this x86 machine:
#   aarch64-unknown-linux-gnu      Pi 3/4/5 (and Zero 2) with a 64-bit OS
#   armv7-unknown-linux-gnueabihf  Pi 2/3/Zero 2 with a 32-bit OS
#
#   scripts/cross.sh          release binaries: target/<triple>/release/pstream
#   scripts/cross.sh --test   the same, then under qemu-user: the unit tests of
#                             every crate, a `pstream send` -> `pstream recv`
#                             loopback, the embedding example
#                             (crates/embed/examples/rtp_send.rs) into
#                             `pstream recv`, this machine's `pstream send` into the
#                             receiving example (rtp_recv.rs)
#                             (scripts/cross-loopback.sh), an FLV recording
#                             (scripts/cross-record.sh) and the recipe's ffmpeg
#                             publish into the HLS example, fetched with curl
#                             (scripts/cross-serve.sh)
#   TARGETS="aarch64-unknown-linux-gnu" scripts/cross.sh ...   one target only
#
# Linkers and qemu runners are set in .cargo/config.toml. Built without the
# default `alsa` feature (sound-device playback through cpal/libasound):
# everything else -- test pattern, Y4M/WAV, H.264/Opus/AAC/MJPEG, RTP, RTMP,
# FLV and HLS -- is in. Debian packages: scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

test=0
# Where cargo puts its output (scripts/cross-loopback.sh reads the same).
tdir=${CARGO_TARGET_DIR:-target}
[ "${1:-}" = "--test" ] && test=1
read -r -a targets <<<"${TARGETS:-aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf}"

if command -v rustup >/dev/null; then
  installed=$(rustup target list --installed)
  for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
  done
fi

# Every crate the binary is made of (and the embedding API); --lib --bins skips the integration tests
# in tests/, which start x86 peers (GStreamer, ffmpeg, nginx).
crates=(-p pstream-core -p pstream-rtp -p pstream-rtmp -p pstream-capture -p pstream-codec
        -p pstream-transport -p pstream-mux -p pstream-embed -p pstream)

for t in "${targets[@]}"; do
  start=$SECONDS
  echo "== $t: build" >&2
  # One profile (release) for the binary and the tests, so the C codecs are
  # compiled once per target.
  cargo build --release --locked --target "$t" --no-default-features -p pstream
  # The embedding API's examples, as a program on a Pi would use them.
  cargo build --release --locked --target "$t" -p pstream-embed \
    --example rtp_send --example rtp_recv --example rtmp_push --example record_flv --example hls_serve
  # openh264's ARM assembly must be in. openh264-sys2 assembles its arm/ or
  # arm64/ .S files (and defines HAVE_NEON / HAVE_NEON_AARCH64, which makes
  # the encoder's function tables point at them) only when it recognises the
  # target; so count the assembled NEON objects and the NEON routines
  # (names ending in _neon) that made it into the linked binary.
  case $t in
    aarch64-*) nm=aarch64-linux-gnu-nm ;;
    armv7-*) nm=arm-linux-gnueabihf-nm ;;
  esac
  objects=$(find "$tdir/$t"/release/build/openh264-sys2-*/out -name '*neon.o' | wc -l)
  neon=$("$nm" "$tdir/$t/release/pstream" | grep -c ' [Tt] .*_neon$' || true)
  echo "== $t: openh264 NEON: $objects assembled objects, $neon routines linked into pstream" >&2
  if ((objects < 10 || neon < 50)); then
    echo "cross: openh264's NEON assembly is missing from the $t build" >&2
    exit 1
  fi
  if ((test)); then
    echo "== $t: unit tests under qemu" >&2
    cargo test --release --locked --target "$t" --no-default-features "${crates[@]}" --lib --bins
    echo "== $t: send -> recv loopback under qemu" >&2
    scripts/cross-loopback.sh "$t"
    scripts/cross-loopback.sh "$t" --example
    scripts/cross-loopback.sh "$t" --recv-example
    echo "== $t: FLV recording by the embedding example under qemu" >&2
    scripts/cross-record.sh "$t"
    echo "== $t: the recipe's ffmpeg publish into the HLS example under qemu" >&2
    scripts/cross-serve.sh "$t"
  fi
  echo "== $t: done in $((SECONDS - start)) s" >&2
done
