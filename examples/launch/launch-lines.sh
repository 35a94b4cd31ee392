#!/usr/bin/env bash
# gst-launch lines for the qbasicvsr element. With the plugin installed (`meson install`) they run
# as they are; from a build tree, `meson devenv -C build` sets GST_PLUGIN_PATH.
#   launch-lines.sh file IN OUT.mp4   file to file (video x4, audio kept)
#   launch-lines.sh preview IN        live preview in a window (SINK=fakesink runs it headless)
#   launch-lines.sh playbin IN        playback with the element as playbin's video filter
set -euo pipefail
mode=${1:?file, preview or playbin}
in=${2:?input video}
model=${QBASICVSR_MODEL:+model=$QBASICVSR_MODEL}

case $mode in
file)
  out=${3:?output .mp4}
  gst-launch-1.0 -e filesrc location="$in" ! decodebin name=d \
    d. ! queue ! videoconvert ! qbasicvsr $model ! videoconvert ! x264enc ! queue ! mp4mux name=m ! filesink location="$out" \
    d. ! queue ! audioconvert ! audioresample ! avenc_aac ! queue ! m.
  ;;
preview)
  gst-launch-1.0 filesrc location="$in" ! decodebin ! videoconvert ! qbasicvsr $model chunk-size=4 overlap=2 \
    ! videoconvert ! "${SINK:-autovideosink}"
  ;;
playbin)
  uri=$(python3 -c 'import pathlib, sys; print(pathlib.Path(sys.argv[1]).resolve().as_uri())' "$in")
  gst-launch-1.0 playbin uri="$uri" video-filter="videoconvert ! qbasicvsr $model ! videoconvert" \
    ${SINK:+video-sink=$SINK audio-sink=fakesink}
  ;;
*)
  echo "unknown mode $mode (file, preview or playbin)" >&2
  exit 2
  ;;
esac
