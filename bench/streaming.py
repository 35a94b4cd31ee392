#!/usr/bin/env python3
"""Chunked streaming against one pass: per-frame RGB PSNR of the 8-bit outputs of chunked runs
(folder mode, a gst-launch pipeline, qbasicvsr-upscale on the video file) against one pass over all
frames, with the time per frame of each setting.

usage: streaming.py BUILD_DIR MODEL VIDEO WORK_DIR [--frames N] [--grid C:K ...] [--paths P ...]
                    [--precision P] [--json]

VIDEO is decoded once into WORK_DIR/frames (RGB PNG); every path reads those frames or the same
video. --grid lists chunk:overlap settings for folder mode; --paths adds, at the first grid
setting, `gst` (filesrc ! decodebin ! qbasicvsr ! pngenc) and `video` (qbasicvsr-upscale VIDEO
FOLDER). Another build (an older commit, for a before/after) is measured by pointing BUILD_DIR
at it; --no-json-timing for builds whose qbasicvsr-upscale has no --json.
"""
import argparse
import json
import math
import os
import subprocess
import time

import numpy as np
from PIL import Image


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def read_dir(d):
    return [np.asarray(Image.open(os.path.join(d, n)).convert("RGB")) for n in sorted(os.listdir(d))]


def compare(got_dir, ref):
    got = read_dir(got_dir)
    if len(got) != len(ref):
        raise SystemExit(f"{got_dir}: {len(got)} frames, one pass has {len(ref)}")
    values = [psnr(a, b) for a, b in zip(got, ref)]
    return min(values), sum(min(v, 99.0) for v in values) / len(values)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("model")
    ap.add_argument("video")
    ap.add_argument("work")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--grid", nargs="+", default=["10:4"])
    ap.add_argument("--paths", nargs="*", default=[])
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--no-json-timing", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    up = os.path.join(args.build, "tools", "qbasicvsr-upscale")
    env = dict(os.environ, GST_PLUGIN_PATH=os.path.join(args.build, "gst"))
    frames = os.path.join(args.work, "frames")
    if not os.path.isdir(frames):
        os.makedirs(frames)
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={args.video}", "!", "decodebin", "!",
                        "videoconvert", "!", "video/x-raw,format=RGB", "!", "identity",
                        f"eos-after={args.frames}", "!", "pngenc", "!", "multifilesink",
                        f"location={frames}/%08d.png"], check=True, env=env)
    n = len(os.listdir(frames))
    common = ["-m", args.model, "-p", args.precision, "--no-adapt", "--threads", "2"]

    def run_folder(out, chunk, overlap, source=frames):
        cmd = [up] + common + ["--chunk", str(chunk), "--overlap", str(overlap)]
        t0 = time.time()
        r = subprocess.run(cmd + ([] if args.no_json_timing else ["--json"]) + [source, out],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        if args.no_json_timing:
            return (time.time() - t0) * 1000 / n
        return sum(c["ms"] for c in json.loads(r.stdout)["chunks"]) / n

    one = os.path.join(args.work, "one-pass")
    if not os.path.isdir(one):
        run_folder(one, n, 0)
    ref = read_dir(one)
    rows = []
    for setting in args.grid:
        c, k = (int(x) for x in setting.split(":"))
        out = os.path.join(args.work, f"folder-{c}-{k}-{os.getpid()}")
        ms = run_folder(out, c, k)
        lo, mean = compare(out, ref)
        rows.append({"path": "folder", "chunk": c, "overlap": k, "min": lo, "mean": mean, "ms_per_frame": ms})
    c, k = (int(x) for x in args.grid[0].split(":"))
    props = f"model={args.model} precision={args.precision} adaptive=false threads=2 chunk-size={c} overlap={k}"
    if "gst" in args.paths:
        out = os.path.join(args.work, f"gst-{os.getpid()}")
        os.makedirs(out)
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={args.video}", "!", "decodebin", "!",
                        "videoconvert", "!", "video/x-raw,format=RGB", "!", "identity", f"eos-after={args.frames}",
                        "!", "qbasicvsr"] + props.split() + ["!", "pngenc", "!", "multifilesink",
                       f"location={out}/%08d.png"], check=True, env=env)
        lo, mean = compare(out, ref)
        rows.append({"path": "gst-launch", "chunk": c, "overlap": k, "min": lo, "mean": mean})
    if "video" in args.paths:
        # The video file cut to the same frames, so that qbasicvsr-upscale sees exactly them.
        cut = os.path.join(args.work, "cut.mkv")
        if not os.path.exists(cut):
            subprocess.run(["gst-launch-1.0", "-q", "multifilesrc", f"location={frames}/%08d.png",
                            "caps=image/png,framerate=10/1", "!", "pngdec", "!", "videoconvert", "!",
                            "video/x-raw,format=Y444", "!", "x264enc", "qp-min=0", "qp-max=0", "!",
                            "matroskamux", "!", "filesink", f"location={cut}"], check=True, env=env)
        decoded = os.path.join(args.work, "cut-frames")
        if not os.path.isdir(decoded):
            os.makedirs(decoded)
            subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={cut}", "!", "decodebin", "!",
                            "videoconvert", "!", "video/x-raw,format=RGB", "!", "pngenc", "!", "multifilesink",
                            f"location={decoded}/%08d.png"], check=True, env=env)
            run_folder(os.path.join(args.work, "cut-one-pass"), n, 0, decoded)
        out = os.path.join(args.work, f"video-{os.getpid()}/")
        r = subprocess.run([up] + common + ["--chunk", str(c), "--overlap", str(k), cut, out],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        lo, mean = compare(out, read_dir(os.path.join(args.work, "cut-one-pass")))
        rows.append({"path": "qbasicvsr-upscale video", "chunk": c, "overlap": k, "min": lo, "mean": mean})
    if args.json:
        print(json.dumps({"model": args.model, "frames": n, "rows": rows}))
    else:
        for r in rows:
            ms = f", {r['ms_per_frame']:.0f} ms/frame" if "ms_per_frame" in r else ""
            print(f"{r['path']}, chunk {r['chunk']}, overlap {r['overlap']}: PSNR vs one pass min {r['min']:.2f} "
                  f"mean {r['mean']:.2f} dB{ms}", flush=True)


if __name__ == "__main__":
    main()
