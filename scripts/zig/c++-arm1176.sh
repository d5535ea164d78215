#!/usr/bin/env bash
# C++ compiler for the ARMv6 build (libc++ from zig); see cc-arm1176.sh.
ZIG_CC_MODE=c++ exec "$(dirname "${BASH_SOURCE[0]}")/cc-arm1176.sh" "$@"
