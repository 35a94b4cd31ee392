#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) and builds qbasicvsr into ./build.
# Everything comes from Debian's archive; run again to rebuild.
set -euo pipefail
cd "$(dirname "$0")/../.."

packages=(
  g++ meson ninja-build pkg-config ccache
  libtorch-dev libdnnl-dev python3-torch python3-numpy python3-pil python3-yaml parallel
  nlohmann-json3-dev libzip-dev libopencv-imgcodecs-dev libgtest-dev
  clang clang-format libclang-rt-14-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav python3-gi gir1.2-gstreamer-1.0
  gir1.2-gst-plugins-base-1.0
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release -Doptimization=2 -Dwerror=true
fi
ninja -C build
