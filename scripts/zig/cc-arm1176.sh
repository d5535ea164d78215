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
strip_debug=0
output=""
prev=""
skip=0
for a in "$@"; do
  if [ "$prev" = -o ]; then output=$a; fi
  prev=$a
  if ((skip)); then skip=0; continue; fi
  case $a in
    -target) skip=1 ;;
    --target=* | -march=* | -mcpu=* | -mfpu=* | -mfloat-abi=*) ;;
    # rustc's release link asks for --strip-debug, which zig's linker takes
    # as "strip everything", symbol table included; scripts/check-armv6.sh
    # needs the symbols (mapping symbols), and the other targets' release
    # binaries keep them. So link, then strip the debug sections only (zig's
    # libc++, libunwind and musl bring DWARF) with llvm-objcopy: zig's own
    # objcopy (0.17.1) stops with "error: unimplemented" on some of
    # these binaries (pstream's among them). -O1: lld ignores
    # it, noisily.
    -Wl,--strip-debug) strip_debug=1 ;;
    -Wl,-O1) ;;
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
if ((strip_debug)) && [ -n "$output" ]; then
  "$here/zig.sh" "$mode" -target arm-linux-musleabihf -mcpu=arm1176jzf_s ${args[@]+"${args[@]}"}
  objcopy=${LLVM_OBJCOPY:-$(command -v llvm-objcopy || command -v llvm-objcopy-14 || true)}
  [ -n "$objcopy" ] || { echo "cc-arm1176: llvm-objcopy not found (apt-get install llvm)" >&2; exit 2; }
  "$objcopy" --strip-debug "$output" "$output.strip-debug"
  exec mv -f "$output.strip-debug" "$output"
fi
exec "$here/zig.sh" "$mode" -target arm-linux-musleabihf -mcpu=arm1176jzf_s ${args[@]+"${args[@]}"}
