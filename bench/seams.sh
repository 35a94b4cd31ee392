#!/usr/bin/env bash
# Seams of chunked processing: the element's chunking (chunk 10, overlap 0/2/4/8) against one pass
# over the whole clip, per-frame RGB PSNR of the 8-bit outputs.
#   seams.sh MODEL FRAMES_DIR [PRECISION] [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
model=$1 frames=$2 precision=${3:-fp32} work=${4:-$(mktemp -d)}
up=${QBASICVSR_UPSCALE:-$here/build/tools/qbasicvsr-upscale}
n=$(ls "$frames" | grep -ci '\.png$')
"$up" -m "$model" -p "$precision" --no-adapt --chunk "$n" --overlap 0 "$frames" "$work/one-pass" 2>/dev/null
for k in 0 2 4 8; do
  "$up" -m "$model" -p "$precision" --no-adapt --chunk 10 --overlap $k "$frames" "$work/overlap-$k" 2>/dev/null
  python3 "$here/tools/scripts/psnr_dirs.py" "$work/overlap-$k" "$work/one-pass" --label "chunk 10, overlap $k vs one pass"
done
