#!/usr/bin/env bash
# Makes the copy of *ring* that the ARMv6 build (scripts/cross.sh) patches in.
#   scripts/armv6/ring.sh DIR     prints the copy's path (DIR/ring-VERSION)
#
# Why: rustls' crypto provider is *ring*, and *ring* assembles its 32-bit ARM
# code (OpenSSL's perlasm: SHA-2, ChaCha20, Montgomery multiplication, GHASH,
# AES, X25519, Poly1305) for every ARM target, NEON routines included,
# chosen at run time; it has no switch to leave them out (its issue #857:
# "readelf reports 7-A CPU with NEONv1 on non armv7 targets"). An ARMv6
# binary must not contain any ARMv7 or NEON instruction, called or not.
#
# What: the locked *ring* release, unchanged except that 32-bit ARM builds
# as *ring* builds for the architectures it has no assembly for (MIPS,
# PowerPC, RISC-V, ...): its portable C and Rust code (fiat-crypto field
# arithmetic, constant-time bitsliced AES, ...), the same code *ring* tests
# on those targets.
#   build.rs         no ARM assembly target and no ARM-only C sources
#   target.h         C: no OPENSSL_ARM (the 32-bit generic branch instead)
#   src/**/*.rs      every `target_arch = "arm"` predicate made false
# Cargo.toml is left as it is so that Cargo.lock's graph stays the same.
# The copy is only remade when the locked version or this script changes
# (a fresh copy would make Cargo rebuild *ring*).
set -euo pipefail
cd "$(dirname "$0")/../.."

dest=$1
version=$(awk '/^name = "ring"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$version" ] || { echo "armv6/ring.sh: no ring in Cargo.lock" >&2; exit 1; }
out=$dest/ring-$version
stamp="$version $(sha256sum "$0" | cut -d' ' -f1)"
if [ -f "$out/.pstream-armv6" ] && [ "$(cat "$out/.pstream-armv6")" = "$stamp" ]; then
  echo "$out"
  exit 0
fi

src=$(cargo metadata --locked --format-version 1 --filter-platform arm-unknown-linux-musleabihf 2>/dev/null |
  python3 -c 'import json, sys
v = sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "ring" and p["version"] == v and p["source"]:
        print(p["manifest_path"].rsplit("/", 1)[0])' "$version")
[ -d "$src" ] || { echo "armv6/ring.sh: ring $version's source not found (cargo fetch?)" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$dest"
cp -a "$src" "$out"
chmod -R u+w "$out"

# Fails unless `from` occurs in the file (a new ring release that moved
# things must be looked at again, not patched blindly).
replace() {
  local file=$1 from=$2 to=$3
  grep -qF -- "$from" "$out/$file" || { echo "armv6/ring.sh: '$from' not in $file of ring $version" >&2; exit 1; }
  FROM=$from TO=$to perl -0pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/g' "$out/$file"
}
# build.rs matches CARGO_CFG_TARGET_ARCH against ARM to pick the perlasm
# target and the ARM-only sources; no target arch has this name.
replace build.rs 'const ARM: &str = "arm";' 'const ARM: &str = "arm (no assembly in the ARMv6 build)";'
replace include/ring-core/target.h '#elif defined(__ARMEL__) || defined(_M_ARM)' '#elif defined(_M_ARM)'
# `any()` is cfg's "false".
n=0
while IFS= read -r f; do
  replace "${f#"$out"/}" 'target_arch = "arm"' 'any()'
  n=$((n + 1))
done < <(grep -rlF 'target_arch = "arm"' "$out/src")
if ((n < 10)); then
  echo "armv6/ring.sh: only $n files of ring $version name target_arch \"arm\"; look again" >&2
  exit 1
fi
echo "$stamp" >"$out/.pstream-armv6"
echo "$out"
