// The library's front door: load a model, upscale clips of RGB frames. No LibTorch types here,
// so that the GStreamer element and the programs compile without its headers.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qbasicvsr/image.h"
#include "qbasicvsr/model_file.h"

namespace qbasicvsr {

enum class Precision { FP32, Fake, Int8 };

// Parses "fp32", "fake", "int8"; throws Error otherwise.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision p);

struct UpscalerOptions {
  Precision precision = Precision::FP32;
  int threads = 0;             // 0: one per core
  std::string device = "cpu";  // "cpu" (a CUDA build adds "cuda")
};

class Upscaler {
 public:
  Upscaler(const Model& model, const UpscalerOptions& options);
  ~Upscaler();
  Upscaler(const Upscaler&) = delete;
  Upscaler& operator=(const Upscaler&) = delete;

  const Architecture& architecture() const;

  // Upscales one clip (all frames the same size) in a single bidirectional pass; calls
  // sink(index, frame) for every output frame in order.
  void upscale(const std::vector<Image>& frames, const std::function<void(std::size_t, Image&&)>& sink);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qbasicvsr
