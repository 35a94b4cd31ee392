// qbasicvsr-complexity: FG-VBA's measurements of a clip and the bit offset they map to.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/cli.h"
#include "common/clip.h"
#include "qbasicvsr/model_paths.h"
#include "qbasicvsr/upscaler.h"

namespace {

constexpr const char* kUsage =
    "Usage: qbasicvsr-complexity [-m MODEL] [-p fp32|fake|int8] [--bits B] [--threads N]\n"
    "                            [--json] INPUT\n"
    "\n"
    "Measures a clip (a folder of PNG frames, in name order) as FG-VBA does: per frame the\n"
    "spatial detail S_t = 1000 * mean(|dY/dx| + |dY/dy|) of the luma, per frame pair the mean\n"
    "flow magnitude T_mag and flow inconsistency T_cons over the model's own SPyNet flows in\n"
    "both directions, their combination C_V = mean S + lambda * mean(T_mag + gamma * T_cons)\n"
    "and the bit offset b_V in {-1, 0, +1} it maps to under the model's thresholds (0 when the\n"
    "model has none).\n"
    "\n"
    "Options:\n"
    "  -m, --model M    model file or installed model name (default: the default model)\n"
    "  -p, --precision  precision of the flow network (default fp32; it is quantized only in the\n"
    "                   full scope)\n"
    "  --bits B         base bit-width with -p fake/int8\n"
    "  --float-layers M as in qbasicvsr-upscale\n"
    "  --threads N      compute threads (default: one per core)\n"
    "  --json           one JSON object on stdout: frames[].S, pairs[].T_mag/T_cons, C_V, b_V\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace qbasicvsr;
  cli::Args args("qbasicvsr-complexity", kUsage);
  args.value("-m", "--model");
  cli::precision_options(args);
  args.flag("--json");
  args.parse(argc, argv);
  return cli::run_main("qbasicvsr-complexity", [&] {
    if (args.positional().size() != 1) args.die("expected one INPUT folder (see --help)");
    const std::string model_path = resolve_model(args.get("--model"));
    const Model model = load_model(model_path);
    Upscaler upscaler(model, cli::upscaler_options(args, Precision::FP32));
    const auto frames = cli::read_clip(args.positional()[0]);
    const VideoComplexity c = upscaler.analyze(frames);
    const FgVbaParams p = model.quantization ? model.quantization->fg_vba : FgVbaParams();
    if (args.has("--json")) {
      nlohmann::json frames = nlohmann::json::array(), pairs = nlohmann::json::array();
      for (double v : c.S) frames.push_back({{"S", v}});
      for (std::size_t i = 0; i < c.T_mag.size(); ++i)
        pairs.push_back({{"T_mag", c.T_mag[i]}, {"T_cons", c.T_cons[i]}});
      const nlohmann::json out = {{"model", model_path},
                                  {"lambda", p.lambda},
                                  {"gamma", p.gamma},
                                  {"frames", frames},
                                  {"pairs", pairs},
                                  {"mean_S", c.mean_S},
                                  {"mean_T_mag", c.mean_T_mag},
                                  {"mean_T_cons", c.mean_T_cons},
                                  {"C_V", c.C_V},
                                  {"b_V", c.b_V}};
      std::printf("%s\n", out.dump().c_str());
      return 0;
    }
    for (std::size_t i = 0; i < c.S.size(); ++i) {
      std::printf("frame %4zu  S %9.4f", i, c.S[i]);
      if (i < c.T_mag.size())
        std::printf("   pair %zu-%zu  T_mag %8.4f  T_cons %8.4f", i, i + 1, c.T_mag[i], c.T_cons[i]);
      std::printf("\n");
    }
    std::printf("mean S %.4f, T_mag %.4f, T_cons %.4f; C_V %.4f (lambda %g, gamma %g) -> b_V %+d%s\n",
                c.mean_S, c.mean_T_mag, c.mean_T_cons, c.C_V, p.lambda, p.gamma, c.b_V,
                p.tau_lo || p.tau_hi ? "" : " (the model has no FG-VBA thresholds)");
    return 0;
  });
}
