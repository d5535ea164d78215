#!/usr/bin/env bash
# Installs what pstream needs to build and what its tests run against:
# build tools for the C codecs, and the real peers (GStreamer, ffmpeg, tshark).
# Debian/Ubuntu; run as root or with sudo available. Safe to run again.
#   scripts/install-deps.sh           everything (scripts/test.sh)
#   scripts/install-deps.sh --build   only what building and running need
#                                     (scripts/demo.sh: no test peers)
set -euo pipefail

packages=(
  # building: openh264 wants nasm for its SIMD (else a 2.6x slower C build),
  # libopus through pkg-config, cmake for the bundled fallbacks
  build-essential pkg-config nasm cmake libopus-dev
  # OpenSSL for WebRTC's DTLS is built from source (openssl-src), by perl
  perl
  # audio playback through cpal links ALSA
  libasound2-dev
  # bindgen (libclang) generates the v4l crate's V4L2 bindings from the kernel
  # headers (linux-libc-dev) and the pipewire crate's from libpipewire-0.3-dev
  libpipewire-0.3-dev libclang-dev
)
# Everything else is for the tests (peers, cross builds, the guest); the
# first command of the README (scripts/demo.sh) skips it with --build.
test_packages=(
  # Raspberry Pi cross builds (scripts/cross.sh) and their tests under emulation
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
  gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user
  # the ARMv6 build: zig comes from PyPI (below) through pip; llvm-objdump
  # reads its binary for scripts/check-armv6.sh
  python3-pip llvm
  # peers the tests start
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  ffmpeg tshark
  # a userspace PipeWire for the audio device tests (pw-cat, pw-cli)
  pipewire pipewire-bin wireplumber dbus
  # RTMP ingest for the push tests: nginx with Debian's RTMP module, its
  # stream module as the TLS front for rtmps://, openssl for the test certificates
  nginx libnginx-mod-rtmp libnginx-mod-stream openssl
  # pstream serve: hls.js plays it in headless Chromium (hls.js itself comes
  # from the npm registry through the machine's npm); wrk loads its HTTP side
  # in benches/http_load.sh
  chromium wrk
  # real V4L2 devices (vivid, v4l2loopback) in a qemu guest: scripts/vm/
  # fetches the guest's kernel and busybox itself; the host needs qemu, kmod
  # (depmod, modprobe --show-depends), cpio, libelf1 for the kernel's objtool
  # when building v4l2loopback, and v4l2-ctl to copy into the guest
  qemu-system-x86 kmod cpio libelf1 v4l-utils
  # tests/serve.rs fetches playlists and segments with curl, as the recipe does,
  # and reads serve's /metrics with the Prometheus client library's own parser
  curl python3-prometheus-client
  # tests/rtx.rs: GStreamer's RTX peers are small python3-gi programs
  # (tests/peers/gst_rtx.py), since 1.22's rtpbin attaches rtprtxsend /
  # rtprtxreceive only through its request-aux-* signals
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
)

# hls.js for tests/serve_browser.rs comes through npm: Debian's npm only when
# the machine has none (a Node.js from elsewhere brings its own and would
# conflict with Debian's).
build_only=0
[ "${1:-}" = "--build" ] && build_only=1
if [ $build_only -eq 0 ]; then
  packages+=("${test_packages[@]}")
  command -v npm >/dev/null || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -q
  # tshark asks whether non-root users may capture; the tests run as whoever
  # runs them, so take the default without a prompt.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# zig, the ARMv6 build's C/C++ compiler and linker (scripts/zig/), from PyPI
# (ziglang packs the zig binary). Pinned: zig's command line (-mcpu names)
# has changed between releases. Debian's own Python refuses a system-wide
# pip install (PEP 668), so into the user's site-packages there.
zig_version=0.17.1
if [ $build_only -eq 0 ] && [ "$(python3 -m ziglang version 2>/dev/null)" != "$zig_version" ]; then
  echo "installing: ziglang==$zig_version (pip)" >&2
  python3 -m pip install --quiet "ziglang==$zig_version" 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages "ziglang==$zig_version"
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

# GStreamer scans its plugins on first use, which can take seconds on a fresh
# machine; do it now so that a test's first peer starts promptly.
[ $build_only -eq 1 ] || gst-inspect-1.0 rtpbin >/dev/null 2>&1 || true
