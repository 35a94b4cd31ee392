// The engines of quantized execution and of its statistics (DESIGN.md section 1): the bits and
// grids of a plan, simulated quantization, one layer at a time, the range observer. The integer
// engine is int8_engine.h. Internal: includes ATen.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <tuple>
#include <vector>

#include "net/engine.h"
#include "qbasicvsr/quantization.h"

namespace qbasicvsr {

// Bits and grids of every layer for one model, quantization settings and chunk offset b_V.
class QuantPlan {
 public:
  QuantPlan(const Architecture& arch, QuantSettings settings);
  void set_offset(int b_V);
  int offset() const { return b_V_; }
  const QuantSettings& settings() const { return settings_; }
  bool quantized(int id) const { return quantized_[id]; }
  int bits(int id) const { return bits_[id]; }
  // A layer's calibrated grid; a dynamic layer's grid is made from each input (dynamic_grid()).
  const ActGrid& grid(int id) const { return grids_[id]; }
  bool dynamic(int id) const { return dynamic_[id]; }
  const std::vector<float>& weight_clip(int id) const { return clips_[id]; }
  // Mean bit-width over the quantized layers (for reports).
  double mean_bits() const;

 private:
  QuantSettings settings_;
  std::vector<LayerInfo> layers_;
  std::vector<bool> quantized_, dynamic_;
  std::vector<int> bits_;
  std::vector<ActGrid> grids_;
  std::vector<std::vector<float>> clips_;
  int b_V_ = 0;
};

// Simulated quantization in float: inputs and weights on their grids, float convolution.
// On a GPU the convolutions run in `math` (the quantized inputs come out of one fused kernel in
// that type); on the CPU always in fp32.
class FakeEngine : public Engine {
 public:
  explicit FakeEngine(const QuantPlan& plan, FloatMath math = FloatMath::Fp32) : plan_(plan), float_(math) {}
  Act conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) override;
  bool quantizes(int id) const override { return plan_.quantized(id); }

 private:
  const QuantPlan& plan_;
  std::map<std::pair<int, int>, at::Tensor> weights_;  // (layer, bits) -> quantized weight
  Fp32Engine float_;                                   // the layers the scope leaves in float
  DeviceConvs device_;
};

// Layer `only` through `quantized`, every other layer in fp32: the error that one layer adds alone.
class OneLayerEngine : public Engine {
 public:
  OneLayerEngine(Engine& quantized, int only) : q_(quantized), only_(only) {}
  Act conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) override {
    return id == only_ ? q_.conv(id, c, x, post, -1, residual) : fp32_.conv(id, c, x, post, next, residual);
  }
  bool quantizes(int id) const override { return id == only_ && q_.quantizes(id); }

 private:
  Engine& q_;
  Fp32Engine fp32_;
  int only_;
};

// Runs in fp32 and samples every layer's input, for activation ranges without calibration.
class RangeObserver : public Engine {
 public:
  Act conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) override;
  bool quantizes(int) const override { return true; }
  void record(int id, const at::Tensor& x);
  // Ranges per layer: the lowest P(lo) and the highest P(hi) of its input channels (percentiles
  // in 0..100), so that no channel is clipped beyond its own percentiles.
  std::map<int, std::pair<float, float>> ranges(double lo, double hi) const;
  // The range whose b-bit grid reproduces a layer's samples with the least squared error, among
  // symmetric-tail percentile clips from none to 2 % per side.
  std::pair<float, float> mse_range(int id, int bits) const;

 private:
  Fp32Engine fp32_;
  std::map<int, std::vector<std::vector<float>>> samples_;  // per layer, per input channel
};

}  // namespace qbasicvsr
