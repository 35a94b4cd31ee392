#!/usr/bin/env python3
"""Per-frame RGB PSNR between two folders of same-named PNG frames; prints min/mean/max.

usage: psnr_dirs.py DIR_A DIR_B [--label TEXT] [--json]
"""
import argparse
import json
import math
import os

import numpy as np
from PIL import Image


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--label", default="")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    names = sorted(n for n in os.listdir(args.a) if n.lower().endswith(".png"))
    values = [psnr(np.asarray(Image.open(os.path.join(args.a, n)).convert("RGB")),
                   np.asarray(Image.open(os.path.join(args.b, n)).convert("RGB"))) for n in names]
    finite = [v for v in values if math.isfinite(v)] or [float("inf")]
    summary = {"label": args.label, "frames": len(values), "min": min(values),
               "mean": sum(finite) / len(finite) if len(finite) == len(values) else float("inf"),
               "max": max(values)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.label}: {len(values)} frames, PSNR min {summary['min']:.2f} mean {summary['mean']:.2f} "
              f"max {summary['max']:.2f} dB")


if __name__ == "__main__":
    main()
