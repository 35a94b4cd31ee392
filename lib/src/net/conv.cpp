#include "net/conv.h"

#include <algorithm>

#include "qbasicvsr/error.h"

namespace qbasicvsr {

at::Tensor to_tensor(const HostTensor& t) {
  const auto values = t.to_f32();
  return at::from_blob(const_cast<float*>(values.data()), t.shape, at::kFloat).clone();
}

Conv Conv::from_weights(const std::map<std::string, HostTensor>& weights, const std::string& name) {
  const auto w = weights.find(name + ".weight");
  const auto b = weights.find(name + ".bias");
  if (w == weights.end() || b == weights.end()) throw Error("model: missing convolution " + name);
  Conv c;
  c.weight = to_tensor(w->second).contiguous(at::MemoryFormat::ChannelsLast);
  c.bias = to_tensor(b->second);
  c.padding = c.weight.size(2) / 2;
  return c;
}

at::Tensor Conv::operator()(const at::Tensor& x) const {
  return at::conv2d(x, weight, bias, {1, 1}, {padding, padding});
}

at::Tensor flow_warp(const at::Tensor& x, const at::Tensor& flow, bool border) {
  const int64_t h = x.size(2), w = x.size(3);
  const auto opts = flow.options();
  // Normalised sampling grid: (p + flow) mapped to [-1, 1] with align_corners=True.
  const auto gx = at::arange(w, opts).view({1, 1, w});
  const auto gy = at::arange(h, opts).view({1, h, 1});
  const double sx = 2.0 / std::max<int64_t>(w - 1, 1), sy = 2.0 / std::max<int64_t>(h - 1, 1);
  const auto vx = (flow.select(1, 0) + gx) * sx - 1.0;
  const auto vy = (flow.select(1, 1) + gy) * sy - 1.0;
  const auto grid = at::stack({vx, vy}, 3);
  // grid_sampler modes: interpolation 0 = bilinear; padding 0 = zeros, 1 = border. Features in
  // fp16/bf16 (GPU) are sampled in float: a 16-bit grid would place samples 0.1-0.3 px off.
  if (x.scalar_type() != grid.scalar_type())
    return at::grid_sampler(x.to(grid.scalar_type()), grid, 0, border ? 1 : 0, true).to(x.scalar_type());
  return at::grid_sampler(x, grid, 0, border ? 1 : 0, true);
}

}  // namespace qbasicvsr
