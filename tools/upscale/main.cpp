// qbasicvsr-upscale: x4 video super-resolution of a video file (through the GStreamer element)
// or of a folder of PNG frames (through the same chunker the element uses).
#include <gst/gst.h>

#include <algorithm>
#include <filesystem>

#include "common/cli.h"
#include "common/clip.h"
#include "common/safe_output.h"
#include "qbasicvsr/model_paths.h"
#include "upscale/job.h"

namespace qbasicvsr::upscale {

namespace {

constexpr const char* kUsage =
    "Usage: qbasicvsr-upscale [-m MODEL] [-p fp32|fake|int8] [--bits B] [--scope partial|full]\n"
    "                         [--no-adapt] [--float-layers M] [--chunk N] [--overlap K] [--threads N]\n"
    "                         [--device cpu|cuda]\n"
    "                         [--tile-size R] [--tile-overlap R] [--max-memory MB] [--resume]\n"
    "                         [--keep-going] [--lossless] [--segment K/N [--warmup W]] [--json]\n"
    "                         INPUT OUTPUT\n"
    "       qbasicvsr-upscale --merge N INPUT OUTPUT\n"
    "\n"
    "Upscales a clip x4 with a BasicVSR model, in chunks of N frames: the forward propagation\n"
    "runs on from chunk to chunk, the backward one sees K frames past each chunk.\n"
    "  - INPUT a video file: OUTPUT is a video file whose container follows its extension\n"
    "    (.mp4/.m4v/.mov: H.264, .mkv: H.264, .webm: VP9). Audio and subtitle streams the\n"
    "    container can carry are copied as they are; other audio is re-encoded (AAC, Vorbis,\n"
    "    Opus); what is dropped is said. An OUTPUT folder (existing, ending in / or without an\n"
    "    extension) receives the frames as 00000000.png, ... instead (no audio).\n"
    "  - INPUT a folder of PNG frames (name order: im2 before im10): OUTPUT is a folder that\n"
    "    receives the upscaled frames under the same names, at the input's bit depth (8 or 16),\n"
    "    grey as grey, alpha kept (enlarged by pixel repetition). --resume continues an\n"
    "    interrupted job: complete frames already in OUTPUT are kept, the rest come out as in an\n"
    "    uninterrupted run.\n"
    "The input is never written: an OUTPUT that is the INPUT, or a folder inside the input\n"
    "folder, is refused. Files appear complete or not at all (written under a temporary name and\n"
    "renamed); a second job on the same OUTPUT is refused while the first runs. SIGINT (Ctrl-C) or\n"
    "SIGTERM stops after the frames in flight: a video file then holds the frames done (a second\n"
    "signal aborts and leaves no file); exit status 130 / 143.\n"
    "\n"
    "Options:\n"
    "  -m, --model M     model file or name of an installed model (default: the default model)\n"
    "  -p, --precision   fp32, fake (simulated quantization) or int8 (integer convolutions);\n"
    "                    default: int8 for a quantized model (fake on --device cuda), else fp32\n"
    "  --bits B          base bit-width b_base, 2..8 (default: the model's, else 8)\n"
    "  --scope S         partial or full, for models without quantization settings\n"
    "  --no-adapt        no FG-VBA bit offset from each chunk's complexity\n"
    "  --float-layers M  arithmetic of the layers int8 leaves in float (SPyNet, conv_last in the\n"
    "                    partial scope): fp32, bf16 or auto (default: bf16 where bf16 convolutions\n"
    "                    are the faster, i.e. AMX, or AVX-512 BF16 on AMD; else fp32). On --device\n"
    "                    cuda: every convolution's arithmetic, fp32 (IEEE), fp16, bf16 or auto (fp32)\n"
    "  --chunk N         frames per chunk (default {chunk})\n"
    "  --overlap K       lookahead frames of the backward propagation (default {overlap})\n"
    "  --threads N       compute threads (default: one per core)\n"
    "  --device D        cpu, or cuda in a CUDA build (tools/scripts/build-cuda.sh): precision fp32\n"
    "                    or fake\n"
    "  --tile-size R     input rows per spatial tile; 0: from --max-memory (default)\n"
    "  --tile-overlap R  rows of context around each tile (default {tile-overlap})\n"
    "  --max-memory MB   memory budget that picks the tile size (default {max-memory}; 0: no tiling)\n"
    "  --resume          frame folders: keep the complete frames OUTPUT already has\n"
    "  --keep-going      a damaged or truncated video input ends with a warning naming the\n"
    "                    frames written, instead of an error\n"
    "  --lossless        video output: H.264 at quantizer 0 in 4:4:4 (.mp4, .mov, .mkv)\n"
    "  --segment K/N     only segment K (1..N) of N, cut at chunk borders, for running a job on\n"
    "                    several processes or machines (examples/scale/): frame folders get\n"
    "                    their frames in OUTPUT, videos a piece OUTPUT.partKofN.mkv for --merge\n"
    "  --warmup W        frames before a segment that warm up its forward propagation; default\n"
    "                    all (the segments then equal one uninterrupted run exactly)\n"
    "  --merge N         join the N pieces OUTPUT.part1ofN.mkv ... into OUTPUT without\n"
    "                    re-encoding the video, with the audio of INPUT; the pieces are removed\n"
    "  --json            one JSON object on stdout: frames, mean_bits, notes[] and chunks[]\n"
    "                    (frames, context, carried, C_V, b_V, mean_bits, ms, tiles) of the chunks\n"
    "  -h, --help        this text\n";

}  // namespace

void Progress::update(std::size_t done, std::size_t total, bool force) {
  if (!tty) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last < std::chrono::milliseconds(250)) return;
  last = now;
  const double s = std::chrono::duration<double>(now - start).count();
  const double fps = static_cast<double>(done) / std::max(s, 1e-9);
  if (total > 0) {
    const double eta = done ? static_cast<double>(total - std::min(done, total)) / fps : 0;
    std::fprintf(stderr, "\r%zu/%zu frames, %.2f fps, ETA %.0f s   ", done, total, fps, eta);
  } else {
    std::fprintf(stderr, "\r%zu frames, %.2f fps   ", done, fps);
  }
}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Summary::add(std::size_t n, std::size_t context, bool carried, double C_V, int b_V, double mean_bits,
                  double ms, int tiles) {
  chunks.push_back({{"frames", n},
                    {"context", context},
                    {"carried", carried},
                    {"C_V", C_V},
                    {"b_V", b_V},
                    {"mean_bits", mean_bits},
                    {"ms", ms},
                    {"tiles", tiles}});
}

