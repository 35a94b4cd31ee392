// qbasicvsr-calibrate: a quantized model from a full-precision one and unlabeled LR clips
// (TS-LBA bit table, FG-VBA thresholds, ranges, distillation fine-tuning).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/cli.h"
#include "common/clip.h"
#include "common/video_frames.h"
#include "qbasicvsr/calibration.h"
#include "qbasicvsr/degrade.h"
#include "qbasicvsr/model_paths.h"
#include "qbasicvsr/training.h"
#include "report.h"

namespace {

namespace fs = std::filesystem;
using namespace qbasicvsr;

constexpr const char* kUsage =
    "Usage: qbasicvsr-calibrate -m FP_MODEL --clips PATH [--clips PATH ...] --bits B -o OUT.safetensors\n"
    "                           [--scope partial|full] [--iters 150] [--batch 2] [--crop 64] [--frames 7]\n"
    "                           [--max-sequences 100] [--degradation BI|BD|BD-duf] [--lambda-skt 1] [--lr "
    "1e-5]\n"
    "                           [--lr-ranges 1e-3] [--lambda L] [--gamma 1] [--no-ts-lba] [--no-fg-vba]\n"
    "                           [--range-percentile 99.99] [--no-range-search] [--seed 1] [--threads N]\n"
    "                           [--device cpu] [--compute auto|fp32|bf16]\n"
    "                           [--checkpoint-every 25] [--stop-at N] [--resume] [--report R.json]\n"
    "                           [--plot R.svg] [--target-bits X] [--sensitivity-sequences 4]\n"
    "                           [--weight-rounding auto|nearest|hessian]\n"
    "                           [--equalize auto|A] [--keep-weights auto|yes|no]\n"
    "                           [--dynamic-ranges yes|no]\n"
    "\n"
    "Quantizes a full-precision model as QBasicVSR does, without ground truth. Each --clips is a\n"
    "folder of PNG frames or a video file of LR frames (--degradation BI|BD first makes LR frames of\n"
    "HR clips); clips are cut into sequences of --frames frames. Steps: fp32 statistics on centre\n"
    "crops (TS-LBA s_space/s_temp -> b_L at the 30th/70th percentiles over layers; initial\n"
    "activation ranges: the lowest P(100-p) and highest P(p) of each layer's input channels with\n"
    "--range-percentile p (default 99.99; 0: per layer the clip with the least squared quantization\n"
    "error), then all scaled by the factor in 0.8..2 whose fake-quantized network best reproduces\n"
    "the fp32 frames on those crops (off: --no-range-search); C_V per sequence -> lambda, and\n"
    "tau_lo/tau_hi at its 33rd/67th percentiles), then --iters iterations of distillation: the\n"
    "fake-quantized network learns its weights, ranges and weight clips from the fp32 one\n"
    "(L = L_pix + lambda_skt L_skt) on random crops and flips, with each sequence's b_V, Adam with\n"
    "a cosine decay. --iters 0 gives the post-training-quantization model without fine-tuning.\n"
    "\n"
    "Options:\n"
    "  -m, --model M         full-precision model (file or installed name)\n"
    "  --clips PATH          calibration clip, repeatable\n"
    "  --bits B              base bit-width b_base, 2..8\n"
    "  --target-bits X       bits per layer for a mean of at most X at b_V = 0 (X in bits - 1 .. 8),\n"
    "                        instead of TS-LBA's percentiles: each layer's output error is measured\n"
    "                        alone at B and B + 2 bits on the centre crops of --sensitivity-sequences\n"
    "                        sequences, and the bits go where they lower the summed error most\n"
    "  --weight-rounding R   nearest: every weight to its nearest grid value, clip max |w| per\n"
    "                        channel; hessian: each layer's clips and rounding chosen for its inputs\n"
    "                        on the statistics crops (least output error, GPTQ-style), before the\n"
    "                        range search and distillation; auto (the default): hessian for --bits 4\n"
    "                        or fewer, nearest above (where FG-VBA's lower offsets lose by it)\n"
    "  --equalize A          before anything else, rescale each residual stream's channel c by\n"
    "                        (m_c / max m)^-A (m: its largest magnitude on the statistics crops), folded\n"
    "                        into the weights: the same network in float with more even ranges per\n"
    "                        channel for the one grid of each layer (0..1, 0: off); auto (the\n"
    "                        default): 0.5 with the weights rounded for their inputs, 0 with nearest\n"
    "  --keep-weights K      yes: distillation learns the quantized layers' biases and activation\n"
    "                        ranges only, the weights and their clips stay as rounded; no: the\n"
    "                        weights and clips too; auto (the default): yes with the weights rounded\n"
    "                        for their inputs above 4 bits (learnt clips and drifting weights undo\n"
    "                        the rounding), no otherwise\n"
    "  --dynamic-ranges D    yes: the trunks' input convs and the reconstruction convs before\n"
    "                        conv_last quantize each frame's input on a grid spanning its own\n"
    "                        smallest and largest value (the propagated features' range changes\n"
    "                        from frame to frame; int8 runs about 1.4x slower); no (the default): on\n"
    "                        their calibrated ranges, as every other layer\n"
    "  -o, --output F        the quantized model file\n"
    "  --report F, --plot F  JSON report; SVG of the per-layer statistics, bits and loss curve\n"
    "  --checkpoint-every N  write OUT.ckpt (and OUT.ckpt.adam) every N iterations; --resume\n"
    "                        continues from it exactly; options or sequences other than the run's\n"
    "                        (the checkpoint records them) are refused, but --threads, --stop-at and\n"
    "                        --checkpoint-every may differ\n"
    "  --stop-at N           stop after iteration N with a checkpoint (calibrate in slices)\n"
    "  --compute C           the student's convolutions in bf16 (mixed precision) or fp32; auto (the\n"
    "                        default) takes bf16 where it is known faster (AMX-BF16, or AVX-512 BF16 on\n"
    "                        AMD: 1.2x for the default model on the AMD dev VM). --resume keeps the\n"
    "                        arithmetic the run started in\n"
    "  --seed S              random crops and flips are a function of (seed, iteration)\n";

// Sequences of `frames` consecutive frames from each clip.
std::vector<std::vector<Image>> load_sequences(const std::vector<std::string>& clips, int frames,
                                               int max_sequences, std::optional<Degradation> degrade,
                                               std::vector<std::string>* names) {
  std::vector<std::vector<Image>> seqs;
  for (const auto& path : clips) {
    std::error_code ec;
    // A folder is read whole (its frames are checked); a video only as far as needed.
    std::vector<Image> all = cli::read_frames(
        path, fs::is_directory(path, ec) ? 0 : static_cast<std::size_t>(frames) * max_sequences);
    if (all.size() < 2)
      throw Error(path + ": a clip needs at least 2 frames, it has " + std::to_string(all.size()));
    if (degrade)
      for (auto& f : all) f = degrade_cropped(f, *degrade);
    for (std::size_t s = 0; s + 2 <= all.size() && static_cast<int>(seqs.size()) < max_sequences;
         s += frames) {
      const std::size_t e = std::min(all.size(), s + frames);
      seqs.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(s),
                        all.begin() + static_cast<std::ptrdiff_t>(e));
    }
    names->push_back(path);
  }
  return seqs;
}

}  // namespace

