// qbasicvsr-upscale: x4 video super-resolution of a video file (through the GStreamer element)
// or of a folder of PNG frames (through the same chunker the element uses).
#include <gst/gst.h>
#include <gst/pbutils/pbutils.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/cli.h"
#include "common/clip.h"
#include "gstqbasicvsr.h"
#include "qbasicvsr/chunker.h"
#include "qbasicvsr/model_paths.h"

namespace {

namespace fs = std::filesystem;
using namespace qbasicvsr;

constexpr const char* kUsage =
    "Usage: qbasicvsr-upscale [-m MODEL] [-p fp32|fake|int8] [--bits B] [--scope partial|full]\n"
    "                         [--no-adapt] [--chunk N] [--overlap K] [--threads N] [--device cpu]\n"
    "                         [--tile-size R] [--tile-overlap R] [--max-memory MB] [--resume]\n"
    "                         [--json]\n"
    "                         INPUT OUTPUT\n"
    "\n"
    "Upscales a clip x4 with a BasicVSR model, in chunks of N frames: the forward propagation\n"
    "runs on from chunk to chunk, the backward one sees K frames past each chunk.\n"
    "  - INPUT a video file: OUTPUT is a video file whose container follows its extension\n"
    "    (.mp4/.m4v/.mov: H.264 + AAC, .mkv: H.264 + Vorbis, .webm: VP9 + Opus); the audio is\n"
    "    kept. Ctrl-C ends the file cleanly at the frames done so far.\n"
    "  - INPUT a folder of PNG frames (name order: im2 before im10): OUTPUT is a folder that\n"
    "    receives the upscaled frames under the same names. --resume continues an interrupted\n"
    "    job: frames already in OUTPUT are kept and the rest come out as in an uninterrupted run.\n"
    "\n"
    "Options:\n"
    "  -m, --model M     model file or name of an installed model (default: the default model)\n"
    "  -p, --precision   fp32, fake (simulated quantization) or int8 (integer convolutions);\n"
    "                    default: int8 for a quantized model, else fp32\n"
    "  --bits B          base bit-width b_base, 2..8 (default: the model's, else 8)\n"
    "  --scope S         partial or full, for models without quantization settings\n"
    "  --no-adapt        no FG-VBA bit offset from each chunk's complexity\n"
    "  --chunk N         frames per chunk (default 10)\n"
    "  --overlap K       lookahead frames of the backward propagation (default 4)\n"
    "  --threads N       compute threads (default: one per core)\n"
    "  --device D        cpu\n"
    "  --tile-size R     input rows per spatial tile; 0: from --max-memory (default)\n"
    "  --tile-overlap R  rows of context around each tile (default 16)\n"
    "  --max-memory MB   memory budget that picks the tile size (default 4096; 0: no tiling)\n"
    "  --resume          frame folders: keep the frames OUTPUT already has\n"
    "  --json            one JSON object on stdout: frames, mean_bits and chunks[] (frames, context,\n"
    "                    carried, C_V, b_V, mean_bits, ms) of the chunks run\n"
    "  -h, --help        this text\n";

std::atomic<int> g_interrupts{0};
void on_sigint(int) { g_interrupts.fetch_add(1); }

struct Progress {
  bool tty = isatty(STDERR_FILENO);
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(), last;
  void update(std::size_t done, std::size_t total, bool force = false) {
    if (!tty) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last < std::chrono::milliseconds(250)) return;
    last = now;
    const double s = std::chrono::duration<double>(now - start).count();
    const double fps = done / std::max(s, 1e-9);
    if (total > 0) {
      const double eta = done ? (total - std::min(done, total)) / fps : 0;
      std::fprintf(stderr, "\r%zu/%zu frames, %.2f fps, ETA %.0f s   ", done, total, fps, eta);
    } else {
      std::fprintf(stderr, "\r%zu frames, %.2f fps   ", done, fps);
    }
  }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

struct Job {
  std::string model_path;
  UpscalerOptions options;
  ChunkerOptions chunking;
  bool resume = false;
  bool json = false;
};

// What the chunks did, for --json and the closing line.
struct Summary {
  std::size_t frames = 0;
  nlohmann::json chunks = nlohmann::json::array();
  double bit_frames = 0;  // sum of mean bits x frames

