#!/usr/bin/env python3
"""How far a model's output moves when one pixel of one input frame moves by one 16-bit step.

    rounding_chaos.py MODEL GT_DIR WORK_DIR [PRECISION ...]   (default precisions: fp32 fake int8)

Makes a 16-bit grey LR clip from the frames of GT_DIR (luma, bicubic 1/4), and a copy whose middle
frame has one pixel raised by 1/65535, upscales both with build/tools/qbasicvsr-upscale at each
precision (--no-adapt, --float-layers fp32), and prints per frame the PSNR (16-bit scale) of the
two outputs against each other and of each precision against fp32. In fp32 the change is lost in
float rounding (~126 dB); where a quantized network's outputs move about as far as they are from
fp32, its rounding is chaotic: which grid values a run lands on is decided by differences far
below anything visible, and its quantization error is one draw of a noise, not a fixed offset.
Needs numpy and Pillow (Debian's python3-numpy, python3-pil).
"""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
UPSCALE = os.path.join(HERE, "..", "build", "tools", "qbasicvsr-upscale")


def write_clip(frames, folder):
    os.makedirs(folder, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f, mode="I;16").save(os.path.join(folder, "%03d.png" % i))


def read_clip(folder):
    return [np.asarray(Image.open(f), dtype=np.float64) / 65535
            for f in sorted(glob.glob(os.path.join(folder, "*.png")))]


def psnr(a, b):
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    model, gt, work = sys.argv[1:4]
    precisions = sys.argv[4:] or ["fp32", "fake", "int8"]
    if "fp32" not in precisions:
        precisions.insert(0, "fp32")
    frames = []
    for f in sorted(glob.glob(os.path.join(gt, "*.png"))):
        y = Image.open(f).convert("L")
        y = y.resize((y.width // 4, y.height // 4), Image.BICUBIC)
        frames.append(np.asarray(y, dtype=np.uint16) * 257)
    if len(frames) < 2:
        sys.exit(gt + ": needs at least 2 PNG frames")
    nudged = [f.copy() for f in frames]
    mid = nudged[len(nudged) // 2]
    mid[mid.shape[0] // 2, mid.shape[1] // 2] += 1
    write_clip(frames, os.path.join(work, "lr"))
    write_clip(nudged, os.path.join(work, "lr-nudged"))
    out = {}
    for p in precisions:
        for lr in ("lr", "lr-nudged"):
            dst = os.path.join(work, "%s-%s" % (p, lr))
            args = [UPSCALE, "-m", model, os.path.join(work, lr), dst, "-p", p, "--no-adapt", "--float-layers", "fp32"]
            shutil.rmtree(dst, ignore_errors=True)
            subprocess.run(args, check=True, stderr=subprocess.DEVNULL)
            out[p, lr] = read_clip(dst)
    print("frame  " + "  ".join("%s: nudged / vs fp32" % p for p in precisions))
    for i in range(len(frames)):
        row = ["%5d" % i]
        for p in precisions:
            row.append("%6.2f / %6.2f dB" % (psnr(out[p, "lr"][i], out[p, "lr-nudged"][i]),
                                              psnr(out[p, "lr"][i], out["fp32", "lr"][i])))
        print("  ".join(row))


if __name__ == "__main__":
    main()
