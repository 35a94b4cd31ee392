#include "quant/quantizer.h"

#include <optional>

#include "qbasicvsr/error.h"
#ifdef QBASICVSR_CUDA
#include "quant/cuda/cuda_ops.h"
#endif

namespace qbasicvsr {

namespace {

// round() with a straight-through gradient.
at::Tensor ste_round(const at::Tensor& x) { return x + (at::round(x) - x).detach(); }

}  // namespace

at::Tensor fake_quant_act(const at::Tensor& x, const ActGrid& g) {
  // Multiply by 1/S, as the integer path does, so that both land on the same codes.
  const float inv = 1.0f / g.scale;
  return at::round(at::clamp(x * inv, -g.zero_point, g.qmax - g.zero_point)) * g.scale;
}

#ifdef QBASICVSR_CUDA
namespace {

// The kernel's name for a tensor type, or nothing.
std::optional<cuda::Type> kernel_type(at::ScalarType t) {
  if (t == at::kFloat) return cuda::Type::Float;
  if (t == at::kHalf) return cuda::Type::Half;
  if (t == at::kBFloat16) return cuda::Type::BFloat16;
  return std::nullopt;
}

}  // namespace
#endif

at::Tensor fake_quant_act(const at::Tensor& x, const ActGrid& g, at::ScalarType type) {
#ifdef QBASICVSR_CUDA
  const auto in_type = kernel_type(x.scalar_type()), out_type = kernel_type(type);
  if (x.is_cuda() && in_type && out_type && !x.requires_grad()) {
    const at::Tensor in = x.is_non_overlapping_and_dense() ? x : x.contiguous();
    at::Tensor out = at::empty_like(in, in.options().dtype(type));  // same strides: elementwise
    const float lo = static_cast<float>(-g.zero_point), hi = static_cast<float>(g.qmax - g.zero_point);
    if (const char* err = cuda::fake_quant(in.data_ptr(), *in_type, out.data_ptr(), *out_type, in.numel(),
                                           1.0f / g.scale, g.scale, lo, hi))
      throw Error(std::string("CUDA: ") + err);
    return out;
  }
#endif
  return fake_quant_act(x.to(at::kFloat), g).to(type);
}

at::Tensor weight_clip_values(const at::Tensor& w, const std::vector<float>& clip) {
  if (!clip.empty()) return at::tensor(clip, w.options());
  return w.abs().amax({1, 2, 3});
}

at::Tensor weight_scales(const at::Tensor& clip, int bits) {
  return at::clamp_min(clip / static_cast<double>(weight_qmax(bits)), 1e-12);
}

at::Tensor weight_codes(const at::Tensor& w, const at::Tensor& scales, int bits) {
  const int qm = weight_qmax(bits);
  return at::clamp(at::round(w / scales.view({-1, 1, 1, 1})), -qm, qm);
}

at::Tensor fake_quant_weight(const at::Tensor& w, const at::Tensor& clip, int bits) {
  const auto s = weight_scales(clip, bits);
  return weight_codes(w, s, bits) * s.view({-1, 1, 1, 1});
}

at::Tensor ste_quant_act(const at::Tensor& x, const at::Tensor& l, const at::Tensor& u, int bits) {
  const double qmax = static_cast<double>((1 << bits) - 1);
  const at::Tensor scale = at::clamp_min(u - l, 1e-6) / qmax;
  // Nudged zero point: an integer, so no gradient flows through its rounding.
  const at::Tensor zp = at::clamp(at::round(-l / scale), 0.0, qmax).detach();
  const at::Tensor lo = -zp * scale, hi = (qmax - zp) * scale;
  const at::Tensor xc = at::minimum(at::maximum(x, lo), hi);
  return ste_round(xc / scale) * scale;
}

at::Tensor ste_quant_weight(const at::Tensor& w, const at::Tensor& clip, int bits) {
  const double qm = weight_qmax(bits);
  const at::Tensor c = at::clamp_min(clip, 1e-8).view({-1, 1, 1, 1});
  const at::Tensor scale = c / qm;
  const at::Tensor wc = at::minimum(at::maximum(w, -c), c);
  return ste_round(wc / scale) * scale;
}

}  // namespace qbasicvsr
