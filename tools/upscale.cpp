// qbasicvsr-upscale: x4 video super-resolution of a folder of PNG frames.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common/cli.h"
#include "qbasicvsr/model_paths.h"
#include "qbasicvsr/upscaler.h"

namespace {

constexpr const char* kUsage =
    "Usage: qbasicvsr-upscale [-m MODEL] [-p fp32] [--threads N] [--device cpu] INPUT OUTPUT\n"
    "\n"
    "Upscales a clip x4 with a BasicVSR model. INPUT is a folder of PNG frames, processed in\n"
    "name order (im2 before im10); OUTPUT is a folder that receives the upscaled frames under\n"
    "the same names. The whole clip runs in one bidirectional pass.\n"
    "\n"
    "Options:\n"
    "  -m, --model M   model file or name of an installed model (default: the default model)\n"
    "  -p, --precision fp32 (fake and int8 arrive with the quantization engine)\n"
    "  --threads N     compute threads (default: one per core)\n"
    "  --device D      cpu\n"
    "  -h, --help      this text\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace qbasicvsr;
  namespace fs = std::filesystem;
  cli::Args args("qbasicvsr-upscale", kUsage);
  args.value("-m", "--model");
  args.value("-p", "--precision");
  args.value("", "--threads");
  args.value("", "--device");
  for (const char* later : {"--chunk", "--overlap", "--bits"}) args.value("", later);
  args.flag("--no-adapt");
  args.parse(argc, argv);
  return cli::run_main("qbasicvsr-upscale", [&] {
    if (args.positional().size() != 2) args.die("expected INPUT and OUTPUT (see --help)");
    for (const char* later : {"--chunk", "--overlap", "--bits", "--no-adapt"})
      if (args.has(later))
        throw Error(std::string(later) +
                    " needs the chunked element and the quantization engine, "
                    "which this version does not have yet");
    const std::string input = args.positional()[0], output = args.positional()[1];
    std::error_code ec;
    if (!fs::is_directory(input, ec))
      throw Error(input +
                  ": not a folder of PNG frames (video files need the GStreamer element, "
                  "which this version does not have yet)");
    UpscalerOptions opts;
    opts.precision = parse_precision(args.get("--precision", "fp32"));
    opts.threads = static_cast<int>(args.get_int("--threads", 0, 0, 1024));
    opts.device = args.get("--device", "cpu");
    const std::string model_path = resolve_model(args.get("--model"));
    const Model model = load_model(model_path);
    Upscaler upscaler(model, opts);

    const auto files = list_png_files(input);
    std::vector<Image> frames;
    frames.reserve(files.size());
    for (const auto& f : files) {
      frames.push_back(read_png(f));
      if (frames.back().width != frames[0].width || frames.back().height != frames[0].height)
        throw Error(f + " is " + std::to_string(frames.back().width) + "x" +
                    std::to_string(frames.back().height) + ", the clip's frames are " +
                    std::to_string(frames[0].width) + "x" + std::to_string(frames[0].height));
    }
    fs::create_directories(output, ec);
    if (!fs::is_directory(output, ec)) throw Error(output + ": cannot create output folder");

    const bool tty = isatty(STDERR_FILENO);
    const auto start = std::chrono::steady_clock::now();
    std::fprintf(stderr, "%s: %zu frames %dx%d, model %s (%s)\n", "qbasicvsr-upscale", files.size(),
                 frames[0].width, frames[0].height, model_path.c_str(), model.arch.summary().c_str());
    upscaler.upscale(frames, [&](std::size_t i, Image&& out) {
      write_png((fs::path(output) / fs::path(files[i]).filename()).string(), out);
      if (tty) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "\r%zu/%zu frames, %.2f fps", i + 1, files.size(), (i + 1) / s);
      }
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "%s%zu frames in %.1f s (%.2f s/frame) -> %s\n", tty ? "\n" : "", files.size(), s,
                 s / files.size(), output.c_str());
    return 0;
  });
}
