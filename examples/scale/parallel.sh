#!/usr/bin/env bash
# Upscales one video or frame folder as N segments run by GNU parallel — on this machine's cores
# or, with PARALLEL_HOSTS, on other machines over ssh — then joins the pieces.
#
#   examples/scale/parallel.sh INPUT OUTPUT N [qbasicvsr-upscale options...]
#
# Shared between the hosts: the model (-m, or the default model installed on each host), INPUT,
# and the folder of OUTPUT (the segments write their pieces next to it). A failed segment is run
# again alone (--retries); a frame-folder segment then keeps its complete frames (--resume), a
# video segment starts over. The merge runs once every segment has succeeded.
#   PARALLEL_HOSTS  "host1,host2" or "4/host1,8/host2" (GNU parallel --sshlogin); default: here
#   JOBS            segments at once per host (default: 1; one segment uses every core it gets)
#   UPSCALE         the qbasicvsr-upscale to run (default: build/tools/qbasicvsr-upscale here)
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi
input=$1 output=$2 n=$3
shift 3
here=$(cd "$(dirname "$0")/../.." && pwd)
upscale=${UPSCALE:-$here/build/tools/qbasicvsr-upscale}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
hosts=()
if [ -n "${PARALLEL_HOSTS:-}" ]; then hosts=(--sshlogin "$PARALLEL_HOSTS"); fi
resume=()
if [ -d "$input" ]; then resume=(--resume); fi
status=0
parallel --jobs "${JOBS:-1}" "${hosts[@]}" --retries 3 --halt never --joblog "$log" --tagstring 'segment {}' \
  "$upscale" "$@" "${resume[@]}" --segment "{}/$n" "$input" "$output" ::: $(seq 1 "$n") || status=$?
# What finished and what failed, from parallel's job log (column 7: exit status).
awk -v n="$n" 'NR > 1 { if ($7 == 0) ok++; else { bad++; failed = failed " " $1 } }
  END { printf "segments: %d of %d succeeded%s\n", ok, n, bad ? ", failed:" failed : "" }' "$log" >&2
if [ "$status" -ne 0 ]; then exit "$status"; fi
if [ ! -d "$input" ]; then
  "$upscale" --merge "$n" "$input" "$output"
fi
