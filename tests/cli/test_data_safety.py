"""qbasicvsr-upscale never destroys or silently corrupts a user's data: each case runs the tool the
way a user would and checks that the input is intact and the output is either correct or absent
with a clear error (one line on stderr).

usage: test_data_safety.py BUILD_DIR SOURCE_DIR
"""
import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import gi
import numpy as np
from PIL import Image

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

BUILD, SOURCE = sys.argv[1], sys.argv[2]
UPSCALE = os.path.join(BUILD, "tools", "qbasicvsr-upscale")
CALIBRATE = os.path.join(BUILD, "calibrate", "qbasicvsr-calibrate")
MODEL = os.path.join(SOURCE, "models", "clean-c32n5-fp32.safetensors")
BASE = [UPSCALE, "-m", MODEL, "--threads", "2", "--chunk", "3", "--overlap", "1"]
results = []


def check(name, good, detail=""):
    results.append(bool(good))
    print(("ok " if good else "FAIL ") + name + ("" if good else f": {detail}"), flush=True)


def run(args, timeout=300):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def one_clear_line(r):
    lines = [l for l in r.stderr.strip().splitlines() if l]
    return r.returncode > 0 and len(lines) == 1


def digest(path):
    """sha256 of a file, or of every file in a folder (names and contents)."""
    h = hashlib.sha256()
    if os.path.isdir(path):
        for n in sorted(os.listdir(path)):
            h.update(n.encode())
            h.update(open(os.path.join(path, n), "rb").read())
    else:
        h.update(open(path, "rb").read())
    return h.hexdigest()


def png_bytes(pixels, gamma=None):
    """A PNG of an HxW (grey), HxWx2 (grey+alpha), HxWx3 or HxWx4 uint8/uint16 array, optionally
    with a gAMA chunk (gamma x 100000)."""
    a = np.asarray(pixels)
    channels = 1 if a.ndim == 2 else a.shape[2]
    depth = 16 if a.dtype == np.uint16 else 8
    color = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    h, w = a.shape[:2]
    rows = a.astype(">u2" if depth == 16 else "u1").reshape(h, -1)
    raw = b"".join(b"\0" + r.tobytes() for r in rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
    if gamma is not None:
        body += chunk(b"gAMA", struct.pack(">I", gamma))
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_info(path):
    """(width, height, bit depth, colour type) from a PNG's header."""
    with open(path, "rb") as f:
        head = f.read(26)
    w, h = struct.unpack(">II", head[16:24])
    return w, h, head[24], head[25]


def read_png(path):
    """Stored samples of an 8/16-bit PNG, grey / RGB / RGBA, without any colour conversion."""
    data = open(path, "rb").read()
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", data[pos + 8:pos + 18])
        elif kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color]
    bpp = channels * depth // 8
    raw = zlib.decompress(idat)
    out = np.zeros((h, w * bpp), np.uint8)
    prev = np.zeros(w * bpp, np.int32)
    stride = w * bpp + 1
    for y in range(h):
        f, line = raw[y * stride], np.frombuffer(raw[y * stride + 1:(y + 1) * stride], np.uint8).astype(np.int32)
        cur = np.zeros_like(line)
        for x in range(len(line)):
            a = cur[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + p) & 0xFF
        out[y] = cur
        prev = cur
    if depth == 16:
        return out.view(">u2").reshape(h, w, channels).astype(np.uint16), depth
    return out.reshape(h, w, channels), depth


def picture(w, h, seed):
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return np.clip(base + rng.integers(-30, 30, (h, w, 3)), 0, 255).astype(np.uint8)


def make_folder(path, frames, **kw):
    os.makedirs(path, exist_ok=True)
    for i, f in enumerate(frames):
        with open(os.path.join(path, f"f{i:02d}.png"), "wb") as out:
            out.write(png_bytes(f, **kw))


def gst(description):
    subprocess.run(["gst-launch-1.0", "-q"] + description.split(), check=True, timeout=120, capture_output=True)


