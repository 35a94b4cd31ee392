"""The C++ network against the independent PyTorch reference (DESIGN.md section 2).

For each architecture, random weights are saved as a BasicSR checkpoint (zip), an mmagic
checkpoint (zip, 'generator.' prefix, numpy scalars in meta) and a BasicSR legacy stream, and
also with six SPyNet Torch7 level files; each is imported with qbasicvsr-import, run by the C++
forward driver, and compared with the reference on the same weights. Tolerance: 1e-4 max abs
error on outputs for [0,1] inputs.

usage: test_reference.py BUILD_DIR [--arch C,N[,H,W,T]]...
"""
import collections
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import basicvsr_ref  # noqa: E402
import torch7_writer  # noqa: E402

TOLERANCE = 1e-4
SPY = [(32, 8), (64, 32), (32, 64), (16, 32), (2, 16)]


def random_weights(c, n, seed):
    g = torch.Generator().manual_seed(seed)

    def conv(name, out_c, in_c, k, scale=1.0):
        bound = scale * (6.0 / (in_c * k * k)) ** 0.5
        w[name + ".weight"] = (torch.rand(out_c, in_c, k, k, generator=g) * 2 - 1) * bound
        w[name + ".bias"] = (torch.rand(out_c, generator=g) * 2 - 1) * 0.01

    w = collections.OrderedDict()
    for level in range(6):
        for k, (o, i) in enumerate(SPY):
            # Large enough that flows are several pixels, so warping is really exercised.
            conv(f"spynet.basic_module.{level}.basic_module.{2 * k}", o, i, 7, 0.5)
    for b in ("backward_trunk", "forward_trunk"):
        conv(f"{b}.main.0", c, c + 3, 3)
        for i in range(n):
            conv(f"{b}.main.2.{i}.conv1", c, c, 3, 0.3)
            conv(f"{b}.main.2.{i}.conv2", c, c, 3, 0.3)
    conv("fusion", c, 2 * c, 1)
    conv("upconv1", 4 * c, c, 3)
    conv("upconv2", 4 * 64, c, 3)
    conv("conv_hr", 64, 64, 3)
    conv("conv_last", 3, 64, 3, 0.3)
    return w


def to_mmagic(w):
    out = collections.OrderedDict()
    for k, v in w.items():
        name = k
        if k.startswith("spynet."):
            parts = k.split(".")  # spynet.basic_module.L.basic_module.K.weight
            name = f"spynet.basic_module.{parts[2]}.basic_module.{int(parts[4]) // 2}.conv.{parts[5]}"
        name = name.replace("backward_trunk", "backward_resblocks").replace("forward_trunk", "forward_resblocks")
        name = name.replace("upconv1.", "upsample1.upsample_conv.").replace("upconv2.", "upsample2.upsample_conv.")
        out["generator." + name] = v
    out["generator.spynet.mean"] = basicvsr_ref.MEAN.clone()
    out["generator.spynet.std"] = basicvsr_ref.STD.clone()
    out["step_counter"] = torch.tensor(5)
    for k in list(w)[:3]:
        out["generator_ema." + k] = torch.zeros(1)  # must be ignored
    return out


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAILED: {' '.join(cmd)}\n{r.stderr}")
    return r


def check(build, tmp, tag, ckpt_path, extra_inputs, weights, blocks, lr):
    model = os.path.join(tmp, tag + ".safetensors")
    run([os.path.join(build, "tools", "qbasicvsr-import"), ckpt_path, *extra_inputs, "-o", model])
    inp, out = os.path.join(tmp, "in.npy"), os.path.join(tmp, "out.npy")
    np.save(inp, lr.numpy())
    run([os.path.join(build, "tests", "forward_driver"), model, inp, out])
    with torch.no_grad():
        ref, _, _ = basicvsr_ref.basicvsr(weights, lr, blocks)
    got = np.load(out)
    err = float(np.abs(got - ref.numpy()).max())
    status = "ok" if err <= TOLERANCE else "FAIL"
    print(f"{status} {tag}: max abs error {err:.2e} (tolerance {TOLERANCE:g})")
    return err <= TOLERANCE


def main():
    build = sys.argv[1]
    archs = [a.split("=", 1)[1] if "=" in a else a for a in sys.argv[2:] if not a.startswith("--")] or ["16,2,150,44,4"]
    torch.set_num_threads(2)
    ok = True
    for spec in archs:
        c, n, h, w, t = ([int(x) for x in spec.split(",")] + [64, 48, 3])[:5]
        weights = random_weights(c, n, seed=c * 100 + n)
        lr = torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(1))
        with tempfile.TemporaryDirectory() as tmp:
            p = os.path.join(tmp, "basicsr.pth")
            torch.save({"params": weights}, p)
            ok &= check(build, tmp, f"basicsr C={c} N={n} {h}x{w}x{t}", p, [], weights, n, lr)
            p = os.path.join(tmp, "mmagic.pth")
            torch.save({"meta": {"epoch": np.int64(1), "lr": np.float32(1e-4)}, "state_dict": to_mmagic(weights)}, p)
            ok &= check(build, tmp, f"mmagic C={c} N={n}", p, [], weights, n, lr)
            if c <= 16:
                p = os.path.join(tmp, "legacy.pth")
                torch.save({"params": weights}, p, _use_new_zipfile_serialization=False)
                ok &= check(build, tmp, f"basicsr-legacy C={c} N={n}", p, [], weights, n, lr)
                # SPyNet from Torch7 level files replaces the checkpoint's flow network.
                spy = random_weights(c, 0, seed=99)
                t7 = []
                for level in range(6):
                    ws = [spy[f"spynet.basic_module.{level}.basic_module.{2 * k}.weight"].numpy() for k in range(5)]
                    bs = [spy[f"spynet.basic_module.{level}.basic_module.{2 * k}.bias"].numpy() for k in range(5)]
                    f = os.path.join(tmp, f"modelL{level + 1}_test.t7")
                    with open(f, "wb") as fh:
                        fh.write(torch7_writer.spynet_level(ws, bs))
                    t7.append(f)
                merged = collections.OrderedDict(weights)
                merged.update({k: v for k, v in spy.items() if k.startswith("spynet.")})
                ok &= check(build, tmp, f"basicsr+t7 C={c} N={n}", os.path.join(tmp, "basicsr.pth"),
                            list(reversed(t7)), merged, n, lr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
