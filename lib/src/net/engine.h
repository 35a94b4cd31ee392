// Execution engines: how the network runs each convolution (DESIGN.md section 1). The network
// code is written once against Engine; fp32, fake (simulated quantization), int8 (oneDNN) and the
// statistics observers differ only here. Internal: includes ATen.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <tuple>
#include <vector>

#include "net/conv.h"
#include "net/float_conv.h"
#include "qbasicvsr/quantization.h"

namespace qbasicvsr {

// What flows between layers: a float tensor, or (int8 engine only) uint8 codes on a grid, in
// channels_last layout.
struct Act {
  at::Tensor t;
  bool codes = false;
  ActGrid grid;

  Act() = default;
  Act(at::Tensor x) : t(std::move(x)) {}  // NOLINT: floats convert implicitly
  // The float values (dequantizes codes).
  at::Tensor values() const;
};

// Pixel shuffle x2 on either representation.
Act pixel_shuffle2(const Act& x);

class Engine {
 public:
  virtual ~Engine() = default;
  // Runs conv layer `id` (index into conv_layers()) on x and applies `post`. With `residual`, adds
  // the result into *residual (in place) and returns it. `next` names the layer that alone
  // consumes the result (pixel shuffles aside), or -1: the int8 engine then hands over codes.
  virtual Act conv(int id, const Conv& c, const Act& x, PostOp post, int next = -1,
                   at::Tensor* residual = nullptr) = 0;
  // Whether layer `id` runs on quantized (or observed-for-quantization) inputs. A trunk's input
  // conv then keeps the LR frame out of the quantized input (LayerInfo::frame_channels).
  virtual bool quantizes(int /*id*/) const { return false; }
};

at::Tensor apply_post(at::Tensor y, PostOp post);

// Convolutions through ATen in the input's float type: fp32 as it is; fp16/bf16 (on a GPU: cuDNN,
// channels_last) with the weights cast once per layer and the output in that type too.
class DeviceConvs {
 public:
  // c(x) for x already in the type the weights are wanted in, the result in that type.
  at::Tensor run(const Conv& c, const at::Tensor& x, const at::Tensor& weight = {});

 private:
  std::map<std::tuple<const void*, int64_t, at::ScalarType>, std::pair<at::Tensor, at::Tensor>> typed_;
};

// Float execution. Inference runs each convolution with its post-op and residual add fused
// (FloatConvs, in `math`); what autograd must see runs through ATen, out of nothing in place.
class Fp32Engine : public Engine {
 public:
  explicit Fp32Engine(FloatMath math = FloatMath::Fp32) : math_(math) {}
  Act conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) override;
  FloatMath math() const { return math_; }

 private:
  FloatMath math_;
  std::unique_ptr<FloatConvs> convs_;  // made on first use
  DeviceConvs device_;
};

// Post-op and residual add without modifying any input, as autograd needs the tensors it saved.
Act finish_differentiable(at::Tensor y, PostOp post, at::Tensor* residual);

// fp32 that autograd can differentiate (training): out of place throughout. With `bf16`, each
// convolution runs on bfloat16 copies of its input, weights and bias (mixed precision: the
// weights, the residual stream and everything between convolutions stay float).
class AutogradEngine : public Engine {
 public:
  explicit AutogradEngine(bool bf16 = false) : bf16_(bf16) {}
  Act conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) override;

 private:
  bool bf16_;
};

}  // namespace qbasicvsr
