#include "net/conv.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>

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

namespace {

// out[k] = ((a[k] nw + b[k] ne) + c[k] sw) + d[k] se for k < n, as grid_sampler sums its taps
// (a missing tap is a null pointer: zero).
void blend_scalar(const float* const tap[4], const float wt[4], float* out, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    float v = 0.0f;
    for (int j = 0; j < 4; ++j)
      if (tap[j]) v += tap[j][k] * wt[j];
    out[k] = v;
  }
}

__attribute__((target("avx512f"))) void blend_avx512(const float* const tap[4], const float wt[4], float* out,
                                                     int64_t n) {
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __m512 v = _mm512_setzero_ps();
    for (int j = 0; j < 4; ++j)
      if (tap[j]) v = _mm512_add_ps(v, _mm512_mul_ps(_mm512_loadu_ps(tap[j] + k), _mm512_set1_ps(wt[j])));
    _mm512_storeu_ps(out + k, v);
  }
  const float* rest[4];
  for (int j = 0; j < 4; ++j) rest[j] = tap[j] ? tap[j] + k : nullptr;
  blend_scalar(rest, wt, out + k, n - k);
}

// flow_warp with zeros outside for float features in channels_last: every output pixel blends
// its four neighbours' channel vectors (contiguous in this layout), where grid_sampler gathers
// one channel at a time across pixels.
at::Tensor warp_channels_last(const at::Tensor& x, const at::Tensor& flow_in) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const at::Tensor flow = flow_in.contiguous();
  at::Tensor out = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  const float* src = x.data_ptr<float>();
  const float* fl = flow.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  // The sample position exactly as flow_warp's grid and grid_sampler's unnormalisation give it.
  const float sx = static_cast<float>(2.0 / std::max<int64_t>(w - 1, 1));
  const float sy = static_cast<float>(2.0 / std::max<int64_t>(h - 1, 1));
  const float ux = static_cast<float>(w - 1) / 2, uy = static_cast<float>(h - 1) / 2;
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  const auto blend = avx512 ? blend_avx512 : blend_scalar;
  at::parallel_for(0, n * h, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / h, y = r % h;
      const float* fx = fl + (b * 2 * h + y) * w;
      const float* fy = fx + h * w;
      const float* img = src + b * h * w * c;
      for (int64_t xx = 0; xx < w; ++xx) {
        const float gx = (fx[xx] + static_cast<float>(xx)) * sx - 1.0f;
        const float gy = (fy[xx] + static_cast<float>(y)) * sy - 1.0f;
        const float ix = (gx + 1.0f) * ux, iy = (gy + 1.0f) * uy;
        const float x0 = std::floor(ix), y0 = std::floor(iy);
        const float we = ix - x0, ws = iy - y0;  // weights of the east column and south row
        const float wt[4] = {(1.0f - ws) * (1.0f - we), (1.0f - ws) * we, ws * (1.0f - we), ws * we};
        const float* tap[4] = {nullptr, nullptr, nullptr, nullptr};
        // Positions far outside (or NaN) sample nothing, as in grid_sampler.
        if (x0 >= -1.0f && x0 < static_cast<float>(w) && y0 >= -1.0f && y0 < static_cast<float>(h)) {
          const int64_t xi = static_cast<int64_t>(x0), yi = static_cast<int64_t>(y0);
          for (int j = 0; j < 4; ++j) {
            const int64_t tx = xi + (j & 1), ty = yi + (j >> 1);
            if (tx >= 0 && tx < w && ty >= 0 && ty < h) tap[j] = img + (ty * w + tx) * c;
          }
        }
        blend(tap, wt, dst + (r * w + xx) * c, c);
      }
    }
  });
  return out;
}

}  // namespace

at::Tensor flow_warp(const at::Tensor& x, const at::Tensor& flow, bool border) {
  const int64_t h = x.size(2), w = x.size(3);
  // The own loop has no gradient: training and calibration, which differentiate through the
  // warp, take grid_sampler.
  if (!border && x.device().is_cpu() && x.scalar_type() == at::kFloat && flow.scalar_type() == at::kFloat &&
      x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast) && x.size(1) > 1 &&
      !(at::GradMode::is_enabled() && (x.requires_grad() || flow.requires_grad())))
    return warp_channels_last(x, flow);
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
