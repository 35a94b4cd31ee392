// Video files through the qbasicvsr element: decodebin -> qbasicvsr -> encoder -> muxer, with
// audio and subtitle streams the container can carry copied as they are (no re-encoding, so no
// priming offset), everything else re-encoded or dropped with a note. The file is written under a
// temporary name and renamed when complete; errors come from the bus with their real cause; a
// truncated or damaged input is an error (or, with --keep-going, a warning naming the frames).
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/pbutils/pbutils.h>
#include <gst/video/video.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "common/clip.h"
#include "common/mp4_index.h"
#include "common/safe_output.h"
#include "common/video_frames.h"
#include "gstqbasicvsr.h"
#include "qbasicvsr/image.h"
#include "upscale/job.h"

namespace qbasicvsr::upscale {

namespace {

namespace fs = std::filesystem;

struct Encoding {
  std::string video;  // encoder (and caps) for the upscaled frames
  const char* audio;  // encoder for audio the container cannot take as it is
  const char* mux;
  const char* parser;  // for joining encoded pieces
};

// `pieces`: segment pieces are joined later, so no frame may reference another piece's frames
// in decoding order (no B-frames: their DTS would run back across a join).
Encoding encoding_for(const std::string& path, bool lossless, bool pieces = false) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  const std::string h264 = std::string(lossless ? "capsfilter caps=video/x-raw,format=Y444 ! " : "") +
                           "x264enc speed-preset=faster" + (lossless ? " pass=quant quantizer=0" : "") +
                           (pieces ? " bframes=0" : "");
  if (ext == ".mp4" || ext == ".m4v" || ext == ".mov")
    return {h264 + (lossless ? "" : " ! capsfilter caps=video/x-h264,profile=high"), "avenc_aac",
            ext == ".mov" ? "qtmux" : "mp4mux", "h264parse"};
  if (ext == ".mkv") return {h264, "vorbisenc", "matroskamux", "h264parse"};
  if (ext == ".webm") {
    if (lossless) throw Error(path + ": --lossless writes H.264 (.mp4, .mov, .mkv), not WebM");
    return {"vp9enc deadline=1 cpu-used=4 row-mt=true", "opusenc", "webmmux", "vp9parse"};
  }
  throw Error(path + ": unknown output container \"" + ext +
              "\" (use .mp4, .m4v, .mov, .mkv or .webm, or a folder for PNG frames)");
}

// What the input holds, from the discoverer: it also gives up on files that decodebin would
// wait on forever (a demuxer's error swallowed while plugging, seen with truncated MP4 files).
struct InputInfo {
  GstClockTime duration = GST_CLOCK_TIME_NONE;
  int fps_n = 0, fps_d = 1;
  int width = 0, height = 0;  // of the first video stream
};

InputInfo probe_input(const std::string& input) {
  GError* err = nullptr;
  GstDiscoverer* disc = gst_discoverer_new(20 * GST_SECOND, &err);
  if (!disc) {
    const std::string msg = err ? err->message : "cannot create a discoverer";
    if (err) g_error_free(err);
    throw Error(msg);
  }
  gchar* uri = gst_filename_to_uri(fs::absolute(input).c_str(), nullptr);
  GstDiscovererInfo* info = gst_discoverer_discover_uri(disc, uri, &err);
  g_free(uri);
  std::string problem;
  InputInfo in;
  const GstDiscovererResult result = info ? gst_discoverer_info_get_result(info) : GST_DISCOVERER_ERROR;
  if (result == GST_DISCOVERER_TIMEOUT) {
    problem = "timed out reading the file";
  } else if (result != GST_DISCOVERER_OK) {
    problem = err ? err->message : "not a readable media file";
  } else {
    GList* videos = gst_discoverer_info_get_video_streams(info);
    if (!videos) {
      problem = "the file has no video stream";
    } else {
      auto* v = GST_DISCOVERER_VIDEO_INFO(videos->data);
      in.fps_n = static_cast<int>(gst_discoverer_video_info_get_framerate_num(v));
      in.fps_d = std::max(1, static_cast<int>(gst_discoverer_video_info_get_framerate_denom(v)));
      in.width = static_cast<int>(gst_discoverer_video_info_get_width(v));
      in.height = static_cast<int>(gst_discoverer_video_info_get_height(v));
    }
    gst_discoverer_stream_info_list_free(videos);
    in.duration = gst_discoverer_info_get_duration(info);
  }
  if (err) g_error_free(err);
  if (info) gst_discoverer_info_unref(info);
  g_object_unref(disc);
  if (!problem.empty()) throw Error(input + ": " + problem);
  return in;
}

struct Context {
  const Job* job = nullptr;
  Encoding enc{};
  std::string frames_dir;  // output folder of frames, or "" for a video file
  GstElement* pipeline = nullptr;
  GstElement* mux = nullptr;
  std::mutex mutex;                // guards what the streaming threads write below
  std::vector<GstPad*> stop_pads;  // where end-of-stream goes in when the job is stopped
  std::string problem;             // the first error found in a callback
  std::vector<std::string> notes;  // streams dropped or re-encoded
  int width = 0, height = 0;       // the video's first size
  GstClockTime end = 0;            // latest end time of any input stream seen
  bool have_video = false;
  std::atomic<std::size_t> decoded{0};  // frames that reached the element
  std::atomic<std::size_t> frames{0};   // upscaled frames that went on to the encoder or to disk
  std::size_t written = 0;              // frames written to frames_dir
  Summary summary;

  void fail(const std::string& why) {
    std::lock_guard<std::mutex> lock(mutex);
    if (problem.empty()) problem = why;
  }
  void note(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex);
    notes.push_back(what);
  }
};

GstPadProbeReturn count_frames(GstPad*, GstPadProbeInfo* info, gpointer data) {
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) static_cast<Context*>(data)->frames++;
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn count_decoded(GstPad*, GstPadProbeInfo* info, gpointer data) {
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) static_cast<Context*>(data)->decoded++;
  return GST_PAD_PROBE_OK;
}

