"""Runs every example headless on tiny clips: the gst-launch lines, the C++ embedding and the
PyGObject script.

usage: test_examples.py BUILD_DIR SOURCE_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile

BUILD, SOURCE = sys.argv[1], sys.argv[2]
ENV = dict(os.environ, GST_PLUGIN_PATH=os.path.join(BUILD, "gst"),
           QBASICVSR_MODEL_DIR=os.path.join(SOURCE, "models"), SINK="fakesink")
LAUNCH = os.path.join(SOURCE, "examples", "launch", "launch-lines.sh")
results = []


def check(name, args, ok=lambda r: True, timeout=300):
    r = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout)
    good = r.returncode == 0 and ok(r)
    results.append(good)
    print(("ok " if good else "FAIL ") + name + ("" if good else f": rc={r.returncode} {r.stdout} {r.stderr}"))


def main():
    tmp = tempfile.mkdtemp()
    try:
        clip = os.path.join(tmp, "in.mp4")
        subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=6", "!",
                        "video/x-raw,width=24,height=16,framerate=10/1", "!", "x264enc", "!", "mp4mux", "name=m",
                        "!", "filesink", f"location={clip}", "audiotestsrc", "num-buffers=20", "!", "audioconvert",
                        "!", "avenc_aac", "!", "m."], check=True, env=ENV, timeout=120)
        out = os.path.join(tmp, "out.mp4")
        check("launch-lines.sh file", ["bash", LAUNCH, "file", clip, out],
              lambda r: os.path.getsize(out) > 0)
        check("launch-lines.sh preview (fakesink)", ["bash", LAUNCH, "preview", clip])
        check("launch-lines.sh playbin (fakesink)", ["bash", LAUNCH, "playbin", clip])
        check("C++ embedding (appsrc -> qbasicvsr -> appsink)", [os.path.join(BUILD, "examples", "embed")],
              lambda r: "6 frames in, 6 frames out" in r.stdout and "128x96" in r.stdout)
        frames = os.path.join(tmp, "frames")
        os.makedirs(frames)
        for n in sorted(os.listdir(os.path.join(SOURCE, "examples", "data", "cockatoo")))[:3]:
            shutil.copy(os.path.join(SOURCE, "examples", "data", "cockatoo", n), frames)
        check("PyGObject script", ["/usr/bin/python3", os.path.join(SOURCE, "examples", "python", "upscale_frames.py"),
                                   frames, os.path.join(tmp, "py-out"), "--chunk", "2"],
              lambda r: "3 frames in, 3 frames out" in r.stdout
              and len(os.listdir(os.path.join(tmp, "py-out"))) == 3)
    finally:
        shutil.rmtree(tmp)
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
