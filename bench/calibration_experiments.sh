#!/usr/bin/env bash
# The calibration measurements of docs/CALIBRATION.md: a full-precision model calibrated on one
# set of clips and evaluated on clips calibration never saw, for the method and its ablations.
#   calibration_experiments.sh FP_MODEL WORK_DIR [ITERS]
# Calibration clips: Vimeo-90K septuplets 00001_0001..0008 and BasketballPass (BI-degraded).
# Evaluation clips: Vimeo-90K septuplets 00002_0001..0008 (BI), PSNR/SSIM on Y.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
fp=$1 work=$2 iters=${3:-100}
data=$here/../shared/data/frames
cal=(--clips "$data/basketballpass")
ev=()
for i in 1 2 3 4 5 6 7 8; do
  cal+=(--clips "$data/vimeo_septuplets/00001_000$i")
  ev+=(--gt "$data/vimeo_septuplets/00002_000$i")
done
calibrate=$here/build/calibrate/qbasicvsr-calibrate
evaluate=$here/build/tools/qbasicvsr-eval
# Nearest rounding (and so no stream equalisation): what these rows were measured with, before
# --weight-rounding auto rounded the weights for their inputs at 4 bits.
common=(--degradation BI --crop 48 --frames 5 --batch 2 --seed 1 --threads 2 --weight-rounding nearest)
mkdir -p "$work"
run() {  # NAME, then calibrate options
  local name=$1
  shift
  if [ ! -f "$work/$name.safetensors" ]; then
    /usr/bin/time -f "%e s wall" "$calibrate" -m "$fp" "${cal[@]}" "${common[@]}" "$@" -o "$work/$name.safetensors" \
      --report "$work/$name.json" --plot "$work/$name.svg" 2>"$work/$name.log"
  fi
  "$evaluate" -m "$work/$name.safetensors" "${ev[@]}" --json >"$work/$name.eval.json"
  echo "$name: $(tail -n 1 "$work/$name.log") $(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["mean"]; print("PSNR %.3f SSIM %.4f" % (m["psnr"], m["ssim"]))' "$work/$name.eval.json")"
}
"$evaluate" -m "$fp" "${ev[@]}" --json >"$work/fp32.eval.json"
"$evaluate" --bicubic "${ev[@]}" --json >"$work/bicubic.eval.json"
for b in 6 4; do
  run "pq-w${b}-ptq-uniform" --bits $b --iters 0 --no-ts-lba --no-fg-vba
  run "pq-w${b}-ptq-tslba" --bits $b --iters 0 --no-fg-vba
  run "pq-w${b}-ptq" --bits $b --iters 0
done
run pq-w6 --bits 6 --iters "$iters"
run pq-w4 --bits 4 --iters "$iters"
run fq-w6 --bits 6 --scope full --iters "$iters"
run pq-w4-uniform --bits 4 --iters "$iters" --no-ts-lba --no-fg-vba
run fq-w4 --bits 4 --scope full --iters "$iters"
