"""Writes the small checkpoint fixtures under tests/fixtures/ (run once; the outputs are committed).

Each holds a handful of tensors with known values (arange), so the C++ unpickler tests can
check exact contents: a BasicSR-style zip checkpoint with a transposed and an offset view, the
same in the legacy (pre-1.6) stream format, and an mmagic-style checkpoint whose meta holds
numpy scalars and nested objects.
"""
import collections
import os
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "fixtures")
sys.path.insert(0, here)
import torch7_writer  # noqa: E402


def state():
    base = torch.arange(24, dtype=torch.float32)
    sd = collections.OrderedDict()
    sd["a.weight"] = base.view(2, 3, 4).clone()
    sd["a.bias"] = torch.arange(5, dtype=torch.float64)
    sd["t.weight"] = torch.arange(6, dtype=torch.float32).view(2, 3).t()  # strided view
    shared = torch.arange(10, dtype=torch.float16)
    sd["v.weight"] = shared[4:7]  # offset view into a larger storage
    sd["count"] = torch.tensor(7, dtype=torch.int64)
    return sd


def main():
    os.makedirs(out, exist_ok=True)
    torch.save({"params": state()}, os.path.join(out, "basicsr_zip.pth"))
    torch.save({"params_ema": state(), "params": state()}, os.path.join(out, "basicsr_legacy.pth"),
               _use_new_zipfile_serialization=False)
    meta = {"epoch": np.int64(3), "lr": np.float32(0.5), "hist": [1, 2.5, "x", None, True],
            "nested": {"k": (1, 2)}}
    sd = collections.OrderedDict(("generator." + k, v) for k, v in state().items())
    torch.save({"meta": meta, "state_dict": sd}, os.path.join(out, "mmagic_zip.pth"))
    # Two small convolutions (known values) around a ReLU; the second one is a legacy
    # nn.SpatialConvolutionMM whose weight is stored flat as [out, in*kh*kw].
    w1 = np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3)
    w2 = np.arange(4, dtype=np.float32).reshape(1, 4) / 4.0
    modules = {
        1: torch7_writer.Obj("cudnn.SpatialConvolution", {
            "weight": w1, "bias": np.array([0.5, -0.5], np.float32), "nInputPlane": 1,
            "nOutputPlane": 2, "kW": 3, "kH": 3}),
        2: torch7_writer.Obj("nn.ReLU", {"inplace": False}),
        3: torch7_writer.Obj("nn.SpatialConvolutionMM", {
            "weight": w2, "bias": np.array([1.0], np.float32), "nInputPlane": 1,
            "nOutputPlane": 1, "kW": 2, "kH": 2}),
    }
    w = torch7_writer.Writer()
    w.value(torch7_writer.Obj("nn.Sequential", {"modules": modules}))
    with open(os.path.join(out, "small_sequential.t7"), "wb") as f:
        f.write(bytes(w.out))

if __name__ == "__main__":
    main()
