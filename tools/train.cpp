// qbasicvsr-train: full-precision BasicVSR from ground-truth clips: our own SPyNet pretrained on
// synthetic motion, then the whole network on BI or BD LR/HR pairs.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/cli.h"
#include "common/video_frames.h"
#include "qbasicvsr/degrade.h"
#include "qbasicvsr/model_paths.h"
#include "qbasicvsr/training.h"

namespace {

namespace fs = std::filesystem;
using namespace qbasicvsr;
using nlohmann::json;

constexpr const char* kUsage =
    "Usage: qbasicvsr-train --clips PATH [--clips PATH ...] -o OUT.safetensors\n"
    "                       [--stills PATH ...] [--still-clips 3] [--still-frames 30]\n"
    "                       [--val PATH ...] [--arch C,N[,HR]] [--base bilinear|bicubic] [--init MODEL]\n"
    "                       [--flow-from MODEL]\n"
    "                       [--degradation BI|BD|BD-duf] [--iters 1000] [--batch 4] [--crop 48] [--frames "
    "8]\n"
    "                       [--lr 2e-4] [--flow-freeze N] [--flow-lr-scale 0.125]\n"
    "                       [--flow-iters 1000] [--flow-batch 8] [--flow-size 64] [--flow-lr 5e-4]\n"
    "                       [--flow-max-shift 6] [--compute auto|fp32|bf16]\n"
    "                       [--max-frames 300] [--val-frames 7] [--seed 1] [--threads N] [--device cpu]\n"
    "                       [--val-every 100] [--checkpoint-every 100] [--stop-at N] [--resume]\n"
    "                       [--report R.json]\n"
    "\n"
    "Trains BasicVSR x4 in full precision. Each --clips is a folder of ground-truth PNG frames or\n"
    "a video file; the LR input is made from it by --degradation (BI: MATLAB bicubic /4, BD:\n"
    "BasicVSR's 12x12 Gaussian, sigma 1.6, sampled at 2:4:end-2; BD-duf: the DUF variant). Steps:\n"
    "  1. SPyNet, from scratch, on synthetic motion with known flow (random affine plus smooth\n"
    "     elastic displacement of LR frames, pasted patches with their own motion as occlusions):\n"
    "     --flow-iters iterations of end-point error; 0 keeps the SPyNet of --init. Reports the\n"
    "     end-point error on held-out synthetic pairs and the warp error on real --val pairs,\n"
    "     each against zero flow.\n"
    "  2. The whole network: random LR crops (--crop) of --frames consecutive frames, flips and\n"
    "     time reversal, Charbonnier loss against the GT, Adam (betas 0.9/0.99) with a cosine\n"
    "     decay. SPyNet is frozen for --flow-freeze iterations (default: the first 20 %; its\n"
    "     flows are then computed once per frame pair and cached), then trains at\n"
    "     lr x --flow-lr-scale. Validation PSNR-Y on --val clips every --val-every iterations,\n"
    "     with the bicubic baseline for reference.\n"
    "--init MODEL continues from a model (e.g. the last committed one); otherwise a fresh network\n"
    "of --arch (default 32,5,32) with --base (default bicubic) starts at its base upsampling;\n"
    "--flow-from MODEL gives it the SPyNet of MODEL (then --flow-iters defaults to 0).\n"
    "--stills adds training video made from photographs (a PNG file or a folder of them): each\n"
    "becomes --still-clips clips of --still-frames frames seen through a moving camera window\n"
    "(half of them whole-pixel pans, half smooth glides with a slight zoom and rotation).\n"
    "\n"
    "Options:\n"
    "  -o, --output F        the trained model file; OUT.ckpt (+ .adam) is the checkpoint\n"
    "  --compute C           convolution arithmetic: bf16 (mixed precision, fp32 master weights) or\n"
    "                        fp32; auto (default) takes bf16 where it is known faster (AMX-BF16, or\n"
    "                        AVX-512 BF16 on AMD). --resume keeps the arithmetic the run started in\n"
    "  --max-frames N        frames read per training clip (default 300)\n"
    "  --val-frames N        frames read per validation clip (default 7)\n"
    "  --resume              continue exactly from OUT.ckpt: options or clips other than the run's\n"
    "                        (the checkpoint records them) are refused; --threads, --val,\n"
    "                        --val-every, --checkpoint-every and --stop-at may differ\n"
    "  --stop-at N           stop after iteration N with a checkpoint (train in slices)\n"
    "  --report F            JSON report: losses, validations, flow figures\n";

std::vector<GtClip> load_clips(const std::vector<std::string>& paths, std::size_t max_frames) {
  std::vector<GtClip> clips;
  for (const auto& p : paths) {
    GtClip c;
    c.name = p;
    c.frames = cli::read_frames(p, max_frames);
    if (c.frames.size() < 2) throw Error(p + ": a clip needs at least 2 frames");
    if (c.frames[0].width < 16 || c.frames[0].height < 16)
      throw Error(p + ": frames of " + std::to_string(c.frames[0].width) + "x" +
                  std::to_string(c.frames[0].height) + " are too small (at least 16x16)");
    for (auto& f : c.frames) f = modcrop(f);
    clips.push_back(std::move(c));
  }
  return clips;
}

// Synthetic clips of the photographs at `paths` (files or folders of PNG files).
std::vector<GtClip> still_clips(const std::vector<std::string>& paths, int per_still,
                                const CameraMotion& motion, uint64_t seed) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto& f : list_png_files(p)) files.push_back(f);
    } else {
      files.push_back(p);
    }
  }
  std::vector<GtClip> clips;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const Image still = read_png(files[i]);
    const std::string name = fs::path(files[i]).filename().string();
    for (int k = 0; k < per_still; ++k) {
      GtClip c =
          camera_clip(still, motion, seed * 1000003ull + i * 1009ull + static_cast<uint64_t>(k),
                      name + " (camera " + std::to_string(k + 1) + "/" + std::to_string(per_still) + ")");
      clips.push_back(std::move(c));
    }
  }
  return clips;
}