def demux(path, decode, kind):
    """The buffers (bytes, pts) of the first stream of a kind, after parsebin (encoded packets as
    the demuxer gives them) or decodebin (decoded frames); None when the file does not play."""
    pipe = Gst.parse_launch(f'filesrc location="{path}" ! {"decodebin" if decode else "parsebin"} name=p')
    packets, taken = [], []

    def added(_, pad):
        name = (pad.get_current_caps() or pad.query_caps(None)).get_structure(0).get_name()
        sink = Gst.ElementFactory.make("fakesink")
        sink.set_property("sync", False)
        sink.set_property("async", False)  # added while the pipeline runs
        pipe.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))
        if name.startswith(kind) and not taken:
            taken.append(pad)

            def probe(_pad, info):
                b = info.get_buffer()
                ok, m = b.map(Gst.MapFlags.READ)
                packets.append((bytes(m.data) if not decode else b"", b.pts))
                b.unmap(m)
                return Gst.PadProbeReturn.OK
            pad.add_probe(Gst.PadProbeType.BUFFER, probe)
    pipe.get_by_name("p").connect("pad-added", added)
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipe.set_state(Gst.State.NULL)
    return packets if msg is not None and msg.type == Gst.MessageType.EOS else None


def stream_packets(path, kind):
    return demux(path, False, kind) or []


def decoded_frames(path):
    """Number of decoded video frames of a file (0 if it does not play)."""
    frames = demux(path, True, "video/")
    return len(frames) if frames else 0


def same_paths(tmp, clip):
    copy = os.path.join(tmp, "same.mp4")
    shutil.copy(clip, copy)
    before = digest(copy)
    r = run(BASE + [copy, copy])
    check("same.mp4 same.mp4: refused, input intact", one_clear_line(r) and "is the input" in r.stderr
          and digest(copy) == before, r.stderr)
    link = os.path.join(tmp, "link.mp4")
    os.link(copy, link)
    r = run(BASE + [copy, link])
    check("a hard link to the input as output: refused, input intact",
          one_clear_line(r) and digest(copy) == before, r.stderr)
    frames = os.path.join(tmp, "frames")
    make_folder(frames, [picture(12, 8, i) for i in range(4)])
    before = digest(frames)
    r = run(BASE + [frames, frames])
    check("frames frames: refused, input intact", one_clear_line(r) and digest(frames) == before, r.stderr)
    r = run(BASE + [frames, os.path.join(frames, "x4")])
    check("an output folder inside the input folder: refused, nothing created",
          one_clear_line(r) and digest(frames) == before and not os.path.exists(os.path.join(frames, "x4")), r.stderr)


