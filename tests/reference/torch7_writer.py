"""A small Torch7 binary writer (DESIGN.md section 2) for test fixtures.

No original SPyNet files may be shipped, so tests write their own from the published format:
int32 type tags, tables and torch objects with reference indices, "V 1" version strings,
storages with an int64 count, tensors with int64 sizes, strides and a 1-based offset.
"""
import struct

import numpy as np

NIL, NUMBER, STRING, TABLE, TORCH, BOOLEAN = 0, 1, 2, 3, 4, 5


class Writer:
    def __init__(self):
        self.out = bytearray()
        self.next_ref = 1

    def i32(self, v):
        self.out += struct.pack("<i", v)

    def i64(self, v):
        self.out += struct.pack("<q", v)

    def string(self, s):
        b = s.encode()
        self.i32(len(b))
        self.out += b

    def ref(self):
        self.i32(self.next_ref)
        self.next_ref += 1

    def value(self, v):
        if v is None:
            self.i32(NIL)
        elif isinstance(v, bool):
            self.i32(BOOLEAN)
            self.i32(1 if v else 0)
        elif isinstance(v, (int, float)):
            self.i32(NUMBER)
            self.out += struct.pack("<d", float(v))
        elif isinstance(v, str):
            self.i32(STRING)
            self.string(v)
        elif isinstance(v, dict):
            self.i32(TABLE)
            self.ref()
            self.i32(len(v))
            for k, x in v.items():
                self.value(k)
                self.value(x)
        elif isinstance(v, np.ndarray):
            self.tensor(v)
        elif isinstance(v, Obj):
            self.i32(TORCH)
            self.ref()
            self.string("V 1")
            self.string(v.cls)
            self.value(v.fields)
        else:
            raise TypeError(type(v))

    def tensor(self, a, cls="torch.FloatTensor", storage_cls="torch.FloatStorage"):
        a = np.ascontiguousarray(a, dtype=np.float32)
        self.i32(TORCH)
        self.ref()
        self.string("V 1")
        self.string(cls)
        self.i32(a.ndim)
        for d in a.shape:
            self.i64(d)
        for s in a.strides:
            self.i64(s // 4)
        self.i64(1)  # 1-based storage offset
        self.i32(TORCH)
        self.ref()
        self.string("V 1")
        self.string(storage_cls)
        self.i64(a.size)
        self.out += a.tobytes()


class Obj:
    def __init__(self, cls, fields):
        self.cls = cls
        self.fields = fields


def spynet_level(weights, biases, conv_cls="cudnn.SpatialConvolution"):
    """An nn.Sequential of five convolutions with ReLUs between them (modules 1,3,5,7,9)."""
    modules = {}
    idx = 1
    for k, (w, b) in enumerate(zip(weights, biases)):
        out_c, in_c, kh, kw = w.shape
        modules[idx] = Obj(conv_cls, {"weight": w, "bias": b, "nInputPlane": in_c,
                                      "nOutputPlane": out_c, "kW": kw, "kH": kh, "padW": 3,
                                      "padH": 3, "dW": 1, "dH": 1, "train": False})
        idx += 1
        if k < 4:
            modules[idx] = Obj("cudnn.ReLU", {"inplace": True, "train": False})
            idx += 1
    w = Writer()
    w.value(Obj("nn.Sequential", {"modules": modules, "train": False}))
    return bytes(w.out)
