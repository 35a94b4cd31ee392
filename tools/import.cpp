// qbasicvsr-import: public BasicVSR checkpoints (and SPyNet Torch7 files) -> model file.
#include <cstdio>

#include "common/cli.h"
#include "qbasicvsr/importer.h"

namespace {

constexpr const char* kUsage =
    "Usage: qbasicvsr-import [--format auto|basicsr|mmagic] CHECKPOINT [modelL1..6_*.t7] -o OUT.safetensors\n"
    "\n"
    "Converts a BasicVSR checkpoint saved by torch.save (BasicSR: 'params' or 'params_ema';\n"
    "mmagic/mmedit: 'state_dict' with the 'generator.' prefix) into a qbasicvsr model file.\n"
    "The channel and block counts are read from the tensors. Six original SPyNet level files\n"
    "(modelL1_*.t7 .. modelL6_*.t7, level 1 coarsest) given after the checkpoint replace its\n"
    "SPyNet weights.\n"
    "\n"
    "Options:\n"
    "  --format F    checkpoint flavour: auto (default), basicsr, mmagic\n"
    "  -o, --output  model file to write\n"
    "  -h, --help    this text\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace qbasicvsr;
  cli::Args args("qbasicvsr-import", kUsage);
  args.value("", "--format");
  args.value("-o", "--output");
  args.parse(argc, argv);
  return cli::run_main("qbasicvsr-import", [&] {
    if (args.positional().empty()) args.die("no checkpoint given (see --help)");
    if (!args.has("--output")) args.die("no output file given (-o OUT.safetensors)");
    const auto format = parse_checkpoint_format(args.get("--format", "auto"));
    const std::vector<std::string> t7(args.positional().begin() + 1, args.positional().end());
    ImportReport report;
    const Model model = import_checkpoint(args.positional()[0], t7, format, &report);
    save_model(args.get("--output"), model);
    std::fprintf(stderr, "imported %s (%s, '%s', %d entries ignored): %s, %lld parameters -> %s\n",
                 args.positional()[0].c_str(),
                 report.format == CheckpointFormat::MMagic ? "mmagic" : "basicsr",
                 report.state_dict_key.c_str(), report.ignored_keys, model.arch.summary().c_str(),
                 static_cast<long long>(parameter_count(model.arch)), args.get("--output").c_str());
    return 0;
  });
}