double Summary::mean_bits() const {
  double sum = 0, n = 0;
  for (const auto& c : chunks) {
    sum += c["mean_bits"].get<double>() * c["frames"].get<double>();
    n += c["frames"].get<double>();
  }
  return n > 0 ? sum / n : 0;
}

void Summary::print(const std::string& input, const std::string& output) const {
  const nlohmann::json j = {{"input", input},           {"output", output}, {"frames", frames},
                            {"mean_bits", mean_bits()}, {"notes", notes},   {"chunks", chunks}};
  std::printf("%s\n", j.dump().c_str());
}

void warn_memory(const Upscaler& upscaler, const Job& job, int width, int height) {
  const auto& o = upscaler.options();
  if (o.max_memory_mb <= 0) return;
  const double mb = upscaler.planned_memory_mb(height, width, job.chunking.chunk_size, job.chunking.overlap);
  if (mb > o.max_memory_mb)
    std::fprintf(stderr,
                 "qbasicvsr-upscale: warning: %dx%d frames need about %.0f MB even in the smallest tiles, "
                 "over the --max-memory budget of %d MB by %.0f MB\n",
                 width, height, mb, o.max_memory_mb, mb - o.max_memory_mb);
}

std::string segment_piece(const std::string& output, int index, int count) {
  return output + ".part" + std::to_string(index) + "of" + std::to_string(count) + ".mkv";
}

}  // namespace qbasicvsr::upscale

