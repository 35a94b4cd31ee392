"""Command-line contract (DESIGN.md section 3) and bad-input handling of the programs.

Every program prints usage on --help and exits 0; bad input exits non-zero with one clear
line on stderr and never a crash (a signal) or a hang (a timeout).

usage: test_cli.py BUILD_DIR SOURCE_DIR
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

BUILD, SOURCE = sys.argv[1], sys.argv[2]
TOOLS = {
    "import": os.path.join(BUILD, "tools", "qbasicvsr-import"),
    "upscale": os.path.join(BUILD, "tools", "qbasicvsr-upscale"),
    "bench": os.path.join(BUILD, "bench", "qbasicvsr-bench"),
}
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


def main():
    tmp = tempfile.mkdtemp()
    try:
        for tool, path in TOOLS.items():
            r = run([path, "--help"])
            case(f"{tool} --help", r.returncode == 0 and "Usage:" in r.stdout, r.stderr)
            expect_error(f"{tool} unknown option", [path, "--frobnicate"], "unknown option")

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
                     "not a folder of PNG frames")
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
        r = run([TOOLS["bench"], "--arch", "8,1", "--size", "16x24", "--frames", "2", "--runs", "1", "--json"])
        case("bench --json prints ms_per_frame and peak_rss_mb",
             r.returncode == 0 and '"ms_per_frame"' in r.stdout and '"peak_rss_mb"' in r.stdout, r.stderr)
    finally:
        shutil.rmtree(tmp)
    print(f"{passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
