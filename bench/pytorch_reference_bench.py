"""Times the PyTorch implementation of BasicVSR (tests/reference/basicvsr_ref.py, the same op
sequence as BasicSR's basicvsr_arch.py) on random weights, for comparison with qbasicvsr-bench.

usage: python3 bench/pytorch_reference_bench.py [--arch 64,30] [--size 180x320] [--frames 4]
                                                [--threads 2] [--runs 2] [--device cpu|cuda] [--json]
Run it with and without LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4. On cuda (bench/gpu.sh)
fp32 is IEEE fp32 (TF32 off), as in qbasicvsr-bench.
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import basicvsr_ref  # noqa: E402
import test_reference  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="64,30")
    ap.add_argument("--size", default="180x320")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    c, n = (int(x) for x in a.arch.split(","))
    h, w = (int(x) for x in a.size.split("x"))
    torch.set_num_threads(a.threads)
    weights = test_reference.random_weights(c, n, seed=1)
    lr = torch.rand(a.frames, 3, h, w)
    gpu = a.device == "cuda"
    if gpu:
        # The reference makes its grids and zero features with the default device.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        torch.set_default_device("cuda")
        basicvsr_ref.MEAN = basicvsr_ref.MEAN.cuda()
        basicvsr_ref.STD = basicvsr_ref.STD.cuda()
        weights = {k: v.cuda() for k, v in weights.items()}
        lr = lr.cuda()
        torch.cuda.reset_peak_memory_stats()

    def sync():
        if gpu:
            torch.cuda.synchronize()

    times = []
    with torch.no_grad():
        basicvsr_ref.basicvsr(weights, lr, n)
        sync()
        for _ in range(a.runs):
            t0 = time.time()
            basicvsr_ref.basicvsr(weights, lr, n)
            sync()
            times.append((time.time() - t0) * 1000 / a.frames)
    times.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.json:
        print(json.dumps({"implementation": "pytorch reference", "arch": [c, n], "size": [h, w],
                          "frames": a.frames, "device": a.device, "ms_per_frame": times[len(times) // 2],
                          "peak_device_mb": torch.cuda.max_memory_reserved() / 2**20 if gpu else 0,
                          "peak_rss_mb": rss}))
        return
    print(f"pytorch reference C={c} N={n} {h}x{w} x {a.frames} frames, {a.threads} threads: "
          f"{times[len(times) // 2]:.1f} ms/frame (runs: {', '.join(f'{t:.0f}' for t in times)}), "
          f"peak RSS {rss:.0f} MB, LD_PRELOAD={os.environ.get('LD_PRELOAD', '')}")


if __name__ == "__main__":
    main()
