#!/usr/bin/env python3
"""Checks that the library's parts only include parts below them (docs/DESIGN.md, "The parts").

    tools/scripts/check_layers.py [LIB_DIR]     (default: lib/ beside this script's repository)
    tools/scripts/check_layers.py --self-test   (plants a violation in a copy and expects a failure)

Parts, lowest first: io, metrics < net < quant < adapt < runtime < train. A file in
lib/src/<part>/ may include lib/src/<other>/... and the public headers of lib/include/qbasicvsr/
only where <other> (or the part the public header belongs to) is not above <part>; io/ and
metrics/ include no LibTorch header at all. Exit status 1 with one line per violation.
"""
import os
import re
import shutil
import sys
import tempfile

RANK = {"io": 0, "metrics": 1, "net": 2, "quant": 3, "adapt": 4, "runtime": 5, "train": 6}
# The part that implements each public header.
PUBLIC = {
    "architecture.h": "io", "error.h": "io", "host_tensor.h": "io", "image.h": "io", "importer.h": "io",
    "model_file.h": "io", "model_paths.h": "io", "profile.h": "io", "quantization.h": "io",
    "torch7.h": "io", "torch_checkpoint.h": "io",
    "degrade.h": "metrics", "metrics.h": "metrics",
    "complexity.h": "adapt",
    "runtime.h": "runtime", "upscaler.h": "runtime", "chunker.h": "runtime",
    "training.h": "train", "calibration.h": "train",
}
TORCH_FREE = {"io", "metrics"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def check(lib):
    src = os.path.join(lib, "src")
    problems = []
    public = set(os.listdir(os.path.join(lib, "include", "qbasicvsr")))
    for name in sorted(public - set(PUBLIC)):
        problems.append(f"lib/include/qbasicvsr/{name}: no part named for this public header in {__file__}")
    for part in sorted(os.listdir(src)):
        if not os.path.isdir(os.path.join(src, part)):
            problems.append(f"lib/src/{part}: a file outside the parts")
            continue
        if part not in RANK:
            problems.append(f"lib/src/{part}: not a known part ({', '.join(RANK)})")
            continue
        for root, _, files in os.walk(os.path.join(src, part)):
            for f in sorted(files):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, lib)
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
                for kind, inc in INCLUDE.findall(text):
                    if kind == "<":
                        if part in TORCH_FREE and inc.split("/")[0] in ("ATen", "torch", "c10"):
                            problems.append(f"lib/{rel}: includes <{inc}>, but {part}/ has no LibTorch")
                        continue
                    head = inc.split("/")[0]
                    if head == "qbasicvsr":
                        other = PUBLIC.get(inc.split("/", 1)[1])
                    elif head in RANK:
                        other = head
                    else:
                        continue
                    if other and RANK[other] > RANK[part]:
                        problems.append(f"lib/{rel}: includes \"{inc}\" of {other}/, above {part}/")
    return problems


def self_test(lib):
    tmp = tempfile.mkdtemp()
    try:
        copy = os.path.join(tmp, "lib")
        shutil.copytree(lib, copy)
        if check(copy):
            print("self-test: the copy fails before any change")
            return 1
        with open(os.path.join(copy, "src", "net", "conv.h"), "a", encoding="utf-8") as f:
            f.write('\n#include "runtime/planted.h"\n#include "qbasicvsr/upscaler.h"\n')
        with open(os.path.join(copy, "src", "io", "model_file.cpp"), "a", encoding="utf-8") as f:
            f.write("\n#include <ATen/ATen.h>\n")
        found = check(copy)
        wanted = ["runtime/planted.h", "qbasicvsr/upscaler.h", "<ATen/ATen.h>"]
        missing = [w for w in wanted if not any(w in p for p in found)]
        if missing:
            print(f"self-test: planted violations not reported: {missing}")
            return 1
        print(f"self-test: the {len(found)} planted violations are reported")
        return 0
    finally:
        shutil.rmtree(tmp)


def main():
    args = sys.argv[1:]
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", "lib")
    if args and args[0] == "--self-test":
        return self_test(args[1] if len(args) > 1 else default)
    problems = check(args[0] if args else default)
    for p in problems:
        print(p)
    if not problems:
        print("layers: every include points downwards")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
