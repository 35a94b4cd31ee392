#!/usr/bin/env python3
"""Peak resident memory of a gst-launch pipeline through the qbasicvsr element, for several
stream lengths: memory must not grow with the number of frames.

usage: element_memory.py BUILD_DIR [--size WxH] [--frames N ...] [--chunk C] [--overlap K]
                         [--precision P] [--model M] [--max-memory MB] [--json]
Each run is a separate process: videotestsrc (moving ball) -> qbasicvsr -> fakesink; the peak
RSS is the child's ru_maxrss.
"""
import argparse
import json
import os
import subprocess
import time


def run_once(build, args, frames):
    w, h = args.size.split("x")
    env = dict(os.environ, GST_PLUGIN_PATH=os.path.join(build, "gst"))
    model = f"model={args.model}" if args.model else ""
    chunking = (f"chunk-size={args.chunk} " if args.chunk else "") + (f"overlap={args.overlap} " if args.overlap is not None else "")
    pipeline = (f"videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=RGB,width={w},height={h},"
                f"framerate=25/1 ! qbasicvsr {model} precision={args.precision} {chunking}"
                f"max-memory={args.max_memory} threads=2 ! fakesink")
    # A wrapper process per run, so that RUSAGE_CHILDREN covers this pipeline alone.
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    t0 = time.time()
    r = subprocess.run(["/usr/bin/python3", "-c", code, "gst-launch-1.0", "-q"] + pipeline.split(),
                       capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"pipeline failed: {r.stderr}")
    return {"frames": frames, "peak_rss_mb": int(r.stdout.strip().splitlines()[-1]) / 1024.0,
            "seconds": time.time() - t0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--size", default="96x54")
    ap.add_argument("--frames", type=int, nargs="+", default=[60, 600])
    ap.add_argument("--chunk", type=int, default=0, help="default: the element's")
    ap.add_argument("--overlap", type=int, default=None, help="default: the element's")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--model", default="")
    ap.add_argument("--max-memory", type=int, default=4096)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    # Bring the plugin registry up to date first: a registry scan in a measured run would add the
    # scanner's memory to that run's figure.
    subprocess.run(["gst-inspect-1.0", "qbasicvsr"], capture_output=True,
                   env=dict(os.environ, GST_PLUGIN_PATH=os.path.join(args.build, "gst")))
    results = [run_once(args.build, args, n) for n in args.frames]
    if args.json:
        print(json.dumps({"size": args.size, "chunk": args.chunk, "overlap": args.overlap, "runs": results}))
    else:
        for r in results:
            print(f"{args.size}, chunk {args.chunk or 'default'}, overlap {args.overlap if args.overlap is not None else 'default'}, {args.precision}: {r['frames']} frames "
                  f"-> peak RSS {r['peak_rss_mb']:.1f} MB ({r['seconds']:.1f} s)")
        base = results[0]["peak_rss_mb"]
        for r in results[1:]:
            print(f"growth {r['frames']} vs {results[0]['frames']} frames: {100 * (r['peak_rss_mb'] / base - 1):+.1f} %")


if __name__ == "__main__":
    main()
