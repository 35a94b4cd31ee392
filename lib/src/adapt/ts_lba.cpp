#include "adapt/ts_lba.h"

#include <cmath>

namespace qbasicvsr {

Act TsLbaObserver::conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) {
  observe(id, x.values());
  return fp32_.conv(id, c, x, post, next, residual);
}

void TsLbaObserver::observe(int id, const at::Tensor& x_in) {
  Layer& l = layers_[id];
  const at::Tensor x = x_in.to(at::kDouble);
  if (x.size(1) > 1) {
    l.space_sum += x.std(1, /*unbiased=*/true).sum().item<double>();
    l.space_count += x.size(0) * x.size(2) * x.size(3);
  }
  const int64_t h = x.size(2), w = x.size(3);
  const auto stride = static_cast<int64_t>(
      std::ceil(std::sqrt(static_cast<double>(h * w) / static_cast<double>(kMaxTemporalPositions))));
  const at::Tensor s = x.slice(2, 0, h, stride).slice(3, 0, w, stride);
  if (l.steps > 0 && l.sum.sizes() != s.sizes().slice(1)) end_clip();  // shape changed: a new clip
  if (l.steps == 0) {
    l.sum = at::zeros(s.sizes().slice(1), s.options());
    l.sum_sq = at::zeros_like(l.sum);
  }
  l.sum += s.sum(0);
  l.sum_sq += s.square().sum(0);
  l.steps += s.size(0);
}

void TsLbaObserver::end_clip() {
  for (auto& [id, l] : layers_) {
    if (l.steps >= 2) {
      const double n = static_cast<double>(l.steps);
      const at::Tensor var = at::clamp_min((l.sum_sq - l.sum.square() / n) / (n - 1.0), 0.0);
      l.temp_sum += var.sqrt().sum().item<double>();
      l.temp_count += var.numel();
    }
    l.steps = 0;
    l.sum.reset();
    l.sum_sq.reset();
  }
}

std::map<int, std::pair<double, double>> TsLbaObserver::statistics() const {
  std::map<int, std::pair<double, double>> out;
  for (const auto& [id, l] : layers_) {
    out[id] = {l.space_count ? l.space_sum / static_cast<double>(l.space_count) : 0.0,
               l.temp_count ? l.temp_sum / static_cast<double>(l.temp_count) : 0.0};
  }
  return out;
}

}  // namespace qbasicvsr