def resume_after_kill(tmp):
    clip = os.path.join(tmp, "kill-in")
    make_folder(clip, [picture(48, 32, i) for i in range(15)])
    full = os.path.join(tmp, "kill-full")
    r = run(BASE + [clip, full])
    part = os.path.join(tmp, "kill-part")
    p = subprocess.Popen(BASE + [clip, part], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len([n for n in os.listdir(part) if n.endswith(".png")] if os.path.isdir(part)
                                         else []) < 4:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = sorted(n for n in os.listdir(part) if not n.startswith("."))
    # What an earlier writer could have left too: a truncated frame and an empty one.
    names = sorted(os.listdir(full))
    with open(os.path.join(part, names[-3]), "wb") as f:
        f.write(open(os.path.join(full, names[-3]), "rb").read()[:300])
    open(os.path.join(part, names[-1]), "wb").close()
    r2 = run(BASE + ["--resume", clip, part])
    leftovers = [n for n in os.listdir(part) if n.startswith(".")]
    check(f"kill -9 after {len(done)} frames, a truncated and an empty frame, then --resume: the uninterrupted "
          "result byte for byte", r.returncode == 0 and r2.returncode == 0 and digest(part) == digest(full)
          and not leftovers, f"{r2.stderr} leftovers={leftovers}")


def fidelity(tmp):
    rgb = [picture(16, 12, i) for i in range(4)]
    plain, gama = os.path.join(tmp, "plain"), os.path.join(tmp, "gama")
    make_folder(plain, rgb)
    make_folder(gama, rgb, gamma=45455)
    r1, r2 = run(BASE + [plain, plain + "-x4"]), run(BASE + [gama, gama + "-x4"])
    check("8-bit PNG frames with a gAMA chunk are read as stored: the same output as without it",
          r1.returncode == 0 and r2.returncode == 0 and digest(plain + "-x4") == digest(gama + "-x4"),
          r1.stderr + r2.stderr)
    deep = os.path.join(tmp, "deep")
    make_folder(deep, [f.astype(np.uint16) * 257 for f in rgb])
    r = run(BASE + [deep, deep + "-x4"])
    ok = r.returncode == 0
    detail = r.stderr
    if ok:
        worst = 0.0
        for n in sorted(os.listdir(deep + "-x4")):
            out16, depth = read_png(os.path.join(deep + "-x4", n))
            out8, _ = read_png(os.path.join(plain + "-x4", n))
            ok &= depth == 16 and out16.shape == (48, 64, 3)
            worst = max(worst, float(np.mean(np.abs(out16 / 257.0 - out8) > 1)))
        ok &= worst <= 0.001
        detail = f"share of samples more than 1 level off the 8-bit run: {worst}"
    check("16-bit PNG frames are read at their depth and written back at 16 bits, not brightened", ok, detail)
    alpha = os.path.join(tmp, "alpha")
    make_folder(alpha, [np.dstack([f, np.full(f.shape[:2], 128, np.uint8)]) for f in rgb])
    r = run(BASE + [alpha, alpha + "-x4"])
    ok, detail = r.returncode == 0, r.stderr
    if ok:
        for n in sorted(os.listdir(alpha + "-x4")):
            out, _ = read_png(os.path.join(alpha + "-x4", n))
            ref, _ = read_png(os.path.join(plain + "-x4", n))
            ok &= out.shape == (48, 64, 4) and bool(np.all(out[..., 3] == 128)) and np.array_equal(out[..., :3], ref)
    check("RGBA frames keep their alpha (128) and their colour is the RGB frames' output", ok, detail)
    grey = os.path.join(tmp, "grey")
    make_folder(grey, [f[..., 1] for f in rgb])
    r = run(BASE + [grey, grey + "-x4"])
    infos = {png_info(os.path.join(grey + "-x4", n)) for n in os.listdir(grey + "-x4")} if r.returncode == 0 else set()
    check("greyscale frames stay greyscale", infos == {(64, 48, 8, 0)}, f"{infos} {r.stderr}")


def truncated_and_damaged(tmp):
    clip = os.path.join(tmp, "faststart.mp4")
    gst(f"videotestsrc num-buffers=40 pattern=ball ! video/x-raw,width=32,height=24,framerate=20/1 ! "
        f"x264enc key-int-max=10 ! mp4mux faststart=true name=m ! filesink location={clip} "
        f"audiotestsrc num-buffers=94 samplesperbuffer=1024 ! audio/x-raw,rate=48000 ! audioconvert ! avenc_aac ! m.")
    data = open(clip, "rb").read()
    for share in (30, 60, 99):
        cut = os.path.join(tmp, f"cut{share}.mp4")
        with open(cut, "wb") as f:
            f.write(data[: len(data) * share // 100])
        out = os.path.join(tmp, f"cut{share}-x4.mp4")
        r = run(BASE + [cut, out])
        check(f"MP4 (index first) cut at {share} %: an error naming the frames that decode, no output",
              one_clear_line(r) and "the file is cut short" in r.stderr and not os.path.exists(out)
              and not any(n.startswith(".cut") for n in os.listdir(tmp)), r.stderr)
    cut = os.path.join(tmp, "cut60.mp4")
    out = os.path.join(tmp, "cut60-kept.mp4")
    r = run(BASE + ["--keep-going", cut, out])
    n = decoded_frames(out) if r.returncode == 0 else 0
    said = re.search(r"warning: the file is cut short .*: (\d+) of the 40 frames of its index decode; (\d+) frames "
                     r"written", r.stderr)
    # The cut leaves a gap before the last frame that decodes; a player may stop before that frame.
    check(f"--keep-going on the 60 % cut: a playable file ({n} frames play) of the frames that decode, with a "
          "warning naming them", r.returncode == 0 and said is not None and said.group(1) == said.group(2)
          and 0 < n <= int(said.group(2)) <= n + 1 < 40, r.stderr)
    a, b, ab = (os.path.join(tmp, x) for x in ("a.ts", "b.ts", "ab.ts"))
    gst(f"videotestsrc num-buffers=8 ! video/x-raw,width=32,height=24,framerate=10/1 ! x264enc key-int-max=4 ! "
        f"mpegtsmux ! filesink location={a}")
    gst(f"videotestsrc num-buffers=8 pattern=ball ! video/x-raw,width=40,height=20,framerate=10/1 ! "
        f"x264enc key-int-max=4 ! mpegtsmux ! filesink location={b}")
    with open(ab, "wb") as f:
        f.write(open(a, "rb").read() + open(b, "rb").read())
    out = os.path.join(tmp, "ab.mp4")
    r = run(BASE + [ab, out])
    check("a .ts that changes resolution mid-stream, to .mp4: refused clearly, no output",
          one_clear_line(r) and "changes size from 32x24 to 40x20" in r.stderr and not os.path.exists(out), r.stderr)
    out = os.path.join(tmp, "ab-frames") + "/"
    r = run(BASE + [ab, out])
    sizes = sorted({Image.open(os.path.join(out, n)).size for n in os.listdir(out)}) if r.returncode == 0 else []
    check("the same .ts to a folder: every frame at 4x its own size",
          r.returncode == 0 and len(os.listdir(out)) == 16 and sizes == [(128, 96), (160, 80)], f"{sizes} {r.stderr}")


def folders_and_locks(tmp, clip):
    r = run(BASE + [clip, os.path.join(tmp, "no", "such", "folder", "out.mp4")])
    check("output folder missing (video mode): says which folder", one_clear_line(r)
          and "no such folder for the output" in r.stderr, r.stderr)
    blocker = os.path.join(tmp, "a-file")
    open(blocker, "w").close()
    r = run(BASE + [clip, os.path.join(blocker, "out.mp4")])
    check("output 'folder' that is a file: says so", one_clear_line(r) and "a-file" in r.stderr, r.stderr)
    long_clip = os.path.join(tmp, "long.mp4")
    gst(f"videotestsrc num-buffers=150 pattern=ball ! video/x-raw,width=64,height=48,framerate=25/1 ! x264enc ! "
        f"mp4mux ! filesink location={long_clip}")
    out = os.path.join(tmp, "locked.mp4")
    first = subprocess.Popen(BASE + [long_clip, out], stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    second = run(BASE + [long_clip, out])
    err = first.communicate(timeout=300)[1]
    check("two runs writing the same output: the second fails clearly, the first's result is complete",
          one_clear_line(second) and "another job is writing" in second.stderr and first.returncode == 0
          and decoded_frames(out) == 150, second.stderr + err)
    frames = os.path.join(tmp, "frames")
    r = run(BASE + ["--max-memory", "1", frames, os.path.join(tmp, "mem-x4")])
    check("--max-memory 1: a warning that says by how much the budget is exceeded",
          r.returncode == 0 and "over the --max-memory budget of 1 MB" in r.stderr, r.stderr)
    for name, extra in (("video", []), ("video segment", ["--segment", "1/2"])):
        r = run(BASE + ["--max-memory", "1"] + extra + [clip, os.path.join(tmp, f"mem-{len(extra)}.mp4")])
        check(f"--max-memory 1 on a {name}: the same warning before the work",
              r.returncode == 0 and "over the --max-memory budget of 1 MB" in r.stderr, r.stderr)
    stream = os.path.join(tmp, "stream")
    make_folder(stream, [picture(12, 8, i) for i in range(9)])
    with open(os.path.join(stream, "f07.png"), "wb") as f:
        f.write(png_bytes(picture(12, 8, 7))[:60])
    out = os.path.join(tmp, "stream-x4")
    r = run(BASE + [stream, out])
    written = sorted(os.listdir(out)) if os.path.isdir(out) else []
    check("folder mode streams frames from disk: frames before a damaged one are done, the error names it",
          one_clear_line(r) and "f07.png" in r.stderr and written == [f"f{i:02d}.png" for i in range(6)],
          f"{written} {r.stderr}")
    return long_clip


def signals(tmp, long_clip):
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        out = os.path.join(tmp, f"stop-{code}.mp4")
        p = subprocess.Popen(BASE + ["--chunk", "5", long_clip, out], stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        t0 = time.time()
        p.send_signal(sig)
        err = p.communicate(timeout=120)[1]
        took = time.time() - t0
        n = decoded_frames(out) if os.path.exists(out) else 0
        check(f"{signal.Signals(sig).name} in video mode: exit {code} within {took:.1f} s, a playable file of the "
              f"{n} frames done, and it says so", p.returncode == code and 0 < n < 150 and took < 30
              and f"holds the first {n} frames" in err, err)
    out = os.path.join(tmp, "abort.mp4")
    p = subprocess.Popen(BASE + [long_clip, out], stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    p.send_signal(signal.SIGINT)
    time.sleep(0.02)  # two signals sent at once would arrive as one
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    check("Ctrl-C twice: exit 130 and no file (neither empty nor unplayable)", p.returncode == 130
          and not os.path.exists(out) and not any(n.startswith(".abort") for n in os.listdir(tmp)), err)


def audio(tmp):
    clip = os.path.join(tmp, "aac48k.mp4")
    gst(f"videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=32,height=24,framerate=15/1 ! x264enc ! "
        f"mp4mux name=m ! filesink location={clip} audiotestsrc num-buffers=100 samplesperbuffer=1024 "
        f"wave=ticks ! audio/x-raw,rate=48000 ! audioconvert ! avenc_aac ! m.")
    source = stream_packets(clip, "audio/")
    for ext in ("mp4", "mkv", "mov"):
        out = os.path.join(tmp, "aac-x4." + ext)
        r = run(BASE + [clip, out])
        got = stream_packets(out, "audio/") if r.returncode == 0 else []
        # Matroska stores timestamps in milliseconds.
        check(f".{ext}: the AAC audio is copied bit for bit, at the same timestamps (within 1 ms)",
              r.returncode == 0 and "copied as it is" in r.stderr and len(got) == len(source) > 50
              and all(a[0] == b[0] and abs(a[1] - b[1]) <= Gst.MSECOND for a, b in zip(got, source)),
              f"{len(got)} packets vs {len(source)}: {r.stderr}")
    out = os.path.join(tmp, "aac-x4.webm")
    r = run(BASE + [clip, out])
    check(".webm: audio WebM cannot carry is re-encoded (Opus), and said so",
          r.returncode == 0 and "encoded with opusenc" in r.stderr and len(stream_packets(out, "audio/")) > 0,
          r.stderr)


def calibrate_clips(tmp):
    empty = os.path.join(tmp, "empty.mp4")
    open(empty, "wb").close()
    only_audio = os.path.join(tmp, "audio-only.m4a")
    gst(f"audiotestsrc num-buffers=50 ! audioconvert ! avenc_aac ! mp4mux ! filesink location={only_audio}")
    for name, clip, needle in (("an empty clip", empty, "empty.mp4"), ("an audio-only clip", only_audio,
                                                                       "no video stream"),
                               ("a truncated clip", os.path.join(tmp, "cut60.mp4"), "the file is cut short")):
        t0 = time.time()
        r = run([CALIBRATE, "-m", MODEL, "--clips", clip, "--bits", "6", "--iters", "1", "-o",
                 os.path.join(tmp, "cal.safetensors")])
        took = time.time() - t0
        check(f"calibrate on {name}: a clear error within {took:.1f} s", one_clear_line(r) and needle in r.stderr
              and took < 20, r.stderr)


def main():
    Gst.init(None)
    tmp = tempfile.mkdtemp()
    try:
        clip = os.path.join(tmp, "in.mp4")
        gst(f"videotestsrc num-buffers=10 pattern=ball ! video/x-raw,width=32,height=24,framerate=10/1 ! x264enc ! "
            f"mp4mux ! filesink location={clip}")
        same_paths(tmp, clip)
        resume_after_kill(tmp)
        fidelity(tmp)
        truncated_and_damaged(tmp)
        long_clip = folders_and_locks(tmp, clip)
        signals(tmp, long_clip)
        audio(tmp)
        calibrate_clips(tmp)
    finally:
        shutil.rmtree(tmp)
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
