#!/usr/bin/env bash
# The quantized rows of docs/RESULTS.md on the official BasicVSR Vimeo-90K weights (fetched by
# tools/scripts/fetch_official_models.sh, never committed): each row calibrated on BasketballPass
# and Vimeo-90K 00001_0001..0008 (LR made with the row's degradation), 150 iterations, the bits
# allocated for the paper's lowest mean of the row (--target-bits), then scored on the held-out
# Vimeo-90K 00002_0001..0008 with FG-VBA and with --no-adapt. One heavy job at a time.
#   official_rows.sh WORK_DIR [ROW ...]
# rows: uniform, pq-w6-ptq, pq-w6, pq-w4, bd-pq-w6-ptq, bd-pq-w6, fq-w6, fq-w4 (default: all);
# also pq-w4-ptq and, with the weights rounded for their inputs (--weight-rounding hessian),
# pq-w4-hr-ptq, pq-w4-hr (150 iterations) and pq-w6-hr-ptq, and with the residual streams
# equalised as well (the defaults at 4 bits since 2026-12-03), pq-w4-eq-ptq and pq-w4-eq, and at
# 6 bits with both named, pq-w6-eq-ptq and pq-w6-eq (student in fp32), and pq-w6-keep, the same
# distillation keeping the rounded weights (--keep-weights yes, auto's choice there since
# 2026-12-03: it learns biases and activation ranges only). The rows name the rounding they were
# measured with (--weight-rounding nearest, --equalize 0, --keep-weights), whatever the defaults:
# auto rounds for the inputs at 4 bits or fewer and then equalises the streams.
# pq-w6-dyn and pq-w4-dyn are pq-w6-keep and pq-w4-eq with dynamic ranges on the six layers that
# read the propagated features (--dynamic-ranges yes; every other row pins the default, no).
# CALIBRATE_FLAGS (split on spaces) go to every calibration after the row's own flags: experiments.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$1
shift
rows=("$@")
[ ${#rows[@]} -gt 0 ] || rows=(uniform pq-w6-ptq pq-w6 pq-w4 bd-pq-w6-ptq bd-pq-w6 fq-w6 fq-w4)
models=${QBASICVSR_MODELS:-$HOME/.cache/qbasicvsr}
bi=$models/basicvsr-vimeo90k_bix4-fp32.safetensors bd=$models/basicvsr-vimeo90k_bdx4-fp32.safetensors
data=$here/../shared/data/frames
calibrate=$here/build/calibrate/qbasicvsr-calibrate evaluate=$here/build/tools/qbasicvsr-eval
cal=(--clips "$data/basketballpass") ev=()
for i in 1 2 3 4 5 6 7 8; do
  cal+=(--clips "$data/vimeo_septuplets/00001_000$i")
  ev+=(--gt "$data/vimeo_septuplets/00002_000$i")
done
mkdir -p "$work"
score() {  # JSON NAME: one line of PSNR, SSIM, mean bits
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["mean"]; print("%s: PSNR %.3f SSIM %.4f bits %.2f" % (sys.argv[2], m["psnr"], m["ssim"], m["bits"]))' "$1" "$2"
}
row() {  # NAME FP DEGRADATION calibrate-options...
  local name=$1 fp=$2 deg=$3
  shift 3
  if [ ! -f "$work/$name.safetensors" ]; then
    /usr/bin/time -f "%e s wall" "$calibrate" -m "$fp" "${cal[@]}" --degradation "$deg" --crop 48 --frames 5 \
      --batch 2 --seed 1 --threads 2 "$@" ${CALIBRATE_FLAGS:-} -o "$work/$name.safetensors" --report "$work/$name.json" \
      --plot "$work/$name.svg" 2>"$work/$name.log"
  fi
  "$evaluate" -m "$work/$name.safetensors" "${ev[@]}" --degradation "$deg" --json >"$work/$name.eval.json"
  "$evaluate" -m "$work/$name.safetensors" "${ev[@]}" --degradation "$deg" --no-adapt --json \
    >"$work/$name.noadapt.eval.json"
  echo "$name: $(tail -n 1 "$work/$name.log")"
  score "$work/$name.eval.json" "  FG-VBA"
  score "$work/$name.noadapt.eval.json" "  no-adapt"
}
for deg in BI BD; do
  fp=$bi
  [ $deg = BI ] || fp=$bd
  "$evaluate" -m "$fp" "${ev[@]}" --degradation $deg --json >"$work/fp32-$deg.eval.json"
  score "$work/fp32-$deg.eval.json" "fp32 $deg"
done
for r in "${rows[@]}"; do
  case $r in
    uniform)  # the uniform-bit baseline: PTQ at B bits everywhere, run at B .. B + 2
      for b in 6 4; do
        row "uniform-ptq-w$b" "$bi" BI --bits $b --iters 0 --no-ts-lba --no-fg-vba --weight-rounding nearest \
          --dynamic-ranges no
        for e in $b $((b + 1)) $((b + 2)); do
          "$evaluate" -m "$work/uniform-ptq-w$b.safetensors" "${ev[@]}" --bits $e --no-adapt --json \
            >"$work/uniform-ptq-w$b.at$e.eval.json"
          score "$work/uniform-ptq-w$b.at$e.eval.json" "  uniform at $e bits"
        done
      done ;;
    pq-w6-ptq) row pq-w6-ptq "$bi" BI --bits 6 --target-bits 6.65 --iters 0 --weight-rounding nearest --dynamic-ranges no ;;
    pq-w6) row pq-w6 "$bi" BI --bits 6 --target-bits 6.65 --iters 150 --weight-rounding nearest --dynamic-ranges no ;;
    pq-w4) row pq-w4 "$bi" BI --bits 4 --target-bits 4.69 --iters 150 --weight-rounding nearest --dynamic-ranges no ;;
    pq-w4-ptq) row pq-w4-ptq "$bi" BI --bits 4 --target-bits 4.69 --iters 0 --weight-rounding nearest --dynamic-ranges no ;;
    pq-w4-hr-ptq) row pq-w4-hr-ptq "$bi" BI --bits 4 --target-bits 4.69 --iters 0 --weight-rounding hessian \
      --equalize 0 --dynamic-ranges no ;;
    pq-w4-hr) row pq-w4-hr "$bi" BI --bits 4 --target-bits 4.69 --iters 150 --weight-rounding hessian --equalize 0 --dynamic-ranges no ;;
    pq-w6-hr-ptq) row pq-w6-hr-ptq "$bi" BI --bits 6 --target-bits 6.65 --iters 0 --weight-rounding hessian \
      --equalize 0 --dynamic-ranges no ;;
    pq-w4-eq-ptq) row pq-w4-eq-ptq "$bi" BI --bits 4 --target-bits 4.69 --iters 0 --dynamic-ranges no ;;
    pq-w4-eq) row pq-w4-eq "$bi" BI --bits 4 --target-bits 4.69 --iters 150 --dynamic-ranges no ;;
    pq-w6-eq-ptq) row pq-w6-eq-ptq "$bi" BI --bits 6 --target-bits 6.65 --iters 0 --weight-rounding hessian \
      --equalize 0.5 --dynamic-ranges no ;;
    pq-w6-eq) row pq-w6-eq "$bi" BI --bits 6 --target-bits 6.65 --iters 150 --compute fp32 \
      --weight-rounding hessian --equalize 0.5 --keep-weights no --dynamic-ranges no ;;
    pq-w6-keep) row pq-w6-keep "$bi" BI --bits 6 --target-bits 6.65 --iters 150 --compute fp32 \
      --weight-rounding hessian --equalize 0.5 --keep-weights yes --dynamic-ranges no ;;
    pq-w6-dyn) row pq-w6-dyn "$bi" BI --bits 6 --target-bits 6.65 --iters 150 --compute fp32 \
      --weight-rounding hessian --equalize 0.5 --keep-weights yes --dynamic-ranges yes ;;
    pq-w4-dyn) row pq-w4-dyn "$bi" BI --bits 4 --target-bits 4.69 --iters 150 --dynamic-ranges yes ;;
    bd-pq-w6-ptq) row bd-pq-w6-ptq "$bd" BD --bits 6 --target-bits 6.65 --iters 0 --weight-rounding nearest --dynamic-ranges no ;;
    bd-pq-w6) row bd-pq-w6 "$bd" BD --bits 6 --target-bits 6.65 --iters 150 --weight-rounding nearest --dynamic-ranges no ;;
    fq-w6) row fq-w6 "$bi" BI --bits 6 --scope full --target-bits 6.65 --iters 150 --weight-rounding nearest --dynamic-ranges no ;;
    fq-w4) row fq-w4 "$bi" BI --bits 4 --scope full --target-bits 4.69 --iters 150 --weight-rounding nearest --dynamic-ranges no ;;
    *) echo "unknown row $r" >&2; exit 2 ;;
  esac
done
