#!/usr/bin/env bash
# Cross builds for Raspberry Pis, from this x86 machine:
#   aarch64-unknown-linux-gnu      Pi 3/4/5 (and Zero 2) with a 64-bit OS
#   armv7-unknown-linux-gnueabihf  Pi 2/3/Zero 2 with a 32-bit OS
#   arm-unknown-linux-musleabihf   Pi Zero/Zero W/1 (ARMv6), and any Pi with
#                                  a 32-bit OS: one static binary
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
#   scripts/cross.sh --build-tests
#                             builds what --test runs (binaries, examples, the
#                             unit tests of UNIT_TESTS' targets) and runs
#                             nothing: scripts/test.sh builds while the host's
#                             tests run, then runs --test
#   TARGETS="aarch64-unknown-linux-gnu" scripts/cross.sh ...   one target only
#   UNIT_TESTS="armv7-unknown-linux-gnueabihf" scripts/cross.sh --test
#                             the unit tests under qemu for those targets
#                             only (default: every target); the loopbacks,
#                             recording, bench and HLS runs stay for all
#
# Linkers and qemu runners are set in .cargo/config.toml. Built without the
# default `alsa` feature (sound-device playback through cpal/libasound):
# everything else -- test pattern, Y4M/WAV, H.264/Opus/AAC/MJPEG, RTP, RTMP,
# FLV and HLS -- is in. Debian packages: scripts/install-deps.sh.
#
# The ARMv6 build, arm-unknown-linux-musleabihf: rather than
# arm-unknown-linux-gnueabihf (Raspberry Pi OS's armhf ABI, glibc), a fully
# static musl binary, because
#   - its C runtime must be ARMv6 code too: Debian's arm-linux-gnueabihf
#     toolchain (crt files, libgcc, libstdc++, glibc) is ARMv7; zig builds
#     musl, its start-up files, compiler-rt, libunwind and libc++ for the
#     ARM1176 from source (scripts/zig/), which it cannot do for a glibc it
#     would link dynamically;
#   - a static binary runs on any Raspberry Pi OS release (and any other
#     distribution) whatever its glibc, and under `qemu-arm -cpu arm1176`
#     here without an ARMv6 sysroot (Debian's armhf one is ARMv7 and would
#     die of SIGILL there).
# rustup has no ARMv6 standard library for this machine, so std is built from
# source (-Zbuild-std, rust-src, RUSTC_BOOTSTRAP=1 on the stable toolchain).
# Its rustls uses a copy of *ring* without ARM assembly (scripts/armv6/ring.sh:
# ring's 32-bit ARM assembly has NEON in it), patched in through --config
# with its own lock file (target/armv6/Cargo.lock: Cargo.lock is unchanged
# but for ring's source, checked below). scripts/check-armv6.sh then proves
# that no ARMv7 instruction is in the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

test=0
build_tests=0
# Where cargo puts its output (scripts/cross-loopback.sh reads the same).
tdir=${CARGO_TARGET_DIR:-target}
case "${1:-}" in
  --test) test=1 ;;
  --build-tests) build_tests=1 ;;
esac
read -r -a targets <<<"${TARGETS:-aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf arm-unknown-linux-musleabihf}"
armv6=arm-unknown-linux-musleabihf

# Every crate the binary is made of (and the embedding API), whose unit
# tests run under qemu; --lib --bins skips the integration tests in tests/,
# which start x86 peers (GStreamer, ffmpeg, nginx). One word per crate.
crates=(pstream-core pstream-rtp pstream-rtmp pstream-capture pstream-codec
        pstream-transport pstream-mux pstream-embed pstream)
# The embedding API's examples, built as a program on a Pi would use them.
examples=(rtp_send rtp_recv rtmp_push record_flv hls_serve)
packages=()
for c in "${crates[@]}"; do packages+=(-p "$c"); done
example_args=()
for e in "${examples[@]}"; do example_args+=(--example "$e"); done

if command -v rustup >/dev/null; then
  installed=$(rustup target list --installed)
  for t in "${targets[@]}"; do
    if [ "$t" = "$armv6" ]; then
      rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
    else
      grep -qx "$t" <<<"$installed" || rustup target add "$t"
    fi
  done
fi

