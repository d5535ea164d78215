#!/usr/bin/env bash
# Builds the test peers that no package registry has, from the source kept
# beside the repository (../shared/peers, or $PSTREAM_PEERS): today the
# shmdata reference library (libshmdata, GStreamer's shmdatasink/shmdatasrc,
# sdflow) into target/peers/shmdata, which the shmdata tests run against.
# Installs its build dependencies first. Safe to run again: a built peer is
# kept (about 30 s on 2 cores the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
peers="${PSTREAM_PEERS:-$root/../shared/peers}"
if [ ! -x "$peers/build-shmdata.sh" ]; then
  echo "peers: $peers/build-shmdata.sh not found (the peers' source lives beside the repository; set PSTREAM_PEERS to its folder)" >&2
  exit 1
fi

packages=(cmake g++ pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

"$peers/build-shmdata.sh" "$root/target/peers/shmdata"
