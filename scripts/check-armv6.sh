#!/usr/bin/env bash
# Checks that an ARM binary runs on an ARMv6 Raspberry Pi (Zero, Zero W, 1:
# ARM1176JZF-S, i.e. ARMv6KZ with VFPv2, no NEON, no Thumb-2): its build
# attributes and every instruction in it, the C runtime's start-up code,
# musl, compiler-rt, libunwind and libc++ included (they are linked in:
# the binary is static).
#   scripts/check-armv6.sh BINARY...   exit 1 on any ARMv7 (or later) trace
#   scripts/check-armv6.sh --self-test the scan must flag known ARMv7 code
#
# 1. `readelf -A`: Tag_CPU_arch v6, v6K or v6KZ; Tag_THUMB_ISA_use Thumb-1
#    (or none); Tag_FP_arch VFPv2; no Tag_Advanced_SIMD_arch (NEON).
# 2. The disassembly (llvm-objdump, told to decode everything up to ARMv8.2
#    with NEON and crypto, so that later instructions show by name instead
#    of as <unknown>), instruction by instruction, ARM or Thumb as the
#    mapping symbols ($a/$t/$d) say:
#    - ARMv6T2/v7/v8-only mnemonics: movw/movt, dmb/dsb/isb, sdiv/udiv,
#      bfi/bfc/ubfx/sbfx, rbit, mls, ldrht/strht/ldrsbt/ldrsht, pldw,
#      hvc/eret/hlt, dbg/sevl/csdb/esb, acquire/release (lda*/stl*), crc32*,
#      aes*/sha*, vsel/vmaxnm/vminnm/vrint*/vcvt{a,n,p,m,b,t}, vfma/vfms/
#      vfnma/vfnms, vjcvt;
#    - NEON: any v* instruction other than VFPv2's, any q register;
#    - VFPv3 or later: d16-d31, vmov/vcvt with an immediate (VFPv3 constant
#      and fixed-point forms), .f16/.bf16 data;
#    - Thumb-2: any 32-bit Thumb encoding other than bl/blx, it/cbz/cbnz
#      and the 16-bit Thumb hints (nop/yield/wfe/wfi/sev are Thumb-2 there);
#    - <unknown> in code (a decoder gap or data without a $d symbol).
#    ldrex{b,h,d}/strex{b,h,d}, clrex, yield/wfe/wfi/sev in ARM state are
#    ARMv6K, which the ARM1176 has: counted and printed, not failed.
#    The binary must keep its symbols (the release profile does): without
#    mapping symbols literal pools would be decoded as instructions.
set -euo pipefail
cd "$(dirname "$0")/.."

objdump=${LLVM_OBJDUMP:-$(command -v llvm-objdump || command -v llvm-objdump-14 || true)}
readelf=${READELF:-readelf}
[ -n "$objdump" ] || { echo "check-armv6: llvm-objdump not found (apt-get install llvm)" >&2; exit 2; }
# Decode everything ARMv7-A can have (NEON, VFPv4-D32, Thumb-2, divide,
# virtualization, barriers): such instructions show by name. ARMv8-only ones
# (crc32, aes/sha, lda/stl, vsel, vrint, hlt, ...) come out as <unknown>,
# and fail as such; decoding for ARMv8 instead would hide the pre-ARMv7
# coprocessor instructions (FPA, iWMMXt) behind <unknown> as well.
mattr=+v7,+neon,+vfp4,+d32,+fp16,+thumb2,+hwdiv,+hwdiv-arm,+mp,+virtualization,+db,+trustzone,+v7clrex

# Routines that hold ARMv7 or VFPv3 instructions by design and are never
# run on an ARMv6 CPU (symbol, then why); their instructions are counted
# and printed, not failed. Nothing else is let through.
allowed=(
  # musl picks its atomics at run time from AT_PLATFORM: the v6 pair
  # (mcr p15 barriers) on ARMv6 ("v6l"), these on ARMv7/v8, where CP15
  # barriers may be disabled (arm64 kernels running 32-bit programs).
  "__a_barrier_v7 musl: dmb barrier, chosen only when AT_PLATFORM is not v6"
  "__a_cas_v7 musl: compare-and-swap with dmb, chosen only when AT_PLATFORM is not v6"
  # LLVM libunwind saves/restores d16-d31 only for a frame whose unwind
  # table pops them, i.e. code built for VFPv3-D32/NEON; none is in here.
  "_ZN9libunwind13Registers_arm9saveVFPv3EPv libunwind: d16-d31, only when unwinding a frame that saved them"
  "_ZN9libunwind13Registers_arm12restoreVFPv3EPv libunwind: d16-d31, only when unwinding a frame that saved them"
)

