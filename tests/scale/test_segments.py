"""Segments of a job on an existing engine (examples/scale/): a clip cut into segments run by
separate processes gives, after the merge, the frames of one process with the same settings —
pixel-exact (lossless H.264, segment borders at chunk borders, full warm-up) — with the same frame
count, timestamps and audio. Through GNU parallel, the Slurm recipe's commands (dry run, then run)
and the Kubernetes Indexed Job's container command for every index.

usage: test_segments.py BUILD_DIR SOURCE_DIR
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import gi
import yaml

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

BUILD, SOURCE = sys.argv[1], sys.argv[2]
UPSCALE = os.path.join(BUILD, "tools", "qbasicvsr-upscale")
SCALE = os.path.join(SOURCE, "examples", "scale")
MODEL = os.path.join(SOURCE, "models", "clean-c32n5-fp32.safetensors")
SETTINGS = ["-m", MODEL, "--threads", "1", "--chunk", "5", "--overlap", "2"]
ENV = dict(os.environ, UPSCALE=UPSCALE, JOBS="2")
results = []


def check(name, good, detail=""):
    results.append(bool(good))
    print(("ok " if good else "FAIL ") + name + ("" if good else f": {detail}"), flush=True)


def run(args, env=None, timeout=600):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env or ENV)


def _drain(pipe, timeout=120):
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(timeout * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipe.set_state(Gst.State.NULL)
    return msg is not None and msg.type == Gst.MessageType.EOS


def _collect(sink, out):
    def sample(s):
        buf = s.emit("pull-sample").get_buffer()
        ok, m = buf.map(Gst.MapFlags.READ)
        out.append((buf.pts, bytes(m.data)))
        buf.unmap(m)
        return Gst.FlowReturn.OK
    sink.connect("new-sample", sample)


def streams(path):
    """Decoded RGB video frames (pts, bytes) and encoded audio packets (pts, bytes) of a file."""
    video, audio = [], []
    pipe = Gst.parse_launch(f"filesrc location={path} ! decodebin ! videoconvert ! video/x-raw,format=RGB "
                            "! appsink name=s sync=false emit-signals=true")
    _collect(pipe.get_by_name("s"), video)
    if not _drain(pipe):
        return [], []
    # The audio as stored: parsebin's audio pad into an appsink (the video pad stays unlinked).
    pipe = Gst.parse_launch(f"filesrc location={path} ! parsebin name=p")
    sink = Gst.ElementFactory.make("appsink")
    sink.set_property("sync", False)
    sink.set_property("emit-signals", True)
    pipe.add(sink)
    _collect(sink, audio)

    def added(_, pad):
        if pad.query_caps(None).get_structure(0).get_name().startswith("audio/"):
            pad.link(sink.get_static_pad("sink"))
    pipe.get_by_name("p").connect("pad-added", added)
    return (video, audio) if _drain(pipe) else ([], [])


def same_as(name, got_path, ref):
    got = streams(got_path)
    ok = len(got[0]) == len(ref[0]) > 0 and all(a == b for a, b in zip(got[0], ref[0]))
    ok &= len(got[1]) == len(ref[1]) > 0 and all(a == b for a, b in zip(got[1], ref[1]))
    differing = sum(a[1] != b[1] for a, b in zip(got[0], ref[0]))
    check(f"{name}: {len(got[0])} frames pixel-identical to one process, same timestamps, "
          f"{len(got[1])} audio packets identical", ok,
          f"frames {len(got[0])} vs {len(ref[0])}, {differing} differ; audio {len(got[1])} vs {len(ref[1])}")


def folder_digest(path):
    return {n: open(os.path.join(path, n), "rb").read() for n in sorted(os.listdir(path)) if not n.startswith(".")}


def main():
    Gst.init(None)
    tmp = tempfile.mkdtemp()
    try:
        clip = os.path.join(tmp, "in.mp4")
        subprocess.run(["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=47", "pattern=ball", "!",
                        "video/x-raw,width=48,height=32,framerate=20/1", "!", "x264enc", "!", "mp4mux", "name=m", "!",
                        "filesink", f"location={clip}", "audiotestsrc", "num-buffers=110", "samplesperbuffer=1024",
                        "!", "audio/x-raw,rate=48000", "!", "audioconvert", "!", "avenc_aac", "!", "m."],
                       check=True, timeout=120)
        one = os.path.join(tmp, "one.mp4")
        r = run([UPSCALE] + SETTINGS + ["--lossless", clip, one])
        ref = streams(one) if r.returncode == 0 else ([], [])
        check("one process, lossless", r.returncode == 0 and len(ref[0]) == 47, r.stderr)

        out = os.path.join(tmp, "four.mp4")
        r = run(["bash", os.path.join(SCALE, "parallel.sh"), clip, out, "4"] + SETTINGS + ["--lossless"])
        check("parallel.sh: 4 segments by 4 processes, then the merge",
              r.returncode == 0 and "segments: 4 of 4 succeeded" in r.stderr and "merged 4 pieces: 47 frames"
              in r.stderr and not [n for n in os.listdir(tmp) if ".part" in n], r.stderr)
        same_as("parallel.sh video", out, ref)

        # A frame folder: the segments write side by side into one output folder, no merge.
        frames = os.path.join(tmp, "frames")
        os.makedirs(frames)
        subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={clip}", "!", "decodebin", "!", "videoconvert",
                        "!", "video/x-raw,format=RGB", "!", "pngenc", "!", "multifilesink",
                        f"location={frames}/%04d.png"], check=True, timeout=120)
        whole = os.path.join(tmp, "frames-one")
        run([UPSCALE] + SETTINGS + [frames, whole])
        split = os.path.join(tmp, "frames-four")
        r = run(["bash", os.path.join(SCALE, "parallel.sh"), frames, split, "4"] + SETTINGS)
        check("parallel.sh on a frame folder: the one-process frames byte for byte",
              r.returncode == 0 and folder_digest(split) == folder_digest(whole) and len(folder_digest(whole)) == 47,
              r.stderr)
        # A short warm-up is faster and not exact: the merged frames differ (reported, not exact).
        short = os.path.join(tmp, "frames-warmup5")
        r = run(["bash", os.path.join(SCALE, "parallel.sh"), frames, short, "4"] + SETTINGS + ["--warmup", "5"])
        differing = sum(a != b for a, b in zip(folder_digest(short).values(), folder_digest(whole).values()))
        check(f"--warmup 5: all 47 frames written, {differing} differ from one process (the segments' first chunks)",
              r.returncode == 0 and len(folder_digest(short)) == 47 and 0 < differing < 47, r.stderr)

        # Many files: one task per file, a summary naming the failed one, finished files skipped.
        videos = os.path.join(tmp, "videos")
        os.makedirs(videos)
        shutil.copy(clip, os.path.join(videos, "a.mp4"))
        shutil.copy(clip, os.path.join(videos, "b.mp4"))
        with open(os.path.join(videos, "broken.mp4"), "wb") as f:
            f.write(b"not a video" * 100)
        done = os.path.join(tmp, "videos-4x")
        r = run(["bash", os.path.join(SCALE, "many-files.sh"), videos, done] + SETTINGS)
        made = sorted(os.listdir(done)) if os.path.isdir(done) else []
        check("many-files.sh: two files done, the broken one named as failed, non-zero exit",
              r.returncode != 0 and made == ["a.mkv", "b.mkv"] and "files: 2 succeeded, 1 failed" in r.stderr
              and "broken.mp4" in r.stderr.splitlines()[-1] and len(streams(os.path.join(done, "a.mkv"))[0]) == 47,
              f"rc={r.returncode} made={made} {r.stderr}")
        r = run(["bash", os.path.join(SCALE, "many-files.sh"), videos, done] + SETTINGS)
        check("many-files.sh again: finished files skipped, only the broken one tried",
              "2 files already done, 1 to do" in r.stderr and "files: 0 succeeded, 1 failed" in r.stderr, r.stderr)

        # Slurm: the recipe's dry run lists each task's command and the merge; running those
        # commands gives the same file.
        env = dict(ENV, N="4", INPUT=clip, OUTPUT=os.path.join(tmp, "slurm.mp4"), DRY_RUN="1", UPSCALE=UPSCALE,
                   MODEL=MODEL, ARGS="--lossless")
        r = run(["bash", os.path.join(SCALE, "slurm.sbatch"), "submit"], env=env)
        lines = r.stdout.strip().splitlines()
        tasks = [l.split(": ", 1)[1] for l in lines if re.match(r"task \d+: ", l)]
        merge = [l.split(": ", 1)[1] for l in lines if l.startswith("merge: ")]
        ok = r.returncode == 0 and len(tasks) == 4 and len(merge) == 1
        for cmd in tasks + merge:
            ok &= run(["bash", "-c", cmd]).returncode == 0
        check("slurm.sbatch: DRY_RUN=1 lists 4 tasks and the merge, and they run", ok, r.stdout + r.stderr)
        if ok:
            same_as("slurm.sbatch's commands (default chunking)", os.path.join(tmp, "slurm.mp4"),
                    streams_default(clip, tmp))

        # Kubernetes: the Indexed Job's container command for every index, then the merge Job's.
        job = yaml.safe_load(open(os.path.join(SCALE, "k8s-indexed-job.yaml")))
        merge_job = yaml.safe_load(open(os.path.join(SCALE, "k8s-merge-job.yaml")))
        spec = job["spec"]
        container = spec["template"]["spec"]["containers"][0]
        n = int(next(e["value"] for e in container["env"] if e["name"] == "N"))
        bin_dir = os.path.join(tmp, "bin")
        os.makedirs(bin_dir)
        os.symlink(os.path.abspath(UPSCALE), os.path.join(bin_dir, "qbasicvsr-upscale"))
        k8s_out = os.path.join(tmp, "out", "out.mp4")
        os.makedirs(os.path.dirname(k8s_out))
        env = dict(ENV, PATH=bin_dir + ":" + os.environ["PATH"], N=str(n), INPUT=clip, OUTPUT=k8s_out, MODEL=MODEL,
                   ARGS="--lossless")
        ok = spec["completionMode"] == "Indexed" and spec["completions"] == n
        for index in range(n):
            p = run(container["command"] + container["args"], env=dict(env, JOB_COMPLETION_INDEX=str(index)))
            ok &= p.returncode == 0
        merge_cmd = merge_job["spec"]["template"]["spec"]["containers"][0]["command"]
        merge_cmd = [clip if a == "/work/in.mp4" else k8s_out if a == "/work/out/out.mp4" else a for a in merge_cmd]
        p = run(merge_cmd, env=env)
        ok &= p.returncode == 0 and merge_cmd[2] == str(n)
        check(f"the Kubernetes Indexed Job's command for indices 0..{n - 1}, then the merge Job's", ok, p.stderr)
        if ok:
            same_as("the Kubernetes recipe (8 segments, some empty)", k8s_out, streams_default(clip, tmp))
    finally:
        shutil.rmtree(tmp)
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


_default = {}


def streams_default(clip, tmp):
    """One process with the default chunking, the recipes' model, lossless: the reference."""
    if "ref" not in _default:
        out = os.path.join(tmp, "one-default.mp4")
        run([UPSCALE, "-m", MODEL, "--lossless", clip, out])
        _default["ref"] = streams(out)
    return _default["ref"]


if __name__ == "__main__":
    main()
