// Where the time of a pass goes, stage by stage (qbasicvsr-bench --profile). Off by default; when
// off a scope costs one relaxed atomic load. Times are exclusive: a stage's time excludes the
// stages opened inside it, so the stages of a pass sum to its wall time.
#pragma once

#include <array>
#include <cstdint>

namespace qbasicvsr::profile {

enum class Stage : int {
  Other,               // whatever no stage below claims (bands, FG-VBA analysis, bookkeeping)
  CopyIn,              // 8/16-bit frames to the float tensor
  SpyNet,              // SPyNet around its convolutions: pyramid, resizing, warps, flow sums
  SpyNetConv,          // SPyNet's convolutions
  Warp,                // warping the hidden features along the flow
  Trunk,               // the trunks around their convolutions: concatenation, frame columns, adds
  TrunkConv,           // the trunks' convolutions
  Quantize,            // float activations to integer codes (or to their grid, simulated)
  Reconstruction,      // fusion to conv_last around the convolutions: base upsampling, bands
  ReconstructionConv,  // fusion, upconv1, upconv2, conv_hr
  ConvLast,            // conv_last (64 -> 3 at 4x size)
  PixelShuffle,        // the two pixel shuffles
  CopyOut,             // float frames to 8/16-bit images
  kCount
};
constexpr int kStages = static_cast<int>(Stage::kCount);

const char* stage_name(Stage s);
// Convolution stages: their sum is the floor a pass could reach if nothing else cost time.
bool is_conv(Stage s);

void set_enabled(bool on);
bool enabled();
// Clears the totals (e.g. after a warm-up pass).
void reset();

struct Totals {
  std::array<double, kStages> ms{};
  std::array<int64_t, kStages> calls{};
  double total_ms() const;
  double conv_ms() const;
};
Totals totals();

// Attributes the time until its destruction to `s` (minus nested scopes) on this thread.
class Scope {
 public:
  explicit Scope(Stage s);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  bool active_;
};

// A convolution inside the current stage: SpyNet -> SpyNetConv, Trunk -> TrunkConv,
// Reconstruction -> ReconstructionConv; a conv stage stays itself; anything else -> Other.
Stage conv_stage();

}  // namespace qbasicvsr::profile
