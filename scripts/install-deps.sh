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
  # OpenSSL for WebRTC's DTLS (str0m): Debian's, linked (.cargo/config.toml)
  libssl-dev
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
  # ...and its OpenSSL, built from source (openssl-src) by perl: Debian has
  # no musl ARMv6 OpenSSL to link
  perl
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

# The Pi targets' OpenSSL, linked statically (.cargo/config.toml) instead of
# built from source for each target: Debian's own arm64 and armhf libssl-dev,
# unpacked into the cross compilers' sysroots as dpkg-cross would. Not
# installed through multiarch: that brings Debian's arm64/armhf glibc into
# /lib/<triple>, where qemu-user's programs then find it beside the cross
# sysroot's ld.so of another glibc build, and hang.
cross_openssl() {
  local arch=$1 triple=$2 sysroot=/usr/$2
  [ -f "$sysroot/lib/libssl.a" ] && [ -f "$sysroot/include/openssl/opensslconf.h" ] && return
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    # apt reads an architecture's package lists only once dpkg knows it;
    # nothing of it is installed.
    $sudo dpkg --add-architecture "$arch"
    $sudo apt-get update -q
  fi
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q "libssl-dev:$arch" 2>&1 | grep -v "unsandboxed" >&2 || true)
  local deb
  deb=$(ls "$tmp"/libssl-dev_*_"$arch".deb 2>/dev/null | head -n 1)
  [ -n "$deb" ] || { echo "install-deps: could not download libssl-dev:$arch" >&2; exit 1; }
  dpkg-deb -x "$deb" "$tmp/root"
  $sudo mkdir -p "$sysroot/include/openssl" "$sysroot/lib"
  $sudo cp "$tmp"/root/usr/include/openssl/*.h "$tmp"/root/usr/include/"$triple"/openssl/*.h \
    "$sysroot/include/openssl/"
  $sudo cp "$tmp"/root/usr/lib/"$triple"/libssl.a "$tmp"/root/usr/lib/"$triple"/libcrypto.a "$sysroot/lib/"
  rm -rf "$tmp"
  echo "installed: libssl-dev:$arch's static libraries and headers into $sysroot" >&2
}
if [ $build_only -eq 0 ]; then
  cross_openssl arm64 aarch64-linux-gnu
  cross_openssl armhf arm-linux-gnueabihf
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
