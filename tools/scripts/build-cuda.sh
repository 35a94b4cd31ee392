#!/usr/bin/env bash
# Builds qbasicvsr against the CUDA-enabled LibTorch inside PyPI's `torch` wheel (its torch/include,
# torch/lib and torch/share are a LibTorch), with the CUDA toolkit on PATH (nvcc). It compiles and
# links without a GPU; the CPU build (./build, tools/scripts/setup-debian.sh) stays the default.
#   tools/scripts/build-cuda.sh [BUILD_DIR]     (default build-cuda)
# The wheel and the unpacked LibTorch are cached under ~/.cache/qbasicvsr/ (TORCH_VERSION picks the
# wheel; that LibTorch needs C++20). Exit status 3 when no nvcc is found: nothing to build with.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-cuda}
version=${TORCH_VERSION:-2.11.0}
cache=$HOME/.cache/qbasicvsr
root=$cache/libtorch-cuda-$version

if ! command -v nvcc >/dev/null; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then
      PATH=$d:$PATH
      break
    fi
  done
fi
if ! command -v nvcc >/dev/null; then
  echo "build-cuda: no nvcc on PATH or in /usr/local/cuda*/bin: install the CUDA toolkit" >&2
  exit 3
fi
echo "build-cuda: $(nvcc --version | tail -n 2 | head -n 1)"

if [ ! -f "$root/lib/libtorch_cuda.so" ]; then
  mkdir -p "$cache/wheels"
  wheel=$(ls "$cache"/wheels/torch-"$version"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    python3 -m pip download --quiet --no-deps "torch==$version" -d "$cache/wheels"
    wheel=$(ls "$cache"/wheels/torch-"$version"-*.whl | head -n 1)
  fi
  rm -rf "$root.tmp"
  mkdir -p "$root.tmp"
  python3 - "$wheel" "$root.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith(("torch/include/", "torch/lib/", "torch/share/")):
            z.extract(name, sys.argv[2])
PY
  [ -f "$root.tmp/torch/lib/libtorch_cuda.so" ] || {
    echo "build-cuda: $wheel holds no libtorch_cuda.so (not a CUDA build of torch)" >&2
    exit 1
  }
  rm -rf "$root"
  mv "$root.tmp/torch" "$root"
  rm -rf "$root.tmp"
fi

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Doptimization=2 -Dwerror=true -Dcpp_std=c++20 \
    -Dlibtorch="$root" -Dtests=false
fi
ninja -C "$build"
echo "build-cuda: built against $root"
