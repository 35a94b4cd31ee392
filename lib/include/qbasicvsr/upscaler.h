// The library's front door: load a model, upscale clips of RGB frames. No LibTorch types here,
// so that the GStreamer element and the programs compile without its headers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qbasicvsr/complexity.h"
#include "qbasicvsr/image.h"
#include "qbasicvsr/model_file.h"
#include "qbasicvsr/runtime.h"

namespace qbasicvsr {

enum class Precision { FP32, Fake, Int8 };

// Parses "fp32", "fake", "int8"; throws Error otherwise.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision p);
// What a model runs at unless told otherwise: int8 for a quantized model (fake on device cuda,
// which has no int8 path), else fp32.
Precision default_precision(const Model& model, const std::string& device = "cpu");

struct UpscalerOptions {
  Precision precision = Precision::FP32;
  int threads = 0;             // 0: one per core
  std::string device = "cpu";  // "cpu" (a CUDA build adds "cuda")
  int bits = 0;                // b_base override for fake/int8; 0: the model's (8 without one)
  std::optional<Scope> scope;  // scope override for models without quantization settings
  bool adaptive = true;        // FG-VBA: pick b_V per clip from its complexity
  // Arithmetic of the layers int8 execution leaves in float (SPyNet and conv_last in the partial
  // scope): fp32, or bfloat16 inputs and weights with f32 accumulation; Auto is bf16 where bf16
  // convolutions are the faster (bf16_faster(), runtime.h), else fp32. Precision fp32 and fake
  // always compute in fp32 on the CPU. On device cuda: every convolution's arithmetic (Auto: fp32).
  Compute float_layers = Compute::Auto;
  // Spatial tiling: frames run as bands of full-width LR rows with tile_overlap rows of context
  // on each side, blended across band boundaries. tile_rows 0 picks the band height from
  // max_memory_mb (0: never tile).
  int tile_rows = 0;
  int tile_overlap = 16;
  int max_memory_mb = 4096;
};

// What one upscale() call did.
struct ClipReport {
  VideoComplexity complexity;
  int b_V = 0;            // the offset used (0 when not adaptive or fp32)
  double mean_bits = 32;  // over the quantized layers; 32 for fp32
  double ms = 0;          // wall time of the call
  int tiles = 1;          // bands the frames ran in
};

// What a stream carries from one chunk to the next: the forward branch's hidden feature at the
// last frame output, that frame (for the next flow), and the flows of the lookahead frames, which
// the next chunk would otherwise compute again. Empty at the start of a stream; opaque.
namespace detail {
struct StreamData;
}

class StreamState {
 public:
  StreamState();
  ~StreamState();
  StreamState(StreamState&&) noexcept;
  StreamState& operator=(StreamState&&) noexcept;
  // True at the start of a stream (nothing carried).
  bool empty() const;
  // Forgets the stream: the next chunk starts one.
  void reset();

 private:
  friend class Upscaler;
  std::unique_ptr<detail::StreamData> data_;
};

class Upscaler {
 public:
  Upscaler(const Model& model, const UpscalerOptions& options);
  ~Upscaler();
  Upscaler(const Upscaler&) = delete;
  Upscaler& operator=(const Upscaler&) = delete;

  const Architecture& architecture() const;
  const UpscalerOptions& options() const;
  // The quantization settings in force (with observed ranges once a clip has been seen), or
  // nothing for fp32.
  std::optional<QuantSettings> quantization() const;
  // True when activation ranges come from a quick observer pass over the first clip, not from
  // calibration.
  bool observed_ranges() const;
  // "fp32", "bf16" or "fp16": the arithmetic of the convolutions that run in float, float_layers
  // resolved (on a GPU every convolution; on the CPU the layers int8 leaves in float, fp32 for
  // precision fp32 and fake).
  const char* float_arithmetic() const;

  // Upscales one clip (all frames the same size) in a single bidirectional pass; calls
  // sink(index, frame) in order for the `count` frames from `first` on. The other frames are
  // context: they steer the propagation but are not reconstructed.
  ClipReport upscale(const std::vector<Image>& frames, const std::function<void(std::size_t, Image&&)>& sink,
                     std::size_t first = 0, std::size_t count = SIZE_MAX);
  // The next chunk of a stream: frames[0, count) are output, frames[count..] are lookahead for
  // the backward branch only. The forward branch continues from `state` (the stream's previous
  // chunk, or zeros when it is empty), and `state` then holds it at frame count - 1, so that the
  // forward half of every frame is what one pass over the whole stream gives. Calls sink(i, frame)
  // for i = 0..count-1 in order; without a sink only the forward branch runs (no reconstruction):
  // a resumed stream catches up on the frames it already wrote. Every frame of a stream has the
  // first one's size (Error otherwise: reset the state between streams).
  ClipReport upscale_chunk(const std::vector<Image>& frames, std::size_t count, StreamState& state,
                           const std::function<void(std::size_t, Image&&)>& sink);
  // Estimated peak bytes of a pass over `frames` frames of height x width emitting `emitted`,
  // run in bands of `rows` LR rows (0: whole frames).
  double estimate_bytes(int64_t height, int64_t width, int64_t frames, int64_t emitted,
                        int64_t rows = 0) const;
  // LR rows per band the options give for such a pass (height when no tiling is needed).
  int64_t tile_rows(int64_t height, int64_t width, int64_t frames, int64_t emitted) const;
  // Estimated peak MB of a stream of height x width frames in chunks of `chunk` frames with
  // `lookahead` more, at the band height the options pick: above max_memory_mb when even the
  // smallest bands do not fit the budget.
  double planned_memory_mb(int64_t height, int64_t width, int64_t chunk, int64_t lookahead) const;
  // FG-VBA's measurements of a clip (flows of the model's SPyNet at the base bits).
  VideoComplexity analyze(const std::vector<Image>& frames);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qbasicvsr
