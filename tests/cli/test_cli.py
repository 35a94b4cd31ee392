"""Command-line contract (DESIGN.md section 3) and bad-input handling of the programs.

Every program prints usage on --help and exits 0; bad input exits non-zero with one clear
line on stderr and never a crash (a signal) or a hang (a timeout).

usage: test_cli.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
from PIL import Image

BUILD, SOURCE = sys.argv[1], sys.argv[2]
TOOLS = {
    "import": os.path.join(BUILD, "tools", "qbasicvsr-import"),
    "upscale": os.path.join(BUILD, "tools", "qbasicvsr-upscale"),
    "bench": os.path.join(BUILD, "bench", "qbasicvsr-bench"),
    "complexity": os.path.join(BUILD, "tools", "qbasicvsr-complexity"),
    "eval": os.path.join(BUILD, "tools", "qbasicvsr-eval"),
    "calibrate": os.path.join(BUILD, "calibrate", "qbasicvsr-calibrate"),
    "train": os.path.join(BUILD, "tools", "qbasicvsr-train"),
}
# The official REDS4 weights, when tools/scripts/fetch_official_models.sh has imported them: the
# only SPyNet at hand whose flows are real (the shipped stand-in's is random).
OFFICIAL = os.path.join(os.path.expanduser("~"), ".cache", "qbasicvsr", "basicvsr-reds4-fp32.safetensors")
FIXTURES = os.path.join(SOURCE, "tests", "fixtures")
failures = []
passed = 0


def write_png(path, w, h, seed=0):
    raw = bytearray()
    for y in range(h):
        raw.append(0)
        for x in range(w):
            raw += bytes(((x * 37 + y * 11 + seed * 5) % 256, (x * 3 + y * 50) % 256, (seed * 80 + x * y) % 256))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    return struct.unpack(">II", head[16:24])


def psnr_png(a, b):
    x = np.asarray(Image.open(a).convert("RGB"), dtype=np.float64)
    y = np.asarray(Image.open(b).convert("RGB"), dtype=np.float64)
    mse = np.mean((x - y) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def read_metadata(path):
    """The __metadata__ of a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def tensor_bytes(path):
    """The tensor data of a safetensors file (the header also holds wall times)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        f.seek(8 + n)
        return f.read()


def safetensors_names(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return sorted(k for k in json.loads(f.read(n)) if k != "__metadata__")


def tensor_subset(path, names):
    """The bytes of the named tensors of a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        out = []
        for k in names:
            a, b = header[k]["data_offsets"]
            f.seek(8 + n + a)
            out.append(f.read(b - a))
        return out


def run(args, timeout=120):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def case(name, ok, detail=""):
    global passed
    if ok:
        passed += 1
        print(f"ok {name}")
    else:
        failures.append(name)
        print(f"FAIL {name}: {detail}")


def expect_error(name, args, needle):
    r = run(args)
    lines = [l for l in r.stderr.strip().splitlines() if l]
    good = r.returncode > 0 and len(lines) == 1 and needle in r.stderr
    case(name, good, f"rc={r.returncode} stderr={r.stderr!r}")


def other_arithmetic_refused(tool, resume_args, checkpoint, state_key):
    """Resuming a stopped run in the other arithmetic than it recorded is a one-line error that
    leaves the checkpoint as it was."""
    if not os.path.exists(checkpoint):
        case(f"{tool}: a stopped run left a checkpoint to resume", False, checkpoint)
        return
    state = json.loads(read_metadata(checkpoint).get(state_key, "{}"))
    before = open(checkpoint, "rb").read()
    other = {"fp32": "bf16", "bf16": "fp32"}.get(state.get("compute"), "")
    expect_error(f"{tool}: --resume in {other or '?'} of a run in {state.get('compute')} is refused",
                 resume_args + ["--compute", other or "fp32"], "this run computes in " + str(state.get("compute")))
    case(f"{tool}: the refused resume leaves the checkpoint", open(checkpoint, "rb").read() == before)