// The end time of every decoded stream: a file whose streams all end well before its announced
// duration was cut short.
GstPadProbeReturn track_end(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* ctx = static_cast<Context*>(data);
  GstBuffer* b = GST_PAD_PROBE_INFO_BUFFER(info);
  if (b && GST_BUFFER_PTS_IS_VALID(b)) {
    const GstClockTime end =
        GST_BUFFER_PTS(b) + (GST_BUFFER_DURATION_IS_VALID(b) ? GST_BUFFER_DURATION(b) : 0);
    std::lock_guard<std::mutex> lock(ctx->mutex);
    ctx->end = std::max(ctx->end, end);
  }
  return GST_PAD_PROBE_OK;
}

// A video file keeps one frame size: a resolution change mid-stream is refused (a folder of
// frames takes each size as it comes).
GstPadProbeReturn watch_size(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* ctx = static_cast<Context*>(data);
  GstEvent* ev = GST_PAD_PROBE_INFO_EVENT(info);
  if (!ev || GST_EVENT_TYPE(ev) != GST_EVENT_CAPS) return GST_PAD_PROBE_OK;
  GstCaps* caps = nullptr;
  gst_event_parse_caps(ev, &caps);
  int w = 0, h = 0;
  const GstStructure* s = gst_caps_get_structure(caps, 0);
  gst_structure_get_int(s, "width", &w);
  gst_structure_get_int(s, "height", &h);
  std::lock_guard<std::mutex> lock(ctx->mutex);
  if (ctx->width == 0) {
    ctx->width = w;
    ctx->height = h;
  } else if ((w != ctx->width || h != ctx->height) && ctx->frames_dir.empty() && ctx->problem.empty()) {
    ctx->problem =
        "the video changes size from " + std::to_string(ctx->width) + "x" + std::to_string(ctx->height) +
        " to " + std::to_string(w) + "x" + std::to_string(h) +
        " mid-stream; a video file keeps one size: write a folder of frames instead (OUTPUT ending in /)";
  }
  return GST_PAD_PROBE_OK;
}

// Writes an upscaled frame into the output folder as %08d.png, in stream order.
GstFlowReturn write_frame(GstAppSink* sink, gpointer data) {
  auto* ctx = static_cast<Context*>(data);
  GstSample* sample = gst_app_sink_pull_sample(sink);
  if (!sample) return GST_FLOW_EOS;
  GstVideoInfo info;
  GstVideoFrame frame;
  GstFlowReturn ret = GST_FLOW_ERROR;
  if (gst_video_info_from_caps(&info, gst_sample_get_caps(sample)) &&
      gst_video_frame_map(&frame, &info, gst_sample_get_buffer(sample), GST_MAP_READ)) {
    Image img;
    img.width = GST_VIDEO_FRAME_WIDTH(&frame);
    img.height = GST_VIDEO_FRAME_HEIGHT(&frame);
    const std::size_t row = static_cast<std::size_t>(img.width) * 3;
    img.rgb.resize(row * static_cast<std::size_t>(img.height));
    const auto* src = static_cast<const uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0));
    for (int y = 0; y < img.height; ++y)
      std::copy_n(src + static_cast<std::ptrdiff_t>(y) * GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0), row,
                  img.rgb.data() + static_cast<std::size_t>(y) * row);
    gst_video_frame_unmap(&frame);
    char name[32];
    std::snprintf(name, sizeof name, "%08zu.png", ctx->written);
    try {
      write_png((fs::path(ctx->frames_dir) / name).string(), img);
      ++ctx->written;
      ++ctx->frames;
      ret = GST_FLOW_OK;
    } catch (const std::exception& e) {
      ctx->fail(e.what());
    }
  }
  gst_sample_unref(sample);
  return ret;
}

// Adds elements from a fixed description (no user text in it) as one bin with ghost pads.
GstElement* add_bin(Context* ctx, const std::string& desc) {
  GError* err = nullptr;
  GstElement* bin = gst_parse_bin_from_description(desc.c_str(), TRUE, &err);
  if (!bin) {
    const std::string msg = err ? err->message : "cannot build " + desc;
    if (err) g_error_free(err);
    throw Error(msg + " (install the gstreamer1.0-plugins packages)");
  }
  gst_bin_add(GST_BIN(ctx->pipeline), bin);
  return bin;
}

GstElement* add_element(Context* ctx, const char* factory) {
  GstElement* e = gst_element_factory_make(factory, nullptr);
  if (!e)
    throw Error(std::string("missing GStreamer element ") + factory +
                " (install the gstreamer1.0-plugins packages)");
  gst_bin_add(GST_BIN(ctx->pipeline), e);
  return e;
}

void link_pads(GstPad* src, GstPad* sink, const std::string& what) {
  const GstPadLinkReturn r = gst_pad_link(src, sink);
  if (r != GST_PAD_LINK_OK) throw Error("cannot link " + what + " (" + gst_pad_link_get_name(r) + ")");
}

// The qbasicvsr element with the job's settings, set as properties (no launch-string escaping).
GstElement* make_upscaler(Context* ctx) {
  const Job& job = *ctx->job;
  const auto& o = job.options;
  GstElement* sr = add_element(ctx, "qbasicvsr");
  g_object_set(sr, "model", job.model_path.c_str(), "chunk-size", job.chunking.chunk_size, "overlap",
               job.chunking.overlap, "adaptive", o.adaptive ? TRUE : FALSE, "bits", o.bits, "threads",
               o.threads, "device", o.device.c_str(), "tile-size", o.tile_rows, "tile-overlap",
               o.tile_overlap, "max-memory", o.max_memory_mb, nullptr);
  if (job.model) gst_qbasicvsr_use_loaded_model(sr, job.model_path, job.model);
  gst_util_set_object_arg(G_OBJECT(sr), "precision", precision_name(o.precision));
  if (o.scope) gst_util_set_object_arg(G_OBJECT(sr), "scope", scope_name(*o.scope));
  return sr;
}

