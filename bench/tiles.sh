#!/usr/bin/env bash
# Spatial tiling against untiled output: the same clip with --tile-size R (full-width bands of R
# input rows, --tile-overlap K rows of context) and with tiling off, RGB PSNR per frame.
#   tiles.sh MODEL FRAMES_DIR [ROWS] [OVERLAP] [PRECISION]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
model=$1 frames=$2 rows=${3:-64} overlap=${4:-16} precision=${5:-fp32}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
up=${QBASICVSR_UPSCALE:-$here/build/tools/qbasicvsr-upscale}
"$up" -m "$model" -p "$precision" --no-adapt --max-memory 0 "$frames" "$work/whole" 2>/dev/null
"$up" -m "$model" -p "$precision" --no-adapt --tile-size "$rows" --tile-overlap "$overlap" "$frames" "$work/tiled" 2>/dev/null
python3 "$here/tools/scripts/psnr_dirs.py" "$work/tiled" "$work/whole" --label "tiles of $rows rows, overlap $overlap vs untiled"
