#!/usr/bin/env bash
# Prepares a qemu guest with real V4L2 devices for the device tests: Debian's
# kernel (which ships the vivid test driver), v4l2loopback built for it, the
# virtual stateful codec vicodec and v4l2-mem2mem (Debian's config leaves both
# unset: built out of tree from the matching linux-source package), and a
# busybox initramfs that mounts a 9p share from the host and runs a script
# from it (see run.sh). Nothing is installed on the host: the packages are
# fetched with `apt-get download` and unpacked with `dpkg-deb -x`.
#
#   scripts/vm/prepare.sh [--refresh]
#
# Everything lands in $PSTREAM_VM_DIR (default <repo>/target/vm); a second run
# reuses it and returns at once. --refresh resolves the current kernel package
# again and rebuilds. Prints the directory holding bzImage and initramfs.
# Needs: apt-get, dpkg-deb, depmod/modprobe (kmod), cpio, gzip, make and gcc-12
# (the compiler Debian's kernel was built with).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
vm=${PSTREAM_VM_DIR:-$repo/target/vm}
refresh=0
[ "${1:-}" = "--refresh" ] && refresh=1

# The guest's layout version: a cached guest of an older layout is rebuilt.
layout=4
if [ $refresh -eq 0 ] && grep -qx "layout $layout" "$vm/ready" 2>/dev/null &&
  [ -f "$vm/bzImage" ] && [ -f "$vm/initramfs.cpio.gz" ]; then
  echo "$vm"
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb depmod modprobe cpio gzip make gcc-12; do
  command -v "$tool" >/dev/null || { echo "prepare: $tool not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

start=$(date +%s)
rm -rf "$vm/debs" "$vm/root" "$vm/build" "$vm/initramfs" "$vm/ready"
mkdir -p "$vm/debs" "$vm/root" "$vm/build"

# The kernel linux-image-amd64 points at today, e.g. linux-image-6.1.0-56-amd64.
image=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ { print $2; exit }')
[ -n "$image" ] || { echo "prepare: apt-cache knows no linux-image-amd64 dependency (apt-get update?)" >&2; exit 1; }
kver=${image#linux-image-}
flavour=${kver##*-}            # amd64
abi=${kver%-"$flavour"}        # 6.1.0-56
series=${abi%.*-*}             # 6.1
headers=linux-headers-$kver
echo "prepare: kernel $kver" >&2

# vicodec's and v4l2-mem2mem's sources: a handful of files out of the
# linux-source tarball (140 MB), cached in $vm/src-cache by kernel version so
# that a rebuilt guest does not fetch and unpack it again.
srccache=$vm/src-cache/$kver
source_pkg=""
[ -f "$srccache/done" ] || source_pkg=linux-source-$series

# The -amd64 headers need the -common headers and the kbuild tools (modpost,
# fixdep) of the same series.
download() {
  (cd "$vm/debs" && apt-get download -q "$image" "$headers" "linux-headers-$abi-common" \
    "linux-kbuild-$series" v4l2loopback-dkms busybox-static $source_pkg 2>&1 |
    { grep -v '^W: Download is performed unsandboxed' || true; } >&2)
}
if ! download; then
  # Stale package lists name versions the mirror no longer has.
  echo "prepare: download failed; refreshing the package lists" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q >&2
  download
fi
for deb in "$vm"/debs/*.deb; do
  dpkg-deb -x "$deb" "$vm/root"
done

root=$vm/root
hdir=$root/usr/src/$headers
# The -amd64 headers' Makefile includes the -common one by absolute path
# (/usr/src/...), which exists only where the package is installed.
sed -i "s|^include /usr/src/|include $root/usr/src/|" "$hdir/Makefile"

# v4l2loopback from Debian's DKMS source, built against those headers.
src=$(ls -d "$root"/usr/src/v4l2loopback-* | head -n1)
cp -r "$src" "$vm/build/v4l2loopback"
# (No vmlinux in the headers, so no BTF for it: kbuild says so, harmlessly.)
make -s -C "$hdir" M="$vm/build/v4l2loopback" modules 2>&1 | { grep -v 'Skipping BTF' || true; } >&2
mkdir -p "$root/lib/modules/$kver/updates"
cp "$vm/build/v4l2loopback/v4l2loopback.ko" "$root/lib/modules/$kver/updates/"

# v4l2-mem2mem (the memory-to-memory job framework) and vicodec (the kernel's
# virtual FWHT stateful encoder and decoder) from the kernel's own source:
# only the files they need leave the tarball.
m2m_start=$(date +%s)
if [ ! -f "$srccache/done" ]; then
  tarball=$(ls "$root"/usr/src/linux-source-"$series".tar.xz)
  top=linux-source-$series
  rm -rf "$srccache" && mkdir -p "$srccache"
  tar -xJf "$tarball" -C "$srccache" --strip-components=1 \
    "$top/drivers/media/v4l2-core/v4l2-mem2mem.c" "$top/drivers/media/test-drivers/vicodec"
  touch "$srccache/done"
fi
m2m=$vm/build/m2m
mkdir -p "$m2m"
cp "$srccache/drivers/media/v4l2-core/v4l2-mem2mem.c" "$srccache"/drivers/media/test-drivers/vicodec/*.[ch] "$m2m/"
printf '%s\n' 'obj-m := v4l2-mem2mem.o vicodec.o' \
  'vicodec-objs := vicodec-core.o codec-fwht.o codec-v4l2-fwht.o' >"$m2m/Kbuild"
make -s -C "$hdir" M="$m2m" modules 2>&1 | { grep -v 'Skipping BTF' || true; } >&2
cp "$m2m/v4l2-mem2mem.ko" "$m2m/vicodec.ko" "$root/lib/modules/$kver/updates/"
echo "prepare: vicodec and v4l2-mem2mem built in $(($(date +%s) - m2m_start)) s" >&2
depmod -b "$root" "$kver"

# The initramfs: static busybox, the modules the guest may load, and /init.
ird=$vm/initramfs
mods=$ird/lib/modules/$kver
mkdir -p "$ird"/{bin,dev,proc,sys,tmp,share,etc/modchain} "$mods"
cp "$root/bin/busybox" "$ird/bin/busybox"
# One chain file per module the guest loads by name: the .ko files in the
# order `modprobe --show-depends` gives (dependencies first, itself last).
for name in 9p 9pnet_virtio virtio_pci virtio_net vivid v4l2loopback vicodec; do
  modprobe -d "$root" -S "$kver" --show-depends "$name" | awk '$1 == "insmod" { print $2 }' |
    while read -r ko; do
      base=$(basename "$ko")
      cp -n "$ko" "$mods/$base"
      echo "/lib/modules/$kver/$base"
    done >"$ird/etc/modchain/$name"
  [ -s "$ird/etc/modchain/$name" ] || { echo "prepare: no module $name in $kver" >&2; exit 1; }
done
# A modules.dep for those, so that the guest's own modprobe (busybox) loads
# them by name as on a real machine: what `pstream setup --apply` runs.
cp "$root/lib/modules/$kver"/modules.{builtin,order} "$mods/" 2>/dev/null || true
depmod -b "$ird" "$kver"

cat >"$ird/bin/loadmod" <<'EOF'
#!/bin/sh
# loadmod NAME [PARAM=VALUE...]: insmod NAME's dependencies in order (those
# already loaded are skipped), then NAME itself with the parameters.
name=$1
shift
chain=/etc/modchain/$name
[ -f "$chain" ] || { echo "loadmod: no module $name in this guest" >&2; exit 1; }
last=$(tail -n1 "$chain")
for ko in $(cat "$chain"); do
  mod=$(basename "$ko" .ko | tr - _)
  [ -d "/sys/module/$mod" ] && [ "$ko" != "$last" ] && continue
  if [ "$ko" = "$last" ]; then
    insmod "$ko" "$@" || exit 1
  else
    insmod "$ko" || exit 1
  fi
done
EOF
chmod +x "$ird/bin/loadmod"

cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
# Mounts the host's 9p share, runs /share/guest.sh with its output in
# /share/guest.log and its exit code in /share/status, then powers off.
/bin/busybox --install -s /bin
export PATH=/bin:/share/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
say() { echo "pstream-vm: $*" >/dev/console; }
for m in virtio_pci 9pnet_virtio 9p; do loadmod $m || say "cannot load $m"; done
# The virtio device is probed asynchronously: retry the mount for a while.
i=0
until mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 host0 /share 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 50 ] || { say "cannot mount the 9p share"; poweroff -f; }
  sleep 0.1
done
# Programs copied from the host with their libraries: their loader and
# library paths point at the share.
mkdir -p /lib
ln -s /share/lib /lib64
ln -s /share/lib /lib/x86_64-linux-gnu
ip link set lo up
hostname pstream-vm
say "running guest.sh"
cd /share
HOME=/tmp sh /share/guest.sh >/share/guest.log 2>&1
echo "exit $?" >/share/status.tmp
mv /share/status.tmp /share/status
sync
say "guest.sh finished: $(cat /share/status)"
cd /
umount /share
poweroff -f
EOF
chmod +x "$ird/init"

(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -6) >"$vm/initramfs.cpio.gz"
cp "$root/boot/vmlinuz-$kver" "$vm/bzImage"
# The unpacked packages (half a gigabyte, mostly modules) served their purpose.
rm -rf "$vm/root" "$vm/debs" "$vm/build"
printf '%s\nlayout %s\n' "$kver" "$layout" >"$vm/ready"
echo "prepare: $kver ready in $(($(date +%s) - start)) s, initramfs $(du -k "$vm/initramfs.cpio.gz" | cut -f1) KiB" >&2
echo "$vm"
