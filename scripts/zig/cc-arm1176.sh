#!/usr/bin/env bash
# C compiler and linker for arm-unknown-linux-musleabihf, the ARMv6 build
# (Raspberry Pi Zero/Zero W/1: ARM1176JZF-S, ARMv6KZ + VFPv2, no NEON, no
# Thumb-2). Debian's arm-linux-gnueabihf toolchain cannot be used: its crt
# files and libgcc are ARMv7 code. zig compiles and links with clang and
# lld, and builds musl's start-up files, compiler-rt, libunwind and libc++
# from source for the CPU named here, so everything in the binary is ARMv6.
#
# cc-rs, cmake and rustc pass their own idea of the target (--target with
# Rust's triple, -march=armv6, -mfpu=vfp, ...): dropped, -mcpu decides.
# zig is found by zig.sh.
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
mode=${ZIG_CC_MODE:-cc}
args=()
compile=0
skip=0
for a in "$@"; do
  if ((skip)); then skip=0; continue; fi
  case $a in
    -target) skip=1 ;;
    --target=* | -march=* | -mcpu=* | -mfpu=* | -mfloat-abi=*) ;;
    # rustc's release link asks for --strip-debug (there is no debug info
    # to strip); zig's linker takes it as "strip everything", symbol table
    # included, which scripts/check-armv6.sh reads (mapping symbols) and
    # which the other targets' release binaries keep. -O1: lld ignores it,
    # with a warning.
    -Wl,--strip-debug | -Wl,-O1) ;;
    -c | -S | -E) compile=1; args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done
if ((compile)); then
  # openh264-sys2 defines HAVE_NEON for every 32-bit ARM target and assembles
  # its NEON .S files (whose bodies are all inside #ifdef HAVE_NEON); it has
  # no switch for that (its OPENH264_NO_ASM only covers x86's nasm files).
  # Undefined last, after cc-rs' -D flags: the C++ then uses its plain-C
  # functions and the .S files assemble to nothing. No ARMv6 CPU has NEON,
  # so no C dependency may assume it.
  args+=(-UHAVE_NEON)
fi
exec "$here/zig.sh" "$mode" -target arm-linux-musleabihf -mcpu=arm1176jzf_s ${args[@]+"${args[@]}"}
