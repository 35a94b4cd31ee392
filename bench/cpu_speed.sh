#!/usr/bin/env bash
# The speed tables of docs/PERF.md ("int8 against fp32, stage by stage"), in one run so that every
# row sees the same machine state: the official size (random weights, C=64 N=30) and the default
# model at 180x320 LR, T frames, fp32 and int8 W6A6 partial with the float layers in fp32 and in
# bf16, and int8 in the full scope, each with its stage profile; then BasicSR's op sequence in
# PyTorch with tcmalloc (libgoogle-perftools4).
#   bench/cpu_speed.sh OUT_DIR [BENCH_BINARY]
# Writes OUT_DIR/<row>.json (qbasicvsr-bench --json --profile) and OUT_DIR/pytorch.txt, and prints
# the table. Environment: FRAMES (default 8), RUNS (default 3), THREADS (default 2), PYTORCH=0 skips
# the PyTorch row, PYTHON (default /usr/bin/python3, Debian's, with python3-torch) runs the PyTorch row.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$1
bench=${2:-$here/build/bench/qbasicvsr-bench}
frames=${FRAMES:-8} runs=${RUNS:-3} threads=${THREADS:-2}
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4
if [ "${PYTORCH:-1}" != 0 ] && [ ! -f "$tcmalloc" ]; then
  # Without it the PyTorch row would run on glibc's malloc and still be labelled tcmalloc.
  echo "cpu_speed.sh: $tcmalloc is missing (apt-get install libgoogle-perftools4), or PYTORCH=0" >&2
  exit 2
fi
mkdir -p "$out"
lscpu | sed -n 's/^Model name: *//p' >"$out/cpu.txt"
# What the default float layers (auto) resolve to on this CPU: the rows name fp32 and bf16 explicitly.
"$bench" --arch 8,1 --size 16x16 --frames 2 -p int8 --bits 6 --json >"$out/auto.json"
common=(--size 180x320 --frames "$frames" --runs "$runs" --threads "$threads" --profile --json)
row() {  # NAME bench-options...
  local name=$1
  shift
  "$bench" "$@" "${common[@]}" >"$out/$name.json"
}
row c64n30-fp32 --arch 64,30 -p fp32
row c64n30-int8 --arch 64,30 -p int8 --bits 6 --float-layers fp32
row c64n30-int8-bf16 --arch 64,30 -p int8 --bits 6 --float-layers bf16
row c64n30-int8-full --arch 64,30 -p int8 --bits 6 --scope full
# The default model is the file models/default names (its fp32 file); its calibrated W6A6 file
# ships beside it as <name>-pq-w6a6.safetensors.
fp32=$here/models/$(tr -d "[:space:]" <"$here/models/default")
w6a6=${fp32%-fp32.safetensors}-pq-w6a6.safetensors
basename "$fp32" >"$out/default.txt"
row default-fp32 -m "$fp32" -p fp32
row default-int8 -m "$w6a6" -p int8 --float-layers fp32
row default-int8-bf16 -m "$w6a6" -p int8 --float-layers bf16
# The shipped file is calibrated for the partial scope: the full scope runs the fp32 file on
# ranges observed during the warm-up pass.
row default-int8-full -m "$fp32" -p int8 --bits 6 --scope full
if [ "${PYTORCH:-1}" != 0 ]; then
  LD_PRELOAD=$tcmalloc "${PYTHON:-/usr/bin/python3}" "$here/bench/pytorch_reference_bench.py" \
    --arch 64,30 --size 180x320 --frames "$frames" --threads "$threads" --runs 2 >"$out/pytorch.txt"
fi
"${PYTHON:-/usr/bin/python3}" - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
rows = ["c64n30-fp32", "c64n30-int8", "c64n30-int8-bf16", "c64n30-int8-full",
        "default-fp32", "default-int8", "default-int8-bf16", "default-int8-full"]
data = {r: json.load(open(os.path.join(out, r + ".json"))) for r in rows}
print("CPU:", open(os.path.join(out, "cpu.txt")).read().strip())
print("default model:", open(os.path.join(out, "default.txt")).read().strip())
print("float-layers auto (the default) here:", json.load(open(os.path.join(out, "auto.json")))["quantization"].split("float layers ")[-1])
print("| row | ms/frame | vs fp32 | conv ms/frame | conv share | end-to-end / conv floor | peak RSS MB |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    d, p = data[r], data[r]["profile"]
    fp32 = data[r.split("-")[0] + "-fp32"]["ms_per_frame"]
    print(f"| {r} | {d['ms_per_frame']:.1f} | {fp32 / d['ms_per_frame']:.2f}x | {p['conv_ms_per_frame']:.1f} | "
          f"{100 * p['conv_share']:.1f} % | {1 / p['conv_share']:.2f}x | {d['peak_rss_mb']:.0f} |")
stages = list(data[rows[0]]["profile"]["stages"])
print("\n| stage (ms/frame) | " + " | ".join(rows) + " |")
print("|---|" + "---|" * len(rows))
for s in stages:
    print(f"| {s} | " + " | ".join(f"{data[r]['profile']['stages'][s]['ms_per_frame']:.1f}" for r in rows) + " |")
pt = os.path.join(out, "pytorch.txt")
if os.path.exists(pt):
    text = open(pt).read()
    m = re.search(r"([\d.]+) ms/frame", text)
    print("\n" + text.strip())
    if m:
        print(f"qbasicvsr fp32 (C=64 N=30) vs PyTorch with tcmalloc: {float(m.group(1)) / data['c64n30-fp32']['ms_per_frame']:.2f}x")
PY
