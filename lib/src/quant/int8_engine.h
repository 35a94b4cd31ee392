// Real integer execution: uint8 activations (with zero point) times int8 weights accumulated in
// int32 by oneDNN, with ReLU/LeakyReLU, the next layer's b-bit clamp and requantization, and the
// residual add fused into each convolution. Internal: includes ATen (oneDNN stays in the .cpp).
#pragma once

#include <memory>

#include "quant/engines.h"

namespace qbasicvsr {

// uint8 codes of x on grid g (channels_last), rounding half to even as fake_quant_act does.
at::Tensor quantize_codes(const at::Tensor& x, const ActGrid& g);

class Int8Engine : public Engine {
 public:
  // The layers the plan leaves unquantized run in `float_math`.
  explicit Int8Engine(const QuantPlan& plan, FloatMath float_math = FloatMath::Fp32);
  ~Int8Engine() override;
  Act conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) override;
  bool quantizes(int id) const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qbasicvsr