std::vector<std::vector<Image>> low_res(const std::vector<GtClip>& clips, Degradation d) {
  std::vector<std::vector<Image>> out;
  for (const auto& c : clips) {
    out.emplace_back();
    for (const auto& f : c.frames) out.back().push_back(degrade_cropped(f, d));
  }
  return out;
}

json flow_json(const FlowReport& r) {
  return {{"synthetic_epe", r.synthetic_epe},
          {"synthetic_epe_zero_flow", r.synthetic_epe_zero},
          {"synthetic_pairs", r.pairs_synthetic},
          {"real_warp_error", r.real_warp_error},
          {"real_warp_error_zero_flow", r.real_warp_error_zero},
          {"real_pairs", r.pairs_real}};
}

}  // namespace

int main(int argc, char** argv) {
  cli::Args args("qbasicvsr-train", kUsage);
  args.value("-o", "--output");
  for (const char* v :
       {"--clips",       "--stills",         "--still-clips", "--still-frames", "--flow-from",
        "--val",         "--arch",           "--base",        "--init",         "--degradation",
        "--iters",       "--batch",          "--crop",        "--frames",       "--lr",
        "--flow-freeze", "--flow-lr-scale",  "--flow-iters",  "--flow-batch",   "--flow-size",
        "--flow-lr",     "--flow-max-shift", "--compute",     "--max-frames",   "--val-frames",
        "--seed",        "--threads",        "--device",      "--val-every",    "--checkpoint-every",
        "--stop-at",     "--report"})
    args.value("", v);
  args.flag("--resume");
  args.parse(argc, argv);
  return cli::run_main("qbasicvsr-train", [&] {
    if (!args.positional().empty()) args.die("unexpected argument " + args.positional()[0]);
    if (!args.has("--output")) args.die("give the output file with -o OUT.safetensors");
    if (args.all("--clips").empty()) args.die("give at least one --clips PATH");
    check_device(args.get("--device", "cpu"));
    if (args.get("--device", "cpu") != "cpu") args.die("training runs on the CPU only (--device cpu)");
    const std::string base = args.choice("--base", "bicubic", {"bilinear", "bicubic"});
    if (args.has("--init") && (args.has("--arch") || args.has("--base") || args.has("--flow-from")))
      args.die("--arch, --base and --flow-from describe a fresh network; --init takes the model's own");

    TrainOptions o;
    const std::string deg = args.get("--degradation", "BI");
    try {
      o.degradation = parse_degradation(deg);
    } catch (const Error& e) {
      args.die(e.what());
    }
    o.iters = static_cast<int>(args.get_int("--iters", 1000, 0, 100000000));
    o.batch = static_cast<int>(args.get_int("--batch", 4, 1, 1024));
    o.crop = static_cast<int>(args.get_int("--crop", 48, 8, 4096));
    o.frames = static_cast<int>(args.get_int("--frames", 8, 2, 1000));
    o.lr = args.get_double("--lr", o.lr);
    o.flow_freeze = static_cast<int>(args.get_int("--flow-freeze", -1, 0, 100000000));
    o.flow_lr_scale = args.get_double("--flow-lr-scale", o.flow_lr_scale);
    o.seed = static_cast<uint64_t>(args.get_int("--seed", 1, 0, 1L << 40));
    o.threads = static_cast<int>(args.get_int("--threads", 0, 0, 1024));
    o.val_every = static_cast<int>(args.get_int("--val-every", 100, 0, 100000000));
    o.checkpoint_every = static_cast<int>(args.get_int("--checkpoint-every", 100, 0, 100000000));
    o.stop_at = static_cast<int>(args.get_int("--stop-at", 0, 0, 100000000));
    if (o.lr <= 0 || o.flow_lr_scale < 0) args.die("--lr must be > 0 and --flow-lr-scale >= 0");
    FlowPretrainOptions fo;
    fo.iters =
        static_cast<int>(args.get_int("--flow-iters", args.has("--flow-from") ? 0 : 1000, 0, 100000000));
    fo.batch = static_cast<int>(args.get_int("--flow-batch", 8, 1, 1024));
    fo.size = static_cast<int>(args.get_int("--flow-size", 64, 32, 1024));
    fo.lr = args.get_double("--flow-lr", fo.lr);
    fo.max_shift = args.get_double("--flow-max-shift", fo.max_shift);
    if (fo.max_shift < 0 || fo.max_shift > 64) args.die("--flow-max-shift must be in 0..64");
    o.compute = parse_compute(args.choice("--compute", "auto", {"auto", "fp32", "bf16"}));
    fo.compute = o.compute;
    fo.seed = o.seed;
    fo.threads = o.threads;
    const std::string output = args.get("--output");
    o.checkpoint = output + ".ckpt";
    const auto max_frames = static_cast<std::size_t>(args.get_int("--max-frames", 300, 2, 1000000));
    const auto val_frames = static_cast<std::size_t>(args.get_int("--val-frames", 7, 2, 1000000));

    auto clips = load_clips(args.all("--clips"), max_frames);
    CameraMotion motion;
    motion.frames = static_cast<int>(args.get_int("--still-frames", motion.frames, 2, 100000));
    motion.min_window = 4 * o.crop;
    const int per_still = static_cast<int>(args.get_int("--still-clips", 3, 1, 1000));
    for (auto& c : still_clips(args.all("--stills"), per_still, motion, o.seed))
      clips.push_back(std::move(c));
    const auto val = load_clips(args.all("--val"), val_frames);
    std::vector<std::string> clip_names, val_names;
    // Provenance names clips without the local folders they happened to be in.
    auto describe = [](const GtClip& c) {
      const fs::path p = fs::path(c.name).lexically_normal();
      const bool camera = c.name.find(" (camera ") != std::string::npos;
      return camera
                 ? c.name.substr(0, c.name.size() - 1) + ", " + std::to_string(c.frames.size()) + " frames)"
                 : (p.has_filename() ? p.filename() : p.parent_path().filename()).string() + " (" +
                       std::to_string(c.frames.size()) + " frames)";
    };
    for (const auto& c : clips) clip_names.push_back(describe(c));
    for (const auto& c : val) val_names.push_back(describe(c));
    const bool tty = isatty(STDERR_FILENO);

    Model init;
    std::string resume;
    json flow_info;
    json previous;
    if (args.has("--resume")) {
      if (!fs::exists(o.checkpoint)) throw Error(o.checkpoint + ": no checkpoint to resume from");
      resume = o.checkpoint;
      init = load_model(resume);                            // the checkpoint holds the pretrained SPyNet
      o.compute = run_arithmetic(o.compute, init, resume);  // the run's own; another is an error
      check_resumable(o, init, resume, &clips);             // and its options and clips
      const json prov = json::parse(init.provenance_json, nullptr, false);
      if (prov.is_object()) {
        flow_info = prov.value("flow_pretraining", json());
        previous = prov.value("previous", json());
      }
    } else {
      if (args.has("--init")) {
        const std::string path = resolve_model(args.get("--init"));
        init = load_model(path);
        if (init.quantization) throw Error(path + " is quantized; training needs a full-precision model");
        previous = json::parse(init.provenance_json, nullptr, false);
        if (previous.is_discarded()) previous = json();
      } else {
        Architecture arch;
        try {
          arch = Architecture::parse(args.get("--arch", "32,5,32"));
        } catch (const Error& e) {
          args.die(e.what());
        }
        arch.base_upsample = base == "bicubic" ? BaseUpsample::Bicubic : BaseUpsample::Bilinear;
        init = initial_model(arch, o.seed);
        if (args.has("--flow-from")) {
          const std::string path = resolve_model(args.get("--flow-from"));
          const Model flow = load_model(path);
          if (flow.quantization)
            throw Error(path + " is quantized; --flow-from needs a full-precision model");
          for (const auto& [name, t] : flow.weights)
            if (name.rfind("spynet.", 0) == 0) init.weights[name] = t;
          const json prov = json::parse(flow.provenance_json, nullptr, false);
          if (prov.is_object()) flow_info = prov.value("flow_pretraining", json());
          flow_info["from"] = fs::path(path).filename().string();
        }
      }
      check_training_data(clips, o);  // before minutes of flow pretraining
      if (fo.iters > 0) {
        std::fprintf(stderr,
                     "qbasicvsr-train: SPyNet on synthetic motion, %d iterations x %d pairs of %dx%d\n",
                     fo.iters, fo.batch, fo.size, fo.size);
        FlowReport fr;
        pretrain_flow(init, low_res(clips, o.degradation), low_res(val, o.degradation), fo, &fr,
                      [&](const FlowProgress& p) {
                        if (tty || p.iteration == p.iters || p.iteration % 50 == 0)
                          std::fprintf(stderr, "%sflow %d/%d  EPE %.3f px  %.2f it/s  ETA %.0f s%s",
                                       tty ? "\r" : "", p.iteration, p.iters, p.epe, p.it_per_s, p.eta_s,
                                       tty ? "   " : "\n");
                      });
        if (tty) std::fprintf(stderr, "\n");
        const json from = flow_info.is_object() ? flow_info.value("from", json()) : json();  // --flow-from
        flow_info = flow_json(fr);
        if (!from.is_null()) flow_info["from"] = from;
        flow_info["iterations"] = fo.iters;
        flow_info["batch"] = fo.batch;
        flow_info["size"] = fo.size;
        flow_info["seconds"] = fr.seconds;
        std::fprintf(
            stderr,
            "qbasicvsr-train: flow: held-out synthetic EPE %.3f px (zero flow %.3f) on %d pairs; real "
            "warp error %.2f (zero flow %.2f) on %d pairs\n",
            fr.synthetic_epe, fr.synthetic_epe_zero, fr.pairs_synthetic, fr.real_warp_error,
            fr.real_warp_error_zero, fr.pairs_real);
      }
      json prov = {{"source", "qbasicvsr-train"}, {"flow_pretraining", flow_info}};
      if (!previous.is_null()) prov["previous"] = previous;
      init.provenance_json = prov.dump();
    }

    std::fprintf(
        stderr,
        "qbasicvsr-train: %s, %zu clips, %zu validation clips, %d iterations x %d of %dx%dx%d (%s, %s)\n",
        init.arch.summary().c_str(), clips.size(), val.size(), o.iters, o.batch, o.frames, o.crop, o.crop,
        deg.c_str(), run_arithmetic(o.compute, "") == Compute::Bf16 ? "bf16 convolutions" : "fp32");
    const int freeze = o.flow_freeze >= 0 ? o.flow_freeze : o.iters / 5;
    std::fprintf(stderr, "qbasicvsr-train: SPyNet frozen for %d iterations, then trained at lr x %g\n",
                 std::min(freeze, o.iters), o.flow_lr_scale);
    TrainReport report;
    Model out = train(
        init, clips, val, o, &report,
        [&](const TrainProgress& p) {
          if (tty || p.iteration == p.iters || p.iteration % 10 == 0)
            std::fprintf(stderr, "%siteration %d/%d  loss %.5f  %.2f it/s  ETA %.0f s%s%s", tty ? "\r" : "",
                         p.iteration, p.iters, p.loss, p.it_per_s, p.eta_s,
                         p.flow_frozen ? "  (SPyNet frozen)" : "", tty ? "   " : "\n");
        },
        [&](const Validation& v) {
          std::fprintf(stderr, "%svalidation at %d: PSNR-Y %.3f dB (bicubic %.3f)\n", tty ? "\n" : "",
                       v.iteration, v.psnr, v.bicubic);
        },
        resume);
    if (tty) std::fprintf(stderr, "\n");
    if (report.stopped) {
      std::fprintf(stderr, "qbasicvsr-train: stopped after iteration %d; --resume continues from %s\n",
                   o.stop_at, o.checkpoint.c_str());
      return 0;
    }
    const double val_psnr = report.validations.empty() ? 0.0 : report.validations.back().psnr;
    json prov = {
        {"source", "qbasicvsr-train"},
        {"training",
         {{"clips", clip_names},
          {"degradation", deg},
          {"iterations", o.iters},
          {"batch", o.batch},
          {"crop", o.crop},
          {"frames", o.frames},
          {"lr", o.lr},
          {"flow_freeze", freeze},
          {"seed", o.seed},
          {"compute", report.bf16 ? "bf16" : "fp32"},
          {"seconds_this_run", report.seconds},
          {"final_loss", report.losses.empty() ? 0.0 : report.losses.back().second}}},
        {"validation", {{"clips", val_names}, {"psnr_y", val_psnr}, {"bicubic_psnr_y", report.bicubic_psnr}}},
        {"flow_pretraining", flow_info}};
    if (!previous.is_null()) prov["previous"] = previous;
    out.provenance_json = prov.dump();
    save_model(output, out);
    std::error_code ec;
    fs::remove(o.checkpoint, ec);
    fs::remove(o.checkpoint + ".adam", ec);
    if (args.has("--report")) {
      json losses = json::array(), vals = json::array();
      for (const auto& [i, l] : report.losses) losses.push_back({{"iteration", i}, {"loss", l}});
      for (const auto& v : report.validations)
        vals.push_back({{"iteration", v.iteration}, {"psnr_y", v.psnr}});
      std::ofstream(args.get("--report")) << json{
          {"losses", losses},
          {"validations", vals},
          {"bicubic_psnr_y", report.bicubic_psnr},
          {"flow", flow_info},
          {"seconds", report.seconds}}.dump(1);
    }
    std::fprintf(stderr, "qbasicvsr-train: %s written; %.0f s; validation PSNR-Y %.3f dB (bicubic %.3f)\n",
                 output.c_str(), report.seconds, val_psnr, report.bicubic_psnr);
    return 0;
  });
}