  void add(std::size_t n, std::size_t context, bool carried, double C_V, int b_V, double mean_bits,
           double ms) {
    chunks.push_back({{"frames", n},
                      {"context", context},
                      {"carried", carried},
                      {"C_V", C_V},
                      {"b_V", b_V},
                      {"mean_bits", mean_bits},
                      {"ms", ms}});
    bit_frames += mean_bits * static_cast<double>(n);
  }
  double mean_bits() const {
    std::size_t n = 0;
    for (const auto& c : chunks) n += c["frames"].get<std::size_t>();
    return n ? bit_frames / static_cast<double>(n) : 0;
  }
  void print(const std::string& input, const std::string& output) const {
    const nlohmann::json j = {{"input", input},
                              {"output", output},
                              {"frames", frames},
                              {"mean_bits", mean_bits()},
                              {"chunks", chunks}};
    std::printf("%s\n", j.dump().c_str());
  }
};

// ---- Frame folders --------------------------------------------------------------------------

int upscale_folder(const Job& job, const Model& model, const std::string& input, const std::string& output) {
  Upscaler upscaler(model, job.options);
  std::vector<std::string> files;
  const auto frames = cli::read_clip(input, &files);
  std::error_code ec;
  fs::create_directories(output, ec);
  if (!fs::is_directory(output, ec)) throw Error(output + ": cannot create output folder");
  auto out_path = [&](std::size_t i) { return (fs::path(output) / fs::path(files[i]).filename()).string(); };

  // Resume at the chunk that holds the first frame missing from OUTPUT.
  std::size_t start = 0;
  if (job.resume) {
    std::size_t first_missing = 0;
    while (first_missing < files.size() && fs::exists(out_path(first_missing))) ++first_missing;
    start = first_missing / job.chunking.chunk_size * job.chunking.chunk_size;
  }
  std::fprintf(stderr, "qbasicvsr-upscale: %zu frames %dx%d, model %s (%s), %s%s\n", files.size(),
               frames[0].width, frames[0].height, job.model_path.c_str(), model.arch.summary().c_str(),
               precision_name(upscaler.options().precision),
               start ? (", resuming at frame " + std::to_string(start)).c_str() : "");
  if (start >= files.size()) {
    std::fprintf(stderr, "qbasicvsr-upscale: %s already holds every frame\n", output.c_str());
    return 0;
  }
  Chunker chunker(upscaler, job.chunking);
  // The forward branch reaches back to the first frame: it runs again over the frames done (no
  // reconstruction), so that the rest comes out exactly as in an uninterrupted run.
  for (std::size_t i = 0; i < start; ++i) chunker.prime(frames[i]);
  Progress progress;
  std::size_t done = 0;
  ChunkReport last;
  Summary summary;
  chunker.on_report([&](const ChunkReport& r) {
    last = r;
    summary.add(r.frames, r.context, r.carried, r.clip.complexity.C_V, r.clip.b_V, r.clip.mean_bits,
                r.clip.ms);
  });
  auto write = [&](uint64_t i, Image&& img) {
    write_png(out_path(i), img);
    progress.update(++done, files.size() - start);
  };
  std::signal(SIGINT, on_sigint);
  for (std::size_t i = start; i < frames.size(); ++i) {
    if (g_interrupts.load()) {
      // Stop at a chunk border with its context done: --resume picks up from here exactly.
      std::fprintf(stderr, "\nqbasicvsr-upscale: interrupted after %zu frames; --resume continues\n",
                   start + done);
      return 130;
    }
    chunker.push(frames[i], i, write);
  }
  chunker.drain(write);
  progress.update(done, files.size() - start, true);
  const double s = progress.seconds();
  std::fprintf(stderr, "%s%zu frames in %.1f s (%.2f s/frame) -> %s\n", progress.tty ? "\n" : "", done, s,
               s / std::max<std::size_t>(done, 1), output.c_str());
  if (upscaler.quantization())
    std::fprintf(stderr, "qbasicvsr-upscale: %s; last chunk C_V %.2f, b_V %+d, mean %.2f bits\n",
                 cli::describe(upscaler).c_str(), last.clip.complexity.C_V, last.clip.b_V,
                 last.clip.mean_bits);
  summary.frames = done;
  if (job.json) summary.print(input, output);
  return 0;
}

// ---- Video files ----------------------------------------------------------------------------

struct Encoding {
  const char* video;
  const char* audio;
  const char* mux;
};

Encoding encoding_for(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  if (ext == ".mp4" || ext == ".m4v" || ext == ".mov")
    return {"x264enc speed-preset=faster ! video/x-h264,profile=high", "avenc_aac", "mp4mux"};
  if (ext == ".mkv") return {"x264enc speed-preset=faster", "vorbisenc", "matroskamux"};
  if (ext == ".webm") return {"vp9enc deadline=1 cpu-used=4 row-mt=true", "opusenc", "webmmux"};
  throw Error(path + ": unknown output container \"" + ext + "\" (use .mp4, .m4v, .mov, .mkv or .webm)");
}

struct VideoContext {
  GstElement* pipeline = nullptr;
  GstElement* mux = nullptr;
  std::string element_props;
  Encoding enc{};
  bool have_video = false, have_audio = false;
  std::atomic<std::size_t> frames{0};
  std::string link_error;
  Summary summary;
};

// The element's qbasicvsr-chunk message, into the summary.
void add_chunk(Summary& summary, const GstStructure* s) {
  guint n = 0, context = 0;
  gboolean carried = FALSE;
  gint b_V = 0;
  double C_V = 0, bits = 0, ms = 0;
  gst_structure_get_uint(s, "frames", &n);
  gst_structure_get_uint(s, "context", &context);
  gst_structure_get_boolean(s, "carried", &carried);
  gst_structure_get_int(s, "b_V", &b_V);
  gst_structure_get_double(s, "C_V", &C_V);
  gst_structure_get_double(s, "mean-bits", &bits);
  gst_structure_get_double(s, "ms", &ms);
  summary.add(n, context, carried, C_V, b_V, bits, ms);
}

GstPadProbeReturn count_frames(GstPad*, GstPadProbeInfo* info, gpointer data) {
  if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) static_cast<VideoContext*>(data)->frames++;
  return GST_PAD_PROBE_OK;
}

