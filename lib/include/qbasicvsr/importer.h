// Turns public BasicVSR checkpoints (BasicSR, mmagic/mmedit) and original SPyNet Torch7 level
// files into a validated Model.
#pragma once

#include <string>
#include <vector>

#include "qbasicvsr/model_file.h"

namespace qbasicvsr {

enum class CheckpointFormat { Auto, BasicSR, MMagic };

// Parses "auto", "basicsr", "mmagic" (also "mmedit"); throws Error for anything else.
CheckpointFormat parse_checkpoint_format(const std::string& name);

struct ImportReport {
  CheckpointFormat format = CheckpointFormat::Auto;  // the format found
  std::string state_dict_key;                        // "params", "params_ema", "state_dict", ...
  int ignored_keys = 0;                              // buffers and bookkeeping entries skipped
};

// `checkpoint` is a torch.save file; `spynet_t7` is empty or the six level files (level 1 =
// coarsest), which then replace the checkpoint's SPyNet weights.
Model import_checkpoint(const std::string& checkpoint, const std::vector<std::string>& spynet_t7,
                        CheckpointFormat format, ImportReport* report = nullptr);

}  // namespace qbasicvsr
