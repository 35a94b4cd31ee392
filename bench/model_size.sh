#!/usr/bin/env bash
# The speed side of choosing the default model's size (docs/TRAINING.md "Choosing the size"): the
# shipped default (C=32 N=5 HR=32) and candidate trunks, random weights, at 180x320 LR, T frames,
# fp32 and int8 W6A6 partial, in one run so that every row sees the same machine state. The
# budget: int8 <= 1.5x and fp32 <= 2x the shipped default's time in the same run.
#   bench/model_size.sh OUT_DIR [ARCH ...]     (ARCH as C,N,HR; default: a fixed candidate list)
# Environment: FRAMES (default 8), RUNS (default 2), THREADS (default 2).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=$1
shift
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(32,5,32 32,10,32 48,5,32 48,8,32 48,10,48 64,5,32 64,7,64)
bench=${BENCH:-$here/build/bench/qbasicvsr-bench}
mkdir -p "$out"
lscpu | sed -n 's/^Model name: *//p' >"$out/cpu.txt"
common=(--size 180x320 --frames "${FRAMES:-8}" --runs "${RUNS:-2}" --threads "${THREADS:-2}" --json)
for a in "${archs[@]}"; do
  "$bench" --arch "$a" -p fp32 "${common[@]}" >"$out/$a-fp32.json"
  "$bench" --arch "$a" -p int8 --bits 6 "${common[@]}" >"$out/$a-int8.json"
done
/usr/bin/python3 - "$out" "${archs[@]}" <<'PY'
import json, sys
out, archs = sys.argv[1], sys.argv[2:]
ms = lambda a, p: json.load(open(f"{out}/{a}-{p}.json"))["ms_per_frame"]
base = {p: ms(archs[0], p) for p in ("fp32", "int8")}
print(f"CPU: {open(out + '/cpu.txt').read().strip()}; ratios against {archs[0]}")
print(f"{'arch C,N,HR':<12} {'fp32 ms/frame':>14} {'x':>6} {'int8 ms/frame':>14} {'x':>6}")
for a in archs:
    f, i = ms(a, "fp32"), ms(a, "int8")
    print(f"{a:<12} {f:14.1f} {f / base['fp32']:6.2f} {i:14.1f} {i / base['int8']:6.2f}")
PY
