#include "net/engine.h"

#include "qbasicvsr/profile.h"

namespace qbasicvsr {

namespace {

constexpr double kLeakySlope = 0.1;

}  // namespace

at::Tensor Act::values() const {
  if (!codes) return t;
  return (t.to(at::kFloat) - static_cast<float>(grid.zero_point)) * grid.scale;
}

Act pixel_shuffle2(const Act& x) {
  const profile::Scope scope(profile::Stage::PixelShuffle);
  Act out = x;
  // ATen's pixel_shuffle and a copy back to channels_last: one 6-D gather straight into
  // channels_last measured slower (float 36.5 -> 43.9, codes 17.7 -> 23.7 ms/frame, C=64 N=30
  // at 180x320; docs/PERF.md).
  out.t = at::pixel_shuffle(x.t, 2).contiguous(at::MemoryFormat::ChannelsLast);
  return out;
}

at::Tensor apply_post(at::Tensor y, PostOp post) {
  if (post == PostOp::ReLU) y.relu_();
  if (post == PostOp::LeakyReLU) at::leaky_relu_(y, kLeakySlope);
  return y;
}

Act Fp32Engine::conv(int, const Conv& c, const Act& x, PostOp post, int, at::Tensor* residual) {
  const at::Tensor in = x.values();
  if (FloatConvs::usable(c, in)) {
    if (!convs_) convs_ = std::make_unique<FloatConvs>(math_);
    const profile::Scope scope(profile::conv_stage());
    return convs_->run(c, in, post, residual);
  }
  at::Tensor y;
  {
    const profile::Scope scope(profile::conv_stage());
    y = in.is_cuda() ? device_.run(c, in.to(float_type(math_))) : c(in);
  }
  y = apply_post(std::move(y), post);
  if (!residual) return y;
  residual->add_(y);
  return *residual;
}

at::Tensor DeviceConvs::run(const Conv& c, const at::Tensor& x, const at::Tensor& weight) {
  const at::ScalarType type = x.scalar_type();
  if (type == at::kFloat)
    return at::conv2d(x, weight.defined() ? weight : c.weight, c.bias, {1, 1}, {c.padding, c.padding});
  // Cast once per layer, and only what the call uses: the caller's (quantized) weights need the
  // bias alone.
  auto& [w, b] = typed_[std::make_tuple(c.weight.data_ptr(), c.weight.size(1), type)];
  if (!weight.defined() && !w.defined()) w = c.weight.to(type).contiguous(at::MemoryFormat::ChannelsLast);
  if (!b.defined() && c.bias.defined()) b = c.bias.to(type);
  return at::conv2d(x.contiguous(at::MemoryFormat::ChannelsLast), weight.defined() ? weight : w, b, {1, 1},
                    {c.padding, c.padding});
}

Act finish_differentiable(at::Tensor y, PostOp post, at::Tensor* residual) {
  if (post == PostOp::ReLU) y = at::relu(y);
  if (post == PostOp::LeakyReLU) y = at::leaky_relu(y, kLeakySlope);
  if (!residual) return y;
  *residual = *residual + y;
  return *residual;
}

Act AutogradEngine::conv(int, const Conv& c, const Act& x, PostOp post, int, at::Tensor* residual) {
  if (!bf16_) return finish_differentiable(c(x.values()), post, residual);
  const at::Tensor y = at::conv2d(x.values().to(at::kBFloat16), c.weight.to(at::kBFloat16),
                                  c.bias.to(at::kBFloat16), {1, 1}, {c.padding, c.padding});
  return finish_differentiable(y.to(at::kFloat), post, residual);
}

}  // namespace qbasicvsr
