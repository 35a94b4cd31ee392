"""The qbasicvsr element through real pipelines, the way users run it: gst-launch-1.0 and
PyGObject pipelines from filesrc ! decodebin, multifilesrc ! pngdec, videotestsrc and playbin, with
DISCONT only on the first buffer as real sources send it. Each pipeline's frames are compared one
by one with the library's own output for the same frames and settings (qbasicvsr-upscale on a
folder of PNG frames), and its chunk messages with what the settings ask for.

usage: test_pipelines.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import gi
import numpy as np
from PIL import Image

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

BUILD, SOURCE = sys.argv[1], sys.argv[2]
UPSCALE = os.path.join(BUILD, "tools", "qbasicvsr-upscale")
CLIP = os.path.join(SOURCE, "tests", "data", "cockatoo-96x54.mp4")  # 32 frames, 10 fps
MODELS = os.path.join(SOURCE, "models")
FP32 = os.path.join(MODELS, "clean-c32n5-fp32.safetensors")
W6A6 = os.path.join(MODELS, "clean-c32n5-pq-w6a6.safetensors")
CHUNK, OVERLAP = 5, 2
# The system plugins and the build tree's, with a registry of its own.
ENV = dict(os.environ, GST_PLUGIN_PATH=os.path.join(BUILD, "gst"),
           GST_REGISTRY=os.path.join(BUILD, "tests", "registry-pipelines.bin"))
os.environ.update(ENV)
results = []


def check(name, good, detail=""):
    results.append(bool(good))
    print(("ok " if good else "FAIL ") + name + ("" if good else ": " + detail), flush=True)


def element(model, extra=""):
    return f"qbasicvsr model={model} chunk-size={CHUNK} overlap={OVERLAP} threads=2 {extra}"


def run_pipeline(description, timeout=300, playbin_filter=None):
    """Runs a pipeline that ends in an appsink named `out` (or playbin with that video filter and
    an appsink); returns its RGB frames (HxWx3 arrays) and the fields of its qbasicvsr-chunk
    messages."""
    pipeline = Gst.parse_launch(description)
    if playbin_filter:
        pipeline.set_property("video-filter", Gst.parse_bin_from_description(playbin_filter, True))
        video_sink = Gst.parse_bin_from_description("videoconvert ! video/x-raw,format=RGB ! appsink name=out", True)
        pipeline.set_property("video-sink", video_sink)
        pipeline.set_property("audio-sink", Gst.ElementFactory.make("fakesink"))
        sink = video_sink.get_by_name("out")
    else:
        sink = pipeline.get_by_name("out")
    frames = []

    def on_sample(s):
        sample = s.emit("pull-sample")
        caps = sample.get_caps().get_structure(0)
        w, h = caps.get_value("width"), caps.get_value("height")
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        stride = len(info.data) // h
        rows = np.frombuffer(info.data, np.uint8).reshape(h, stride)
        frames.append(rows[:, : 3 * w].reshape(h, w, 3).copy())
        buf.unmap(info)
        return Gst.FlowReturn.OK

    sink.set_property("emit-signals", True)
    sink.set_property("sync", False)
    sink.connect("new-sample", on_sample)
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    chunks, error = [], None
    while True:
        msg = bus.timed_pop_filtered(timeout * Gst.SECOND,
                                     Gst.MessageType.ERROR | Gst.MessageType.EOS | Gst.MessageType.ELEMENT)
        if msg is None:
            error = "timed out"
            break
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s.get_name() == "qbasicvsr-chunk":
                chunks.append({k: s.get_value(k) for k in ("frames", "context", "carried", "b_V", "mean-bits")})
            continue
        if msg.type == Gst.MessageType.ERROR:
            error = msg.parse_error()[0].message
        break
    pipeline.set_state(Gst.State.NULL)
    return frames, chunks, error


def folder_mode(frames_dir, out_dir, model, *extra):
    """The library's output for the same frames, with the same settings."""
    r = subprocess.run([UPSCALE, "-m", model, "--chunk", str(CHUNK), "--overlap", str(OVERLAP), "--threads", "2",
                        "--json", *extra, frames_dir, out_dir], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    names = sorted(os.listdir(out_dir))
    return [np.asarray(Image.open(os.path.join(out_dir, n)).convert("RGB")) for n in names], json.loads(r.stdout)


def compare(name, got, reference, chunks, error):
    """Same frames within 1 level on 99.9 % of the values (pixel-exact is expected: the same
    chunker runs on the same frames), and one chunk message per chunk of the settings."""
    if error:
        check(name, False, error)
        return
    if len(got) != len(reference):
        check(name, False, f"{len(got)} frames out, folder mode gave {len(reference)}")
        return
    worst_share, max_diff = 1.0, 0
    for a, b in zip(got, reference):
        if a.shape != b.shape:
            check(name, False, f"frame size {a.shape} vs {b.shape}")
            return
        d = np.abs(a.astype(int) - b.astype(int))
        worst_share = min(worst_share, float(np.mean(d <= 1)))
        max_diff = max(max_diff, int(d.max()))
    n = len(reference)
    expected = [CHUNK] * (n // CHUNK) + ([n % CHUNK] if n % CHUNK else [])
    sizes = [c["frames"] for c in chunks]
    detail = f"max difference {max_diff}, share within 1 level {worst_share:.5f}, chunks {sizes}"
    good = (worst_share >= 0.999 and sizes == expected and all(c["context"] > 0 for c in chunks[:-1])
            and not chunks[0]["carried"] and all(c["carried"] for c in chunks[1:]))
    check(f"{name} ({len(got)} frames, {detail})", good, detail)


def main():
    Gst.init(None)
    tmp = tempfile.mkdtemp()
    try:
        # The clip's frames as PNG files, decoded once: the folder-mode input.
        frames = os.path.join(tmp, "frames")
        os.makedirs(frames)
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={CLIP}", "!", "decodebin", "!", "videoconvert",
                        "!", "video/x-raw,format=RGB", "!", "pngenc", "!", "multifilesink",
                        f"location={frames}/%08d.png"], check=True, timeout=120, env=ENV)
        reference, ref_json = folder_mode(frames, os.path.join(tmp, "ref"), FP32)
        check("folder mode runs chunks of the settings", [c["frames"] for c in ref_json["chunks"]][:2] == [CHUNK] * 2,
              str(ref_json["chunks"]))

        caps = "videoconvert ! video/x-raw,format=RGB"
        got, chunks, err = run_pipeline(f"filesrc location={CLIP} ! decodebin ! {caps} ! {element(FP32)} "
                                        "! appsink name=out")
        compare("filesrc ! decodebin ! qbasicvsr", got, reference, chunks, err)

        got, chunks, err = run_pipeline(
            f"multifilesrc location={frames}/%08d.png caps=image/png,framerate=10/1 ! pngdec ! {caps} "
            f"! {element(FP32)} ! appsink name=out")
        compare("multifilesrc ! pngdec ! qbasicvsr", got, reference, chunks, err)

        uri = Gst.filename_to_uri(CLIP)
        got, chunks, err = run_pipeline(f"playbin uri={uri}", playbin_filter=f"{caps} ! {element(FP32)}")
        compare("playbin video-filter=qbasicvsr", got, reference, chunks, err)

        # videotestsrc, moving: the same frames written out first for folder mode.
        src = "videotestsrc pattern=ball num-buffers=17 ! video/x-raw,format=RGB,width=64,height=48,framerate=10/1"
        test_frames = os.path.join(tmp, "testsrc")
        os.makedirs(test_frames)
        subprocess.run(["gst-launch-1.0", "-q"] + src.split() + ["!", "pngenc", "!", "multifilesink",
                       f"location={test_frames}/%08d.png"], check=True, timeout=120, env=ENV)
        test_ref, _ = folder_mode(test_frames, os.path.join(tmp, "testsrc-ref"), FP32)
        got, chunks, err = run_pipeline(f"{src} ! {element(FP32)} ! appsink name=out")
        compare("videotestsrc ! qbasicvsr", got, test_ref, chunks, err)

        # gst-launch-1.0 itself (the reproduction): one message per chunk of 5 frames.
        r = subprocess.run(["gst-launch-1.0", "-m"] + src.split() + ["!"] + element(FP32).split() + ["!", "fakesink"],
                           capture_output=True, text=True, timeout=300, env=ENV)
        sizes = [int(m) for m in re.findall(r"qbasicvsr-chunk, frames=\(uint\)(\d+)", r.stdout)]
        check(f"gst-launch-1.0 -m: chunk messages {sizes}", r.returncode == 0 and sizes == [5, 5, 5, 2],
              r.stdout[-2000:] + r.stderr[-2000:])

        # A quantized model: the element picks the bits folder mode picks, chunk by chunk.
        q_ref, q_json = folder_mode(frames, os.path.join(tmp, "ref-w6a6"), W6A6)
        got, chunks, err = run_pipeline(f"filesrc location={CLIP} ! decodebin ! {caps} ! {element(W6A6)} "
                                        "! appsink name=out")
        compare("int8 W6A6: filesrc ! decodebin ! qbasicvsr", got, q_ref, chunks, err)
        element_bits = [(c["b_V"], round(c["mean-bits"], 6)) for c in chunks]
        folder_bits = [(c["b_V"], round(c["mean_bits"], 6)) for c in q_json["chunks"]]
        check(f"int8 W6A6: b_V and mean bits per chunk as in folder mode {element_bits}",
              element_bits == folder_bits and all(b < 32 for _, b in element_bits), str(folder_bits))

        # The float layers of int8 (SPyNet, conv_last) in bf16 and in fp32, set on the element as on
        # the command line: each pipeline matches folder mode, and the two differ, slightly.
        outs = {}
        for math in ["bf16", "fp32"]:
            outs[math], _ = folder_mode(frames, os.path.join(tmp, "ref-w6a6-" + math), W6A6, "--float-layers", math)
            got, chunks, err = run_pipeline(f"filesrc location={CLIP} ! decodebin ! {caps} "
                                            f"! {element(W6A6, 'float-layers=' + math)} ! appsink name=out")
            compare(f"int8 W6A6, float-layers={math}: filesrc ! decodebin ! qbasicvsr", got, outs[math], chunks, err)
        mse = np.mean([np.mean((a.astype(float) - b.astype(float)) ** 2) for a, b in zip(outs["bf16"], outs["fp32"])])
        p = 10 * np.log10(255.0 ** 2 / mse) if mse > 0 else float("inf")
        check(f"bf16 float layers: {p:.2f} dB from fp32 float layers (different, within 40 dB)", 40 <= p < float("inf"))

        # qbasicvsr-upscale on the video file runs the same chunks as folder mode.
        r = subprocess.run([UPSCALE, "-m", W6A6, "--chunk", str(CHUNK), "--overlap", str(OVERLAP), "--json",
                            CLIP, os.path.join(tmp, "out.mkv")], capture_output=True, text=True, timeout=600)
        video_json = json.loads(r.stdout) if r.returncode == 0 else {"chunks": [], "error": r.stderr}
        video_bits = [(c["frames"], c["b_V"], round(c["mean_bits"], 6)) for c in video_json["chunks"]]
        folder_bits = [(c["frames"], c["b_V"], round(c["mean_bits"], 6)) for c in q_json["chunks"]]
        check(f"qbasicvsr-upscale on the video file: chunks as in folder mode {video_bits}",
              video_bits == folder_bits and video_json["frames"] == 32, str(video_json))
    finally:
        shutil.rmtree(tmp)
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
