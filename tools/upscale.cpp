// qbasicvsr-upscale: x4 video super-resolution of a folder of PNG frames.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common/cli.h"
#include "common/clip.h"
#include "qbasicvsr/model_paths.h"
#include "qbasicvsr/upscaler.h"

namespace {

constexpr const char* kUsage =
    "Usage: qbasicvsr-upscale [-m MODEL] [-p fp32|fake|int8] [--bits B] [--scope partial|full]\n"
    "                         [--no-adapt] [--threads N] [--device cpu] INPUT OUTPUT\n"
    "\n"
    "Upscales a clip x4 with a BasicVSR model. INPUT is a folder of PNG frames, processed in\n"
    "name order (im2 before im10); OUTPUT is a folder that receives the upscaled frames under\n"
    "the same names. The whole clip runs in one bidirectional pass.\n"
    "\n"
    "Options:\n"
    "  -m, --model M   model file or name of an installed model (default: the default model)\n"
    "  -p, --precision fp32, fake (simulated quantization) or int8 (integer convolutions);\n"
    "                  default: int8 for a quantized model, else fp32\n"
    "  --bits B        base bit-width b_base, 2..8 (default: the model's, else 8)\n"
    "  --scope S       partial or full, for models without quantization settings\n"
    "  --no-adapt      no FG-VBA bit offset from the clip's complexity\n"
    "  --threads N     compute threads (default: one per core)\n"
    "  --device D      cpu\n"
    "  -h, --help      this text\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace qbasicvsr;
  namespace fs = std::filesystem;
  cli::Args args("qbasicvsr-upscale", kUsage);
  args.value("-m", "--model");
  cli::precision_options(args);
  for (const char* later : {"--chunk", "--overlap"}) args.value("", later);
  args.parse(argc, argv);
  return cli::run_main("qbasicvsr-upscale", [&] {
    if (args.positional().size() != 2) args.die("expected INPUT and OUTPUT (see --help)");
    for (const char* later : {"--chunk", "--overlap"})
      if (args.has(later))
        throw Error(std::string(later) + " needs the chunked element, which this version does not have yet");
    const std::string input = args.positional()[0], output = args.positional()[1];
    std::error_code ec;
    if (!fs::is_directory(input, ec))
      throw Error(input +
                  ": not a folder of PNG frames (video files need the GStreamer element, "
                  "which this version does not have yet)");
    const std::string model_path = resolve_model(args.get("--model"));
    const Model model = load_model(model_path);
    Upscaler upscaler(model, cli::upscaler_options(args, model.quantization ? "int8" : "fp32"));
    std::vector<std::string> files;
    const auto frames = cli::read_clip(input, &files);
    fs::create_directories(output, ec);
    if (!fs::is_directory(output, ec)) throw Error(output + ": cannot create output folder");

    const bool tty = isatty(STDERR_FILENO);
    const auto start = std::chrono::steady_clock::now();
    std::fprintf(stderr, "%s: %zu frames %dx%d, model %s (%s), %s\n", "qbasicvsr-upscale", files.size(),
                 frames[0].width, frames[0].height, model_path.c_str(), model.arch.summary().c_str(),
                 precision_name(upscaler.options().precision));
    const ClipReport report = upscaler.upscale(frames, [&](std::size_t i, Image&& out) {
      write_png((fs::path(output) / fs::path(files[i]).filename()).string(), out);
      if (tty) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "\r%zu/%zu frames, %.2f fps", i + 1, files.size(), (i + 1) / s);
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "%s%zu frames in %.1f s (%.2f s/frame) -> %s\n", tty ? "\n" : "", files.size(), s,
                 s / files.size(), output.c_str());
    if (upscaler.quantization())
      std::fprintf(stderr, "%s: %s; C_V %.2f, b_V %+d, mean %.2f bits\n", "qbasicvsr-upscale",
                   cli::describe(upscaler).c_str(), report.complexity.C_V, report.b_V, report.mean_bits);
    return 0;
  });
}