for t in "${targets[@]}"; do
  start=$SECONDS
  # How cargo is run for this target.
  cargo_env=()
  cargo_args=(--release --target "$t")
  if [ "$t" = "$armv6" ]; then
    # zig's path and the headers bindgen must parse (scripts/zig/env.sh).
    source scripts/zig/env.sh
    mkdir -p "$tdir/armv6"
    ring=$(scripts/armv6/ring.sh "$tdir/armv6")
    lock=$(cd "$tdir/armv6" && pwd)/Cargo.lock
    cp Cargo.lock "$lock"
    # LIBOPUS_STATIC: audiopus_sys picks static or dynamic libopus by the
    # build host's libc (cfg! in its build script), so dynamic here.
    cargo_env=(env RUSTC_BOOTSTRAP=1 LIBOPUS_STATIC=1)
    cargo_args+=(-Zbuild-std=std,panic_unwind -Zlockfile-path -Zprofile-rustflags
      --config "resolver.lockfile-path=\"$lock\""
      --config "patch.crates-io.ring.path=\"$ring\""
      # Warnings in the patched copy are ring's own, as for any crates.io crate.
      --config 'profile.release.package.ring.rustflags=["--cap-lints", "allow"]')
  else
    cargo_args+=(--locked)
  fi
  echo "== $t: build" >&2
  t0=$SECONDS
  # One profile (release) for the binary and the tests, so the C codecs are
  # compiled once per target; and one cargo run for the binary and the
  # examples, with the unit tests' feature set, so that no crate is built a
  # second time with other features.
  "${cargo_env[@]}" cargo build "${cargo_args[@]}" --no-default-features \
    "${packages[@]}" --bins "${example_args[@]}"
  out=$tdir/$t/release
  times="build $((SECONDS - t0)) s"
  if ((build_tests)); then
    if [ -z "${UNIT_TESTS:-}" ] || grep -qw -- "$t" <<<"$UNIT_TESTS"; then
      "${cargo_env[@]}" cargo test "${cargo_args[@]}" --no-default-features "${packages[@]}" \
        --lib --bins --no-run
    fi
    echo "== $t: built in $((SECONDS - start)) s" >&2
    continue
  fi
  t0=$SECONDS
  if [ "$t" = "$armv6" ]; then
    # Cargo.lock's versions, and only ring's source changed.
    if ! diff <(grep -v -e '^source = ' -e '^checksum = ' Cargo.lock) \
              <(grep -v -e '^source = ' -e '^checksum = ' "$lock") >&2 ||
       [ "$(diff Cargo.lock "$lock" | grep -c '^[<>]')" -gt 2 ]; then
      echo "cross: the ARMv6 build resolved other versions than Cargo.lock" >&2
      exit 1
    fi
    # No ARMv7 instruction anywhere (and a scan that can see them).
    scripts/check-armv6.sh --self-test
    scripts/check-armv6.sh "$out/pstream" "${examples[@]/#/$out/examples/}"
  else
    # openh264's ARM assembly must be in. openh264-sys2 assembles its arm/ or
    # arm64/ .S files (and defines HAVE_NEON / HAVE_NEON_AARCH64, which makes
    # the encoder's function tables point at them) only when it recognises the
    # target; so count the assembled NEON objects and the NEON routines
    # (names ending in _neon) that made it into the linked binary.
    case $t in
      aarch64-*) nm=aarch64-linux-gnu-nm ;;
      armv7-*) nm=arm-linux-gnueabihf-nm ;;
    esac
    objects=$(find "$out"/build/openh264-sys2-*/out -name '*neon.o' | wc -l)
    neon=$("$nm" "$out/pstream" | grep -c ' [Tt] .*_neon$' || true)
    echo "== $t: openh264 NEON: $objects assembled objects, $neon routines linked into pstream" >&2
    if ((objects < 10 || neon < 50)); then
      echo "cross: openh264's NEON assembly is missing from the $t build" >&2
      exit 1
    fi
  fi
  times+=", instruction check $((SECONDS - t0)) s"
  if ((test)); then
    if [ -z "${UNIT_TESTS:-}" ] || grep -qw -- "$t" <<<"$UNIT_TESTS"; then
      echo "== $t: unit tests under qemu" >&2
      t0=$SECONDS
      "${cargo_env[@]}" cargo test "${cargo_args[@]}" --no-default-features "${packages[@]}" --lib --bins
      times+=", unit tests $((SECONDS - t0)) s"
    else
      echo "== $t: unit tests under qemu left to: $UNIT_TESTS" >&2
    fi
    t0=$SECONDS
    echo "== $t: send -> recv loopback under qemu" >&2
    scripts/cross-loopback.sh "$t"
    scripts/cross-loopback.sh "$t" --example
    scripts/cross-loopback.sh "$t" --recv-example
    echo "== $t: FLV recording by the embedding example under qemu" >&2
    scripts/cross-record.sh "$t"
    echo "== $t: pstream bench encode under qemu (10 frames a row)" >&2
    scripts/cross-bench.sh "$t"
    echo "== $t: the recipe's ffmpeg publish into the HLS example under qemu" >&2
    scripts/cross-serve.sh "$t"
    times+=", loopbacks, recording and HLS $((SECONDS - t0)) s"
  fi
  echo "== $t: done in $((SECONDS - start)) s ($times)" >&2
done
