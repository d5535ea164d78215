# Sourced by scripts/cross.sh before the ARMv6 build (arm-unknown-linux-musleabihf):
#   ZIG   zig's path, looked up once (zig.sh otherwise asks Python each call)
#   BINDGEN_EXTRA_CLANG_ARGS_arm_unknown_linux_musleabihf
#         the v4l crate's bindgen parses the kernel's V4L2 headers for the
#         target; the host's /usr/include has x86 <asm/...> and glibc headers,
#         so point libclang at the ARM Linux and musl headers zig ships (and
#         compiles the C code against), keeping libclang's own builtin ones.
ZIG=$(python3 -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))' 2>/dev/null ||
  command -v zig) || { echo "zig/env.sh: no zig: run scripts/install-deps.sh" >&2; return 1; }
export ZIG
zig_lib=$("$ZIG" env | sed -n 's/^ *\.lib_dir = "\(.*\)",$/\1/p')
[ -d "$zig_lib/libc/include" ] || { echo "zig/env.sh: zig's lib directory not found ($zig_lib)" >&2; return 1; }
BINDGEN_EXTRA_CLANG_ARGS_arm_unknown_linux_musleabihf="-nostdlibinc"
for d in arm-linux-musl generic-musl arm-linux-any any-linux-any; do
  BINDGEN_EXTRA_CLANG_ARGS_arm_unknown_linux_musleabihf+=" -isystem '$zig_lib/libc/include/$d'"
done
export BINDGEN_EXTRA_CLANG_ARGS_arm_unknown_linux_musleabihf
unset zig_lib d