// decoded video -> RGB -> qbasicvsr -> queue -> encoder -> queue -> muxer (or -> PNG frames).
// The queues give decoding, inference and encoding a thread each, with bounded buffering.
void link_video(Context* ctx, GstPad* pad) {
  GstElement* convert = add_bin(ctx, "queue ! videoconvert ! capsfilter caps=video/x-raw,format=RGB");
  GstElement* sr = make_upscaler(ctx);
  GstElement* out_queue = add_element(ctx, "queue");
  g_object_set(out_queue, "max-size-buffers", 4, nullptr);
  GstElement* tail = nullptr;
  if (ctx->frames_dir.empty()) {
    tail = add_bin(ctx, "videoconvert ! " + ctx->enc.video + " ! queue");
  } else {
    tail = add_element(ctx, "appsink");
    g_object_set(tail, "sync", FALSE, "max-buffers", 4, nullptr);
    GstAppSinkCallbacks callbacks{};
    callbacks.new_sample = write_frame;
    gst_app_sink_set_callbacks(GST_APP_SINK(tail), &callbacks, ctx, nullptr);
  }
  if (!gst_element_link_many(convert, sr, out_queue, tail, nullptr))
    throw Error("cannot link the video branch");
  if (ctx->mux && !gst_element_link(tail, ctx->mux))
    throw Error(std::string("cannot link the video to ") + ctx->enc.mux);
  GstPad* sr_sink = gst_element_get_static_pad(sr, "sink");
  gst_pad_add_probe(sr_sink, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, watch_size, ctx, nullptr);
  gst_pad_add_probe(sr_sink, GST_PAD_PROBE_TYPE_BUFFER, count_decoded, ctx, nullptr);
  gst_object_unref(sr_sink);
  GstPad* q_sink = gst_element_get_static_pad(out_queue, "sink");
  if (ctx->mux) {
    GstPad* q_src = gst_element_get_static_pad(out_queue, "src");
    gst_pad_add_probe(q_src, GST_PAD_PROBE_TYPE_BUFFER, count_frames, ctx, nullptr);
    gst_object_unref(q_src);
  }
  {
    std::lock_guard<std::mutex> lock(ctx->mutex);
    ctx->stop_pads.push_back(q_sink);  // the reference goes with it
  }
  for (GstElement* e : {convert, sr, out_queue, tail}) gst_element_sync_state_with_parent(e);
  GstPad* sink = gst_element_get_static_pad(convert, "sink");
  link_pads(pad, sink, "the decoded video");
  gst_object_unref(sink);
}

// A stream the output does not keep goes to a fakesink, so that the demuxer is not stopped by an
// unlinked pad; the note says so.
void drop(Context* ctx, GstPad* pad, const std::string& why) {
  ctx->note(why);
  GstElement* sink = add_element(ctx, "fakesink");
  g_object_set(sink, "sync", FALSE, "async", FALSE, nullptr);
  gst_element_sync_state_with_parent(sink);
  GstPad* sp = gst_element_get_static_pad(sink, "sink");
  link_pads(pad, sp, "a dropped stream");
  gst_object_unref(sp);
}

// The muxer waits for video, which the element and the encoder hold back for seconds: a bounded
// audio queue would fill and stop the demuxer, and with it the video (a deadlock). Its size is
// bounded in practice by that latency.
constexpr const char* kAudioQueue = "queue max-size-time=0 max-size-bytes=0 max-size-buffers=0";

// A pad of the muxer for caps, requested if its templates take them, or null.
GstPad* mux_pad_for(Context* ctx, GstCaps* caps) {
  GstPadTemplate* t = gst_pad_template_new("probe", GST_PAD_SRC, GST_PAD_ALWAYS, caps);
  GstPad* probe = gst_pad_new_from_template(t, "probe");
  GstPad* pad = gst_element_get_compatible_pad(ctx->mux, probe, caps);
  gst_object_unref(probe);
  gst_object_unref(t);
  return pad;
}

// Audio and subtitles: as they are where the muxer takes them (decodebin stops at those), raw
// audio encoded for the container; anything else is dropped with a note.
void link_other(Context* ctx, GstPad* pad, GstCaps* caps, const std::string& name) {
  if (!ctx->mux) {
    drop(ctx, pad, name + " dropped: a folder of frames has none");
    return;
  }
  std::string desc;
  GstPad* mux_pad = nullptr;
  if (name == "audio/x-raw") {
    desc = std::string(kAudioQueue) + " ! audioconvert ! audioresample ! " + ctx->enc.audio + " ! queue";
    GstCaps* any_audio =
        gst_caps_from_string(ctx->enc.audio == std::string("avenc_aac") ? "audio/mpeg" : "audio/x-opus");
    if (ctx->enc.audio == std::string("vorbisenc")) {
      gst_caps_unref(any_audio);
      any_audio = gst_caps_from_string("audio/x-vorbis");
    }
    mux_pad = mux_pad_for(ctx, any_audio);
    gst_caps_unref(any_audio);
    if (mux_pad) ctx->note(name + " encoded with " + ctx->enc.audio);
  } else if ((mux_pad = mux_pad_for(ctx, caps))) {
    desc = kAudioQueue;
    ctx->note(name + " copied as it is");
  } else if (name == "audio/mpeg") {
    // AAC from an ADTS stream (.ts, .aac): aacparse makes it the raw AAC the muxers take.
    GstCaps* raw = gst_caps_copy(caps);
    gst_caps_set_simple(raw, "stream-format", G_TYPE_STRING, "raw", nullptr);
    mux_pad = mux_pad_for(ctx, raw);
    gst_caps_unref(raw);
    desc = std::string(kAudioQueue) + " ! aacparse";
    if (mux_pad) ctx->note(name + " copied as it is (ADTS to raw AAC)");
  }
  if (!mux_pad) {
    drop(ctx, pad, name + " dropped: " + ctx->enc.mux + " cannot carry it");
    return;
  }
  GstElement* head = add_bin(ctx, desc);
  gst_element_sync_state_with_parent(head);
  GstPad* src = gst_element_get_static_pad(head, "src");
  link_pads(src, mux_pad, name + " into " + ctx->enc.mux);
  gst_object_unref(src);
  gst_object_unref(mux_pad);
  {
    std::lock_guard<std::mutex> lock(ctx->mutex);
    // Audio stops before the video, so that the muxer is not left waiting for it.
    ctx->stop_pads.insert(ctx->stop_pads.begin(), gst_element_get_static_pad(head, "sink"));
  }
  GstPad* sink = gst_element_get_static_pad(head, "sink");
  link_pads(pad, sink, name);
  gst_object_unref(sink);
}

