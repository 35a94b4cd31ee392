"""The run half of bench/gpu.sh: device tests, GPU-vs-CPU agreement on a real clip, speed.

Writes OUT/gpu.json and prints a table. With --dry-run (no GPU, the CPU build) only the CPU rows
run and every GPU row says "skipped": the argument handling, the CPU references and the JSON.
"""
import argparse
import json
import os
import subprocess
import sys
import tarfile
import time

import numpy as np

SIZE = (180, 320)  # LR height, width: the sample clip's and the speed runs'
SPEED_FRAMES = 30
CLIP_FRAMES = 8
# Agreement needed between GPU and CPU outputs (8-bit frames, PSNR over the clip): fp32 computes the
# same sums in another order; fp16/bf16 round every convolution's inputs and weights.
MIN_DB = {"fp32": 50.0, "fp16": 45.0, "bf16": 38.0}


def log(msg):
    print(msg, flush=True)


class Runner:
    def __init__(self, a):
        self.a = a
        self.root = a.root
        self.env = dict(os.environ)
        if a.dry_run:
            self.bench = os.path.join(a.build, "bench", "qbasicvsr-bench")
            self.test = os.path.join(a.build, "tests", "test_device")
            self.clip = os.path.join(a.out, "clip.rgb")
            self.make_clip()
        else:
            b = a.bundle
            self.bench = os.path.join(b, "bin", "qbasicvsr-bench")
            self.test = os.path.join(b, "bin", "test_device")
            self.clip = os.path.join(b, "clip.rgb")
            libs = os.path.join(a.out, "libs")
            if not os.path.isdir(libs):
                with tarfile.open(os.path.join(b, "libs.tar.xz")) as t:
                    t.extractall(a.out)
            import torch  # the GPU machine's PyTorch: its torch/lib is the LibTorch the bundle links
            torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
            self.env["LD_LIBRARY_PATH"] = ":".join(
                [os.path.join(b, "lib"), torch_lib, libs, self.env.get("LD_LIBRARY_PATH", "")])
        self.env["QBASICVSR_MODEL_DIR"] = os.path.join(self.root, "models")

    def make_clip(self):
        from PIL import Image
        src = os.path.join(self.root, "examples", "data", "cockatoo")
        with open(self.clip, "wb") as f:
            for n in sorted(x for x in os.listdir(src) if x.endswith(".png")):
                f.write(Image.open(os.path.join(src, n)).convert("RGB").tobytes())

    def bench_json(self, args, timeout=300):
        cmd = [self.bench] + args + ["--json"]
        t0 = time.time()
        p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            # The first lines say what went wrong (a C++ backtrace follows in LibTorch's errors).
            return {"error": "\n".join((p.stderr or p.stdout).strip().splitlines()[:3])[:500],
                    "command": " ".join(cmd)}
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r["command"] = " ".join(["qbasicvsr-bench"] + args)
        r["wall_s"] = round(time.time() - t0, 1)
        return r


def psnr(a, b):
    x = np.fromfile(a, np.uint8).astype(np.float64)
    y = np.fromfile(b, np.uint8).astype(np.float64)
    if x.size == 0 or x.size != y.size:
        return None
    mse = np.mean((x - y) ** 2)
    return 99.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