// Links a decoded stream to a branch that ends in the muxer.
void on_pad_added(GstElement*, GstPad* pad, gpointer data) {
  auto* ctx = static_cast<VideoContext*>(data);
  GstCaps* caps = gst_pad_get_current_caps(pad);
  if (!caps) caps = gst_pad_query_caps(pad, nullptr);
  const std::string name = gst_structure_get_name(gst_caps_get_structure(caps, 0));
  gst_caps_unref(caps);
  std::string desc;
  const bool video = name.rfind("video/", 0) == 0, audio = name.rfind("audio/", 0) == 0;
  // The queues give decoding, inference and encoding a thread each, with bounded buffering.
  if (video && !ctx->have_video) {
    desc = "queue ! videoconvert ! video/x-raw,format=RGB ! qbasicvsr name=sr " + ctx->element_props +
           " ! queue max-size-buffers=4 ! videoconvert ! " + ctx->enc.video + " ! queue";
  } else if (audio && !ctx->have_audio) {
    desc = std::string("queue ! audioconvert ! audioresample ! ") + ctx->enc.audio + " ! queue";
  } else {
    return;  // further streams of a kind are dropped
  }
  GError* err = nullptr;
  GstElement* bin = gst_parse_bin_from_description(desc.c_str(), TRUE, &err);
  if (!bin) {
    ctx->link_error = err ? err->message : "cannot build the branch";
    if (err) g_error_free(err);
    return;
  }
  gst_bin_add(GST_BIN(ctx->pipeline), bin);
  gst_element_sync_state_with_parent(bin);
  GstPad* sink = gst_element_get_static_pad(bin, "sink");
  const bool linked = gst_pad_link(pad, sink) == GST_PAD_LINK_OK && gst_element_link(bin, ctx->mux);
  gst_object_unref(sink);
  if (!linked) {
    ctx->link_error = "cannot link the " + name + " stream to " + ctx->enc.mux;
    return;
  }
  if (video) {
    ctx->have_video = true;
    GstElement* sr = gst_bin_get_by_name(GST_BIN(bin), "sr");
    GstPad* src = gst_element_get_static_pad(sr, "src");
    gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, count_frames, ctx, nullptr);
    gst_object_unref(src);
    gst_object_unref(sr);
  } else {
    ctx->have_audio = true;
  }
}

std::string element_properties(const Job& job) {
  const auto& o = job.options;
  std::string p =
      "model=\"" + job.model_path + "\" precision=" + precision_name(o.precision) +
      " chunk-size=" + std::to_string(job.chunking.chunk_size) +
      " overlap=" + std::to_string(job.chunking.overlap) + " adaptive=" + (o.adaptive ? "true" : "false") +
      " bits=" + std::to_string(o.bits) + " threads=" + std::to_string(o.threads) + " device=" + o.device +
      " tile-size=" + std::to_string(o.tile_rows) + " tile-overlap=" + std::to_string(o.tile_overlap) +
      " max-memory=" + std::to_string(o.max_memory_mb);
  if (o.scope) p += std::string(" scope=") + scope_name(*o.scope);
  return p;
}

