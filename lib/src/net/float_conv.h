// Float convolutions straight through oneDNN, for inference: one primitive per layer and shape,
// the weights reordered once into the layout its kernel wants, and the activation and the
// residual add fused into the convolution (ATen's conv2d reorders the weights on every call and
// leaves ReLU and the add as two more passes over the output). Optionally in bfloat16 (inputs
// and weights rounded to bf16, f32 accumulation, f32 output): the float layers of quantized
// execution on CPUs with AVX-512 BF16. Internal: includes ATen (oneDNN stays in the .cpp).
#pragma once

#include <ATen/ATen.h>

#include <memory>

#include "net/conv.h"

namespace qbasicvsr {

enum class PostOp { None, ReLU, LeakyReLU };
// Arithmetic of float convolutions. On the CPU fp32 or bf16 (FloatConvs); on a GPU (Fp32Engine)
// also fp16, and fp32 there is IEEE (no TF32).
enum class FloatMath { Fp32, Bf16, Fp16 };
// The tensor type convolutions take in `math`.
at::ScalarType float_type(FloatMath math);

class FloatConvs {
 public:
  explicit FloatConvs(FloatMath math = FloatMath::Fp32);
  ~FloatConvs();
  FloatConvs(const FloatConvs&) = delete;
  FloatConvs& operator=(const FloatConvs&) = delete;

  FloatMath math() const { return math_; }
  // Whether run() takes this call: float CPU tensors, 4-D, and nothing autograd must see.
  static bool usable(const Conv& c, const at::Tensor& x);
  // post(conv(x)) as a new channels_last tensor, or, with `residual`, added into *residual in
  // place (made channels_last first if it is not) and returned.
  at::Tensor run(const Conv& c, const at::Tensor& x, PostOp post, at::Tensor* residual);

 private:
  struct Impl;
  FloatMath math_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qbasicvsr