# The networks: the shipped default model (its calibrated W6A6 file for fake) and the official
# architecture C=64, N=30 with random weights (ranges observed on the first pass).
MODELS = [
    ("default clean-c32n5", ["-m", "models/clean-c32n5-fp32.safetensors"],
     ["-m", "models/clean-c32n5-pq-w6a6.safetensors"]),
    ("C=64 N=30 (random)", ["--arch", "64,30"], ["--arch", "64,30", "--bits", "6"]),
]
# (label, precision args, float arithmetic on the GPU)
GPU_PATHS = [
    ("fp32", False, "fp32"),
    ("fp16", False, "fp16"),
    ("bf16", False, "bf16"),
    ("fake W6A6, fp32 convs", True, "fp32"),
    ("fake W6A6, fp16 convs (low precision)", True, "fp16"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle")
    ap.add_argument("--build")
    ap.add_argument("--out", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--quick", action="store_true", help="the device tests and the default model's agreement only")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.chdir(a.root)
    r = Runner(a)
    gpu = not a.dry_run
    report = {"dry_run": a.dry_run, "size": list(SIZE), "speed_frames": SPEED_FRAMES}
    t_start = time.time()
    if gpu:
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True)
        report["gpu"] = q.stdout.strip()
        log(f"GPU: {report['gpu']}")

    # 1. The device tests (the GPU cases skip without a GPU).
    p = subprocess.run([r.test, "--gtest_brief=0"], env=r.env, capture_output=True, text=True, timeout=600)
    report["test_device"] = {"passed": p.returncode == 0, "output": p.stdout[-4000:] + p.stderr[-2000:]}
    log(f"test_device: {'passed' if p.returncode == 0 else 'FAILED (exit %d)' % p.returncode}")
    if p.returncode != 0:
        log(p.stderr[-1500:])
    for line in p.stdout.splitlines():
        if line.startswith("GPU vs CPU") or "FAILED" in line or "Skipped" in line:
            log("  " + line)

    # 2. GPU against CPU on the sample clip, for every path.
    h, w = SIZE
    common = ["--size", f"{h}x{w}", "--frames", str(CLIP_FRAMES), "--input", r.clip, "--runs", "1",
              "--no-adapt"]
    agreement = []
    for name, fp_args, q_args in MODELS[:1] if a.quick else MODELS:
        refs = {}
        for prec, args in (("fp32", fp_args), ("fake", q_args)):
            path = os.path.join(a.out, f"cpu-{len(agreement)}-{prec}.rgb")
            res = r.bench_json(args + common + ["-p", prec, "--device", "cpu", "--output", path])
            refs[prec] = path if "error" not in res else None
            if "error" in res:
                log(f"CPU reference {name} {prec} failed: {res['error']}")
        for label, fake, math in GPU_PATHS:
            row = {"model": name, "path": label}
            if not gpu:
                row["skipped"] = "no GPU (dry run)"
            else:
                path = os.path.join(a.out, "gpu.rgb")
                args = (q_args if fake else fp_args) + common + [
                    "-p", "fake" if fake else "fp32", "--device", "cuda", "--float-layers", math, "--output", path]
                res = r.bench_json(args)
                ref = refs["fake" if fake else "fp32"]
                if "error" in res or ref is None:
                    row["error"] = res.get("error", "no CPU reference")
                else:
                    row["psnr_db"] = psnr(path, ref)
                    row["min_db"] = MIN_DB[math]
                    row["pass"] = row["psnr_db"] is not None and row["psnr_db"] >= MIN_DB[math]
            agreement.append(row)
            log(f"agreement {name:22s} {label:40s} " +
                (f"{row['psnr_db']:.2f} dB (>= {row['min_db']})" if "psnr_db" in row else
                 row.get("skipped", row.get("error", ""))))
    report["agreement"] = agreement

    # 3. Speed: random frames, T = 30, after a warm-up pass; the GPU rows and one CPU row each.
    speed = []
    if a.quick:
        return finish(a, report, agreement, speed, t_start)
    sc = ["--size", f"{h}x{w}", "--frames", str(SPEED_FRAMES), "--runs", "3"]
    for name, fp_args, q_args in MODELS:
        for label, fake, math in GPU_PATHS:
            row = {"model": name, "path": label, "device": "cuda"}
            if not gpu:
                row["skipped"] = "no GPU (dry run)"
            else:
                res = r.bench_json((q_args if fake else fp_args) + sc + [
                    "-p", "fake" if fake else "fp32", "--device", "cuda", "--float-layers", math])
                row.update({k: res[k] for k in ("ms_per_frame", "ms_per_frame_min", "ms_per_frame_max",
                                                 "peak_device_mb", "quantization", "command", "error")
                            if k in res})
            speed.append(row)
            log(f"speed {name:22s} {label:40s} " +
                (f"{row['ms_per_frame']:8.2f} ms/frame, peak GPU {row['peak_device_mb']:.0f} MB"
                 if "ms_per_frame" in row else row.get("skipped", row.get("error", ""))))
    if gpu:
        # The same network in PyTorch (BasicSR's op sequence), fp32 IEEE, on the same card.
        cmd = [sys.executable, os.path.join(a.root, "bench", "pytorch_reference_bench.py"), "--arch", "64,30",
               "--size", f"{h}x{w}", "--frames", str(SPEED_FRAMES), "--runs", "3", "--device", "cuda", "--json"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        row = {"model": "C=64 N=30 (random)", "path": "PyTorch reference fp32", "device": "cuda"}
        if p.returncode == 0:
            res = json.loads(p.stdout.strip().splitlines()[-1])
            row.update({"ms_per_frame": res["ms_per_frame"], "peak_device_mb": res["peak_device_mb"]})
        else:
            row["error"] = p.stderr[-600:]
        speed.append(row)
        log(f"speed {row['model']:22s} {row['path']:40s} " +
            (f"{row['ms_per_frame']:8.2f} ms/frame" if "ms_per_frame" in row else row["error"]))
    # One CPU row per model for scale (this machine's cores).
    for name, fp_args, _ in MODELS:
        res = r.bench_json(fp_args + ["--size", f"{h}x{w}", "--frames", "4", "--runs", "1", "-p", "fp32"])
        speed.append({"model": name, "path": "fp32", "device": "cpu", "ms_per_frame": res.get("ms_per_frame"),
                      "threads": res.get("threads"), "error": res.get("error")})
        log(f"speed {name:22s} {'fp32 on the CPU (' + str(res.get('threads')) + ' threads)':40s} "
            f"{res.get('ms_per_frame') or 0:8.1f} ms/frame")
    return finish(a, report, agreement, speed, t_start)


def finish(a, report, agreement, speed, t_start):
    report["speed"] = speed
    report["wall_s"] = round(time.time() - t_start, 1)
    with open(os.path.join(a.out, "gpu.json"), "w") as f:
        json.dump(report, f, indent=1)
    ok = report["test_device"]["passed"] and all(row.get("pass", True) and "error" not in row
                                                 for row in agreement)
    log(f"wrote {os.path.join(a.out, 'gpu.json')} in {report['wall_s']} s: "
        f"{'all checks passed' if ok else 'SOME CHECKS FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