// Frames of the input's first video stream, from its duration and frame rate (0 if unknown).
std::size_t estimate_frames(GstElement* pipeline, GstElement* sr) {
  gint64 duration = 0;
  if (!gst_element_query_duration(pipeline, GST_FORMAT_TIME, &duration) || duration <= 0) return 0;
  GstPad* pad = gst_element_get_static_pad(sr, "sink");
  GstCaps* caps = gst_pad_get_current_caps(pad);
  gst_object_unref(pad);
  if (!caps) return 0;
  gint n = 0, d = 1;
  gst_structure_get_fraction(gst_caps_get_structure(caps, 0), "framerate", &n, &d);
  gst_caps_unref(caps);
  return n > 0 ? static_cast<std::size_t>(
                     gst_util_uint64_scale(duration, n, static_cast<guint64>(d) * GST_SECOND))
               : 0;
}

// Checks that the file has a decodable video stream before the real pipeline runs: decodebin can
// swallow a demuxer's error while it plugs elements (seen with truncated MP4 files), which would
// leave the pipeline waiting forever. The discoverer gives up after its timeout instead.
void probe_input(const std::string& input) {
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
  const GstDiscovererResult result = info ? gst_discoverer_info_get_result(info) : GST_DISCOVERER_ERROR;
  if (result == GST_DISCOVERER_TIMEOUT) {
    problem = "timed out reading the file";
  } else if (result != GST_DISCOVERER_OK) {
    problem = err ? err->message : "not a readable media file";
  } else {
    GList* videos = gst_discoverer_info_get_video_streams(info);
    if (!videos) problem = "the file has no video stream";
    gst_discoverer_stream_info_list_free(videos);
  }
  if (err) g_error_free(err);
  if (info) gst_discoverer_info_unref(info);
  g_object_unref(disc);
  if (!problem.empty()) throw Error(input + ": " + problem);
}

