#!/usr/bin/env bash
# Boots the guest prepare.sh built (qemu, pure emulation) and runs a script
# in it, with a host directory shared over 9p as /share.
#
#   scripts/vm/run.sh [--timeout SECS] [--smp N] [--mem MB] [--net] SHARE SCRIPT [PROGRAM...]
#
# Each PROGRAM (a path, or a name looked up in PATH) is copied to SHARE/bin
# and the shared libraries ldd lists for it, loader included, to SHARE/lib;
# the guest finds them at /share/bin (in its PATH) and through /lib64 and
# /lib/x86_64-linux-gnu, which point at /share/lib. SCRIPT runs as
# /share/guest.sh under busybox sh with /share as the working directory; its
# output goes to SHARE/guest.log, the kernel console to SHARE/console.log.
# The guest has no network device, only its own loopback, unless --net gives
# it qemu's user network (a virtio NIC behind slirp, no host privileges):
# the guest's script brings it up (net_up in tests/v4l2_vm.rs) as
# 10.0.2.15, and 10.0.2.2 reaches the host's own loopback, where the tests'
# peers listen.
#
# qemu's exit code says nothing about the guest, so this reads SHARE/status
# (written by the guest's init) and exits with the script's code: 0 when it
# passed, its own code when it failed, 125 when the guest never reported
# (no boot, a panic, or the timeout, default 300 s, ran out).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
vm=${PSTREAM_VM_DIR:-$repo/target/vm}
timeout=300
smp=2
mem=1024
nic=none
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --net) nic=user,model=virtio-net-pci,ipv6=off; shift ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { sed -n '5,6p' "$0" >&2; exit 2; }
share=$(cd "$1" && pwd)
script=$2
shift 2

[ -f "$vm/bzImage" ] && [ -f "$vm/initramfs.cpio.gz" ] ||
  { echo "run: no guest in $vm: run scripts/vm/prepare.sh first" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null ||
  { echo "run: qemu-system-x86_64 not found (scripts/install-deps.sh installs it)" >&2; exit 2; }

mkdir -p "$share/bin" "$share/lib"
for prog in "$@"; do
  path=$(command -v "$prog") || { echo "run: no program $prog" >&2; exit 2; }
  cp -L "$path" "$share/bin/"
  # "libfoo.so.1 => /lib/.../libfoo.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)":
  # copy each under the name the program asks for.
  ldd "$path" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 } $1 ~ /^\// { print $1, $1 }' |
    while read -r name file; do
      dest=$share/lib/$(basename "$name")
      [ -e "$dest" ] || cp -L "$file" "$dest"
    done
done
cp "$script" "$share/guest.sh"
rm -f "$share/status" "$share/status.tmp" "$share/guest.log"

start=$EPOCHREALTIME
# -no-reboot: a guest kernel panic (panic=-1 reboots at once) ends qemu too.
timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
  -accel tcg -cpu max -smp "$smp" -m "$mem" \
  -kernel "$vm/bzImage" -initrd "$vm/initramfs.cpio.gz" \
  -append "console=ttyS0 quiet panic=-1 random.trust_cpu=on" \
  -display none -monitor none -serial "file:$share/console.log" \
  -nic "$nic" -no-reboot \
  -virtfs "local,path=$share,mount_tag=host0,security_model=none,id=host0" \
  </dev/null >"$share/qemu.log" 2>&1 || true
elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')

if [ -f "$share/status" ]; then
  code=$(awk '{ print $2 }' "$share/status")
  printf 'run: guest script exit %s after %.1f s in the VM\n' "$code" "$elapsed" >&2
  exit "$code"
fi
printf 'run: the guest did not report within %s s (%.1f s elapsed); console tail:\n' "$timeout" "$elapsed" >&2
tail -n 30 "$share/console.log" >&2 2>/dev/null || true
cat "$share/qemu.log" >&2
exit 125
