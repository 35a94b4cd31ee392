#!/usr/bin/env bash
# How the shipped models are made, stage by stage, on the licence-clean clips of
# ../shared/data (MANIFEST.md section 4): cockatoo.mp4 (BSD-2-Clause), cityCC0.mpg (MIT/CC0)
# and vtest.avi (Apache-2.0/BSD-3-Clause), and the photographs of models/DATA.md.
#   clean-c32n5 (the small model): flow sr calibrate eval
#   clean-c64n5 (the default):     stills next, then FP=WORK/next-fp32.safetensors SCOPES=pq
#                                  with calibrate eval (models/clean-c64n5.md)
# Held out for validation and evaluation, never trained or calibrated on: Vimeo-90K
# septuplets 00002_0001..0008 (research-only, used only to measure).
#
#   train_default_model.sh WORK_DIR [STAGE...]
#
# Stages (default: all, in order):
#   flow       SPyNet from scratch on synthetic motion            -> WORK/flow.safetensors
#   sr         BasicVSR C=32 N=5 hr=32, bicubic base, BI, from it  -> WORK/fp32.safetensors
#              (bf16 convolutions, fp32 master weights: the model is fp32)
#   continue   more SR iterations from models/clean-c32n5-fp32 (training across sessions;
#              ITERS=N, default 2400)                              -> WORK/fp32.safetensors
#   stills     the licence-clean photographs (models/DATA.md)      -> WORK/stills/*.png
#   next       the default clean-c64n5 (docs/TRAINING.md section 3): ARCH (default 64,5,32) on the three
#              clips and the photographs (3 camera clips of 30 frames each), SPyNet from
#              clean-c32n5, 4000 iterations in COMPUTE (default fp32: on the Xeon VM bf16
#              training is 1.6x slower, docs/TRAINING.md; a run keeps the arithmetic it started
#              with); in slices across sessions: STOP_AT=N stops there with a checkpoint, and
#              running the stage again continues from it   -> WORK/next-fp32.safetensors
#   calibrate  partial/full W6A6 and W4A4 from FP (default WORK/fp32.safetensors; for
#              clean-c64n5: FP=WORK/next-fp32.safetensors; SCOPES="pq" for the shipped partial
#              files only; WEIGHT_ROUNDING=nearest reproduces the shipped files, calibrated
#              before the default became auto, and with it --equalize auto stays 0;
#              EQUALIZE=A sets --equalize)                -> WORK/{pq,fq}-w{6,4}a{6,4}.safetensors
#   ablation   PTQ with/without TS-LBA and FG-VBA (docs/CALIBRATION.md) -> WORK/pq-w6a6-ptq*.eval.json
#   eval       the table of docs/RESULTS.md for FP and its files   -> WORK/*.eval.json
# Wall times on the 2-core dev VMs are in the model cards.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$1
shift
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(flow sr calibrate eval)
data=$here/../shared/data
train=$here/build/tools/qbasicvsr-train
calibrate=$here/build/calibrate/qbasicvsr-calibrate
evaluate=$here/build/tools/qbasicvsr-eval
clips=(--clips "$data/videos/cockatoo.mp4" --clips "$data/videos/cityCC0.mpg" --clips "$data/videos/vtest.avi")
val=()
for i in 1 3 5 7; do val+=(--val "$data/frames/vimeo_septuplets/00002_000$i"); done
ev=()
for i in 1 2 3 4 5 6 7 8; do ev+=(--gt "$data/frames/vimeo_septuplets/00002_000$i"); done
common=(--max-frames 300 --threads 2 --seed 7)
sr=(--iters "${ITERS:-2400}" --flow-freeze $((${ITERS:-2400} - 120)) --lr 4e-4 --batch 4 --crop 48 --frames 8
  --val-every 400 --checkpoint-every 100 --compute bf16)
