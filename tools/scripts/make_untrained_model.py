"""Makes models/untrained-c16n2-fp32.safetensors, the stand-in default model.

No trained model exists yet. This one has random weights (fixed seed) with conv_last set to
zero, so its output is exactly the bilinear x4 base image: the pipeline runs end to end, and
nobody mistakes random features for super-resolution. It is written as a BasicSR checkpoint and
imported with qbasicvsr-import, so it goes through the same path as real checkpoints.

usage: make_untrained_model.py BUILD_DIR OUT.safetensors
"""
import collections
import os
import subprocess
import sys
import tempfile

import torch

C, N = 16, 2
SPY = [(32, 8), (64, 32), (32, 64), (16, 32), (2, 16)]


def main():
    build, out = sys.argv[1], sys.argv[2]
    g = torch.Generator().manual_seed(2026)
    w = collections.OrderedDict()

    def conv(name, o, i, k, zero=False):
        bound = 0.1 * (6.0 / (i * k * k)) ** 0.5
        w[name + ".weight"] = torch.zeros(o, i, k, k) if zero else (torch.rand(o, i, k, k, generator=g) * 2 - 1) * bound
        w[name + ".bias"] = torch.zeros(o)

    for level in range(6):
        for k, (o, i) in enumerate(SPY):
            conv(f"spynet.basic_module.{level}.basic_module.{2 * k}", o, i, 7)
    for b in ("backward_trunk", "forward_trunk"):
        conv(f"{b}.main.0", C, C + 3, 3)
        for i in range(N):
            conv(f"{b}.main.2.{i}.conv1", C, C, 3)
            conv(f"{b}.main.2.{i}.conv2", C, C, 3)
    conv("fusion", C, 2 * C, 1)
    conv("upconv1", 4 * C, C, 3)
    conv("upconv2", 4 * 64, C, 3)
    conv("conv_hr", 64, 64, 3)
    conv("conv_last", 3, 64, 3, zero=True)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "untrained-c16n2.pth")
        torch.save({"params": w}, ckpt)
        subprocess.run([os.path.join(build, "tools", "qbasicvsr-import"), ckpt, "-o", out], check=True)


if __name__ == "__main__":
    main()
