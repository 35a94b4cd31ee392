// Decoding a video file into RGB frames with GStreamer (for programs that take clips as video,
// and for segments of a video job).
#pragma once

#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "common/mp4_index.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/image.h"

namespace qbasicvsr::cli {

// "element: message" of an error or warning message.
inline std::string message_text(GstMessage* msg) {
  GError* err = nullptr;
  gchar* dbg = nullptr;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
    gst_message_parse_error(msg, &err, &dbg);
  else
    gst_message_parse_warning(msg, &err, &dbg);
  std::string text = std::string(GST_OBJECT_NAME(msg->src)) + ": " + (err ? err->message : "error");
  if (err) g_error_free(err);
  g_free(dbg);
  return text;
}

// The first error waiting on the bus (later ones are dropped), or "" when there is none.
inline std::string bus_error(GstBus* bus) {
  std::string error;
  while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
    if (error.empty()) error = message_text(m);
    gst_message_unref(m);
  }
  return error;
}

// A pad's caps as negotiated, else the caps it can produce; the caller unrefs them.
inline GstCaps* pad_caps(GstPad* pad) {
  GstCaps* caps = gst_pad_get_current_caps(pad);
  return caps ? caps : gst_pad_query_caps(pad, nullptr);
}

// The frames of a video file's first video stream, one at a time, with their timestamps. Errors
// and the end of the stream come from the bus: an empty, audio-only or damaged file fails at once
// with the decoder's reason, also after some frames; a file cut short (an MP4/MOV whose boxes
// announce more than it holds) fails at its end.
class VideoReader {
 public:
  explicit VideoReader(const std::string& path) : path_(path) {
    static const bool initialised = [] {
      gst_init(nullptr, nullptr);
      return true;
    }();
    (void)initialised;
    pipeline_ = gst_pipeline_new("read");
    GstElement* src = gst_element_factory_make("filesrc", nullptr);
    GstElement* dec = gst_element_factory_make("decodebin", nullptr);
    convert_ = gst_element_factory_make("videoconvert", nullptr);
    sink_ = gst_element_factory_make("appsink", nullptr);
    if (!src || !dec || !convert_ || !sink_)
      throw Error(
          "missing GStreamer elements (filesrc, decodebin, videoconvert, appsink): install "
          "gstreamer1.0-plugins-base");
    gst_bin_add_many(GST_BIN(pipeline_), src, dec, convert_, sink_, nullptr);
    g_object_set(src, "location", path.c_str(), nullptr);
    GstCaps* rgb = gst_caps_from_string("video/x-raw,format=RGB");
    g_object_set(sink_, "caps", rgb, "sync", FALSE, "max-buffers", 8, nullptr);
    gst_caps_unref(rgb);
    gst_element_link(src, dec);
    gst_element_link(convert_, sink_);
    // The first video stream feeds the sink; anything else goes to a fakesink (not an error).
    g_signal_connect(dec, "pad-added", G_CALLBACK(on_pad_added), this);
    // Every stream is exposed and none is video: the appsink would wait for ever (the other
    // streams end in fakesinks, so no error and no EOS from the whole pipeline ever comes).
    g_signal_connect(dec, "no-more-pads", G_CALLBACK(on_no_more_pads), this);
    bus_ = gst_element_get_bus(pipeline_);
    if (gst_element_set_state(pipeline_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
      error_ = "cannot start decoding";
  }
  ~VideoReader() {
    gst_object_unref(bus_);
    gst_element_set_state(pipeline_, GST_STATE_NULL);
    gst_object_unref(pipeline_);
  }
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  // The next frame, or false at the end of the stream; throws Error on a decoding error.
  bool next(Image* frame, GstClockTime* pts = nullptr, GstClockTime* duration = nullptr) {
    while (error_.empty() && !no_video_.load()) {
      if (GstSample* s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink_), 50 * GST_MSECOND)) {
        take(s, frame, pts, duration);
        ++count_;
        return true;
      }
      if (gst_app_sink_is_eos(GST_APP_SINK(sink_))) break;
      GstMessage* m =
          gst_bus_pop_filtered(bus_, static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
      if (!m) continue;
      const bool eos = GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS;
      if (!eos) error_ = message_text(m);
      gst_message_unref(m);
      if (eos) {
        // The end of the stream with no video linked to the sink: nothing more will come.
        if (GstSample* s = gst_app_sink_try_pull_sample(GST_APP_SINK(sink_), 0)) {
          take(s, frame, pts, duration);
          ++count_;
          return true;
        }
        break;
      }
    }
    GstPad* video_in = gst_element_get_static_pad(convert_, "sink");
    const bool had_video = gst_pad_is_linked(video_in);
    gst_object_unref(video_in);
    if (!had_video)
      throw Error(path_ + ": the file has no video stream" + (error_.empty() ? "" : " (" + error_ + ")"));
    if (!error_.empty())
      throw Error(path_ + ": " + error_ + (count_ ? " (after " + std::to_string(count_) + " frames)" : ""));
    if (count_ == 0) throw Error(path_ + ": no video frames could be decoded");
    // qtdemux ends quietly at the end of the data of a file cut short: its boxes say more.
    if (const auto announced = mp4_announced_bytes(path_))
      throw Error(path_ + ": the file is cut short (" + std::to_string(std::filesystem::file_size(path_)) +
                  " of the " + std::to_string(*announced) + " bytes its boxes announce; " +
                  std::to_string(count_) + " frames decode)");
    return false;
  }

 private:
  static void on_pad_added(GstElement*, GstPad* pad, gpointer data) {
    auto* self = static_cast<VideoReader*>(data);
    GstCaps* caps = pad_caps(pad);
    const bool video = g_str_has_prefix(gst_structure_get_name(gst_caps_get_structure(caps, 0)), "video/");
    gst_caps_unref(caps);
    GstPad* sinkpad = gst_element_get_static_pad(self->convert_, "sink");
    if (video && !gst_pad_is_linked(sinkpad)) {
      gst_pad_link(pad, sinkpad);
    } else {
      GstElement* drop = gst_element_factory_make("fakesink", nullptr);
      g_object_set(drop, "sync", FALSE, "async", FALSE, nullptr);
      gst_bin_add(GST_BIN(self->pipeline_), drop);
      gst_element_sync_state_with_parent(drop);
      GstPad* dp = gst_element_get_static_pad(drop, "sink");
      gst_pad_link(pad, dp);
      gst_object_unref(dp);
    }
    gst_object_unref(sinkpad);
  }

  static void on_no_more_pads(GstElement*, gpointer data) {
    auto* self = static_cast<VideoReader*>(data);
    GstPad* sinkpad = gst_element_get_static_pad(self->convert_, "sink");
    if (!gst_pad_is_linked(sinkpad)) self->no_video_ = true;
    gst_object_unref(sinkpad);
  }

  static void take(GstSample* s, Image* img, GstClockTime* pts, GstClockTime* duration) {
    const GstStructure* st = gst_caps_get_structure(gst_sample_get_caps(s), 0);
    *img = Image();
    gst_structure_get_int(st, "width", &img->width);
    gst_structure_get_int(st, "height", &img->height);
    GstMapInfo map;
    GstBuffer* b = gst_sample_get_buffer(s);
    if (pts) *pts = GST_BUFFER_PTS(b);
    if (duration) *duration = GST_BUFFER_DURATION(b);
    if (gst_buffer_map(b, &map, GST_MAP_READ)) {
      const std::size_t row = static_cast<std::size_t>(img->width) * 3, stride = (row + 3) / 4 * 4;
      img->rgb.resize(row * img->height);
      if (map.size >= stride * img->height)
        for (int y = 0; y < img->height; ++y)
          std::copy_n(map.data + y * stride, row, img->rgb.data() + y * row);
      gst_buffer_unmap(b, &map);
    }
    gst_sample_unref(s);
  }

  std::string path_;
  GstElement* pipeline_ = nullptr;
  GstElement* convert_ = nullptr;
  GstElement* sink_ = nullptr;
  GstBus* bus_ = nullptr;
  std::string error_;
  std::size_t count_ = 0;
  std::atomic<bool> no_video_{false};
};

// The first `max_frames` frames (0: all) of a video file's first video stream.
inline std::vector<Image> read_video_frames(const std::string& path, std::size_t max_frames = 0) {
  VideoReader reader(path);
  std::vector<Image> frames;
  Image f;
  while ((max_frames == 0 || frames.size() < max_frames) && reader.next(&f)) frames.push_back(std::move(f));
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
