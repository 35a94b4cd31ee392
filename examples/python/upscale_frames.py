#!/usr/bin/env python3
"""Upscaling frames from Python with the qbasicvsr element (PyGObject, Debian's python3-gi).

Reads a folder of PNG frames, pushes them through appsrc -> qbasicvsr -> appsink, and writes
the x4 frames as PNG files with the same names. With the plugin installed it runs as is; from a
build tree set GST_PLUGIN_PATH=build/gst (or run it inside `meson devenv -C build`).

usage: upscale_frames.py IN_DIR OUT_DIR [--model MODEL] [--chunk N] [--precision P]
"""
import argparse
import os

import gi
import numpy as np
from PIL import Image

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: E402  (after require_version)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--model", default="")
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()

    Gst.init(None)
    if Gst.ElementFactory.find("qbasicvsr") is None:
        raise SystemExit("qbasicvsr element not found: install the plugin or set GST_PLUGIN_PATH")
    names = sorted(n for n in os.listdir(args.input) if n.lower().endswith(".png"))
    if not names:
        raise SystemExit(f"{args.input}: no PNG frames")
    first = Image.open(os.path.join(args.input, names[0])).convert("RGB")
    w, h = first.size
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},framerate=25/1 ! "
        f"qbasicvsr name=sr chunk-size={args.chunk} precision={args.precision} ! appsink name=sink sync=false")
    if args.model:
        pipeline.get_by_name("sr").set_property("model", args.model)
    src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        raise SystemExit("the pipeline did not start (is the model readable?)")
    os.makedirs(args.output, exist_ok=True)
    written = 0

    def drain(block):
        nonlocal written
        while True:
            sample = sink.emit("pull-sample") if block else sink.emit("try-pull-sample", 0)
            if sample is None:
                return
            caps = sample.get_caps().get_structure(0)
            ow, oh = caps.get_value("width"), caps.get_value("height")
            buf = sample.get_buffer()
            ok, info = buf.map(Gst.MapFlags.READ)
            stride = (ow * 3 + 3) // 4 * 4
            rows = np.frombuffer(info.data, dtype=np.uint8).reshape(oh, stride)[:, : ow * 3]
            Image.fromarray(rows.reshape(oh, ow, 3)).save(os.path.join(args.output, names[written]))
            buf.unmap(info)
            written += 1

    for i, name in enumerate(names):
        img = Image.open(os.path.join(args.input, name)).convert("RGB")
        if img.size != (w, h):
            raise SystemExit(f"{name} is {img.size[0]}x{img.size[1]}, the clip is {w}x{h}")
        stride = (w * 3 + 3) // 4 * 4
        rows = np.zeros((h, stride), dtype=np.uint8)
        rows[:, : w * 3] = np.asarray(img).reshape(h, w * 3)
        buf = Gst.Buffer.new_wrapped(rows.tobytes())
        buf.pts = i * Gst.SECOND // 25
        buf.duration = Gst.SECOND // 25
        src.emit("push-buffer", buf)
        drain(False)
    src.emit("end-of-stream")
    drain(True)
    msg = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg:
        raise SystemExit(msg.parse_error()[0].message)
    print(f"{len(names)} frames in, {written} frames out -> {args.output}")
    raise SystemExit(0 if written == len(names) else 1)


if __name__ == "__main__":
    main()
