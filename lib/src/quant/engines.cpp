#include "quant/engines.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qbasicvsr/profile.h"
#include "quant/quantizer.h"

namespace qbasicvsr {

namespace {

// Values kept per observed call and per layer: enough for stable 0.01/99.99 percentiles.
constexpr int64_t kSamplesPerCall = 1 << 16;
constexpr std::size_t kMaxSamplesPerLayer = 1 << 20;

}  // namespace

QuantPlan::QuantPlan(const Architecture& arch, QuantSettings settings)
    : settings_(std::move(settings)), layers_(conv_layers(arch)) {
  settings_.validate(arch);
  for (const auto& info : layers_) {
    quantized_.push_back(quantized_in(info, settings_.scope));
    const auto* lq = settings_.layer(info.name);
    dynamic_.push_back(lq && lq->dynamic);
    clips_.push_back(lq ? lq->weight_clip : std::vector<float>());
  }
  set_offset(0);
}

void QuantPlan::set_offset(int b_V) {
  b_V_ = b_V;
  bits_.clear();
  grids_.clear();
  for (const auto& info : layers_) {
    const auto* lq = settings_.layer(info.name);
    const int b = layer_bits(settings_.b_base, b_V, lq ? lq->b_L : 0);
    bits_.push_back(b);
    // Quantized layers without a range are refused by the Upscaler before any plan runs.
    grids_.push_back(lq && lq->has_range ? ActGrid::make(lq->l, lq->u, b) : ActGrid::make(0.0f, 1.0f, b));
  }
}

double QuantPlan::mean_bits() const {
  double sum = 0;
  int n = 0;
  for (std::size_t i = 0; i < bits_.size(); ++i)
    if (quantized_[i]) {
      sum += bits_[i];
      ++n;
    }
  return n ? sum / n : 32.0;
}

Act FakeEngine::conv(int id, const Conv& c, const Act& x, PostOp post, int, at::Tensor* residual) {
  if (!plan_.quantized(id)) return float_.conv(id, c, x, post, -1, residual);
  const int bits = plan_.bits(id);
  const at::Tensor in = x.values();
  const at::ScalarType type = in.is_cuda() ? float_type(float_.math()) : at::kFloat;
  auto it = weights_.find({id, bits});
  if (it == weights_.end()) {
    const at::Tensor clip = weight_clip_values(c.weight, plan_.weight_clip(id));
    it = weights_
             .emplace(
                 std::make_pair(id, bits),
                 fake_quant_weight(c.weight, clip, bits).to(type).contiguous(at::MemoryFormat::ChannelsLast))
             .first;
  }
  at::Tensor xq, y;
  {
    const profile::Scope scope(profile::Stage::Quantize);
    xq = plan_.dynamic(id)
             ? per_sample(
                   in, [&](const at::Tensor& xi) { return fake_quant_act(xi, dynamic_grid(xi, bits), type); })
             : fake_quant_act(in, plan_.grid(id), type);
  }
  {
    const profile::Scope scope(profile::conv_stage());
    y = device_.run(c, xq, it->second);
  }
  y = apply_post(std::move(y), post);
  if (!residual) return y;
  residual->add_(y);
  return *residual;
}

Act RangeObserver::conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) {
  record(id, x.values());
  return fp32_.conv(id, c, x, post, next, residual);
}

void RangeObserver::record(int id, const at::Tensor& x) {
  auto& channels = samples_[id];
  const int64_t c = x.size(1);
  if (channels.empty()) channels.resize(static_cast<std::size_t>(c));
  if (static_cast<int64_t>(channels.size()) != c || channels[0].size() * c >= kMaxSamplesPerLayer) return;
  // A regular subsample of every channel, kept apart: a few channels (the LR frame beside the
  // features) must not drown in the many.
  const at::Tensor rows = x.transpose(0, 1).reshape({c, -1});
  const int64_t step = std::max<int64_t>(1, rows.numel() / kSamplesPerCall);
  const at::Tensor picked = rows.slice(1, 0, rows.size(1), step).to(at::kCPU, at::kFloat).contiguous();
  const float* p = picked.data_ptr<float>();
  const int64_t n = picked.size(1);
  for (int64_t ch = 0; ch < c; ++ch) channels[ch].insert(channels[ch].end(), p + ch * n, p + (ch + 1) * n);
}

std::pair<float, float> RangeObserver::mse_range(int id, int bits) const {
  std::vector<float> all;
  for (const auto& ch : samples_.at(id)) all.insert(all.end(), ch.begin(), ch.end());
  // A regular subsample keeps the search cheap; the candidates come from all samples.
  std::vector<float> s;
  const std::size_t step = std::max<std::size_t>(1, all.size() / (1 << 17));
  for (std::size_t i = 0; i < all.size(); i += step) s.push_back(all[i]);
  std::vector<float> v(all);
  std::sort(v.begin(), v.end());
  // Nearest-rank percentiles of the sorted samples: selection on data with many equal values
  // (ReLU outputs) is slow.
  auto at = [&](double p) { return v[static_cast<std::size_t>(std::lround(p / 100.0 * (v.size() - 1)))]; };
  static constexpr double kTails[] = {0.0, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 2.0};
  std::pair<float, float> best{0.0f, 1.0f};
  double best_err = -1;
  for (double tail : kTails) {
    const float l = at(tail), u = at(100.0 - tail);
    const ActGrid g = ActGrid::make(l, std::max(u, l + 1e-6f), bits);
    double err = 0;
    for (float x : s) {
      const double d = static_cast<double>(g.quantize(x)) - x;
      err += d * d;
    }
    if (best_err < 0 || err < best_err) {
      best_err = err;
      best = {l, std::max(u, l + 1e-6f)};
    }
  }
  return best;
}

std::map<int, std::pair<float, float>> RangeObserver::ranges(double lo, double hi) const {
  std::map<int, std::pair<float, float>> out;
  for (const auto& [id, channels] : samples_) {
    float l = std::numeric_limits<float>::infinity(), u = -l;
    for (const auto& ch : channels) {
      if (ch.empty()) continue;
      const std::vector<double> v(ch.begin(), ch.end());
      l = std::min(l, static_cast<float>(percentile(v, lo)));
      u = std::max(u, static_cast<float>(percentile(v, hi)));
    }
    if (l <= u) out[id] = {l, u};
  }
  return out;
}

}  // namespace qbasicvsr
