// Decoding a video file into RGB frames with GStreamer (for programs that take clips as video).
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/mp4_index.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/image.h"

namespace qbasicvsr::cli {

// The first `max_frames` frames (0: all) of a video file's first video stream. Errors and the end
// of the stream come from the bus: an empty, audio-only or damaged file fails at once with the
// decoder's reason, also after some frames.
inline std::vector<Image> read_video_frames(const std::string& path, std::size_t max_frames = 0) {
  static const bool initialised = [] {
    gst_init(nullptr, nullptr);
    return true;
  }();
  (void)initialised;
  GstElement* pipeline = gst_pipeline_new("read");
  GstElement* src = gst_element_factory_make("filesrc", nullptr);
  GstElement* dec = gst_element_factory_make("decodebin", nullptr);
  GstElement* convert = gst_element_factory_make("videoconvert", nullptr);
  GstElement* sink = gst_element_factory_make("appsink", nullptr);
  if (!src || !dec || !convert || !sink)
    throw Error(
        "missing GStreamer elements (filesrc, decodebin, videoconvert, appsink): install "
        "gstreamer1.0-plugins-base");
  gst_bin_add_many(GST_BIN(pipeline), src, dec, convert, sink, nullptr);
  g_object_set(src, "location", path.c_str(), nullptr);
  GstCaps* rgb = gst_caps_from_string("video/x-raw,format=RGB");
  g_object_set(sink, "caps", rgb, "sync", FALSE, "max-buffers", 8, nullptr);
  gst_caps_unref(rgb);
  gst_element_link(src, dec);
  gst_element_link(convert, sink);
  // The first video stream feeds the sink; anything else goes nowhere (and is not an error).
  g_signal_connect(dec, "pad-added", G_CALLBACK(+[](GstElement*, GstPad* pad, gpointer convert_ptr) {
                     GstCaps* caps = gst_pad_get_current_caps(pad);
                     if (!caps) caps = gst_pad_query_caps(pad, nullptr);
                     const bool video =
                         g_str_has_prefix(gst_structure_get_name(gst_caps_get_structure(caps, 0)), "video/");
                     gst_caps_unref(caps);
                     GstPad* sinkpad =
                         gst_element_get_static_pad(static_cast<GstElement*>(convert_ptr), "sink");
                     if (video && !gst_pad_is_linked(sinkpad)) gst_pad_link(pad, sinkpad);
                     gst_object_unref(sinkpad);
                   }),
                   convert);
  GstBus* bus = gst_element_get_bus(pipeline);
  std::vector<Image> frames;
  std::string error;
  auto take = [&](GstSample* s) {
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
  };
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    error = "cannot start decoding";
  while (error.empty() && (max_frames == 0 || frames.size() < max_frames)) {
    if (GstSample* s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 50 * GST_MSECOND)) {
      take(s);
      continue;
    }
    if (gst_app_sink_is_eos(GST_APP_SINK(sink))) break;
    GstMessage* m =
        gst_bus_pop_filtered(bus, static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
    if (!m) continue;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
      GError* e = nullptr;
      gst_message_parse_error(m, &e, nullptr);
      error = std::string(GST_OBJECT_NAME(m->src)) + ": " + (e ? e->message : "decoding error");
      if (e) g_error_free(e);
    } else {
      // The end of the stream with no video linked to the sink: nothing more will come.
      while (GstSample* s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 0)) take(s);
      gst_message_unref(m);
      break;
    }
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  GstPad* video_in = gst_element_get_static_pad(convert, "sink");
  const bool had_video = gst_pad_is_linked(video_in);
  gst_object_unref(video_in);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  if (!had_video)
    throw Error(path + ": the file has no video stream" + (error.empty() ? "" : " (" + error + ")"));
  if (!error.empty())
    throw Error(path + ": " + error +
                (frames.empty() ? "" : " (after " + std::to_string(frames.size()) + " frames)"));
  if (frames.empty()) throw Error(path + ": no video frames could be decoded");
  // qtdemux ends quietly at the end of the data of a file cut short: its boxes say more.
  if (const auto announced = mp4_announced_bytes(path))
    throw Error(path + ": the file is cut short (" + std::to_string(std::filesystem::file_size(path)) +
                " of the " + std::to_string(*announced) + " bytes its boxes announce; " +
                std::to_string(frames.size()) + " frames decode)");
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