# scan BINARY: prints a summary and the first offending instructions; 0 when clean.
scan() {
  local bin=$1 attrs bad=0
  attrs=$("$readelf" -A "$bin")
  local cpu thumb fp simd
  cpu=$(sed -n 's/^ *Tag_CPU_arch: //p' <<<"$attrs")
  thumb=$(sed -n 's/^ *Tag_THUMB_ISA_use: //p' <<<"$attrs")
  fp=$(sed -n 's/^ *Tag_FP_arch: //p' <<<"$attrs")
  simd=$(sed -n 's/^ *Tag_Advanced_SIMD_arch: //p' <<<"$attrs")
  echo "check-armv6: $bin: Tag_CPU_arch ${cpu:-none}, Tag_THUMB_ISA_use ${thumb:-none}, Tag_FP_arch ${fp:-none}, Tag_Advanced_SIMD_arch ${simd:-none}" >&2
  case $cpu in v6 | v6K | v6KZ) ;; *) echo "check-armv6: Tag_CPU_arch is not v6/v6K/v6KZ" >&2; bad=1 ;; esac
  case $thumb in "" | Thumb-1) ;; *) echo "check-armv6: Tag_THUMB_ISA_use is $thumb" >&2; bad=1 ;; esac
  [ "$fp" = VFPv2 ] || { echo "check-armv6: Tag_FP_arch is not VFPv2" >&2; bad=1; }
  [ -z "$simd" ] || { echo "check-armv6: Tag_Advanced_SIMD_arch present" >&2; bad=1; }

  # Mapping symbols, sorted by address: "addr a|t|d".
  local maps
  maps=$(mktemp)
  "$objdump" -t "$bin" | awk '$NF ~ /^\$[atd](\.|$)/ { print $1, substr($NF, 2, 1) }' | sort >"$maps"
  if [ ! -s "$maps" ]; then
    echo "check-armv6: $bin has no mapping symbols (stripped?): cannot tell code from data" >&2
    rm -f "$maps"
    return 1
  fi
  local allow
  allow=$(printf '%s\n' "${allowed[@]}")
  "$objdump" -d --mattr="$mattr" "$bin" | awk -F'\t' -v maps="$maps" -v allow="$allow" '
    BEGIN {
      n = 0
      # Addresses as 8 hex digits compare as strings (mawk has no strtonum).
      while ((getline line < maps) > 0) { split(line, f, " "); n++; maddr[n] = f[1]; mkind[n] = f[2] }
      p = 1
      na = split(allow, al, "\n")
      for (i = 1; i <= na; i++) { k = al[i]; sub(/ .*/, "", k); r = al[i]; sub(/^[^ ]* /, "", r); allowed["<" k ">"] = r }
      # VFPv2 instructions (ARM ARM, "VFPv2"): anything else starting with v is NEON or newer VFP.
      split("vabs vadd vcmp vcmpe vcvt vcvtr vdiv vldmia vldmdb vldm vldr vmla vmls vmov vmrs vmsr vmul vneg vnmla vnmls vnmul vpop vpush vsqrt vstmia vstmdb vstm vstr vsub", v, " ")
      for (i in v) vfp2[v[i]] = 1
      v7 = "^(movw|movt|dmb|dsb|isb|sdiv|udiv|bfi|bfc|ubfx|sbfx|rbit|mls|ldrht|strht|ldrsbt|ldrsht|pldw|hvc|eret|hlt|dbg|sevl|csdb|esb|ssbb|pssbb|lda|ldab|ldah|ldaex|ldaexb|ldaexh|ldaexd|stl|stlb|stlh|stlex|stlexb|stlexh|stlexd|crc32b|crc32h|crc32w|crc32cb|crc32ch|crc32cw|aese|aesd|aesmc|aesimc|sha1c|sha1m|sha1p|sha1h|sha1su0|sha1su1|sha256h|sha256h2|sha256su0|sha256su1|vsel..|vmaxnm|vminnm|vrint.|vcvta|vcvtn|vcvtp|vcvtm|vcvtb|vcvtt|vfma|vfms|vfnma|vfnms|vjcvt|vins|vmovx|vsdot|vudot|tbb|tbh|it|ite|itt|itee|itte|itet|ittt|iteee|iteet|itete|itett|ittee|ittet|ittte|itttt|cbz|cbnz)"
      conds = "(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?"
    }
    /^[0-9a-f]+ <.*>:$/ { fn = $0; sub(/^[0-9a-f]+ /, "", fn); sub(/:$/, "", fn); next }
    $1 ~ /^ *[0-9a-f]+: [0-9a-f]/ {
      addr_s = $1; sub(/:.*/, "", addr_s); gsub(/ /, "", addr_s)
      addr = sprintf("%8s", addr_s); gsub(/ /, "0", addr)
      # Mode at this address: the last mapping symbol at or before it.
      if (p > n || maddr[p] > addr) p = 1
      while (p < n && maddr[p + 1] <= addr) p++
      mode = (maddr[p] <= addr) ? mkind[p] : "a"
      if (mode == "d") next
      bytes = $1; sub(/^[^:]*: /, "", bytes); gsub(/ +$/, "", bytes)
      nbytes = split(bytes, b, " ")
      mn = $2; ops = $3; sub(/ *@.*/, "", ops)
      base = mn; sub(/\..*/, "", base)
      total++
      why = ""
      if (mn == "<unknown>") why = "undecodable as ARMv7 (ARMv8, or data without $d)"
      else if (mode == "t" && nbytes == 4 && base != "bl" && base != "blx") why = "Thumb-2 (32-bit Thumb encoding)"
      else if (mode == "t" && base ~ /^(nop|yield|wfe|wfi|sev)$/) why = "Thumb-2 (16-bit Thumb hint)"
      else if (base ~ (v7 conds "$")) why = "ARMv6T2/v7/v8 instruction"
      else if (base ~ /^v/) {
        b2 = base
        if (!(b2 in vfp2)) { b3 = b2; sub(conds "$", "", b3); if (b3 in vfp2) b2 = b3 }
        if (!(b2 in vfp2)) why = "NEON (not a VFPv2 instruction)"
        else if (ops ~ /(^|[^a-z])q[0-9]+/) why = "NEON (q register)"
        else if (ops ~ /(^|[^a-z0-9])d(1[6-9]|2[0-9]|3[01])([^0-9]|$)/) why = "VFPv3-D32 (d16-d31)"
        else if ((b2 ~ /^vmov/ || b2 ~ /^vcvt/) && ops ~ /#/) why = "VFPv3 (immediate/fixed-point form)"
        else if (mn ~ /\.(i8|i16|i32|i64|u8|u16|s8|s16|p8|p16|p64|f16|bf16)($|\.)/) why = "NEON/FP16 data type"
        else if (mn ~ /^vmov[a-z]*\.(8|16|u8|u16|s8|s16)$/) why = "NEON (8/16-bit scalar move)"
      }
      else if (mode == "a" && base ~ ("^(ldrexb|ldrexh|ldrexd|strexb|strexh|strexd|clrex|yield|wfe|wfi|sev)" conds "$")) v6k[base]++
      if (why != "" && (fn in allowed)) {
        nallowed++
        allowed_n[fn]++
        printf "  %s %s\t%s %s\t(%s) in %s: allowed, %s\n", addr_s, mode == "t" ? "T" : "A", mn, ops, why, fn, allowed[fn] > "/dev/stderr"
      } else if (why != "") {
        bad++
        cat[why]++
        if (bad <= 40) printf "  %s %s\t%s %s\t(%s) in %s\n", addr_s, mode == "t" ? "T" : "A", mn, ops, why, fn > "/dev/stderr"
      }
    }
    END {
      s = ""
      for (k in v6k) s = s sprintf(" %s %d", k, v6k[k])
      a = ""
      for (k in allowed_n) a = a sprintf(" %s %d", k, allowed_n[k])
      printf "check-armv6: %d instructions scanned, %d not ARMv6KZ+VFPv2%s%s\n", total, bad,
        (s == "" ? "" : "; ARMv6K instructions (fine on ARM1176):" s),
        (a == "" ? "" : "; in allowed run-time alternates:" a) > "/dev/stderr"
      for (k in cat) printf "check-armv6:   %s: %d\n", k, cat[k] > "/dev/stderr"
      if (total == 0) { print "check-armv6: nothing disassembled" > "/dev/stderr"; exit 1 }
      exit bad > 0
    }' || bad=1
  rm -f "$maps"
  return $bad
}

