#!/usr/bin/env bash
# PSNR between the int8 and fake outputs (and each against fp32) of one model on one clip, for
# W8A8, W6A6 and W4A4 in both scopes: the agreement of the integer path with its simulation.
#   compare_precisions.sh MODEL FRAMES_DIR [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
model=$1 frames=$2 work=${3:-$(mktemp -d)}
up=${QBASICVSR_UPSCALE:-$here/build/tools/qbasicvsr-upscale}
"$up" -m "$model" -p fp32 --no-adapt "$frames" "$work/fp32" 2>/dev/null
for scope in partial full; do
  for bits in 8 6 4; do
    for p in fake int8; do
      "$up" -m "$model" -p $p --bits $bits --scope $scope --no-adapt "$frames" "$work/$p-$scope-$bits" 2>/dev/null
    done
    python3 "$here/tools/scripts/psnr_dirs.py" "$work/int8-$scope-$bits" "$work/fake-$scope-$bits" \
      --label "$scope W${bits}A${bits} int8 vs fake"
    python3 "$here/tools/scripts/psnr_dirs.py" "$work/int8-$scope-$bits" "$work/fp32" \
      --label "$scope W${bits}A${bits} int8 vs fp32"
  done
done
