// Where installed and shipped models are found.
#pragma once

#include <string>

namespace qbasicvsr {

// The model directory: $QBASICVSR_MODEL_DIR if set, else the installed data directory, else
// the source tree's models/ (running from a build tree).
std::string model_dir();

// Resolves a -m argument: an existing file is used as is; otherwise a name such as
// "placeholder-c16n2-fp32" or "placeholder-c16n2-fp32.safetensors" is looked up in
// model_dir(). An empty argument means the default model named by model_dir()/default.
std::string resolve_model(const std::string& name_or_path);

}  // namespace qbasicvsr