void on_pad_added(GstElement*, GstPad* pad, gpointer data) {
  auto* ctx = static_cast<Context*>(data);
  GstCaps* caps = cli::pad_caps(pad);
  const std::string name = gst_structure_get_name(gst_caps_get_structure(caps, 0));
  try {
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, track_end, ctx, nullptr);
    if (name == "video/x-raw" && !ctx->have_video) {
      ctx->have_video = true;
      link_video(ctx, pad);
    } else if (name.rfind("video/", 0) == 0) {
      drop(ctx, pad, "a second video stream dropped");
    } else {
      link_other(ctx, pad, caps, name);
    }
  } catch (const std::exception& e) {
    ctx->fail(e.what());
  }
  gst_caps_unref(caps);
}

// decodebin stops at raw video and at whatever the muxer takes as it is (audio, subtitles).
GstCaps* stop_caps(GstElement* mux) {
  GstCaps* caps = gst_caps_from_string("video/x-raw; audio/x-raw");
  if (!mux) return caps;
  for (const GList* l = gst_element_class_get_pad_template_list(GST_ELEMENT_GET_CLASS(mux)); l; l = l->next) {
    auto* t = static_cast<GstPadTemplate*>(l->data);
    if (GST_PAD_TEMPLATE_DIRECTION(t) != GST_PAD_SINK) continue;
    GstCaps* tc = gst_pad_template_get_caps(t);
    for (guint i = 0; i < gst_caps_get_size(tc); ++i) {
      const char* n = gst_structure_get_name(gst_caps_get_structure(tc, i));
      if (g_str_has_prefix(n, "video/")) continue;
      caps = gst_caps_merge_structure(caps, gst_structure_copy(gst_caps_get_structure(tc, i)));
    }
    gst_caps_unref(tc);
  }
  // ADTS AAC too where the muxer takes raw AAC: aacparse turns the one into the other.
  GstCaps* raw_aac = gst_caps_from_string("audio/mpeg, mpegversion=(int)4, stream-format=(string)raw");
  if (gst_caps_can_intersect(caps, raw_aac))
    caps = gst_caps_merge(caps,
                          gst_caps_from_string("audio/mpeg, mpegversion=(int)4, stream-format=(string)adts"));
  gst_caps_unref(raw_aac);
  return caps;
}

}  // namespace