int main(int argc, char** argv) {
  using namespace qbasicvsr;
  namespace fs = std::filesystem;
  gst_init(&argc, &argv);
  cli::Args args("qbasicvsr-upscale", cli::with_library_defaults(upscale::kUsage));
  args.value("-m", "--model");
  cli::precision_options(args);
  for (const char* v : {"--chunk", "--overlap", "--tile-size", "--tile-overlap", "--max-memory", "--segment",
                        "--warmup", "--merge"})
    args.value("", v);
  args.flag("--resume");
  args.flag("--lossless");
  args.flag("--keep-going");
  args.flag("--json");
  args.parse(argc, argv);
  return cli::run_main("qbasicvsr-upscale", [&] {
    if (args.positional().size() != 2) args.die("expected INPUT and OUTPUT (see --help)");
    const std::string input = args.positional()[0], output = args.positional()[1];
    std::error_code ec;
    if (!fs::exists(input, ec)) throw Error(input + ": no such video file or folder of PNG frames");
    const bool folder = fs::is_directory(input, ec);
    cli::check_output_is_not_input(input, output, folder);
    upscale::Job job;
    job.json = args.has("--json");
    if (args.has("--merge")) {
      if (folder)
        args.die("--merge joins the pieces of a video; the segments of a frame folder need no merge");
      job.merge = static_cast<int>(args.get_int("--merge", 1, 1, 100000));
      cli::Interrupts::install();
      return upscale::merge_segments(job, input, output);
    }
    if (args.has("--segment")) {
      const std::string s = args.get("--segment");
      const auto slash = s.find('/');
      char* end = nullptr;
      const long k = slash == std::string::npos ? 0 : std::strtol(s.c_str(), &end, 10);
      const long n = slash == std::string::npos ? 0 : std::strtol(s.c_str() + slash + 1, nullptr, 10);
      if (slash == std::string::npos || end != s.c_str() + slash || n < 1 || n > 100000 || k < 1 || k > n)
        args.die("--segment must be K/N with 1 <= K <= N, got \"" + s + "\"");
      job.segment = static_cast<int>(k);
      job.segments = static_cast<int>(n);
    }
    if (args.has("--warmup") && args.get("--warmup") != "all")
      job.warmup = static_cast<std::size_t>(args.get_int("--warmup", 0, 0, 1L << 40));
    job.model_path = resolve_model(args.get("--model"));
    // Loaded once, here: an early, clear error, and the element of the video path starts on it.
    job.model = std::make_shared<const Model>(load_model(job.model_path));
    job.options = cli::upscaler_options(args, default_precision(*job.model, args.get("--device", "cpu")));
    job.options.tile_rows = static_cast<int>(args.get_int("--tile-size", job.options.tile_rows, 0, 16384));
    job.options.tile_overlap =
        static_cast<int>(args.get_int("--tile-overlap", job.options.tile_overlap, 0, 1024));
    job.options.max_memory_mb =
        static_cast<int>(args.get_int("--max-memory", job.options.max_memory_mb, 0, 1 << 20));
    const ChunkerOptions defaults;
    job.chunking.chunk_size = static_cast<int>(args.get_int("--chunk", defaults.chunk_size, 1, 1000));
    job.chunking.overlap = static_cast<int>(args.get_int("--overlap", defaults.overlap, 0, 1000));
    job.resume = args.has("--resume");
    job.keep_going = args.has("--keep-going");
    job.lossless = args.has("--lossless");
    cli::Interrupts::install();
    if (folder) return upscale::upscale_folder(job, input, output);
    if (job.segments > 1) return upscale::upscale_video_segment(job, input, output);
    return upscale::upscale_video(job, input, output);
  });
}