int main(int argc, char** argv) {
  cli::Args args("qbasicvsr-calibrate", kUsage);
  args.value("-m", "--model");
  args.value("-o", "--output");
  for (const char* v :
       {"--clips",    "--bits",         "--scope",         "--iters",       "--batch",
        "--crop",     "--frames",       "--max-sequences", "--degradation", "--lambda-skt",
        "--lr",       "--lr-ranges",    "--lambda",        "--gamma",       "--range-percentile",
        "--seed",     "--threads",      "--compute",       "--device",      "--checkpoint-every",
        "--stop-at",  "--report",       "--plot",          "--target-bits", "--sensitivity-sequences",
        "--equalize", "--keep-weights", "--dynamic-ranges"})
    args.value("", v);
  args.value("", "--weight-rounding");
  args.flag("--no-ts-lba");
  args.flag("--no-fg-vba");
  args.flag("--no-range-search");
  args.flag("--resume");
  args.parse(argc, argv);
  return cli::run_main("qbasicvsr-calibrate", [&] {
    if (!args.positional().empty()) args.die("unexpected argument " + args.positional()[0]);
    if (!args.has("--output")) args.die("give the output file with -o OUT.safetensors");
    if (!args.has("--bits")) args.die("give the base bit-width with --bits B");
    if (args.all("--clips").empty()) args.die("give at least one --clips PATH");
    if (args.get("--device", "cpu") != "cpu")
      throw Error("device \"" + args.get("--device") + "\" is not available in this build (only cpu)");
    std::optional<Degradation> degrade;
    if (args.has("--degradation")) {
      try {
        degrade = parse_degradation(args.get("--degradation"));
      } catch (const Error& e) {
        args.die(e.what());
      }
    }
    CalibrationOptions o;
    o.bits = static_cast<int>(args.get_int("--bits", 6, 2, 8));
    o.scope = parse_scope(args.get("--scope", "partial"));
    o.iters = static_cast<int>(args.get_int("--iters", 150, 0, 1000000));
    o.batch = static_cast<int>(args.get_int("--batch", 2, 1, 1024));
    o.crop = static_cast<int>(args.get_int("--crop", 64, 8, 4096));
    o.lambda_skt = args.get_double("--lambda-skt", o.lambda_skt);
    o.lr_weights = args.get_double("--lr", o.lr_weights);
    o.lr_ranges = args.get_double("--lr-ranges", o.lr_ranges);
    if (args.has("--lambda")) o.lambda = args.get_double("--lambda", 0);
    o.gamma = args.get_double("--gamma", o.gamma);
    o.range_percentile = args.get_double("--range-percentile", o.range_percentile);
    if (o.range_percentile != 0 && (o.range_percentile <= 50 || o.range_percentile > 100))
      args.die("--range-percentile must be 0 or in (50, 100]");
    o.ts_lba = !args.has("--no-ts-lba");
    o.fg_vba = !args.has("--no-fg-vba");
    o.range_search = !args.has("--no-range-search");
    o.seed = static_cast<uint64_t>(args.get_int("--seed", 1, 0, 1L << 40));
    o.threads = static_cast<int>(args.get_int("--threads", 0, 0, 1024));
    o.compute = parse_compute(args.choice("--compute", "auto", {"auto", "fp32", "bf16"}));
    o.checkpoint_every = static_cast<int>(args.get_int("--checkpoint-every", 25, 0, 1000000));
    o.stop_at = static_cast<int>(args.get_int("--stop-at", 0, 0, 1000000));
    if (args.has("--target-bits")) o.target_bits = args.get_double("--target-bits", 0);
    o.sensitivity_sequences = static_cast<int>(args.get_int("--sensitivity-sequences", 4, 1, 1000));
    const std::string rounding = args.choice("--weight-rounding", "auto", {"auto", "nearest", "hessian"});
    o.hessian_rounding =
        rounding == "hessian" || (rounding == "auto" && CalibrationOptions::hessian_rounding_pays(o.bits));
    const std::string keep = args.choice("--keep-weights", "auto", {"auto", "yes", "no"});
    o.keep_weights =
        keep == "yes" || (keep == "auto" && CalibrationOptions::keep_weights_for(o.hessian_rounding, o.bits));
    o.dynamic_ranges = args.choice("--dynamic-ranges", "no", {"yes", "no"}) == "yes";
    if (args.get("--equalize", "auto") == "auto")
      o.equalize = CalibrationOptions::equalize_for(o.hessian_rounding);
    else
      o.equalize = args.get_double("--equalize", 0);
    try {
      o.validate();
    } catch (const Error& e) {
      args.die(e.what());
    }
    const std::string output = args.get("--output");
    o.checkpoint = output + ".ckpt";
    const int frames = static_cast<int>(args.get_int("--frames", 7, 2, 1000));
    const int max_seq = static_cast<int>(args.get_int("--max-sequences", 100, 1, 100000));

    const std::string model_path = resolve_model(args.get("--model"));
    const Model fp = load_model(model_path);
    if (fp.quantization)
      throw Error(model_path + " is already quantized; calibrate its full-precision source instead");
    std::string resume;
    Model checkpoint;
    if (args.has("--resume")) {
      if (!fs::exists(o.checkpoint)) throw Error(o.checkpoint + ": no checkpoint to resume from");
      resume = o.checkpoint;
      // The run's own arithmetic and weights kept or learnt; asking for another is a one-line
      // error before any clip is read.
      checkpoint = load_model(resume);
      o.compute = run_arithmetic(o.compute, checkpoint, resume);
      check_resumable(o, checkpoint, resume);
    }
    std::vector<std::string> clip_names;
    const auto sequences = load_sequences(args.all("--clips"), frames, max_seq, degrade, &clip_names);
    if (!resume.empty()) check_resumable(o, checkpoint, resume, &sequences);
    std::fprintf(
        stderr, "qbasicvsr-calibrate: %s (%s), %zu sequences from %zu clips, W%dA%d %s, %d iterations x %d\n",
        model_path.c_str(), fp.arch.summary().c_str(), sequences.size(), clip_names.size(), o.bits, o.bits,
        scope_name(o.scope), o.iters, o.batch);
    const bool tty = isatty(STDERR_FILENO);
    CalibrationReport report;
    Model out = calibrate(
        fp, sequences, o, &report,
        [&](const CalibrationProgress& p) {
          if (tty || p.iteration == p.iters || p.iteration % 10 == 0)
            std::fprintf(stderr, "%siteration %d/%d  loss %.5f (pix %.5f, skt %.5f)  %.2f it/s  ETA %.0f s%s",
                         tty ? "\r" : "", p.iteration, p.iters, p.loss, p.l_pix, p.l_skt, p.it_per_s, p.eta_s,
                         tty ? "   " : "\n");
        },
        resume);
    if (tty) std::fprintf(stderr, "\n");
    if (report.stopped) {
      std::fprintf(stderr, "qbasicvsr-calibrate: stopped after iteration %d; --resume continues from %s\n",
                   o.stop_at, o.checkpoint.c_str());
      return 0;
    }
    nlohmann::json prov = nlohmann::json::parse(fp.provenance_json, nullptr, false);
    if (!prov.is_object()) prov = nlohmann::json::object();
    // The options (calibration_options_json) and what they ran on and reached.
    nlohmann::json run = nlohmann::json::parse(calibration_options_json(o));
    run.update({{"fp_model", model_path},
                {"fp_model_sha256", file_sha256(model_path)},
                {"clips", clip_names},
                {"sequences", sequences.size()},
                {"degrade", degrade ? degradation_name(*degrade) : ""},
                {"final_loss", report.losses.empty() ? 0.0 : report.losses.back().loss},
                {"first_loss", report.losses.empty() ? 0.0 : report.losses.front().loss}});
    prov["calibration"] = run;
    out.provenance_json = prov.dump();
    save_model(output, out);
    std::error_code ec;
    fs::remove(o.checkpoint, ec);
    fs::remove(o.checkpoint + ".adam", ec);
    if (args.has("--report")) std::ofstream(args.get("--report")) << report_json(report);
    if (args.has("--plot")) std::ofstream(args.get("--plot")) << report_svg(report);
    int up = 0, down = 0;
    for (const auto& l : report.layers) up += l.b_L > 0, down += l.b_L < 0;
    std::fprintf(
        stderr,
        "qbasicvsr-calibrate: %s: b_L +1 on %d layers, -1 on %d; weights rounded %s%s; streams equalised "
        "with alpha %.2f (scales up to %.2f); mean %.2f bits "
        "over the calibration sequences (FG-VBA); tau %.2f / %.2f; ranges x%.2f; stats %.0f s, "
        "fine-tuning %.0f s\n",
        output.c_str(), up, down, o.hessian_rounding ? "for their inputs (hessian)" : "to nearest",
        o.keep_weights && o.iters > 0 ? ", kept by distillation" : "", o.equalize, report.stream_scale_max,
        report.mean_bits, report.tau_lo, report.tau_hi, report.range_scale, report.stats_seconds,
        report.train_seconds);
    return 0;
  });
}
