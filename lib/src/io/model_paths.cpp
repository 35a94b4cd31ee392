#include "qbasicvsr/model_paths.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "qbasicvsr/error.h"
#include "qbasicvsr_config.h"

namespace qbasicvsr {

namespace fs = std::filesystem;

std::string model_dir() {
  const char* env = std::getenv("QBASICVSR_MODEL_DIR");
  if (env && *env) return env;
  std::error_code ec;
  if (fs::exists(fs::path(QBASICVSR_MODEL_DIR) / "default", ec)) return QBASICVSR_MODEL_DIR;
  return QBASICVSR_SOURCE_MODEL_DIR;
}

std::string resolve_model(const std::string& name_or_path) {
  std::error_code ec;
  std::string name = name_or_path;
  const fs::path dir = model_dir();
  if (name.empty()) {
    std::ifstream f(dir / "default");
    if (!f) throw Error("no model given and no default model in " + dir.string() + " (use -m MODEL)");
    std::getline(f, name);
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    if (name.empty()) throw Error((dir / "default").string() + " is empty");
  } else if (fs::exists(name, ec)) {
    return name;
  }
  for (const fs::path& candidate : {dir / name, dir / (name + ".safetensors")})
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
  throw Error("model \"" + name + "\" not found (not a file, nor a model in " + dir.string() + ")");
}

}  // namespace qbasicvsr