# Assembles code with one ARMv7/NEON/VFPv3/Thumb-2 instruction per line
# (raw encodings under -mcpu=arm1176jzf_s, so the object claims ARMv6) and
# checks that the scan flags every one of them and none of the ARMv6 ones.
self_test() {
  local dir
  dir=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$dir'" RETURN
  cat >"$dir/t.S" <<'EOF'
.syntax unified
.text
.arm
.global bad_arm
bad_arm:
  .inst 0xe3001000  @ movw r1, #0
  .inst 0xe3401000  @ movt r1, #0
  .inst 0xf57ff05b  @ dmb ish
  .inst 0xf57ff04f  @ dsb sy
  .inst 0xf57ff06f  @ isb sy
  .inst 0xe710f110  @ sdiv r0, r0, r1
  .inst 0xe730f110  @ udiv r0, r0, r1
  .inst 0xe7c70010  @ bfi r0, r0, #0, #8
  .inst 0xe7e70051  @ ubfx r0, r1, #0, #8
  .inst 0xe6ff0f31  @ rbit r0, r1
  .inst 0xe0602391  @ mls r0, r1, r3, r2
  .inst 0xf2000d40  @ vadd.f32 q0, q0, q0
  .inst 0xf4200a0f  @ vld1.8 {d0, d1}, [r0]
  .inst 0xeef71a00  @ vmov.f32 s3, #1.0
  .inst 0xeeba0acc  @ vcvt.f32.s32 s0, s0, #8
  .inst 0xee700ba0  @ vadd.f64 d16, d16, d16
  .inst 0xeea00a00  @ vfma.f32 s0, s0, s0
  .inst 0xe1000040  @ crc32b r0, r0, r0
  .inst 0xe1d00c9f  @ ldab r0, [r0]
  bx lr
.global good_arm
good_arm:
  ldrex r0, [r1]
  ldrexb r0, [r1]
  ldrexd r0, r1, [r2]
  strexd r3, r0, r1, [r2]
  rev r0, r1
  uxtb r0, r1
  smmul r0, r1, r2
  usat r0, #8, r1
  mcr p15, 0, r0, c7, c10, 5
  vadd.f64 d0, d1, d2
  vmov r0, r1, d15
  vmov.32 d0[1], r0
  vcvt.s32.f64 s0, d0
  vldmia r0!, {d8-d15}
  vmrs APSR_nzcv, fpscr
  bx lr
  .word 0xf57ff05b  @ data, not code
.thumb
.global bad_thumb
.type bad_thumb, %function
.thumb_func
bad_thumb:
  .inst.w 0xf2400100  @ movw r1, #0
  .inst.n 0xbf08      @ it eq
  .inst.n 0xb108      @ cbz r0, ...
  .inst.n 0xbf20      @ wfe
  bx lr
.global good_thumb
.type good_thumb, %function
.thumb_func
good_thumb:
  movs r0, #1
  bl good_arm
  rev r0, r1
  bx lr
EOF
  local expected_bad=23 out
  "$(dirname "$0")/zig/cc-arm1176.sh" -c "$dir/t.S" -o "$dir/t.o"
  # The attributes of a bare object are not a linked binary's; only the
  # instruction scan is under test here.
  out=$(scan "$dir/t.o" 2>&1 || true)
  local got
  got=$(sed -n 's/.* scanned, \([0-9]*\) not ARMv6KZ.*/\1/p' <<<"$out")
  if [ "$got" != "$expected_bad" ] || grep -q " in <good_" <<<"$out"; then
    echo "$out" >&2
    echo "check-armv6: self-test failed: $got of $expected_bad bad instructions flagged (or a good one flagged)" >&2
    return 1
  fi
  echo "check-armv6: self-test: all $expected_bad ARMv7/NEON/VFPv3/Thumb-2 instructions flagged, no ARMv6 one" >&2
}

if [ "${1:-}" = "--self-test" ]; then
  self_test
  exit
fi
[ $# -gt 0 ] || { echo "usage: scripts/check-armv6.sh BINARY... | --self-test" >&2; exit 2; }
status=0
for b in "$@"; do scan "$b" || status=1; done
exit $status
