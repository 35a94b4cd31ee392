// Model files: safetensors containers (DESIGN.md section 4) and the validated model they hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qbasicvsr/architecture.h"
#include "qbasicvsr/host_tensor.h"
#include "qbasicvsr/quantization.h"

namespace qbasicvsr {

// A safetensors file: string metadata and named tensors. Parsing checks the container only.
struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, HostTensor> tensors;
};

// Largest JSON header accepted; larger ones are treated as corrupt (safetensors uses the same).
constexpr std::size_t kMaxHeaderBytes = 100u << 20;

SafetensorsFile parse_safetensors(const uint8_t* data, std::size_t size);
SafetensorsFile read_safetensors(const std::string& path);
std::vector<uint8_t> serialize_safetensors(const SafetensorsFile& file);
void write_safetensors(const std::string& path, const SafetensorsFile& file);

// Metadata key that marks a qbasicvsr model file, and its value.
constexpr const char* kFormatKey = "format";
constexpr const char* kFormatValue = "qbasicvsr-model-1";

// A BasicVSR model: architecture, weights (canonical names, float32), provenance and, for a
// quantized model, its quantization settings. Other metadata entries pass through.
struct Model {
  Architecture arch;
  std::map<std::string, HostTensor> weights;
  std::string provenance_json = "{}";
  std::optional<QuantSettings> quantization;
  std::map<std::string, std::string> extra_metadata;

  // Throws Error naming the first missing, unexpected, mistyped or misshapen tensor.
  void validate() const;
};

Model model_from_safetensors(SafetensorsFile file);
SafetensorsFile model_to_safetensors(const Model& model);
Model load_model(const std::string& path);
void save_model(const std::string& path, const Model& model);

// SHA-256 of a file as lowercase hex (what `sha256sum` prints), for provenance.
std::string file_sha256(const std::string& path);
std::string sha256_hex(const uint8_t* data, std::size_t size);

// Whole-file read with a clear error; refuses files larger than max_bytes.
std::vector<uint8_t> read_file_bytes(const std::string& path, std::size_t max_bytes = 1ull << 33);

}  // namespace qbasicvsr

namespace qbasicvsr {

// A model of the given architecture with deterministic random weights (Kaiming-uniform scaled
// by `scale`, as BasicSR initialises residual networks; biases zero): for benchmarks and tests.
Model random_model(const Architecture& arch, uint64_t seed, float scale = 0.1f);

}  // namespace qbasicvsr
