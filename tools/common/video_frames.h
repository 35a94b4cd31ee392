// Decoding a video file into RGB frames with GStreamer (for programs that take clips as video).
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <string>
#include <vector>

#include "qbasicvsr/error.h"
#include "qbasicvsr/image.h"

namespace qbasicvsr::cli {

// The first `max_frames` frames (0: all) of a video file's first video stream.
inline std::vector<Image> read_video_frames(const std::string& path, std::size_t max_frames = 0) {
  static const bool initialised = [] {
    gst_init(nullptr, nullptr);
    return true;
  }();
  (void)initialised;
  GError* err = nullptr;
  gchar* loc = g_strescape(path.c_str(), nullptr);
  const std::string desc =
      std::string("filesrc location=\"") + loc +
      "\" ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=out sync=false";
  g_free(loc);
  GstElement* pipeline = gst_parse_launch(desc.c_str(), &err);
  if (!pipeline) {
    const std::string msg = err ? err->message : "cannot build a decoding pipeline";
    if (err) g_error_free(err);
    throw Error(path + ": " + msg);
  }
  GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  std::vector<Image> frames;
  while (max_frames == 0 || frames.size() < max_frames) {
    GstSample* s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 30 * GST_SECOND);
    if (!s) break;
    const GstStructure* st = gst_caps_get_structure(gst_sample_get_caps(s), 0);
    Image img;
    gst_structure_get_int(st, "width", &img.width);
    gst_structure_get_int(st, "height", &img.height);
    GstMapInfo map;
    GstBuffer* b = gst_sample_get_buffer(s);
    if (gst_buffer_map(b, &map, GST_MAP_READ)) {
      const std::size_t row = static_cast<std::size_t>(img.width) * 3, stride = (row + 3) / 4 * 4;
      img.rgb.resize(row * img.height);
      if (map.size >= stride * img.height)
        for (int y = 0; y < img.height; ++y)
          std::copy_n(map.data + y * stride, row, img.rgb.data() + y * row);
      gst_buffer_unmap(b, &map);
    }
    gst_sample_unref(s);
    frames.push_back(std::move(img));
  }
  std::string error;
  GstBus* bus = gst_element_get_bus(pipeline);
  if (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
    GError* e = nullptr;
    gst_message_parse_error(m, &e, nullptr);
    error = e ? e->message : "decoding error";
    if (e) g_error_free(e);
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  if (frames.empty())
    throw Error(path + ": no video frames could be decoded" + (error.empty() ? "" : ": " + error));
  return frames;
}

}  // namespace qbasicvsr::cli
