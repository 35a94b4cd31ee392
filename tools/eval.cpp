// qbasicvsr-eval: PSNR/SSIM of a model (or the bicubic baseline) on ground-truth clips degraded
// to LR (BI or BD).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/cli.h"
#include "common/clip.h"
#include "qbasicvsr/chunker.h"
#include "qbasicvsr/degrade.h"
#include "qbasicvsr/metrics.h"
#include "qbasicvsr/model_paths.h"

namespace {

namespace fs = std::filesystem;
using namespace qbasicvsr;

constexpr const char* kUsage =
    "Usage: qbasicvsr-eval [-m MODEL | --bicubic] --gt DIR [--gt DIR ...] [--degradation BI|BD|BD-duf]\n"
    "                      [-p fp32|fake|int8] [--bits B] [--scope S] [--no-adapt] [--crop N] [--rgb]\n"
    "                      [--float-layers M]\n"
    "                      [--chunk N] [--overlap K] [--max-frames N] [--threads N] [--save DIR] [--json]\n"
    "\n"
    "Each --gt names one clip, a folder of ground-truth PNG frames (cropped to multiples of 4). The\n"
    "clip is degraded to LR (BI: MATLAB imresize 1/4 bicubic with antialiasing; BD: BasicVSR's\n"
    "BD_degradation.m, a 12x12 Gaussian (sigma 1.6) with replicated borders sampled at rows and\n"
    "columns 2:4:end-2; BD-duf: the older DUF convention, 13x13 from offset 0, for old tables),\n"
    "super-resolved, and scored against the ground truth:\n"
    "PSNR and SSIM on the BT.601 luma (Y = 16 + 65.481 R + 128.553 G + 24.966 B), or on RGB with\n"
    "--rgb. Per-clip figures are means over frames; the overall mean is over clips.\n"
    "\n"
    "Options:\n"
    "  -m, --model M       model file or installed model name (default: the default model)\n"
    "  --bicubic           score MATLAB-style bicubic x4 upscaling instead of a model\n"
    "  --degradation D     BI (default), BD or BD-duf\n"
    "  -p, --precision P   fp32, fake or int8 (default: int8 for a quantized model, fake on cuda, else\n"
    "                      fp32)\n"
    "  --bits B, --scope S, --no-adapt, --float-layers M   as in qbasicvsr-upscale\n"
    "  --crop N            pixels cropped from every border before scoring (default 0)\n"
    "  --rgb               score RGB instead of Y\n"
    "  --chunk N           frames per network pass (default 0: the whole clip in one pass)\n"
    "  --overlap K         lookahead frames of the backward propagation per chunk (default {overlap})\n"
    "  --max-frames N      use only the first N frames of each clip\n"
    "  --threads N         compute threads (default: one per core)\n"
    "  --save DIR          write the super-resolved frames to DIR/<clip>/\n"
    "  --json              one JSON object on stdout: clips[] {name, frames, psnr, ssim, bits, b_V},\n"
    "                      mean {psnr, ssim, bits}; bits is the mean bit-width the quantized layers ran\n"
    "                      at (32: fp32); a PSNR of identical frames (infinite) is null\n";

struct Score {
  std::string name;
  double psnr = 0, ssim = 0;
  std::size_t frames = 0;
  double bits = 32;  // mean bit-width over the clip's passes (32: fp32 or bicubic)
  int b_V = 0;       // FG-VBA offset of the last pass
};

// JSON has no infinity (the PSNR of identical frames): null there.
nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

}  // namespace

