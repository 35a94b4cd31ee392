#!/usr/bin/env bash
# The GPU path in one script: its checks against the CPU and its speed (docs/PERF.md, "GPU").
#
#   bench/gpu.sh pack [DIR]          on a Debian machine with the CUDA toolkit (no GPU needed):
#                                    builds against the LibTorch of the GPU machine's PyTorch
#                                    (TORCH_VERSION, default 2.11.0: the wheel's torch/include and
#                                    torch/lib, tools/scripts/build-cuda.sh) and bundles into DIR
#                                    (default .gpu) what runs there: qbasicvsr-bench, test_device,
#                                    the libraries they need beside PyTorch's, the sample clip as
#                                    raw frames.
#   bench/gpu.sh run [DIR] [OUT] [--quick]  on the GPU machine (python3 there holds a CUDA PyTorch of
#                                    that version; its torch/lib is the LibTorch the bundle uses):
#                                    the device tests, GPU against CPU on a real clip for every
#                                    precision, ms/frame and peak GPU memory at 180x320 x 30 frames;
#                                    a table on stdout and OUT/gpu.json (default OUT: ./gpu-out).
#                                    --quick: the device tests and the default model's agreement.
#   bench/gpu.sh dry-run [BUILD] [OUT]  here, without a GPU: the same run with the CPU build (default
#                                    build/), every GPU row skipped: the CPU halves of the checks,
#                                    the argument handling and the JSON.
#
# Why pack here and not build there: the GPU machines have PyTorch, nvcc and CMake but not the
# Debian libraries the project builds against (oneDNN 2, OpenCV, libzip); the bundle carries those
# few (OpenCV's image codecs are stubbed: the bench reads raw frames).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
mode=${1:-}
shift || true

case "$mode" in
pack)
  dir=$(realpath -m "${1:-$root/.gpu}")
  build=${BUILD:-$root/build-cuda}
  export TORCH_VERSION=${TORCH_VERSION:-2.11.0}
  "$root/tools/scripts/build-cuda.sh" "$build"
  meson configure "$build" -Dtests=true >/dev/null
  ninja -C "$build" bench/qbasicvsr-bench tests/test_device
  rm -rf "$dir"
  mkdir -p "$dir/bin" "$dir/lib" "$dir/libs"
  cp "$build/bench/qbasicvsr-bench" "$build/tests/test_device" "$dir/bin/"
  cp "$build/lib/libqbasicvsr.so.0.1.0" "$dir/lib/libqbasicvsr.so.0"
  cp "$build/lib/libqbasicvsr_train.so.0.1.0" "$dir/lib/libqbasicvsr_train.so.0"  # the tests link it
  strip --strip-unneeded "$dir/bin/"* "$dir/lib/"*
  # The Debian libraries beside LibTorch's, compressed (oneDNN alone is 40 MB).
  for l in libdnnl.so.2 libOpenCL.so.1 libgomp.so.1 libzip.so.4 libbz2.so.1.0 libcrypto.so.3 libz.so.1; do
    cp -L "$(ldconfig -p | awk -v l="$l" '$1 == l { print $NF; exit }')" "$dir/libs/$l"
  done
  tar -C "$dir" -cJf "$dir/libs.tar.xz" libs
  rm -rf "$dir/libs"
  # OpenCV stubs: the library links OpenCV for its image codecs, which nothing run there calls.
  # Each OpenCV symbol the bundle needs becomes a C function of that (mangled) name that aborts.
  for lib in core imgcodecs; do
    nm -D --undefined-only "$dir/lib/"libqbasicvsr*.so.0 "$dir/bin/"* | awk '/ U _ZN?K?2cv/ { print $2 }' |
      sort -u | if [ $lib = core ]; then grep '2cv3Mat'; else grep -v '2cv3Mat'; fi |
      sed 's/.*/void &(void) { fputs("OpenCV is not in this bundle (bench\/gpu.sh)\\n", stderr); abort(); }/' |
      { echo '#include <stdio.h>'; echo '#include <stdlib.h>'; cat; } >"$dir/stub.c"
    cc -O1 -shared -fPIC -Wl,-soname,libopencv_$lib.so.406 -o "$dir/lib/libopencv_$lib.so.406" "$dir/stub.c"
  done
  rm "$dir/stub.c"
  # The sample clip (eight 320x180 frames) as raw RGB, the bench's --input.
  /usr/bin/python3 - "$root/examples/data/cockatoo" "$dir/clip.rgb" <<'EOF'
import os, sys
from PIL import Image
names = sorted(n for n in os.listdir(sys.argv[1]) if n.endswith(".png"))
with open(sys.argv[2], "wb") as f:
    for n in names:
        f.write(Image.open(os.path.join(sys.argv[1], n)).convert("RGB").tobytes())
EOF
  cp "$here/gpu_run.py" "$here/pytorch_reference_bench.py" "$dir/"
  echo "torch $TORCH_VERSION" >"$dir/VERSION"
  du -sh "$dir"
  ;;
run)
  dir=$(realpath "${1:-$root/.gpu}")
  out=$(realpath -m "${2:-gpu-out}")
  exec python3 "$here/gpu_run.py" --bundle "$dir" --out "$out" --root "$root" "${@:3}"
  ;;
dry-run)
  build=$(realpath "${1:-$root/build}")
  out=$(realpath -m "${2:-gpu-out}")
  exec /usr/bin/python3 "$here/gpu_run.py" --build "$build" --out "$out" --root "$root" --dry-run
  ;;
*)
  sed -n '2,23p' "$0" >&2
  exit 2
  ;;
esac