int upscale_video(const Job& job, const std::string& input, const std::string& output) {
  const Model& model = *job.model;
  if (!fs::is_regular_file(input)) throw Error(input + ": no such video file or folder of PNG frames");
  if (job.resume) throw Error("--resume works on frame folders only");
  Context ctx;
  ctx.job = &job;
  std::error_code ec;
  // A folder (existing, or named with a trailing slash or without an extension) receives frames.
  const bool frames_out =
      fs::is_directory(output, ec) || output.back() == '/' || !fs::path(output).has_extension();
  std::unique_ptr<cli::OutputLock> lock;
  std::unique_ptr<cli::PartialFile> file;
  fs::path partial;
  if (frames_out) {
    fs::create_directories(output, ec);
    if (!fs::is_directory(output, ec)) throw Error(output + ": cannot create output folder");
    cli::check_writable_folder(output);
    lock = std::make_unique<cli::OutputLock>(output, output, false);
    ctx.frames_dir = output;
  } else {
    ctx.enc = encoding_for(output, job.lossless);
    const fs::path out(output);
    cli::check_writable_folder(out.parent_path());
    file = std::make_unique<cli::PartialFile>(out);
    partial = file->path();
  }
  const InputInfo info = probe_input(input);
  // The element plans its bands with the same options: say before the work if no band height fits.
  if (job.options.max_memory_mb > 0) warn_memory(Upscaler(model, job.options), job, info.width, info.height);

  gst_qbasicvsr_register_static();
  ctx.pipeline = gst_pipeline_new("upscale");
  auto cleanup = [&] {
    gst_element_set_state(ctx.pipeline, GST_STATE_NULL);
    for (GstPad* p : ctx.stop_pads) gst_object_unref(p);
    ctx.stop_pads.clear();
    gst_object_unref(ctx.pipeline);
  };
  GstElement* src = nullptr;
  GstElement* dec = nullptr;
  try {
    src = add_element(&ctx, "filesrc");
    dec = add_element(&ctx, "decodebin");
    if (!frames_out) {
      ctx.mux = add_element(&ctx, ctx.enc.mux);
      GstElement* sink = add_element(&ctx, "filesink");
      g_object_set(sink, "location", partial.c_str(), nullptr);
      gst_element_link(ctx.mux, sink);
    }
  } catch (...) {
    cleanup();
    throw;
  }
  g_object_set(src, "location", input.c_str(), nullptr);
  GstCaps* stop = stop_caps(ctx.mux);
  g_object_set(dec, "caps", stop, nullptr);
  gst_caps_unref(stop);
  gst_element_link(src, dec);
  g_signal_connect(dec, "pad-added", G_CALLBACK(on_pad_added), &ctx);

  // On a terminal only: an error must stay the one line a script reads.
  Progress progress;
  if (progress.tty)
    std::fprintf(stderr, "qbasicvsr-upscale: %s -> %s, model %s (%s), chunk %d, overlap %d\n", input.c_str(),
                 output.c_str(), job.model_path.c_str(), model.arch.summary().c_str(),
                 job.chunking.chunk_size, job.chunking.overlap);
  const std::size_t total =
      info.fps_n > 0 && GST_CLOCK_TIME_IS_VALID(info.duration)
          ? static_cast<std::size_t>(gst_util_uint64_scale_round(
                info.duration, info.fps_n, static_cast<guint64>(info.fps_d) * GST_SECOND))
          : 0;
  GstBus* bus = gst_element_get_bus(ctx.pipeline);
  std::string error;
  std::vector<std::string> warnings;
  bool stopping = false, aborted = false;
  std::thread stopper;
  if (gst_element_set_state(ctx.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    // The bus says why (a file that cannot be opened, an element that fails to start).
    error = cli::bus_error(bus);
    if (error.empty()) error = "the pipeline cannot start";
  }
  while (error.empty()) {
    GstMessage* msg =
        gst_bus_timed_pop_filtered(bus, 100 * GST_MSECOND,
                                   static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_WARNING |
                                                               GST_MESSAGE_EOS | GST_MESSAGE_ELEMENT));
    {
      std::lock_guard<std::mutex> l(ctx.mutex);
      if (!ctx.problem.empty()) error = ctx.problem;
    }
    if (!error.empty()) {
      if (msg) gst_message_unref(msg);
      break;
    }
    if (cli::Interrupts::count() > 1) {
      aborted = true;
      if (msg) gst_message_unref(msg);
      break;
    }
    if (cli::Interrupts::count() == 1 && !stopping) {
      // End of stream right after the element (and into the audio): the frames already past it
      // are encoded and the muxer closes a playable file, without waiting for the rest.
      stopping = true;
      std::fprintf(stderr,
                   "%sqbasicvsr-upscale: %s: finishing the file with the frames done (again to abort)\n",
                   progress.tty ? "\n" : "", cli::Interrupts::name());
      std::vector<GstPad*> pads;
      {
        std::lock_guard<std::mutex> l(ctx.mutex);
        for (GstPad* p : ctx.stop_pads) pads.push_back(GST_PAD(gst_object_ref(p)));
      }
      stopper = std::thread([pads] {
        for (GstPad* p : pads) {
          gst_pad_send_event(p, gst_event_new_eos());
          gst_object_unref(p);
        }
      });
    }
    progress.update(ctx.frames.load(), total);
    if (!msg) continue;
    const GstMessageType type = GST_MESSAGE_TYPE(msg);
    if (type == GST_MESSAGE_ELEMENT) {
      const GstStructure* s = gst_message_get_structure(msg);
      if (s && gst_structure_has_name(s, "qbasicvsr-chunk")) {
        guint n = 0, context = 0;
        gboolean carried = FALSE;
        gint b_V = 0, tiles = 1;
        double C_V = 0, bits = 0, ms = 0;
        gst_structure_get_uint(s, "frames", &n);
        gst_structure_get_uint(s, "context", &context);
        gst_structure_get_boolean(s, "carried", &carried);
        gst_structure_get_int(s, "b_V", &b_V);
        gst_structure_get_double(s, "C_V", &C_V);
        gst_structure_get_double(s, "mean-bits", &bits);
        gst_structure_get_double(s, "ms", &ms);
        gst_structure_get_int(s, "tiles", &tiles);
        ctx.summary.add(n, context, carried, C_V, b_V, bits, ms, tiles);
      }
    } else if (type == GST_MESSAGE_WARNING) {
      // Decoders warn when they skip damaged data: frames are lost.
      warnings.push_back(cli::message_text(msg));
      if (!job.keep_going)
        error = warnings.back() + " (the input is damaged; --keep-going writes what decodes)";
    } else if (type == GST_MESSAGE_ERROR) {
      error = cli::message_text(msg);
    } else {
      gst_message_unref(msg);
      break;  // EOS
    }
    gst_message_unref(msg);
  }
  if (stopper.joinable()) stopper.join();
  gst_object_unref(bus);
  cleanup();
  const std::size_t frames = ctx.frames.load();
  auto discard = [&] {
    if (file) file->discard();
  };
  if (aborted) {
    discard();
    std::fprintf(stderr, "%sqbasicvsr-upscale: aborted by %s; %s\n", progress.tty ? "\n" : "",
                 cli::Interrupts::name(),
                 frames_out ? ("the folder holds " + std::to_string(ctx.written) + " complete frames").c_str()
                            : "no file written");
    return cli::Interrupts::exit_code();
  }
  if (!error.empty()) {
    discard();
    throw Error(input + ": " + error);
  }
  if (!ctx.have_video || frames == 0) {
    discard();
    if (stopping) {
      std::fprintf(stderr, "%sqbasicvsr-upscale: stopped by %s before any frame was done; no file written\n",
                   progress.tty ? "\n" : "", cli::Interrupts::name());
      return cli::Interrupts::exit_code();
    }
    throw Error(input + ": no video frames could be decoded");
  }
  // A file cut short: fewer frames than an MP4/MOV index announces, or (other containers) every
  // stream ending well before the announced duration.
  const GstClockTime frame_ns =
      info.fps_n > 0 ? gst_util_uint64_scale(GST_SECOND, info.fps_d, info.fps_n) : 40 * GST_MSECOND;
  const GstClockTime slack = std::max<GstClockTime>(2 * frame_ns, 50 * GST_MSECOND);
  std::string short_by;
  if (const auto announced = cli::mp4_announced_bytes(input)) {
    const auto indexed = cli::mp4_video_samples(input);
    short_by =
        "the file is cut short (" + std::to_string(fs::file_size(input, ec)) + " of the " +
        std::to_string(*announced) + " bytes its boxes announce): " + std::to_string(ctx.decoded.load()) +
        (indexed ? " of the " + std::to_string(*indexed) + " frames of its index" : " frames") + " decode";
  } else if (GST_CLOCK_TIME_IS_VALID(info.duration) && ctx.end + slack < info.duration &&
             !cli::mp4_video_samples(input)) {
    short_by = "the input ends at " + std::to_string(ctx.end / GST_MSECOND) + " ms of the " +
               std::to_string(info.duration / GST_MSECOND) + " ms its container announces (truncated?)";
  }
  if (!stopping && !short_by.empty()) {
    const std::string& what = short_by;
    if (!job.keep_going) {
      discard();
      throw Error(input + ": " + what + "; --keep-going writes the " + std::to_string(frames) +
                  " frames that decode");
    }
    warnings.push_back(what);
  }
  if (file) file->commit("file");
  for (const auto& w : warnings) {
    std::fprintf(stderr, "%sqbasicvsr-upscale: warning: %s; %zu frames written\n", progress.tty ? "\n" : "",
                 w.c_str(), frames);
    ctx.summary.notes.push_back("warning: " + w);
  }
  for (const auto& n : ctx.notes) ctx.summary.notes.push_back(n);
  progress.update(frames, total, true);
  const double s = progress.seconds();
  std::string streams;
  for (const auto& n : ctx.notes) streams += "; " + n;
  std::fprintf(stderr, "%s%zu frames in %.1f s (%.2f fps, %zu chunks)%s -> %s\n", progress.tty ? "\n" : "",
               frames, s, static_cast<double>(frames) / std::max(s, 1e-9), ctx.summary.chunks.size(),
               streams.c_str(), output.c_str());
  ctx.summary.frames = frames;
  if (job.json) ctx.summary.print(input, output);
  if (stopping) {
    std::fprintf(stderr, "qbasicvsr-upscale: stopped by %s: %s holds the first %zu frames\n",
                 cli::Interrupts::name(), output.c_str(), frames);
    return cli::Interrupts::exit_code();
  }
  return 0;
}