int main(int argc, char** argv) {
  cli::Args args("qbasicvsr-eval", cli::with_library_defaults(kUsage));
  args.value("-m", "--model");
  args.value("", "--gt");
  args.value("", "--degradation");
  args.value("", "--crop");
  args.value("", "--chunk");
  args.value("", "--overlap");
  args.value("", "--max-frames");
  args.value("", "--save");
  args.flag("--bicubic");
  args.flag("--rgb");
  args.flag("--json");
  cli::precision_options(args);
  args.parse(argc, argv);
  return cli::run_main("qbasicvsr-eval", [&] {
    if (!args.positional().empty())
      args.die("unexpected argument " + args.positional()[0] + " (clips go with --gt)");
    const auto clips = args.all("--gt");
    if (clips.empty()) args.die("give at least one --gt DIR");
    const std::string deg = args.get("--degradation", "BI");
    Degradation degradation = Degradation::BI;
    try {
      degradation = parse_degradation(deg);
    } catch (const Error& e) {
      args.die(e.what());
    }
    const bool bicubic = args.has("--bicubic");
    if (bicubic && args.has("--model")) args.die("give -m MODEL or --bicubic, not both");
    const int crop = static_cast<int>(args.get_int("--crop", 0, 0, 1000));
    const bool rgb = args.has("--rgb");
    const int chunk = static_cast<int>(args.get_int("--chunk", 0, 0, 100000));
    const int overlap = static_cast<int>(args.get_int("--overlap", ChunkerOptions{}.overlap, 0, 1000));
    const long max_frames = args.get_int("--max-frames", 0, 0, 1000000);

    std::unique_ptr<Upscaler> upscaler;
    std::string model_path = "bicubic";
    if (!bicubic) {
      model_path = resolve_model(args.get("--model"));
      const Model model = load_model(model_path);
      upscaler = std::make_unique<Upscaler>(
          model, cli::upscaler_options(args, default_precision(model, args.get("--device", "cpu"))));
    }
    std::vector<Score> scores;
    for (const auto& dir : clips) {
      auto gt = cli::read_clip(dir);
      if (max_frames > 0 && gt.size() > static_cast<std::size_t>(max_frames)) gt.resize(max_frames);
      std::vector<Image> lr;
      for (auto& f : gt) {
        f = modcrop(f);
        if (f.width < 4 || f.height < 4) throw Error(dir + ": frames are smaller than 4x4");
        lr.push_back(degrade(f, degradation));
      }
      std::vector<Image> sr(gt.size());
      double bits = 32;
      int b_V = 0;
      if (bicubic) {
        for (std::size_t i = 0; i < lr.size(); ++i) sr[i] = upscale_bicubic(lr[i]);
      } else if (chunk == 0) {
        const ClipReport r = upscaler->upscale(lr, [&](std::size_t i, Image&& f) { sr[i] = std::move(f); });
        bits = r.mean_bits;
        b_V = r.b_V;
      } else {
        Chunker chunker(*upscaler, {chunk, overlap});
        double bit_sum = 0;
        std::size_t bit_frames = 0;
        chunker.on_report([&](const ChunkReport& r) {
          bit_sum += r.clip.mean_bits * static_cast<double>(r.frames);
          bit_frames += r.frames;
          b_V = r.clip.b_V;
        });
        auto out = [&](uint64_t i, Image&& f) { sr[i] = std::move(f); };
        for (std::size_t i = 0; i < lr.size(); ++i) chunker.push(lr[i], i, out);
        chunker.drain(out);
        bits = bit_sum / static_cast<double>(std::max<std::size_t>(bit_frames, 1));
      }
      Score s;
      s.name = fs::path(dir).filename().string();
      if (s.name.empty()) s.name = fs::path(dir).parent_path().filename().string();
      s.frames = gt.size();
      s.bits = bits;
      s.b_V = b_V;
      for (std::size_t i = 0; i < gt.size(); ++i) {
        s.psnr += psnr(sr[i], gt[i], crop, rgb) / static_cast<double>(gt.size());
        s.ssim += ssim(sr[i], gt[i], crop, rgb) / static_cast<double>(gt.size());
      }
      if (args.has("--save")) {
        const fs::path out = fs::path(args.get("--save")) / s.name;
        fs::create_directories(out);
        for (std::size_t i = 0; i < sr.size(); ++i) {
          char name[32];
          std::snprintf(name, sizeof name, "%08zu.png", i);
          write_png((out / name).string(), sr[i]);
        }
      }
      if (!args.has("--json"))
        std::printf("%-24s %4zu frames  PSNR %7.3f dB  SSIM %.4f  %.2f bits (b_V %+d)\n", s.name.c_str(),
                    s.frames, s.psnr, s.ssim, s.bits, s.b_V);
      scores.push_back(s);
    }
    double mp = 0, ms = 0, mb = 0;
    for (const auto& s : scores) {
      mp += s.psnr / static_cast<double>(scores.size());
      ms += s.ssim / static_cast<double>(scores.size());
      mb += s.bits / static_cast<double>(scores.size());
    }
    const std::string what = bicubic ? "bicubic" : cli::describe(*upscaler);
    if (args.has("--json")) {
      nlohmann::json clips = nlohmann::json::array();
      for (const auto& c : scores)
        clips.push_back({{"name", c.name},
                         {"frames", c.frames},
                         {"psnr", json_number(c.psnr)},
                         {"ssim", c.ssim},
                         {"bits", c.bits},
                         {"b_V", c.b_V}});
      const nlohmann::json out = {{"model", model_path},
                                  {"method", what},
                                  {"degradation", deg},
                                  {"metric", rgb ? "RGB" : "Y"},
                                  {"crop", crop},
                                  {"clips", clips},
                                  {"mean", {{"psnr", json_number(mp)}, {"ssim", ms}, {"bits", mb}}}};
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("mean over %zu clips (%s, %s, %s%s): PSNR %.3f dB  SSIM %.4f  %.2f bits\n", scores.size(),
                  what.c_str(), deg.c_str(), rgb ? "RGB" : "Y",
                  crop ? (", crop " + std::to_string(crop)).c_str() : "", mp, ms, mb);
    }
    return 0;
  });
}
