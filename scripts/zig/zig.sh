#!/usr/bin/env bash
# Runs zig (the ARMv6 C/C++ compiler, linker and archiver; see cc-arm1176.sh).
# zig comes from PyPI (`pip install ziglang`, scripts/install-deps.sh); its
# binary sits in the ziglang package. Looking it up costs a Python start-up
# (about 0.3 s), so scripts/cross.sh does it once and exports ZIG; a plain
# `cargo build --target arm-unknown-linux-musleabihf` still works, slower.
set -euo pipefail
if [ -z "${ZIG:-}" ]; then
  if command -v zig >/dev/null; then
    ZIG=zig
  else
    ZIG=$(python3 -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))' 2>/dev/null) || {
      echo "zig.sh: no zig: run scripts/install-deps.sh (pip install ziglang)" >&2
      exit 127
    }
  fi
fi
# zig builds musl, compiler-rt, libunwind and libc++ for the target CPU on
# first use and caches them; keep that cache under cargo's target directory
# (a fresh target directory is then a truly cold build) unless told otherwise.
if [ -z "${ZIG_GLOBAL_CACHE_DIR:-}" ]; then
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  tdir=${CARGO_TARGET_DIR:-$root/target}
  case $tdir in /*) ;; *) tdir=$root/$tdir ;; esac
  export ZIG_GLOBAL_CACHE_DIR=$tdir/zig-cache
  export ZIG_LOCAL_CACHE_DIR=$tdir/zig-cache
fi
exec "$ZIG" "$@"
