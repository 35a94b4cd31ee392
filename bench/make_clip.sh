#!/usr/bin/env bash
# Decodes the first N frames of a video into a folder of PNG frames at WxH (Lanczos), for the
# benchmark and measurement scripts.
#   make_clip.sh VIDEO OUT_DIR N WIDTH HEIGHT
set -euo pipefail
video=$1 out=$2 n=$3 w=$4 h=$5
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gst-launch-1.0 -q filesrc location="$video" ! decodebin ! videoconvert ! videoscale method=lanczos \
  ! "video/x-raw,format=RGB,width=$w,height=$h" ! pngenc ! multifilesink location="$tmp/%05d.png"
for f in $(ls "$tmp" | sort | head -n "$n"); do mv "$tmp/$f" "$out/"; done