fp=${FP:-$work/fp32.safetensors}
mkdir -p "$work"
for stage in "${stages[@]}"; do
  case $stage in
    flow)
      "$train" "${clips[@]}" "${val[@]}" "${common[@]}" --arch 32,5,32 --base bicubic --flow-iters 3000 \
        --flow-max-shift 6 --compute fp32 --iters 0 -o "$work/flow.safetensors" 2>&1 | tee "$work/flow.log" ;;
    sr)
      "$train" "${clips[@]}" "${val[@]}" "${common[@]}" --init "$work/flow.safetensors" --flow-iters 0 "${sr[@]}" \
        -o "$work/fp32.safetensors" --report "$work/sr.json" 2>&1 | tee "$work/sr.log" ;;
    continue)
      "$train" "${clips[@]}" "${val[@]}" "${common[@]}" --init "$here/models/clean-c32n5-fp32.safetensors" \
        --flow-iters 0 "${sr[@]}" -o "$work/fp32.safetensors" --report "$work/sr.json" 2>&1 | tee "$work/sr.log" ;;
    stills)
      "$here/tools/scripts/fetch_training_stills.sh" "$work/stills" ;;
    next)
      out=$work/next-fp32.safetensors
      resume=()
      [ -f "$out.ckpt" ] && resume=(--resume)
      stop=()
      [ -n "${STOP_AT:-}" ] && stop=(--stop-at "$STOP_AT")
      init=(--arch "${ARCH:-64,5,32}" --base bicubic --flow-from "$here/models/clean-c32n5-fp32.safetensors")
      "$train" "${clips[@]}" --stills "$work/stills" --still-clips 3 --still-frames 30 "${val[@]}" "${common[@]}" \
        "${init[@]}" --iters 4000 --flow-freeze 3880 --lr 4e-4 --batch 4 --crop 48 --frames 8 --val-every 300 \
        --checkpoint-every 100 --compute "${COMPUTE:-fp32}" "${stop[@]}" "${resume[@]}" -o "$out" --report "$work/next.json" 2>&1 |
        tee -a "$work/next.log" ;;
    calibrate)
      for scope in ${SCOPES:-pq fq}; do
        for b in 6 4; do
          s=partial
          [ $scope = fq ] && s=full
          "$calibrate" -m "$fp" "${clips[@]}" --degradation BI --bits $b --scope $s --iters 150 \
            --batch 2 --crop 64 --frames 7 --threads 2 --seed 1 --weight-rounding "${WEIGHT_ROUNDING:-auto}" \
            --equalize "${EQUALIZE:-auto}" \
            -o "$work/$scope-w${b}a${b}.safetensors" \
            --report "$work/$scope-w${b}a${b}.json" --plot "$work/$scope-w${b}a${b}.svg" 2>&1 |
            tee "$work/$scope-w${b}a${b}.log"
        done
      done ;;
    ablation)
      # docs/CALIBRATION.md's ablation: PTQ (no fine-tuning) with and without TS-LBA; each model
      # is scored with FG-VBA and with --no-adapt (b_V = 0), and uniform bits at 5..7 give the
      # curve the adaptive rows are compared with at their mean bit-width. Nearest rounding, as
      # measured, whatever the default.
      for v in ptq:"" ptq-uniform:--no-ts-lba; do
        name=pq-w6a6-${v%%:*}
        [ -f "$work/$name.safetensors" ] || "$calibrate" -m "$fp" "${clips[@]}" --degradation BI \
          --bits 6 --iters 0 --crop 64 --frames 7 --threads 2 --seed 1 --weight-rounding nearest ${v#*:} \
          -o "$work/$name.safetensors" --report "$work/$name.json" 2>&1 | tee "$work/$name.log"
        "$evaluate" -m "$work/$name.safetensors" "${ev[@]}" --json >"$work/$name.eval.json"
        "$evaluate" -m "$work/$name.safetensors" "${ev[@]}" --no-adapt --json >"$work/$name-noadapt.eval.json"
      done
      for b in 5 7; do
        "$evaluate" -m "$work/pq-w6a6-ptq-uniform.safetensors" "${ev[@]}" --no-adapt --bits $b --json \
          >"$work/pq-w6a6-ptq-uniform-b$b.eval.json"
      done
      for f in "$work"/pq-w6a6-ptq*.eval.json; do
        python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["mean"]; print("%-36s bits %.2f PSNR-Y %.3f  SSIM-Y %.4f" % (sys.argv[1].split("/")[-1], m.get("bits", 32), m["psnr"], m["ssim"]))' "$f"
      done ;;
    eval)
      "$evaluate" --bicubic "${ev[@]}" --json >"$work/bicubic.eval.json"
      "$evaluate" --bicubic "${ev[@]}" --degradation BD --json >"$work/bicubic-bd.eval.json"
      "$evaluate" -m "$fp" "${ev[@]}" --json >"$work/fp32.eval.json"
      for q in pq-w6a6 fq-w6a6 pq-w4a4 fq-w4a4; do
        [ -f "$work/$q.safetensors" ] || continue
        "$evaluate" -m "$work/$q.safetensors" "${ev[@]}" --json >"$work/$q.eval.json"
        "$evaluate" -m "$work/$q.safetensors" "${ev[@]}" --no-adapt --json >"$work/$q-noadapt.eval.json"
      done
      for f in "$work"/*.eval.json; do
        python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["mean"]; print("%-28s bits %5.2f  PSNR-Y %.3f  SSIM-Y %.4f" % (sys.argv[1].split("/")[-1], m.get("bits", 32), m["psnr"], m["ssim"]))' "$f"
      done ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
