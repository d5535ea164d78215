#!/usr/bin/env bash
# Archiver for the ARMv6 build (zig's llvm-ar); see cc-arm1176.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/zig.sh" ar "$@"
