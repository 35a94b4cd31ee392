// Decoding a video file into RGB frames with GStreamer (for programs that take clips as video).
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <filesystem>
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

// The frames of a clip given as a folder of PNG frames or a video file (at most `max_frames`
// of a video; 0: all).
inline std::vector<Image> read_frames(const std::string& path, std::size_t max_frames = 0) {
  std::error_code ec;
  std::vector<Image> all;
  if (std::filesystem::is_directory(path, ec)) {
    const auto files = list_png_files(path);
    for (const auto& f : files) {
      if (max_frames && all.size() == max_frames) break;
      all.push_back(read_png(f));
      if (all.back().width != all[0].width || all.back().height != all[0].height)
        throw Error(f + " is " + std::to_string(all.back().width) + "x" + std::to_string(all.back().height) +
                    ", the clip's frames are " + std::to_string(all[0].width) + "x" +
                    std::to_string(all[0].height));
    }
    return all;
  }
  if (std::filesystem::is_regular_file(path, ec)) return read_video_frames(path, max_frames);
  throw Error(path + ": no such clip folder or video file");
}

}  // namespace qbasicvsr::cli
