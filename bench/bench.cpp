// qbasicvsr-bench: milliseconds per frame and peak memory of one clip pass.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "common/cli.h"
#include "common/clip.h"
#include "qbasicvsr/model_paths.h"
#include "qbasicvsr/profile.h"
#include "qbasicvsr/runtime.h"
#include "qbasicvsr/upscaler.h"

namespace {

constexpr const char* kUsage =
    "Usage: qbasicvsr-bench (-m MODEL | --arch C,N[,HR]) --size HxW --frames T -p fp32|fake|int8\n"
    "                       [--bits B] [--scope partial|full] [--no-adapt] [--threads N]\n"
    "                       [--float-layers M] [--device cpu|cuda] [--runs R] [--profile] [--json]\n"
    "                       [--input RAW] [--output RAW]\n"
    "\n"
    "Times one bidirectional pass over T random frames of HxW (LR) after a warm-up pass and\n"
    "prints the median milliseconds per frame over R runs and the peak resident memory (and\n"
    "the GPU allocator's peak on device cuda). For fake/int8 without calibrated ranges, the\n"
    "warm-up pass also observes the ranges.\n"
    "\n"
    "Options:\n"
    "  -m, --model M    model file or installed model name\n"
    "  --arch C,N       random weights of C channels and N blocks (instead of -m)\n"
    "  --size HxW       LR frame size (default 180x320)\n"
    "  --frames T       frames per clip (default 4)\n"
    "  -p, --precision  fp32, fake (simulated quantization) or int8 (integer convolutions)\n"
    "  --bits B         base bit-width b_base for fake/int8, 2..8 (default: the model's, else 8)\n"
    "  --scope S        partial (default) or full, for models without quantization settings\n"
    "  --no-adapt       no FG-VBA bit offset per clip\n"
    "  --float-layers M the layers int8 leaves in float in fp32, bf16 or auto (as in\n"
    "                   qbasicvsr-upscale); on device cuda every convolution's arithmetic,\n"
    "                   fp32 (IEEE), bf16, fp16 or auto (fp32)\n"
    "  --device D       cpu (default) or cuda (CUDA builds, tools/scripts/build-cuda.sh)\n"
    "  --input RAW      the clip instead of random frames: raw 8-bit RGB frames of HxW back to\n"
    "                   back (e.g. ffmpeg -f rawvideo -pix_fmt rgb24); --frames of them\n"
    "  --output RAW     writes the warm-up pass's upscaled frames there, raw 8-bit RGB\n"
    "  --threads N      compute threads (default: one per core)\n"
    "  --runs R         timed runs (default 3)\n"
    "  --profile        also time each stage of the timed runs (SPyNet, warps, trunk convolutions,\n"
    "                   quantization, reconstruction, conv_last, pixel shuffles, copies in and\n"
    "                   out) and report the convolutions' share of the time: the floor a pass\n"
    "                   would reach if nothing but its convolutions cost time\n"
    "  --json           one JSON object on stdout; with --profile, \"profile\" holds each stage's\n"
    "                   ms_per_frame, calls_per_frame and share, plus conv_ms_per_frame and\n"
    "                   conv_share\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace qbasicvsr;
  cli::Args args("qbasicvsr-bench", kUsage);
  args.value("-m", "--model");
  args.value("", "--arch");
  args.value("", "--size");
  args.value("", "--frames");
  args.value("", "--runs");
  args.value("", "--input");
  args.value("", "--output");
  cli::precision_options(args);
  args.flag("--json");
  args.flag("--profile");
  args.parse(argc, argv);
  return cli::run_main("qbasicvsr-bench", [&] {
    if (!args.positional().empty()) args.die("unexpected argument " + args.positional()[0]);
    if (args.has("--model") == args.has("--arch")) args.die("give exactly one of -m MODEL or --arch C,N");
    int h = 180, w = 320;
    if (args.has("--size") && std::sscanf(args.get("--size").c_str(), "%dx%d", &h, &w) != 2)
      args.die("--size must be HxW, e.g. 180x320");
    if (h < 1 || w < 1 || h > 4096 || w > 4096) args.die("--size out of range");
    const int frames = static_cast<int>(args.get_int("--frames", 4, 1, 10000));
    const int runs = static_cast<int>(args.get_int("--runs", 3, 1, 1000));
    const UpscalerOptions opts = cli::upscaler_options(args, Precision::FP32);

    Model model;
    std::string source;
    if (args.has("--arch")) {
      Architecture arch;
      try {
        arch = Architecture::parse(args.get("--arch"));
      } catch (const Error& e) {
        args.die(e.what());
      }
      model = random_model(arch, 1);
      source = "random " + arch.summary();
    } else {
      source = resolve_model(args.get("--model"));
      model = load_model(source);
    }
    Upscaler upscaler(model, opts);

    std::mt19937 rng(7);
    std::uniform_int_distribution<int> byte(0, 255);
    std::FILE* input = args.has("--input") ? std::fopen(args.get("--input").c_str(), "rb") : nullptr;
    if (args.has("--input") && !input) throw Error("cannot open " + args.get("--input"));
    std::vector<Image> clip(frames);
    for (int i = 0; i < frames; ++i) {
      Image& f = clip[i];
      f.width = w;
      f.height = h;
      f.rgb.resize(static_cast<std::size_t>(w) * h * 3);
      if (!input) {
        for (auto& b : f.rgb) b = static_cast<uint8_t>(byte(rng));
      } else if (std::fread(f.rgb.data(), 1, f.rgb.size(), input) != f.rgb.size()) {
        std::fclose(input);
        throw Error(args.get("--input") + " holds fewer than " + std::to_string(frames) + " frames of " +
                    std::to_string(w) + "x" + std::to_string(h) + " RGB");
      }
    }
    if (input) std::fclose(input);
    std::vector<Image> outputs;
    auto pass = [&](bool keep) {
      const auto t0 = std::chrono::steady_clock::now();
      upscaler.upscale(clip, [&](std::size_t, Image&& f) {
        if (keep) outputs.push_back(std::move(f));
      });
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
             frames;
    };
    // Warm-up: first-touch of buffers, oneDNN primitive creation, cuDNN's algorithm search.
    pass(args.has("--output"));
    if (args.has("--output")) {
      std::FILE* out = std::fopen(args.get("--output").c_str(), "wb");
      bool ok = out != nullptr;
      for (const Image& f : outputs)
        ok = ok && std::fwrite(f.rgb.data(), 1, f.rgb.size(), out) == f.rgb.size();
      if (out) ok = std::fclose(out) == 0 && ok;
      if (!ok) throw Error("cannot write " + args.get("--output"));
      outputs.clear();
    }
    const bool gpu = opts.device == "cuda";
    if (gpu) reset_peak_device_memory();
    const bool profiling = args.has("--profile");
    profile::set_enabled(profiling);
    profile::reset();
    std::vector<double> ms;
    for (int r = 0; r < runs; ++r) ms.push_back(pass(false));
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    const double rss = peak_rss_mb();
    const double device_mb = gpu ? peak_device_mb() : 0.0;
    profile::set_enabled(false);
    const profile::Totals prof = profile::totals();
    const double per_frame = 1.0 / (static_cast<double>(runs) * frames);
    nlohmann::json stages = nlohmann::json::object();
    for (int i = 0; i < profile::kStages; ++i) {
      const auto s = static_cast<profile::Stage>(i);
      stages[profile::stage_name(s)] = {{"ms_per_frame", prof.ms[i] * per_frame},
                                        {"calls_per_frame", static_cast<double>(prof.calls[i]) * per_frame},
                                        {"share", prof.ms[i] / std::max(prof.total_ms(), 1e-9)},
                                        {"conv", profile::is_conv(s)}};
    }
    const nlohmann::json profile_json = {{"stages", stages},
                                         {"ms_per_frame", prof.total_ms() * per_frame},
                                         {"conv_ms_per_frame", prof.conv_ms() * per_frame},
                                         {"conv_share", prof.conv_ms() / std::max(prof.total_ms(), 1e-9)}};
    if (args.has("--json")) {
      nlohmann::json out = {{"model", source},
                            {"precision", precision_name(opts.precision)},
                            {"quantization", cli::describe(upscaler)},
                            {"device", opts.device},
                            {"threads", runtime_threads()},
                            {"size", {h, w}},
                            {"frames", frames},
                            {"runs", runs},
                            {"ms_per_frame", median},
                            {"ms_per_frame_min", ms.front()},
                            {"ms_per_frame_max", ms.back()},
                            {"peak_rss_mb", rss},
                            {"peak_device_mb", device_mb}};
      if (profiling) out["profile"] = profile_json;
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf(
          "%s, %s, %d threads, %dx%d x %d frames: %.1f ms/frame (median of %d; min %.1f, "
          "max %.1f), peak RSS %.0f MB",
          source.c_str(), cli::describe(upscaler).c_str(), runtime_threads(), h, w, frames, median, runs,
          ms.front(), ms.back(), rss);
      if (gpu) std::printf(", peak GPU memory %.0f MB", device_mb);
      std::printf("\n");
      if (profiling) {
        std::printf("\n%-20s %12s %10s %8s\n", "stage", "ms/frame", "calls/fr", "share");
        for (int i = 0; i < profile::kStages; ++i) {
          const auto& st = profile_json["stages"][profile::stage_name(static_cast<profile::Stage>(i))];
          std::printf("%-20s %12.1f %10.1f %7.1f%%%s\n", profile::stage_name(static_cast<profile::Stage>(i)),
                      st["ms_per_frame"].get<double>(), st["calls_per_frame"].get<double>(),
                      100.0 * st["share"].get<double>(), st["conv"].get<bool>() ? "  conv" : "");
        }
        std::printf(
            "%-20s %12.1f\nconvolutions        %12.1f %10s %7.1f%%  (end-to-end = %.2fx the conv floor)\n",
            "profiled total", profile_json["ms_per_frame"].get<double>(),
            profile_json["conv_ms_per_frame"].get<double>(), "",
            100.0 * profile_json["conv_share"].get<double>(),
            1.0 / std::max(profile_json["conv_share"].get<double>(), 1e-9));
      }
    }
    return 0;
  });
}
