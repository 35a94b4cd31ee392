#include "engine.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qbasicvsr/profile.h"
#include "quantizer.h"

namespace qbasicvsr {

namespace {

constexpr double kLeakySlope = 0.1;
// Values kept per observed call and per layer: enough for stable 0.01/99.99 percentiles.
constexpr int64_t kSamplesPerCall = 1 << 16;
constexpr std::size_t kMaxSamplesPerLayer = 1 << 20;

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
  at::Tensor w = weight, b;
  const auto key = std::make_tuple(c.weight.data_ptr(), c.weight.size(1), type);
  auto it = typed_.find(key);
  if (it == typed_.end())
    it = typed_
             .emplace(key, std::make_pair(c.weight.to(type).contiguous(at::MemoryFormat::ChannelsLast),
                                          c.bias.defined() ? c.bias.to(type) : at::Tensor()))
             .first;
  if (!w.defined()) w = it->second.first;
  b = it->second.second;
  return at::conv2d(x.contiguous(at::MemoryFormat::ChannelsLast), w, b, {1, 1}, {c.padding, c.padding});
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

QuantPlan::QuantPlan(const Architecture& arch, QuantSettings settings)
    : settings_(std::move(settings)), layers_(conv_layers(arch)) {
  settings_.validate(arch);
  for (const auto& info : layers_) {
    quantized_.push_back(quantized_in(info, settings_.scope));
    const auto* lq = settings_.layer(info.name);
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
    xq = fake_quant_act(in, plan_.grid(id), type);
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
