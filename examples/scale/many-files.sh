#!/usr/bin/env bash
# Upscales every video of a folder, one task per file, with GNU parallel (cores here or, with
# PARALLEL_HOSTS, other machines over ssh); long files can be split further with parallel.sh.
#
#   examples/scale/many-files.sh IN_DIR OUT_DIR [qbasicvsr-upscale options...]
#
# Each IN_DIR/NAME.EXT becomes OUT_DIR/NAME.mkv (EXT=mkv keeps the audio as it is; set
# OUT_EXT=mp4 for MP4). A failed file is retried twice; the summary at the end names the files
# that still failed, and the exit status is non-zero then. Files already in OUT_DIR are skipped
# (outputs appear complete or not at all, so a present file is a finished one).
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
in=$1 out=$2
shift 2
here=$(cd "$(dirname "$0")/../.." && pwd)
upscale=${UPSCALE:-$here/build/tools/qbasicvsr-upscale}
ext=${OUT_EXT:-mkv}
mkdir -p "$out"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
hosts=()
if [ -n "${PARALLEL_HOSTS:-}" ]; then hosts=(--sshlogin "$PARALLEL_HOSTS"); fi
todo=()
for f in "$in"/*; do
  [ -f "$f" ] || continue
  name=$(basename "${f%.*}")
  [ -e "$out/$name.$ext" ] || todo+=("$f")
done
echo "$(( $(ls "$in" | wc -l) - ${#todo[@]} )) files already done, ${#todo[@]} to do" >&2
status=0
if [ ${#todo[@]} -gt 0 ]; then
  parallel --jobs "${JOBS:-1}" "${hosts[@]}" --retries 3 --halt never --joblog "$log" \
    "$upscale" "$@" {} "$out/{/.}.$ext" ::: "${todo[@]}" || status=$?
  awk 'NR > 1 { if ($7 == 0) ok++; else { bad++; failed = failed " " $(NF - 1) } }
    END { printf "files: %d succeeded, %d failed%s\n", ok, bad, bad ? ":" failed : "" }' "$log" >&2
fi
exit "$status"