// ---- Segments of a video job and their merge ----------------------------------------------------

namespace {

// Frames the container announces (an MP4/MOV index, else duration x rate): every segment of a job
// plans with the same number, and the last segment takes whatever follows.
std::size_t announced_frames(const std::string& input, const InputInfo& info) {
  if (const auto n = cli::mp4_video_samples(input)) return static_cast<std::size_t>(*n);
  if (info.fps_n > 0 && GST_CLOCK_TIME_IS_VALID(info.duration))
    return static_cast<std::size_t>(gst_util_uint64_scale_round(
        info.duration, static_cast<guint64>(info.fps_n), static_cast<guint64>(info.fps_d) * GST_SECOND));
  throw Error(input +
              ": its frame count is unknown (no index, duration or frame rate), so it cannot be cut into "
              "segments");
}

Segment video_segment(const Job& job, std::size_t frames, int index, int count) {
  Segment s = plan_segment(frames, index, count, job.chunking, job.warmup);
  if (index == count) s.end = s.lookahead_end = SIZE_MAX;  // to the last frame that decodes
  return s;
}

// Encodes RGB frames with their own timestamps into a Matroska file: appsrc -> encoder -> muxer.
class VideoWriter {
 public:
  VideoWriter(const std::string& path, const Encoding& enc, int width, int height, int fps_n, int fps_d) {
    try {
      build(path, enc, width, height, fps_n, fps_d);
    } catch (...) {
      release();  // the destructor does not run for a constructor that throws
      throw;
    }
  }
  ~VideoWriter() { release(); }
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  void push(const Image& img, GstClockTime pts, GstClockTime duration) {
    GstBuffer* b = gst_buffer_new_allocate(nullptr, img.rgb.size(), nullptr);
    gst_buffer_fill(b, 0, img.rgb.data(), img.rgb.size());
    GST_BUFFER_PTS(b) = pts;
    GST_BUFFER_DURATION(b) = duration;
    if (gst_app_src_push_buffer(GST_APP_SRC(src_), b) != GST_FLOW_OK ||
        !(error_ = cli::bus_error(bus_)).empty())
      throw Error("writing a segment piece: " +
                  (error_.empty() ? std::string("the encoder stopped") : error_));
  }
  void finish() {
    gst_app_src_end_of_stream(GST_APP_SRC(src_));
    GstMessage* m = gst_bus_timed_pop_filtered(
        bus_, GST_CLOCK_TIME_NONE, static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
    const bool ok = m && GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS;
    const std::string why = ok || !m ? "" : cli::message_text(m);
    if (m) gst_message_unref(m);
    if (!ok) throw Error("writing a segment piece: " + why);
  }

 private:
  void build(const std::string& path, const Encoding& enc, int width, int height, int fps_n, int fps_d) {
    pipeline_ = gst_pipeline_new("piece");
    src_ = gst_element_factory_make("appsrc", nullptr);
    GstElement* queue = gst_element_factory_make("queue", nullptr);
    GstElement* convert = gst_element_factory_make("videoconvert", nullptr);
    GError* err = nullptr;
    GstElement* encoder = gst_parse_bin_from_description(enc.video.c_str(), TRUE, &err);
    if (err) g_error_free(err);
    GstElement* mux = gst_element_factory_make("matroskamux", nullptr);
    GstElement* sink = gst_element_factory_make("filesink", nullptr);
    if (!src_ || !queue || !convert || !encoder || !mux || !sink) {
      for (GstElement* e : {src_, queue, convert, encoder, mux, sink})
        if (e) gst_object_unref(gst_object_ref_sink(e));
      src_ = nullptr;
      throw Error("missing GStreamer elements for " + enc.video + " into Matroska");
    }
    gst_bin_add_many(GST_BIN(pipeline_), src_, queue, convert, encoder, mux, sink, nullptr);
    GstCaps* caps = gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, "RGB", "width", G_TYPE_INT,
                                        width, "height", G_TYPE_INT, height, "framerate", GST_TYPE_FRACTION,
                                        std::max(fps_n, 0), std::max(fps_d, 1), nullptr);
    g_object_set(src_, "caps", caps, "format", GST_FORMAT_TIME, "block", TRUE, "max-bytes",
                 static_cast<guint64>(4) * 3 * width * height, nullptr);
    gst_caps_unref(caps);
    g_object_set(sink, "location", path.c_str(), nullptr);
    if (!gst_element_link_many(src_, queue, convert, encoder, mux, sink, nullptr))
      throw Error("cannot link the encoder of a segment piece");
    bus_ = gst_element_get_bus(pipeline_);
    if (gst_element_set_state(pipeline_, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
      const std::string why = cli::bus_error(bus_);
      throw Error(path + ": " + (why.empty() ? "cannot start writing" : why));
    }
  }
  void release() {
    if (pipeline_) {
      gst_element_set_state(pipeline_, GST_STATE_NULL);
      gst_object_unref(pipeline_);
    }
    if (bus_) gst_object_unref(bus_);
    pipeline_ = nullptr;
    bus_ = nullptr;
  }

  GstElement* pipeline_ = nullptr;
  GstElement* src_ = nullptr;
  GstBus* bus_ = nullptr;
  std::string error_;
};

}  // namespace

int upscale_video_segment(const Job& job, const std::string& input, const std::string& output) {
  const Model& model = *job.model;
  if (job.resume)
    throw Error("--resume works on frame folders only (a failed video segment is run again whole)");
  const std::string piece = segment_piece(output, job.segment, job.segments);
  const Encoding enc = encoding_for(output, job.lossless, true);
  const fs::path out(piece);
  cli::check_writable_folder(out.parent_path());
  cli::PartialFile file(out);
  const fs::path& partial = file.path();
  const InputInfo info = probe_input(input);
  const std::size_t announced = announced_frames(input, info);
  const Segment seg = video_segment(job, announced, job.segment, job.segments);
  std::error_code ec;
  if (seg.begin >= seg.end) {
    std::fprintf(stderr, "qbasicvsr-upscale: segment %d/%d is empty (%zu frames are %zu chunks)\n",
                 job.segment, job.segments, announced,
                 (announced + job.chunking.chunk_size - 1) / job.chunking.chunk_size);
    return 0;
  }
  Upscaler upscaler(model, job.options);
  warn_memory(upscaler, job, info.width, info.height);
  Chunker chunker(upscaler, job.chunking);
  Summary summary;
  chunker.on_report([&](const ChunkReport& r) { summary.add(r); });
  std::unique_ptr<VideoWriter> writer;
  std::map<uint64_t, std::pair<GstClockTime, GstClockTime>> times;
  std::size_t done = 0;
  Progress progress;
  auto write = [&](uint64_t tag, Image&& img) {
    if (!writer)
      writer =
          std::make_unique<VideoWriter>(partial.string(), enc, img.width, img.height, info.fps_n, info.fps_d);
    const auto t = times.at(tag);
    times.erase(tag);
    writer->push(img, t.first, t.second);
    progress.update(++done, seg.end == SIZE_MAX ? 0 : seg.end - seg.begin);
  };
  try {
    cli::VideoReader reader(input);
    Image frame;
    GstClockTime pts = GST_CLOCK_TIME_NONE, duration = GST_CLOCK_TIME_NONE;
    for (std::size_t i = 0; i < seg.lookahead_end && reader.next(&frame, &pts, &duration); ++i) {
      if (cli::Interrupts::count() > 0) {
        writer.reset();
        std::fprintf(stderr,
                     "qbasicvsr-upscale: segment %d/%d stopped by %s; no piece written (run it again)\n",
                     job.segment, job.segments, cli::Interrupts::name());
        return cli::Interrupts::exit_code();
      }
      if (i < seg.warmup_begin) continue;
      if (i < seg.begin) {
        chunker.prime(std::move(frame));
      } else if (i < seg.end) {
        times[i] = {pts, duration};
        chunker.push(std::move(frame), i, write);
      } else {
        chunker.lookahead(std::move(frame));
      }
    }
    chunker.drain(write);
    if (!writer)
      throw Error(input + ": segment " + std::to_string(job.segment) + "/" + std::to_string(job.segments) +
                  " starts at frame " + std::to_string(seg.begin) + ", past the frames that decode");
    writer->finish();
    writer.reset();
  } catch (...) {
    writer.reset();  // closes the piece before the PartialFile removes it
    throw;
  }
  file.commit("piece");
  std::fprintf(stderr, "%ssegment %d/%d: frames %zu..%zu (%zu frames, warm-up from %zu) in %.1f s -> %s\n",
               progress.tty ? "\n" : "", job.segment, job.segments, seg.begin, seg.begin + done, done,
               seg.warmup_begin, progress.seconds(), piece.c_str());
  summary.frames = done;
  if (job.json) summary.print(input, piece);
  return 0;
}

namespace {

struct MergeContext {
  Context* ctx;
  std::vector<GstPad*> concat_pads;  // one per piece, in order
};

// A piece's video goes to its own pad of concat, in segment order.
void on_piece_pad(GstElement* demux, GstPad* pad, gpointer data) {
  auto* mc = static_cast<MergeContext*>(data);
  GstCaps* caps = cli::pad_caps(pad);
  const bool video = g_str_has_prefix(gst_structure_get_name(gst_caps_get_structure(caps, 0)), "video/");
  gst_caps_unref(caps);
  if (!video) return;
  const auto index = static_cast<std::size_t>(GPOINTER_TO_INT(g_object_get_data(G_OBJECT(demux), "piece")));
  if (gst_pad_link(pad, mc->concat_pads[index]) != GST_PAD_LINK_OK)
    mc->ctx->fail("cannot join piece " + std::to_string(index + 1));
}

// The source's streams other than video, as a normal job would keep them.
void on_source_pad(GstElement*, GstPad* pad, gpointer data) {
  auto* ctx = static_cast<Context*>(data);
  GstCaps* caps = cli::pad_caps(pad);
  const std::string name = gst_structure_get_name(gst_caps_get_structure(caps, 0));
  try {
    if (name.rfind("video/", 0) == 0 || name.rfind("image/", 0) == 0)
      drop(ctx, pad, "");
    else
      link_other(ctx, pad, caps, name);
  } catch (const std::exception& e) {
    ctx->fail(e.what());
  }
  gst_caps_unref(caps);
}

}  // namespace

int merge_segments(const Job& job, const std::string& input, const std::string& output) {
  if (!fs::is_regular_file(input)) throw Error(input + ": no such video file");
  Context ctx;
  ctx.job = &job;
  ctx.enc = encoding_for(output, false);
  const InputInfo info = probe_input(input);
  const std::size_t announced = announced_frames(input, info);
  std::vector<std::string> pieces;
  std::error_code ec;
  for (int k = 1; k <= job.merge; ++k) {
    const Segment s = video_segment(job, announced, k, job.merge);
    if (s.begin >= s.end) continue;  // empty segments write no piece
    const std::string p = segment_piece(output, k, job.merge);
    if (!fs::is_regular_file(p, ec))
      throw Error(p + ": the piece of segment " + std::to_string(k) + "/" + std::to_string(job.merge) +
                  " is missing (run qbasicvsr-upscale --segment " + std::to_string(k) + "/" +
                  std::to_string(job.merge) + " for it)");
    pieces.push_back(p);
  }
  const fs::path out(output);
  cli::check_writable_folder(out.parent_path());
  cli::PartialFile file(out);
  const fs::path& partial = file.path();

  ctx.pipeline = gst_pipeline_new("merge");
  MergeContext mc{&ctx, {}};
  std::string error;
  try {
    ctx.mux = add_element(&ctx, ctx.enc.mux);
    GstElement* sink = add_element(&ctx, "filesink");
    g_object_set(sink, "location", partial.c_str(), nullptr);
    GstElement* concat = add_element(&ctx, "concat");
    // The pieces carry the source's own timestamps: concat must not shift them.
    g_object_set(concat, "adjust-base", FALSE, nullptr);
    GstElement* parser = add_element(&ctx, ctx.enc.parser);
    if (!gst_element_link_many(concat, parser, ctx.mux, sink, nullptr)) throw Error("cannot link the merge");
    GstPad* parsed = gst_element_get_static_pad(parser, "src");
    gst_pad_add_probe(parsed, GST_PAD_PROBE_TYPE_BUFFER, count_frames, &ctx, nullptr);
    gst_object_unref(parsed);
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      mc.concat_pads.push_back(gst_element_request_pad_simple(concat, "sink_%u"));
      GstElement* src = add_element(&ctx, "filesrc");
      GstElement* demux = add_element(&ctx, "matroskademux");
      g_object_set(src, "location", pieces[i].c_str(), nullptr);
      g_object_set_data(G_OBJECT(demux), "piece", GINT_TO_POINTER(static_cast<int>(i)));
      gst_element_link(src, demux);
      g_signal_connect(demux, "pad-added", G_CALLBACK(on_piece_pad), &mc);
    }
    GstElement* src = add_element(&ctx, "filesrc");
    GstElement* dec = add_element(&ctx, "decodebin");
    g_object_set(src, "location", input.c_str(), nullptr);
    // Stop at any encoded video (it is dropped) and at what the muxer takes as it is.
    GstCaps* stop = stop_caps(ctx.mux);
    gst_caps_append(
        stop, gst_caps_from_string("video/x-h264; video/x-h265; video/mpeg; video/x-vp8; video/x-vp9; "
                                   "video/x-av1; video/x-divx; video/x-msmpeg; video/x-theora; image/jpeg"));
    g_object_set(dec, "caps", stop, nullptr);
    gst_caps_unref(stop);
    gst_element_link(src, dec);
    g_signal_connect(dec, "pad-added", G_CALLBACK(on_source_pad), &ctx);
  } catch (const std::exception& e) {
    error = e.what();
  }
  GstBus* bus = gst_element_get_bus(ctx.pipeline);
  if (error.empty() && gst_element_set_state(ctx.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    error = cli::bus_error(bus);
    if (error.empty()) error = "the merge cannot start";
  }
  bool aborted = false;
  while (error.empty()) {
    GstMessage* m = gst_bus_timed_pop_filtered(
        bus, 100 * GST_MSECOND, static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
    {
      std::lock_guard<std::mutex> l(ctx.mutex);
      if (!ctx.problem.empty()) error = ctx.problem;
    }
    if (cli::Interrupts::count() > 0) aborted = true;
    if (!m) {
      if (aborted) break;
      continue;
    }
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) error = cli::message_text(m);
    gst_message_unref(m);
    break;
  }
  gst_object_unref(bus);
  gst_element_set_state(ctx.pipeline, GST_STATE_NULL);
  for (GstPad* p : mc.concat_pads) gst_object_unref(p);
  for (GstPad* p : ctx.stop_pads) gst_object_unref(p);
  gst_object_unref(ctx.pipeline);
  if (aborted || !error.empty()) {
    file.discard();
    if (aborted) {
      std::fprintf(stderr, "qbasicvsr-upscale: merge stopped by %s; no file written\n",
                   cli::Interrupts::name());
      return cli::Interrupts::exit_code();
    }
    throw Error(output + ": merging the pieces: " + error);
  }
  file.commit("merged file");
  for (const auto& p : pieces) fs::remove(p, ec);
  std::string streams;
  for (const auto& n : ctx.notes)
    if (!n.empty()) streams += "; " + n;
  std::fprintf(stderr, "merged %zu pieces: %zu frames%s -> %s\n", pieces.size(), ctx.frames.load(),
               streams.c_str(), output.c_str());
  if (job.json) {
    ctx.summary.frames = ctx.frames.load();
    for (const auto& n : ctx.notes)
      if (!n.empty()) ctx.summary.notes.push_back(n);
    ctx.summary.print(input, output);
  }
  return 0;
}

}  // namespace qbasicvsr::upscale
