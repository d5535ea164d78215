#!/usr/bin/env bash
# ranlib for the ARMv6 build (zig's llvm-ranlib); see cc-arm1176.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/zig.sh" ranlib "$@"