int upscale_video(const Job& job, const Model& model, const std::string& input, const std::string& output) {
  if (!fs::is_regular_file(input)) throw Error(input + ": no such video file or folder of PNG frames");
  if (job.resume) throw Error("--resume works on frame folders only");
  probe_input(input);
  VideoContext ctx;
  ctx.enc = encoding_for(output);
  ctx.element_props = element_properties(job);
  gst_qbasicvsr_register_static();
  ctx.pipeline = gst_pipeline_new("upscale");
  GstElement* src = gst_element_factory_make("filesrc", nullptr);
  GstElement* dec = gst_element_factory_make("decodebin", nullptr);
  ctx.mux = gst_element_factory_make(ctx.enc.mux, nullptr);
  GstElement* sink = gst_element_factory_make("filesink", nullptr);
  if (!src || !dec || !ctx.mux || !sink)
    throw Error("missing GStreamer plugins (filesrc, decodebin, " + std::string(ctx.enc.mux) +
                ", filesink): install the gstreamer1.0-plugins packages");
  g_object_set(src, "location", input.c_str(), nullptr);
  g_object_set(sink, "location", output.c_str(), nullptr);
  gst_bin_add_many(GST_BIN(ctx.pipeline), src, dec, ctx.mux, sink, nullptr);
  gst_element_link(src, dec);
  gst_element_link(ctx.mux, sink);
  g_signal_connect(dec, "pad-added", G_CALLBACK(on_pad_added), &ctx);

  // On a terminal only: an error must stay the one line a script reads.
  if (isatty(STDERR_FILENO))
    std::fprintf(stderr, "qbasicvsr-upscale: %s -> %s, model %s (%s), chunk %d, overlap %d\n", input.c_str(),
                 output.c_str(), job.model_path.c_str(), model.arch.summary().c_str(),
                 job.chunking.chunk_size, job.chunking.overlap);
  std::signal(SIGINT, on_sigint);
  GstBus* bus = gst_element_get_bus(ctx.pipeline);
  std::string error;
  bool eos_sent = false;
  Progress progress;
  std::size_t total = 0;
  if (gst_element_set_state(ctx.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    error = "cannot start";
  while (error.empty()) {
    GstMessage* msg = gst_bus_timed_pop_filtered(
        bus, 100 * GST_MSECOND,
        static_cast<GstMessageType>(GST_MESSAGE_ERROR | GST_MESSAGE_EOS | GST_MESSAGE_ELEMENT));
    if (!ctx.link_error.empty()) error = ctx.link_error;
    if (g_interrupts.load() == 1 && !eos_sent) {
      // End of stream from the source: the element drains, the muxer writes a playable file.
      std::fprintf(stderr, "\nqbasicvsr-upscale: interrupted, finishing the file (Ctrl-C again to abort)\n");
      gst_element_send_event(ctx.pipeline, gst_event_new_eos());
      eos_sent = true;
    } else if (g_interrupts.load() > 1) {
      error = "aborted";
    }
    if (ctx.have_video && total == 0) {
      GstElement* sr = gst_bin_get_by_name(GST_BIN(ctx.pipeline), "sr");
      if (sr) {
        total = estimate_frames(ctx.pipeline, sr);
        gst_object_unref(sr);
      }
    }
    progress.update(ctx.frames.load(), total);
    if (!msg) continue;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ELEMENT) {
      const GstStructure* st = gst_message_get_structure(msg);
      if (st && gst_structure_has_name(st, "qbasicvsr-chunk")) add_chunk(ctx.summary, st);
      gst_message_unref(msg);
      continue;
    }
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
      GError* err = nullptr;
      gchar* dbg = nullptr;
      gst_message_parse_error(msg, &err, &dbg);
      error = std::string(GST_OBJECT_NAME(msg->src)) + ": " + (err ? err->message : "error");
      if (err) g_error_free(err);
      g_free(dbg);
      gst_message_unref(msg);
      break;
    }
    gst_message_unref(msg);
    break;  // EOS
  }
  gst_element_set_state(ctx.pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(ctx.pipeline);
  if (!error.empty()) {
    std::error_code ec;
    if (ctx.frames.load() == 0) fs::remove(output, ec);
    throw Error(input + ": " + error);
  }
  if (!ctx.have_video || ctx.frames.load() == 0) {
    std::error_code ec;
    fs::remove(output, ec);
    throw Error(input + ": no video frames could be decoded");
  }
  progress.update(ctx.frames.load(), total, true);
  const double s = progress.seconds();
  std::fprintf(stderr, "%s%zu frames in %.1f s (%.2f fps, %zu chunks), audio %s -> %s\n",
               progress.tty ? "\n" : "", ctx.frames.load(), s, ctx.frames.load() / std::max(s, 1e-9),
               ctx.summary.chunks.size(), ctx.have_audio ? "kept" : "none", output.c_str());
  ctx.summary.frames = ctx.frames.load();
  if (job.json) ctx.summary.print(input, output);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  cli::Args args("qbasicvsr-upscale", kUsage);
  args.value("-m", "--model");
  cli::precision_options(args);
  for (const char* v : {"--chunk", "--overlap", "--tile-size", "--tile-overlap", "--max-memory"})
    args.value("", v);
  args.flag("--resume");
  args.flag("--json");
  args.parse(argc, argv);
  return cli::run_main("qbasicvsr-upscale", [&] {
    if (args.positional().size() != 2) args.die("expected INPUT and OUTPUT (see --help)");
    const std::string input = args.positional()[0], output = args.positional()[1];
    Job job;
    job.model_path = resolve_model(args.get("--model"));
    // Loaded here for an early, clear error; the element loads its own copy.
    const Model model = load_model(job.model_path);
    job.options = cli::upscaler_options(args, model.quantization ? "int8" : "fp32");
    job.options.tile_rows = static_cast<int>(args.get_int("--tile-size", 0, 0, 16384));
    job.options.tile_overlap = static_cast<int>(args.get_int("--tile-overlap", 16, 0, 1024));
    job.options.max_memory_mb = static_cast<int>(args.get_int("--max-memory", 4096, 0, 1 << 20));
    job.chunking.chunk_size = static_cast<int>(args.get_int("--chunk", 10, 1, 1000));
    job.chunking.overlap = static_cast<int>(args.get_int("--overlap", 4, 0, 1000));
    job.resume = args.has("--resume");
    job.json = args.has("--json");
    std::error_code ec;
    if (fs::is_directory(input, ec)) return upscale_folder(job, model, input, output);
    return upscale_video(job, model, input, output);
  });
}
