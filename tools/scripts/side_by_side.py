#!/usr/bin/python3
"""A side-by-side crop (bicubic | ours | ground truth) of one frame, for docs.

usage: side_by_side.py GT_FRAME BICUBIC_FRAME OURS_FRAME OUT.png [--box X,Y,W,H] [--zoom Z]

The frames are PNGs of the same size (qbasicvsr-eval --save writes the super-resolved ones).
The crop is enlarged by --zoom (nearest neighbour, so pixels stay visible) and each panel gets
a caption with its PSNR-Y against the ground truth over the whole frame.
"""
import argparse
import math

import numpy as np
from PIL import Image, ImageDraw


def psnr_y(a, b):
    w = np.array([65.481, 128.553, 24.966])  # BT.601, RGB in [0,1] -> Y in 16..235
    ya = 16 + (a.astype(np.float64) / 255.0) @ w
    yb = 16 + (b.astype(np.float64) / 255.0) @ w
    mse = np.mean((ya - yb) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("gt")
    p.add_argument("bicubic")
    p.add_argument("ours")
    p.add_argument("out")
    p.add_argument("--box", default="")
    p.add_argument("--zoom", type=int, default=2)
    a = p.parse_args()
    frames = [np.array(Image.open(f).convert("RGB")) for f in (a.bicubic, a.ours, a.gt)]
    h, w = frames[2].shape[:2]
    for f in frames:
        if f.shape != frames[2].shape:
            raise SystemExit("side_by_side: the frames differ in size")
    x, y, bw, bh = (int(v) for v in a.box.split(",")) if a.box else (0, 0, w, h)
    labels = [f"bicubic {psnr_y(frames[0], frames[2]):.2f} dB", f"ours {psnr_y(frames[1], frames[2]):.2f} dB",
              "ground truth"]
    cap = 16
    panel_w, panel_h = bw * a.zoom, bh * a.zoom
    out = Image.new("RGB", (3 * panel_w + 8, panel_h + cap), "white")
    draw = ImageDraw.Draw(out)
    for i, (f, label) in enumerate(zip(frames, labels)):
        crop = Image.fromarray(f[y:y + bh, x:x + bw]).resize((panel_w, panel_h), Image.NEAREST)
        out.paste(crop, (i * (panel_w + 4), cap))
        draw.text((i * (panel_w + 4) + 4, 2), label, fill="black")
    out.save(a.out)


if __name__ == "__main__":
    main()
