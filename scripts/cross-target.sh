# Sourced by the scripts that run cross-built programs (cross-loopback.sh,
# cross-record.sh, cross-serve.sh): for a target triple in $1, sets `qemu`
# (the qemu-user command line, empty natively) and `out` (where cargo put
# its release binaries; for x86_64 without a release build, target/debug).
# `probe` names a file that must exist in `out` for a native debug fallback.
case $1 in
  aarch64-*) qemu=(qemu-aarch64 -L /usr/aarch64-linux-gnu) ;;
  armv7-*) qemu=(qemu-arm -L /usr/arm-linux-gnueabihf) ;;
  # The ARMv6 build is static (no sysroot); an ARM1176 CPU makes any ARMv7
  # instruction that runs a SIGILL.
  arm-unknown-linux-musleabihf) qemu=(qemu-arm -cpu arm1176) ;;
  x86_64-*) qemu=() ;;
  *) echo "$(basename "$0"): unknown target $1" >&2; exit 2 ;;
esac
out=${CARGO_TARGET_DIR:-target}/$1/release
if [ "$1" = x86_64-unknown-linux-gnu ] && [ ! -d "$out" ]; then
  out=target/release
  [ -x "$out/$probe" ] || out=target/debug  # a plain `cargo build` (+ --example)
fi