def main():
    tmp = tempfile.mkdtemp()
    try:
        for tool, path in TOOLS.items():
            r = run([path, "--help"])
            case(f"{tool} --help", r.returncode == 0 and "Usage:" in r.stdout and not re.search(r"\{[a-z-]+\}", r.stdout),
                 r.stderr + r.stdout[:200])
            expect_error(f"{tool} unknown option", [path, "--frobnicate"], "unknown option")
        # Defaults in --help come from the library's option structs (ChunkerOptions, UpscalerOptions).
        r = run([TOOLS["upscale"], "--help"])
        case("upscale --help states the library's defaults",
             all(s in r.stdout for s in ("frames per chunk (default 10)", "(default 8)", "(default 16)",
                                         "(default 4096;")), r.stdout)

        # A small random model (via the bench's generator is not exposed), so import one.
        model = os.path.join(tmp, "m.safetensors")
        frames = os.path.join(tmp, "frames")
        os.makedirs(frames)
        for i in [1, 2, 10]:  # natural order: im1, im2, im10
            write_png(os.path.join(frames, f"im{i}.png"), 9, 7, seed=i)
        default_model = os.path.join(SOURCE, "models")
        env = dict(os.environ, QBASICVSR_MODEL_DIR=default_model)
        out = os.path.join(tmp, "out")
        r = subprocess.run([TOOLS["upscale"], "--threads", "2", frames, out], capture_output=True, text=True,
                           env=env, timeout=300)
        produced = sorted(os.listdir(out)) if os.path.isdir(out) else []
        case("upscale frame folder with the default model",
             r.returncode == 0 and produced == ["im1.png", "im10.png", "im2.png"]
             and all(png_size(os.path.join(out, f)) == (36, 28) for f in produced), r.stderr)

        # Bad inputs.
        expect_error("import: missing checkpoint", [TOOLS["import"], os.path.join(tmp, "none.pth"), "-o", model],
                     "cannot open")
        garbage = os.path.join(tmp, "garbage.pth")
        with open(garbage, "wb") as f:
            f.write(os.urandom(4096))
        expect_error("import: garbage checkpoint", [TOOLS["import"], garbage, "-o", model], "qbasicvsr-import:")
        expect_error("import: not BasicVSR", [TOOLS["import"], os.path.join(FIXTURES, "basicsr_zip.pth"), "-o", model],
                     "entry \"count\"")
        expect_error("import: no output", [TOOLS["import"], garbage], "no output file")
        expect_error("import: wrong number of t7 files",
                     [TOOLS["import"], garbage, os.path.join(FIXTURES, "small_sequential.t7"), "-o", model],
                     "qbasicvsr-import:")
        expect_error("upscale: missing model", [TOOLS["upscale"], "-m", os.path.join(tmp, "no.safetensors"), frames, out],
                     "not found")
        corrupt = os.path.join(tmp, "corrupt.safetensors")
        shipped = os.path.join(default_model, open(os.path.join(default_model, "default")).read().strip())
        with open(shipped, "rb") as f:
            data = f.read()
        with open(corrupt, "wb") as f:
            f.write(data[: len(data) // 2])
        expect_error("upscale: truncated model", [TOOLS["upscale"], "-m", corrupt, frames, out], "truncated")
        with open(corrupt, "wb") as f:
            f.write(b"\xff" * 8 + data[8:100])
        expect_error("upscale: oversized header", [TOOLS["upscale"], "-m", corrupt, frames, out], "too large")
        expect_error("upscale: missing input", [TOOLS["upscale"], "-m", shipped, os.path.join(tmp, "nope"), out],
                     "no such video file or folder of PNG frames")
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        expect_error("upscale: empty folder", [TOOLS["upscale"], "-m", shipped, empty, out], "no PNG frames")
        badpng = os.path.join(tmp, "badpng")
        os.makedirs(badpng)
        write_png(os.path.join(badpng, "a.png"), 8, 8)
        with open(os.path.join(badpng, "b.png"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
        expect_error("upscale: corrupt PNG", [TOOLS["upscale"], "-m", shipped, badpng, out], "b.png")
        mixed = os.path.join(tmp, "mixed")
        os.makedirs(mixed)
        write_png(os.path.join(mixed, "a.png"), 8, 8)
        write_png(os.path.join(mixed, "b.png"), 9, 8)
        expect_error("upscale: mixed sizes", [TOOLS["upscale"], "-m", shipped, mixed, out], "b.png is 9x8")
        expect_error("upscale: bad precision", [TOOLS["upscale"], "-m", shipped, "-p", "int3", frames, out],
                     "unknown precision")
        expect_error("upscale: bad threads", [TOOLS["upscale"], "-m", shipped, "--threads", "x", frames, out],
                     "--threads must be an integer")
        expect_error("bench: bad size", [TOOLS["bench"], "--arch", "8,1", "--size", "big"], "--size must be HxW")
        expect_error("bench: model and arch", [TOOLS["bench"]], "exactly one of")
        expect_error("bench: bad --float-layers", [TOOLS["bench"], "--arch", "8,1", "--float-layers", "bf17"],
                     "--float-layers must be fp32, bf16, fp16 (device cuda) or auto")
        expect_error("bench: fp16 on the CPU", [TOOLS["bench"], "--arch", "8,1", "--float-layers", "fp16"],
                     "need device cuda")
        expect_error("bench: --input missing", [TOOLS["bench"], "--arch", "8,1", "--input", os.path.join(tmp, "no")],
                     "cannot open")
        short_raw = os.path.join(tmp, "short.rgb")
        with open(short_raw, "wb") as f:
            f.write(bytes(10))
        expect_error("bench: --input too short", [TOOLS["bench"], "--arch", "8,1", "--size", "7x9", "--frames", "3",
                                                  "--input", short_raw], "holds fewer than 3 frames")
        # --input/--output against qbasicvsr-upscale on the same frames: the same bytes.
        names = sorted(os.listdir(frames), key=lambda n: int(n[2:-4]))
        raw_in, raw_out = os.path.join(tmp, "in.rgb"), os.path.join(tmp, "out.rgb")
        with open(raw_in, "wb") as f:
            for n in names:
                f.write(np.asarray(Image.open(os.path.join(frames, n)).convert("RGB")).tobytes())
        r = run([TOOLS["bench"], "-m", shipped, "-p", "fp32", "--size", "7x9", "--frames", str(len(names)), "--runs",
                 "1", "--input", raw_in, "--output", raw_out], timeout=300)
        up = os.path.join(tmp, "bench-up")
        r2 = run([TOOLS["upscale"], "-m", shipped, "-p", "fp32", frames, up], timeout=300)
        same = r.returncode == 0 and r2.returncode == 0 and open(raw_out, "rb").read() == b"".join(
            np.asarray(Image.open(os.path.join(up, n)).convert("RGB")).tobytes() for n in names)
        case("bench --input/--output: the upscaled frames equal qbasicvsr-upscale's", same, r.stderr + r2.stderr)
        r = run([TOOLS["bench"], "--arch", "8,1", "--size", "16x24", "--frames", "2", "--runs", "1", "--json"])
        case("bench --json prints ms_per_frame and peak_rss_mb",
             r.returncode == 0 and '"ms_per_frame"' in r.stdout and '"peak_rss_mb"' in r.stdout, r.stderr)
        quantization_cases(tmp, frames, shipped, env)
        resume_cases(tmp, shipped, env)
        video_cases(tmp, shipped, env)
        complexity_cases(tmp, shipped)
        eval_cases(tmp, shipped)
        quantized = calibrate_cases(tmp, shipped)
        train_cases(tmp, quantized)
    finally:
        shutil.rmtree(tmp)
    print(f"{passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


def quantization_cases(tmp, frames, shipped, env):
    for p in ["fake", "int8"]:
        out = os.path.join(tmp, "out-" + p)
        r = subprocess.run([TOOLS["upscale"], "-m", shipped, "-p", p, "--bits", "6", "--threads", "2", frames, out],
                           capture_output=True, text=True, env=env, timeout=300)
        produced = sorted(os.listdir(out)) if os.path.isdir(out) else []
        case(f"upscale -p {p} --bits 6", r.returncode == 0 and len(produced) == 3
             and all(png_size(os.path.join(out, f)) == (36, 28) for f in produced)
             and "W6 partial, ranges observed" in r.stderr, r.stderr)
    r = subprocess.run([TOOLS["upscale"], "-m", shipped, "-p", "int8", "--scope", "full", frames,
                        os.path.join(tmp, "out-full")], capture_output=True, text=True, env=env, timeout=300)
    case("upscale -p int8 --scope full", r.returncode == 0 and "W8 full" in r.stderr, r.stderr)
    out = os.path.join(tmp, "out-x")
    expect_error("upscale: bits out of range", [TOOLS["upscale"], "-m", shipped, "-p", "int8", "--bits", "9", frames, out],
                 "--bits must be an integer in 2..8")
    expect_error("upscale: bad scope", [TOOLS["upscale"], "-m", shipped, "-p", "int8", "--scope", "most", frames, out],
                 "unknown scope")
    r = run([TOOLS["bench"], "--arch", "8,1", "--size", "16x24", "--frames", "2", "--runs", "1", "-p", "int8",
             "--bits", "4", "--json"])
    case("bench -p int8 --json", r.returncode == 0 and '"ms_per_frame"' in r.stdout
         and '"int8 W4 partial' in r.stdout, r.stderr)
    # The stage profile: every stage present, the stages sum to the profiled time, and the runs'
    # work shows where it must (trunk convolutions, quantization in int8 only).
    for p in ["fp32", "int8"]:
        r = run([TOOLS["bench"], "--arch", "8,1", "--size", "16x24", "--frames", "3", "--runs", "2", "-p", p,
                 "--profile", "--json"])
        try:
            prof = json.loads(r.stdout)["profile"]
            stages = prof["stages"]
            total = sum(v["ms_per_frame"] for v in stages.values())
            conv = sum(v["ms_per_frame"] for v in stages.values() if v["conv"])
            ok = (set(stages) >= {"spynet_conv", "warp", "trunk_conv", "quantize", "reconstruction_conv",
                                  "conv_last", "pixel_shuffle", "copy_in", "copy_out"}
                  and abs(total - prof["ms_per_frame"]) < 1e-6 * max(1, total)
                  and abs(conv - prof["conv_ms_per_frame"]) < 1e-6 * max(1, conv)
                  and 0 < prof["conv_share"] < 1
                  and stages["trunk_conv"]["calls_per_frame"] == 2 * 3  # 2 branches x (input conv + 2 convs)
                  and (stages["quantize"]["calls_per_frame"] > 0) == (p == "int8"))
        except (ValueError, KeyError) as e:
            ok = False
            r.stderr += repr(e)
        case(f"bench -p {p} --profile --json", r.returncode == 0 and ok, r.stderr + r.stdout[:2000])
    r = run([TOOLS["bench"], "--arch", "8,1", "--size", "16x24", "--frames", "2", "--runs", "1", "--profile"])
    case("bench --profile prints the stage table", r.returncode == 0 and "trunk_conv" in r.stdout
         and "the conv floor" in r.stdout, r.stderr)


def resume_cases(tmp, shipped, env):
    clip = os.path.join(tmp, "clip11")
    os.makedirs(clip)
    for i in range(11):
        write_png(os.path.join(clip, f"f{i:02d}.png"), 10, 6, seed=i)
    base = [TOOLS["upscale"], "-m", shipped, "--threads", "2", "--chunk", "3", "--overlap", "2"]
    full, part = os.path.join(tmp, "full"), os.path.join(tmp, "part")
    r = subprocess.run(base + [clip, full], capture_output=True, text=True, env=env, timeout=300)
    case("upscale --chunk 3 --overlap 2 on 11 frames", r.returncode == 0 and len(os.listdir(full)) == 11, r.stderr)
    # An interrupted job: the first 7 frames done (chunks 0-1 and part of 2).
    os.makedirs(part)
    for n in sorted(os.listdir(full))[:7]:
        shutil.copy(os.path.join(full, n), part)
    os.remove(os.path.join(part, "f06.png"))
    with open(os.path.join(part, "f05.png"), "rb") as f:
        kept = f.read()
    r = subprocess.run(base + ["--resume", clip, part], capture_output=True, text=True, env=env, timeout=300)
    same = r.returncode == 0 and sorted(os.listdir(part)) == sorted(os.listdir(full)) and all(
        open(os.path.join(part, n), "rb").read() == open(os.path.join(full, n), "rb").read()
        for n in os.listdir(full))
    case("upscale --resume gives the uninterrupted result byte for byte",
         same and "resuming at frame 6" in r.stderr and open(os.path.join(part, "f05.png"), "rb").read() == kept,
         r.stderr)


def gst_launch(description, timeout=120):
    return run(["gst-launch-1.0", "-q"] + description.split(), timeout=timeout)


def decoded_video(path):
    """(frames, width, height) of the first video stream, and whether there is an audio stream."""
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    Gst.init(None)
    pipe = Gst.parse_launch(f'filesrc location="{path}" ! decodebin name=d d. ! videoconvert ! '
                            "video/x-raw,format=RGB ! appsink name=v sync=false")
    audio = []

    def pad_added(_, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        if caps.get_structure(0).get_name().startswith("audio/"):
            audio.append(pad)
    pipe.get_by_name("d").connect("pad-added", pad_added)
    sink = pipe.get_by_name("v")
    pipe.set_state(Gst.State.PLAYING)
    frames, size = 0, (0, 0)
    while True:
        sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
        if sample is None:
            break
        s = sample.get_caps().get_structure(0)
        size = (s.get_value("width"), s.get_value("height"))
        frames += 1
    pipe.set_state(Gst.State.NULL)
    return frames, size[0], size[1], bool(audio)


def video_cases(tmp, shipped, env):
    src = os.path.join(tmp, "in.mp4")
    r = gst_launch(f"videotestsrc num-buffers=12 pattern=ball ! video/x-raw,width=40,height=30,framerate=12/1 ! "
                   f"x264enc ! mp4mux name=m ! filesink location={src} audiotestsrc num-buffers=40 ! audioconvert ! "
                   f"avenc_aac ! m.")
    if r.returncode != 0:
        case("make a test clip with audio", False, r.stderr)
        return
    for ext in ["mp4", "mkv", "webm"]:
        out = os.path.join(tmp, "out." + ext)
        r = subprocess.run([TOOLS["upscale"], "-m", shipped, "--threads", "2", "--chunk", "5", src, out],
                           capture_output=True, text=True, env=env, timeout=300)
        got = decoded_video(out) if r.returncode == 0 else None
        case(f"upscale in.mp4 out.{ext}: same frame count at 4x, audio kept",
             got == (12, 160, 120, True) and "audio/" in r.stderr and "dropped" not in r.stderr, f"{got} {r.stderr}")
    silent = os.path.join(tmp, "silent.mkv")
    gst_launch(f"videotestsrc num-buffers=7 ! video/x-raw,width=21,height=13,framerate=25/1 ! x264enc ! "
               f"matroskamux ! filesink location={silent}")
    out = os.path.join(tmp, "silent-x4.mp4")
    r = subprocess.run([TOOLS["upscale"], "-m", shipped, "-p", "int8", silent, out], capture_output=True, text=True,
                       env=env, timeout=300)
    got = decoded_video(out) if r.returncode == 0 else None
    case("upscale a clip without audio, odd size, int8", got == (7, 84, 52, False), f"{got} {r.stderr}")
    # The model file is read once: the element starts on the model the program loaded.
    out = os.path.join(tmp, "silent-x4-debug.mkv")
    r = subprocess.run([TOOLS["upscale"], "-m", shipped, silent, out], capture_output=True, text=True,
                       env=dict(env, GST_DEBUG="qbasicvsr:5", GST_DEBUG_NO_COLOR="1"), timeout=300)
    case("upscale video: the element runs the model the program loaded",
         r.returncode == 0 and "the one the program loaded" in r.stderr, r.stderr[-2000:])
    with open(src, "rb") as f:
        data = f.read()
    truncated = os.path.join(tmp, "truncated.mp4")
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    expect_error("upscale: truncated video", [TOOLS["upscale"], "-m", shipped, truncated, os.path.join(tmp, "t.mp4")],
                 "truncated.mp4")
    garbage = os.path.join(tmp, "garbage.mp4")
    with open(garbage, "wb") as f:
        f.write(os.urandom(20000))
    expect_error("upscale: not a video", [TOOLS["upscale"], "-m", shipped, garbage, os.path.join(tmp, "g.mp4")],
                 "garbage.mp4")
    expect_error("upscale: unknown container", [TOOLS["upscale"], "-m", shipped, src, os.path.join(tmp, "o.xyz")],
                 "unknown output container")
    expect_error("upscale: --resume on a video", [TOOLS["upscale"], "-m", shipped, "--resume", src,
                                                   os.path.join(tmp, "o.mp4")], "frame folders only")
    # Two instances in one pipeline, through the plugin file.
    plugin_env = dict(env, GST_PLUGIN_PATH=os.path.join(BUILD, "gst"))
    r = subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=5", "!",
                        "video/x-raw,width=8,height=6,format=RGBx", "!", "qbasicvsr", f"model={shipped}",
                        "chunk-size=2", "!", "qbasicvsr", f"model={shipped}", "chunk-size=3", "overlap=1", "!",
                        "video/x-raw,width=128,height=96", "!", "fakesink"],
                       capture_output=True, text=True, env=plugin_env, timeout=300)
    case("two instances in one gst-launch pipeline", r.returncode == 0, r.stderr)


def eval_cases(tmp, shipped):
    gt = os.path.join(tmp, "gt")
    os.makedirs(gt)
    src = os.path.join(SOURCE, "examples", "data", "cockatoo")
    for n in sorted(os.listdir(src))[:3]:
        Image.open(os.path.join(src, n)).crop((0, 0, 98, 66)).save(os.path.join(gt, n))  # 98x66: modcrop to 96x64
    r = run([TOOLS["eval"], "--bicubic", "--gt", gt, "--json"])
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    case("eval --bicubic --json", j.get("clips", [{}])[0].get("frames") == 3 and 20 < j["mean"]["psnr"] < 60
         and 0 < j["mean"]["ssim"] <= 1, r.stdout + r.stderr)
    r = run([TOOLS["eval"], "-m", shipped, "--gt", gt, "--gt", gt, "--degradation", "BD", "--crop", "4", "--json",
             "--save", os.path.join(tmp, "saved")], timeout=300)
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    case("eval -m MODEL, two clips, BD, --save", len(j.get("clips", [])) == 2
         and abs(j["mean"]["psnr"] - j["clips"][0]["psnr"]) < 1e-9
         and len(os.listdir(os.path.join(tmp, "saved", "gt"))) == 3
         and png_size(os.path.join(tmp, "saved", "gt", "00000000.png")) == (96, 64), r.stdout + r.stderr)
    expect_error("eval: no clips", [TOOLS["eval"], "--bicubic"], "--gt")
    expect_error("eval: bad degradation", [TOOLS["eval"], "--bicubic", "--gt", gt, "--degradation", "XY"],
                 "expected BI, BD or BD-duf")
    expect_error("eval: model and bicubic", [TOOLS["eval"], "--bicubic", "-m", shipped, "--gt", gt], "not both")
    expect_error("eval: missing clip", [TOOLS["eval"], "--bicubic", "--gt", os.path.join(tmp, "nope")],
                 "qbasicvsr-eval:")


def calibrate_cases(tmp, shipped):
    clip = os.path.join(tmp, "cal")
    os.makedirs(clip)
    for i in range(6):
        write_png(os.path.join(clip, f"{i}.png"), 20, 16, seed=i)
    out = os.path.join(tmp, "q.safetensors")
    base = [TOOLS["calibrate"], "-m", shipped, "--clips", clip, "--bits", "4", "--crop", "16", "--frames", "3",
            "--threads", "2", "--seed", "5"]
    r = run(base + ["--iters", "4", "-o", out, "--report", out + ".json", "--plot", out + ".svg"], timeout=300)
    ok = r.returncode == 0 and os.path.exists(out)
    rep = json.load(open(out + ".json")) if ok else {}
    case("calibrate: writes a model, a JSON report and an SVG", ok and len(rep["losses"]) == 4
         and any(l["quantized"] for l in rep["layers"]) and open(out + ".svg").read().startswith("<svg"), r.stderr)
    search = rep.get("range_search", [])
    case("calibrate: the range search tries 0.8..2 and keeps the factor with the least error",
         len(search) == 6 and min(search, key=lambda e: e["mse"])["scale"] == rep["range_scale"]
         and len({e["mse"] for e in search}) > 1, str(search))
    r2 = run([TOOLS["upscale"], "-m", out, clip, os.path.join(tmp, "cal-out")], timeout=300)
    case("calibrated model runs as int8 by default", r2.returncode == 0 and "int8 W4 partial, ranges calibrated"
         in r2.stderr, r2.stderr)
    again = os.path.join(tmp, "q2.safetensors")
    r = run(base + ["--iters", "4", "-o", again], timeout=300)
    case("calibrate: deterministic with --seed", r.returncode == 0
         and open(out, "rb").read() == open(again, "rb").read(), r.stderr)
    # --dynamic-ranges yes: dynamic ranges on the trunks' input convs and the reconstruction convs
    # before conv_last, none by default; the layers keep their calibrated ranges either way. The
    # model runs, on int8 as on fake, and says so.
    dynamic_layers = {"backward_trunk.main.0", "forward_trunk.main.0", "fusion", "upconv1", "upconv2", "conv_hr"}
    q = json.loads(read_metadata(out)["quantization"])["layers"] if ok else {}
    dyn = os.path.join(tmp, "q-dynamic.safetensors")
    r = run(base + ["--iters", "2", "--dynamic-ranges", "yes", "-o", dyn], timeout=300)
    qd = json.loads(read_metadata(dyn)["quantization"])["layers"] if r.returncode == 0 else {}
    case("calibrate: --dynamic-ranges yes marks the trunk inputs and the reconstruction, the default none",
         {n for n, e in qd.items() if e.get("dynamic")} == dynamic_layers and all("range" in e for e in qd.values())
         and q and not any(e.get("dynamic") for e in q.values()), r.stderr)
    outs = {}
    for p in ("int8", "fake"):
        r2 = run([TOOLS["upscale"], "-m", dyn, "-p", p, clip, os.path.join(tmp, "dyn-" + p)], timeout=300)
        outs[p] = r2
    case("a model with dynamic ranges runs int8 and fake alike and says so",
         all(r2.returncode == 0 and "ranges calibrated, 6 per frame" in r2.stderr for r2 in outs.values())
         and min(psnr_png(os.path.join(tmp, "dyn-int8", f), os.path.join(tmp, "dyn-fake", f))
                 for f in sorted(os.listdir(os.path.join(tmp, "dyn-fake")))) > 40,
         outs["int8"].stderr + outs["fake"].stderr)
    expect_error("calibrate: bad --dynamic-ranges", base + ["--dynamic-ranges", "maybe", "-o", dyn],
                 '--dynamic-ranges must be yes or no, got "maybe"')
    # A run stopped after iteration 2 and resumed ends exactly where an uninterrupted one does.
    part = os.path.join(tmp, "q3.safetensors")
    r = run(base + ["--iters", "4", "--stop-at", "2", "-o", part], timeout=300)
    stopped = r.returncode == 0 and not os.path.exists(part) and os.path.exists(part + ".ckpt")
    other_arithmetic_refused("calibrate", base + ["--iters", "4", "--resume", "-o", part], part + ".ckpt",
                             "calibration_state")
    # Resumed with other options than it started with, a run would give no uninterrupted result
    # (kept weights: Adam's state would not even fit): refused by name before the statistics, the
    # checkpoint left to resume below.
    expect_error("calibrate: --resume with the other --keep-weights",
                 base + ["--iters", "4", "--resume", "--keep-weights", "yes", "-o", part],
                 "the run was started with --keep-weights no, not --keep-weights yes; resume it with its options")
    expect_error("calibrate: --resume with another --iters", base + ["--iters", "6", "--resume", "-o", part],
                 "the run was started with --iters 4, not --iters 6")
    expect_error("calibrate: --resume with dynamic ranges", base + ["--iters", "4", "--resume", "--dynamic-ranges",
                                                                    "yes", "-o", part],
                 "the run was started with --dynamic-ranges no, not --dynamic-ranges yes")
    expect_error("calibrate: --resume on other sequences (--frames 2)",
                 base + ["--iters", "4", "--frames", "2", "--resume", "-o", part],
                 "the run was started on other calibration sequences")
    r = run(base + ["--iters", "4", "--resume", "-o", part], timeout=300)
    case("calibrate: --stop-at then --resume gives the uninterrupted result", stopped and r.returncode == 0
         and open(part, "rb").read() == open(out, "rb").read() and not os.path.exists(part + ".ckpt"), r.stderr)
    expect_error("calibrate: resume without checkpoint", base + ["--iters", "4", "--resume", "-o",
                                                                 os.path.join(tmp, "q5.safetensors")], "no checkpoint")
    expect_error("calibrate: quantized model", [TOOLS["calibrate"], "-m", out, "--clips", clip, "--bits", "6", "-o",
                                                os.path.join(tmp, "x.safetensors")], "already quantized")
    expect_error("calibrate: bits out of range", base[:5] + ["--bits", "9", "-o", os.path.join(tmp, "x.safetensors")],
                 "--bits must be an integer in 2..8")
    empty = os.path.join(tmp, "empty-clip")
    os.makedirs(empty)
    expect_error("calibrate: empty clip folder", [TOOLS["calibrate"], "-m", shipped, "--clips", empty, "--bits", "6",
                                                  "-o", os.path.join(tmp, "x.safetensors")], "no PNG frames")
    short = os.path.join(tmp, "short-clip")
    os.makedirs(short)
    write_png(os.path.join(short, "a.png"), 20, 16)
    expect_error("calibrate: one-frame clip", [TOOLS["calibrate"], "-m", shipped, "--clips", short, "--bits", "6",
                                               "-o", os.path.join(tmp, "x.safetensors")], "at least 2 frames")
    expect_error("calibrate: bad --compute", base + ["--compute", "int4", "-o", os.path.join(tmp, "x.safetensors")],
                 '--compute must be auto, fp32 or bf16, got "int4"')
    expect_error("calibrate: --compute fp16 (GPU inference only)",
                 base + ["--compute", "fp16", "-o", os.path.join(tmp, "x.safetensors")], "--compute must be auto, fp32 or bf16")
    r = run(base + ["--iters", "2", "--compute", "fp32", "-o", os.path.join(tmp, "q6.safetensors")], timeout=300)
    case("calibrate: --compute fp32 runs", r.returncode == 0, r.stderr)
    eq = os.path.join(tmp, "q7.safetensors")
    r = run(base + ["--iters", "2", "--equalize", "1", "-o", eq, "--report", eq + ".json"], timeout=300)
    rep = json.load(open(eq + ".json")) if r.returncode == 0 else {}
    prov = json.loads(read_metadata(eq)["provenance"]) if r.returncode == 0 else {}
    r2 = run([TOOLS["upscale"], "-m", eq, clip, os.path.join(tmp, "eq-out")], timeout=300) if rep else r
    case("calibrate: --equalize 1 rescales the streams (factors > 1 in the report) and the model runs",
         rep.get("stream_scales", {}).get("max", 1) > 1 and rep["stream_scales"]["min"] == 1
         and prov["calibration"]["equalize"] == 1 and r2.returncode == 0, r.stderr + r2.stderr)
    expect_error("calibrate: --equalize out of range", base + ["--equalize", "1.5", "-o", eq],
                 "--equalize must be auto or in 0..1")
    expect_error("calibrate: no output", [TOOLS["calibrate"], "-m", shipped, "--clips", clip, "--bits", "6"],
                 "-o OUT")
    target_cases(tmp, base)
    rounding_cases(tmp, base)
    return out


def greedy_bits(errors, target, lo, hi):
    """The allocation rule, written again from its description: all layers at lo, then one bit at a
    time to the layer whose modelled error falls most (ties: the first), until the mean would pass
    the target."""
    def at(e, b):
        (b0, e0), (b1, e1) = sorted((int(k), v) for k, v in e.items())
        if e0 <= 0:
            return 0.0
        span = max(1, b1 - b0)
        ratio = min(max(e1 / e0, 0.25 ** span), 1.0)
        return e0 * ratio ** ((b - b0) / span)
    bits = [lo] * len(errors)
    budget = int(target * len(errors) + 1e-9) - lo * len(errors)
    for _ in range(budget):
        gains = [at(e, b) - at(e, b + 1) if b < hi else -2.0 for e, b in zip(errors, bits)]
        best = max(range(len(bits)), key=lambda i: (gains[i], -i))
        if gains[best] < -1:
            break
        bits[best] += 1
    return bits


def target_cases(tmp, base):
    out = os.path.join(tmp, "target.safetensors")
    r = run(base + ["--iters", "1", "--target-bits", "4.6", "--sensitivity-sequences", "2", "-o", out,
                    "--report", out + ".json"], timeout=300)
    ok = r.returncode == 0
    rep = json.load(open(out + ".json")) if ok else {}
    sens = rep.get("sensitivity", [])
    quantized = [l for l in rep.get("layers", []) if l["quantized"]]
    bits = [s["bits"] for s in sens]
    mean = sum(bits) / max(1, len(bits))
    case("calibrate --target-bits: one measured error per quantized layer, mean bits at most the target",
         ok and len(sens) == len(quantized) > 0 and 4.0 < mean <= 4.6 and min(bits) >= 3 and max(bits) <= 8
         and all(s["mse"]["4"] > 0 for s in sens), r.stderr + str(bits))
    case("calibrate --target-bits: the bits are the greedy allocation of the measured errors",
         ok and bits == greedy_bits([s["mse"] for s in sens], 4.6, 3, 8)
         and [l["b_L"] for l in quantized] == [b - 4 for b in bits], str(bits))
    case("calibrate: the report has the per-frame PSNR against fp32, before and after distillation",
         ok and len(rep["step_psnr"]["initial"]) == 3 and len(rep["step_psnr"]["final"]) == 3
         and all(v > 10 for v in rep["step_psnr"]["initial"]), str(rep.get("step_psnr")))
    gt = os.path.join(tmp, "target-gt")
    os.makedirs(gt, exist_ok=True)
    for i in range(3):
        write_png(os.path.join(gt, f"{i}.png"), 32, 32, seed=20 + i)
    r = run([TOOLS["eval"], "-m", out, "--gt", gt, "--no-adapt", "--json"], timeout=300)
    reported = json.loads(r.stdout)["mean"]["bits"] if r.returncode == 0 else -1
    case("eval reports the mean bits the allocation set", abs(reported - mean) < 1e-3, r.stderr + str(reported))
    expect_error("calibrate: --target-bits below bits - 1", base + ["--target-bits", "2.5", "-o", out + ".x"],
                 "--target-bits must be in 3..8")
    expect_error("calibrate: no sensitivity sequences", base + ["--target-bits", "4.5", "--sensitivity-sequences", "0",
                                                                "-o", out + ".x"], "--sensitivity-sequences must be")


def read_tensor(path, name):
    """One float32 tensor of a safetensors file as a numpy array."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        entry = json.loads(f.read(n))[name]
        a, b = entry["data_offsets"]
        f.seek(8 + n + a)
        return np.frombuffer(f.read(b - a), dtype="<f4").reshape(entry["shape"])


def rounding_cases(tmp, base):
    out = os.path.join(tmp, "rounded.safetensors")
    # base calibrates at --bits 4, where the default (auto) is the rounding for the inputs.
    r = run(base + ["--iters", "0", "-o", out, "--report", out + ".json"], timeout=300)
    ok = r.returncode == 0
    case("calibrate: --weight-rounding auto (the default) rounds for the inputs at --bits 4",
         ok and "weights rounded for their inputs (hessian)" in r.stderr, r.stderr)
    rep = json.load(open(out + ".json")) if ok else {}
    first, first_rep = r, rep
    errors = [l["weight_error"] for l in rep.get("layers", []) if l["quantized"]]
    case("calibrate, hessian rounding: no layer's output error above nearest rounding's, less in sum",
         ok and len(errors) > 0 and all(0 <= e["rounded"] <= e["nearest"] * (1 + 1e-6) for e in errors)
         and sum(e["rounded"] for e in errors) < 0.9 * sum(e["nearest"] for e in errors), r.stderr + str(errors[:4]))
    # Without distillation the stored weights are the rounding itself: each quantized layer's
    # feature columns are whole multiples of its clips' steps at its bits (b_V = 0), which the
    # engines round to themselves.
    q = json.loads(read_metadata(out)["quantization"]) if ok else {"layers": {}}
    off_grid = []
    for name, lq in q["layers"].items():
        bits = min(8, max(2, q["b_base"] + lq.get("b_L", 0)))
        w = read_tensor(out, name + ".weight").astype(np.float64)
        if name.endswith("trunk.main.0"):
            w = w[:, 3:]  # the frame's columns stay float
        codes = w / (np.array(lq["weight_clip"])[:, None, None, None] / (2 ** (bits - 1) - 1))
        if np.abs(codes - np.round(codes)).max() > 1e-3 or np.abs(codes).max() > 2 ** (bits - 1) - 1 + 1e-3:
            off_grid.append(name)
    case("calibrate, hessian rounding: the stored weights lie on their clips' grids",
         ok and len(q["layers"]) > 0 and not off_grid, str(off_grid))
    six = base[:base.index("--bits")] + ["--bits", "6"] + base[base.index("--bits") + 2:]
    r = run(six + ["--iters", "0", "-o", out + ".6", "--report", out + ".6.json"], timeout=300)
    rep = json.load(open(out + ".6.json")) if r.returncode == 0 else {"layers": []}
    case("calibrate: auto keeps nearest rounding at --bits 6 (no rounding errors reported)",
         r.returncode == 0 and "weights rounded to nearest" in r.stderr
         and all(l["weight_error"]["rounded"] == 0 for l in rep["layers"]), r.stderr)
    case("calibrate: --equalize auto is off with nearest rounding (--bits 6), 0.5 with hessian (--bits 4)",
         r.returncode == 0 and "streams equalised with alpha 0.00" in r.stderr
         and rep["stream_scales"]["max"] == 1 and ok and "streams equalised with alpha 0.50" in first.stderr
         and first_rep["stream_scales"]["max"] > 1, r.stderr)
    # Distillation learns the biases, and the rounded weights and their clips unless it keeps them:
    # --keep-weights auto keeps them above 4 bits (6: kept, 4: learnt), yes keeps them at 4.
    six_h = six + ["--weight-rounding", "hessian"]
    r = run(six_h + ["--iters", "0", "-o", out + ".6h"], timeout=300)
    ok6 = r.returncode == 0

    def learnt_of(path):  # the quantized layers' weights, clips and biases
        lq = json.loads(read_metadata(path)["quantization"])["layers"]
        return ({n: read_tensor(path, n + ".weight").tobytes() for n in lq}, {n: v["weight_clip"] for n, v in lq.items()},
                {n: read_tensor(path, n + ".bias").tobytes() for n in lq})
    for i, (args, start, keeps, what) in enumerate(((six_h, out + ".6h", True, "auto at --bits 6"),
                                     (base, out, False, "auto at --bits 4"),
                                     (base + ["--keep-weights", "yes"], out, True, "yes at --bits 4"))):
        tuned = out + ".keep%d" % i
        r = run(args + ["--iters", "2", "-o", tuned], timeout=300)
        good = ok and ok6 and r.returncode == 0
        prov = json.loads(read_metadata(tuned)["provenance"]) if good else {}
        before, after = (learnt_of(start), learnt_of(tuned)) if good else ((), ())
        case(f"calibrate, hessian rounding: --keep-weights {what} " + ("keeps" if keeps else "learns") +
             " the rounded weights and clips; the biases are learnt",
             good and (after[0] == before[0] and after[1] == before[1]) == keeps and after[2] != before[2]
             and prov["calibration"]["keep_weights"] == keeps and ("kept by distillation" in r.stderr) == keeps,
             r.stderr)
    expect_error("calibrate: bad --keep-weights", base + ["--keep-weights", "maybe", "-o", out + ".x"],
                 '--keep-weights must be auto, yes or no, got "maybe"')
    expect_error("calibrate: negative --lr", base + ["--lr", "-1e-5", "-o", out + ".x"],
                 "--lr and --lr-ranges must be >= 0")
    r = run(base + ["--iters", "0", "--weight-rounding", "nearest", "-o", out + ".n"], timeout=300)
    case("calibrate: --weight-rounding nearest at --bits 4", r.returncode == 0
         and "weights rounded to nearest" in r.stderr, r.stderr)
    expect_error("calibrate: bad --weight-rounding", base + ["--weight-rounding", "adaround", "-o", out + ".x"],
                 "--weight-rounding must be auto, nearest or hessian")


def train_cases(tmp, quantized):
    clip, val = os.path.join(tmp, "train-gt"), os.path.join(tmp, "train-gt-val")
    for d, n in ((clip, 6), (val, 3)):
        os.makedirs(d)
        for i in range(n):
            write_png(os.path.join(d, f"{i}.png"), 64, 48, seed=100 + i + 10 * n)
    out = os.path.join(tmp, "t.safetensors")
    base = [TOOLS["train"], "--clips", clip, "--val", val, "--arch", "4,1,4", "--flow-iters", "3", "--flow-batch", "2",
            "--flow-size", "32", "--iters", "6", "--flow-freeze", "3", "--batch", "2", "--crop", "8", "--frames", "3",
            "--threads", "2", "--seed", "3", "--val-every", "3", "--checkpoint-every", "2"]
    r = run(base + ["-o", out, "--report", out + ".json"], timeout=300)
    ok = r.returncode == 0 and os.path.exists(out)
    rep = json.load(open(out + ".json")) if ok else {}
    case("train: writes a model and a report (losses, validations, flow figures)" + (
         "" if ok else f" rc={r.returncode}"),
         ok and len(rep["losses"]) == 6 and [v["iteration"] for v in rep["validations"]] == [3, 6]
         and rep["bicubic_psnr_y"] > 10 and rep["flow"]["synthetic_pairs"] == 64 and rep["flow"]["real_pairs"] == 2
         and "SPyNet frozen for 3 iterations" in r.stderr and not os.path.exists(out + ".ckpt"), r.stderr)
    r2 = run([TOOLS["eval"], "-m", out, "--gt", val, "--json"], timeout=300)
    case("train: the model evaluates", r2.returncode == 0 and json.loads(r2.stdout)["mean"]["psnr"] > 10, r2.stderr)
    again = os.path.join(tmp, "t2.safetensors")
    r = run(base + ["-o", again], timeout=300)
    case("train: deterministic with --seed (same weights)", r.returncode == 0
         and tensor_bytes(out) == tensor_bytes(again), r.stderr)
    # Stopped after iteration 4 (SPyNet already training) and resumed: the uninterrupted result.
    part = os.path.join(tmp, "t3.safetensors")
    r = run(base + ["--stop-at", "4", "-o", part], timeout=300)
    stopped = r.returncode == 0 and not os.path.exists(part) and os.path.exists(part + ".ckpt")
    other_arithmetic_refused("train", base + ["--resume", "-o", part], part + ".ckpt", "training_state")
    # Other options or clips than the checkpoint records: one line naming them, nothing trained.
    expect_error("train: --resume with another --lr", base + ["--lr", "1e-3", "--resume", "-o", part],
                 "the run was started with --lr 0.0002, not --lr 0.001; resume it with its options")
    expect_error("train: --resume on other clips (--max-frames 5)", base + ["--max-frames", "5", "--resume", "-o", part],
                 "the run was started on other training clips")
    r = run(base + ["--resume", "-o", part], timeout=300)
    case("train: --stop-at then --resume gives the uninterrupted result", stopped and r.returncode == 0
         and tensor_bytes(part) == tensor_bytes(out), r.stderr)
    cont = os.path.join(tmp, "t4.safetensors")
    r = run([TOOLS["train"], "--clips", clip, "--init", out, "--flow-iters", "0", "--iters", "2", "--batch", "1",
             "--crop", "8", "--frames", "3", "-o", cont], timeout=300)
    prov = json.loads(read_metadata(cont)["provenance"]) if r.returncode == 0 else {}
    case("train: --init continues a model and keeps its history", r.returncode == 0
         and prov.get("previous", {}).get("training", {}).get("iterations") == 6, r.stderr)
    # Photographs as training video, on the SPyNet of another model (the shipped one).
    stills = os.path.join(tmp, "stills")
    os.makedirs(stills)
    write_png(os.path.join(stills, "a.png"), 72, 60, seed=7)
    write_png(os.path.join(stills, "b.png"), 60, 80, seed=8)
    shipped = os.path.join(SOURCE, "models", "clean-c32n5-fp32.safetensors")
    flow = os.path.join(tmp, "flow.safetensors")
    fbase = [TOOLS["train"], "--clips", clip, "--stills", stills, "--still-clips", "2", "--still-frames", "4",
             "--arch", "4,1,4", "--flow-from", shipped, "--iters", "2", "--flow-freeze", "2", "--batch", "1", "--crop", "8",
             "--frames", "3", "--threads", "2"]
    r = run(fbase + ["-o", flow], timeout=300)
    prov = json.loads(read_metadata(flow)["provenance"]) if r.returncode == 0 else {}
    spy = lambda path: [t for t in safetensors_names(path) if t.startswith("spynet.")]
    case("train: --stills add 2 camera clips per photograph; --flow-from keeps that model's SPyNet",
         r.returncode == 0 and "5 clips" in r.stderr
         and sum("(camera " in c for c in prov["training"]["clips"]) == 4
         and prov["flow_pretraining"].get("from") == "clean-c32n5-fp32.safetensors"
         and tensor_subset(flow, spy(shipped)) == tensor_subset(shipped, spy(shipped)), r.stderr)
    further = os.path.join(tmp, "flow2.safetensors")
    r = run(fbase + ["--flow-iters", "2", "--flow-batch", "2", "--flow-size", "32", "-o", further], timeout=300)
    prov = json.loads(read_metadata(further)["provenance"]) if r.returncode == 0 else {}
    case("train: --flow-from pretrained further keeps where the SPyNet came from",
         prov.get("flow_pretraining", {}).get("from") == "clean-c32n5-fp32.safetensors"
         and prov["flow_pretraining"].get("iterations") == 2, r.stderr)
    x = os.path.join(tmp, "x.safetensors")
    write_png(os.path.join(tmp, "small.png"), 30, 60, seed=9)
    expect_error("train: photograph too small for the camera window",
                 fbase[:3] + ["--stills", os.path.join(tmp, "small.png"), "--crop", "8", "-o", x], "small.png (camera 1/3): 30x60 is too small")
    expect_error("train: --flow-from with --init", [TOOLS["train"], "--clips", clip, "--init", out, "--flow-from",
                                                    shipped, "-o", x], "--init takes the model's own")
    expect_error("train: no clips", [TOOLS["train"], "-o", x], "--clips")
    expect_error("train: bad arch", base[:3] + ["--arch", "4", "-o", x], "--arch must be C,N")
    expect_error("train: bad degradation", base[:3] + ["--degradation", "XX", "-o", x], "expected BI, BD or BD-duf")
    expect_error("train: clip shorter than --frames", base + ["--frames", "9", "-o", x], "needs at least")
    expect_error("train: crop larger than the frames", base + ["--crop", "20", "-o", x], "too small for LR crops")
    expect_error("train: quantized init", [TOOLS["train"], "--clips", clip, "--init", quantized, "-o", x], "quantized")
    expect_error("train: init and arch", [TOOLS["train"], "--clips", clip, "--init", out, "--arch", "4,1", "-o", x],
                 "--init takes the model's own")
    expect_error("train: resume without checkpoint", base + ["--resume", "-o", x], "no checkpoint")
    expect_error("train: bad --compute", base + ["--compute", "int8", "-o", x],
                 '--compute must be auto, fp32 or bf16, got "int8"')
    expect_error("train: bad --base", base[:3] + ["--base", "lanczos", "-o", x],
                 '--base must be bilinear or bicubic, got "lanczos"')
    expect_error("train: missing clip", [TOOLS["train"], "--clips", os.path.join(tmp, "nope"), "-o", x],
                 "no such clip")


def luma_gradient_detail(path):
    """S_t by numpy: 1000 * mean(|dY/dx| + |dY/dy|), BT.601 luma in [0, 1], numpy.gradient."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    gy, gx = np.gradient(y)
    return 1000.0 * np.mean(np.abs(gx) + np.abs(gy))


def shifted_clip(folder, dx, dy, n=5, h=96, w=128):
    """n crops of a real photo whose window moves (dx, dy) pixels per frame."""
    src = np.asarray(Image.open(os.path.join(SOURCE, "examples", "data", "cockatoo", "00000000.png")).convert("RGB"))
    os.makedirs(folder)
    for t in range(n):
        y0, x0 = 20 + dy * t, 40 + dx * t
        Image.fromarray(src[y0:y0 + h, x0:x0 + w]).save(os.path.join(folder, f"f{t}.png"))


def complexity_cases(tmp, shipped):
    clip = os.path.join(tmp, "shift")
    shifted_clip(clip, 2, 1)
    # The option forms GLib's parser takes, the same result for each; and what it refuses.
    forms = [["-m", shipped, "--json", clip], [f"--model={shipped}", "--json", clip],
             ["--json", "-m", shipped, "--", clip]]
    outs = [run([TOOLS["complexity"]] + f) for f in forms]
    case("complexity: -m M, --model=M and -- give the same result",
         all(o.returncode == 0 and o.stdout == outs[0].stdout for o in outs), str([o.stderr for o in outs]))
    expect_error("complexity: option without its value", [TOOLS["complexity"], clip, "-m"], "missing argument for -m")
    expect_error("complexity: flag with a value", [TOOLS["complexity"], "-m", shipped, "--json=1", clip],
                 "option --json takes no value")
    r = run([TOOLS["complexity"], "-m", shipped, "--json", clip])
    ok = r.returncode == 0
    if ok:
        j = json.loads(r.stdout)
        names = sorted(os.listdir(clip))
        expected = [luma_gradient_detail(os.path.join(clip, n)) for n in names]
        got = [f["S"] for f in j["frames"]]
        ok = len(j["pairs"]) == 4 and all(abs(a - b) <= 1e-6 * max(1.0, b) for a, b in zip(got, expected))
        mean_pairs = np.mean([p["T_mag"] + j["gamma"] * p["T_cons"] for p in j["pairs"]])
        ok = ok and abs(j["C_V"] - (np.mean(expected) + j["lambda"] * mean_pairs)) < 1e-6 * j["C_V"]
        ok = ok and j["b_V"] == 0  # the stand-in has no FG-VBA thresholds
    case("complexity: S_t equals numpy.gradient's, C_V its parts", ok, r.stdout + r.stderr)
    expect_error("complexity: missing input", [TOOLS["complexity"], "-m", shipped, os.path.join(tmp, "none")],
                 "qbasicvsr-complexity:")
    if not os.path.exists(OFFICIAL):
        print("skip complexity with real flows: run tools/scripts/fetch_official_models.sh first")
        return
    r = run([TOOLS["complexity"], "-m", OFFICIAL, "--json", clip], timeout=300)
    pairs = json.loads(r.stdout)["pairs"] if r.returncode == 0 else []
    case("complexity: (2, 1) px/frame shift gives T_mag ~ 2.24, T_cons ~ 0",
         len(pairs) == 4 and all(abs(p["T_mag"] - 5 ** 0.5) <= 0.3 and p["T_cons"] < 0.3 for p in pairs),
         r.stdout + r.stderr)
    static = os.path.join(tmp, "static")
    shifted_clip(static, 0, 0)
    r = run([TOOLS["complexity"], "-m", OFFICIAL, "--json", static], timeout=300)
    pairs = json.loads(r.stdout)["pairs"] if r.returncode == 0 else []
    case("complexity: static clip gives T_mag ~ 0", len(pairs) == 4 and all(p["T_mag"] < 0.1 for p in pairs),
         r.stdout + r.stderr)


if __name__ == "__main__":
    main()
