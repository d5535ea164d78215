# CMake toolchain for the ARMv6 build (arm-unknown-linux-musleabihf), read by
# the cmake crate through CMAKE_TOOLCHAIN_FILE_arm_unknown_linux_musleabihf
# (.cargo/config.toml) for libopus (audiopus_sys) and libjpeg-turbo
# (turbojpeg-sys). Compilers: the zig wrappers next to this file.
set(CMAKE_SYSTEM_NAME Linux CACHE STRING "" FORCE)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER ${CMAKE_CURRENT_LIST_DIR}/cc-arm1176.sh)
set(CMAKE_CXX_COMPILER ${CMAKE_CURRENT_LIST_DIR}/c++-arm1176.sh)
set(CMAKE_ASM_COMPILER ${CMAKE_CURRENT_LIST_DIR}/cc-arm1176.sh)
set(CMAKE_AR ${CMAKE_CURRENT_LIST_DIR}/ar.sh CACHE FILEPATH "" FORCE)
set(CMAKE_RANLIB ${CMAKE_CURRENT_LIST_DIR}/ranlib.sh CACHE FILEPATH "" FORCE)
# Both projects build NEON code for 32-bit ARM and pick it at run time; an
# ARMv6 binary must not contain it at all. (Options set here, before the
# projects' option() calls, are kept.)
# libjpeg-turbo: its SIMD on 32-bit ARM is NEON only.
set(WITH_SIMD OFF CACHE BOOL "no NEON on ARMv6" FORCE)
# libopus: NEON intrinsics (celt/silk *_neon_intr.c) with run-time detection.
set(OPUS_DISABLE_INTRINSICS ON CACHE BOOL "no NEON on ARMv6" FORCE)
