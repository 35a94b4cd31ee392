#include "qbasicvsr/calibration.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>

#include "adapt/fg_vba.h"
#include "adapt/ts_lba.h"
#include "net/basicvsr.h"
#include "net/tensor_image.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/runtime.h"
#include "qbasicvsr/training.h"
#include "quant/engines.h"
#include "quant/equalize.h"
#include "quant/quantizer.h"
#include "train/adam.h"
#include "train/loop.h"
#include "train/resume.h"

namespace qbasicvsr {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr double kCharbonnierEps = 1e-3;
constexpr const char* kStateKey = kCalibrationStateKey;
// Factors tried on the initial activation ranges (CalibrationOptions::range_search).
constexpr double kRangeScales[] = {0.8, 1.0, 1.2, 1.4, 1.7, 2.0};
constexpr std::size_t kRangeSearchSequences = 32;
// Inputs per output (I kh kw) up to which a layer's input moments are gathered for the weight
// rounding: every trunk and reconstruction conv (64 x 3 x 3, fusion 128), not SPyNet's 7x7 convs
// of 32-64 channels, whose moments would cost minutes.
constexpr int64_t kMaxHessianColumns = 1200;

// The second moment of a layer's input patches, sum over patches of x x^T (im2col order), from
// every second patch position in each direction.
struct InputMoments {
  void observe(const Conv& c, const at::Tensor& x) {
    const int64_t kh = c.weight.size(2), kw = c.weight.size(3), k = c.weight[0].numel();
    const at::Tensor cols =
        at::im2col(x.to(at::kFloat).contiguous(), {kh, kw}, {1, 1}, {c.padding, c.padding}, {2, 2})
            .transpose(1, 2)
            .reshape({-1, k});
    add_gram(h, cols);
    rows += cols.size(0);
  }
  at::Tensor h;
  int64_t rows = 0;
};

// fp32 execution that also records every layer's input for ranges and TS-LBA, and with
// `moments_of` the input moments of those layers.
class StatsEngine : public Engine {
 public:
  Act conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) override {
    const at::Tensor v = x.values();
    ranges.record(id, v);
    ts.observe(id, v);
    if (static_cast<std::size_t>(id) < moments_of.size() && moments_of[id] &&
        c.weight[0].numel() <= kMaxHessianColumns)
      moments[id].observe(c, v);
    return fp32_.conv(id, c, x, post, next, residual);
  }
  bool quantizes(int) const override { return true; }
  RangeObserver ranges;
  TsLbaObserver ts;
  std::vector<bool> moments_of;
  std::map<int, InputMoments> moments;

 private:
  Fp32Engine fp32_;
};

// fp32 execution that records the largest magnitude of every residual-stream channel: the
// inputs of each trunk's conv1s (the stream before every block).
class StreamMaxEngine : public Engine {
 public:
  explicit StreamMaxEngine(const Architecture& arch) : ids_(layer_ids(arch)), blocks_(arch.blocks) {}
  Act conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) override {
    for (int t = 0; t < 2; ++t) {
      const int first = (t == 0 ? ids_.backward_trunk : ids_.forward_trunk) + 1;
      if (id >= first && id < first + 2 * blocks_ && (id - first) % 2 == 0) {
        const at::Tensor m = x.values().abs().amax({0, 2, 3});
        max[t] = max[t].defined() ? at::maximum(max[t], m) : m;
      }
    }
    return fp32_.conv(id, c, x, post, next, residual);
  }
  at::Tensor max[2];  // backward, forward stream: [C]

 private:
  LayerIds ids_;
  int blocks_;
  Fp32Engine fp32_;
};

// Differentiable fake quantization with learnable ranges and weight clips; out of place
// throughout, as autograd needs the inputs it saved.
class TrainEngine : public Engine {
 public:
  TrainEngine(const QuantPlan& plan, std::vector<at::Tensor>& l, std::vector<at::Tensor>& u,
              std::vector<at::Tensor>& clip, bool bf16)
      : plan_(plan), l_(l), u_(u), clip_(clip), bf16_(bf16) {}
  Act conv(int id, const Conv& c, const Act& x, PostOp post, int, at::Tensor* residual) override {
    at::Tensor in = x.values(), w = c.weight, b = c.bias;
    if (plan_.quantized(id)) {
      const int bits = plan_.bits(id);
      in = plan_.dynamic(id) ? per_sample(in,
                                          [&](const at::Tensor& xi) {
                                            const ActGrid g = dynamic_grid(xi.detach(), bits);
                                            return ste_quant_act(xi, at::scalar_tensor(g.lo()),
                                                                 at::scalar_tensor(g.hi()), bits);
                                          })
                             : ste_quant_act(in, l_[id], u_[id], bits);
      w = ste_quant_weight(w, clip_[id], bits);
    }
    // bf16: mixed precision, the quantized values rounded to 8 significant bits for the product
    // only (the exported model and every evaluation use exact fp32 grids).
    if (bf16_) {
      in = in.to(at::kBFloat16);
      w = w.to(at::kBFloat16);
      b = b.to(at::kBFloat16);
    }
    at::Tensor y = at::conv2d(in, w, b, {1, 1}, {c.padding, c.padding});
    return finish_differentiable(bf16_ ? y.to(at::kFloat) : y, post, residual);
  }
  bool quantizes(int id) const override { return plan_.quantized(id); }

 private:
  const QuantPlan& plan_;
  std::vector<at::Tensor>&l_, &u_, &clip_;
  bool bf16_;
};

// A crop of a sequence as [T,3,h,w]: random position and horizontal flip, or the centre.
at::Tensor crop_sequence(const std::vector<Image>& seq, int crop, std::mt19937_64* rng) {
  const at::Tensor lr = images_to_tensor(seq);
  const int64_t h = lr.size(2), w = lr.size(3);
  const int64_t ch = std::min<int64_t>(crop, h), cw = std::min<int64_t>(crop, w);
  int64_t y0 = (h - ch) / 2, x0 = (w - cw) / 2;
  bool flip = false;
  if (rng) {
    y0 = std::uniform_int_distribution<int64_t>(0, h - ch)(*rng);
    x0 = std::uniform_int_distribution<int64_t>(0, w - cw)(*rng);
    flip = std::uniform_int_distribution<int>(0, 1)(*rng) == 1;
  }
  at::Tensor out = lr.narrow(2, y0, ch).narrow(3, x0, cw);
  if (flip) out = out.flip({3});
  return out.contiguous();
}

std::vector<float> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.detach().contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

struct Outputs {
  std::vector<at::Tensor> frames, features;
};

Outputs run(const BasicVSR& net, const at::Tensor& lr, const at::Tensor& fwd, const at::Tensor& bwd,
            Engine& engine) {
  Outputs o;
  o.frames.resize(static_cast<std::size_t>(lr.size(0)));
  o.features.resize(2 * o.frames.size());
  net.propagate(
      lr, fwd, bwd, engine,
      [&](int64_t t, const at::Tensor& out) { o.frames[static_cast<std::size_t>(t)] = out; }, 0, -1,
      [&](int64_t t, int branch, const at::Tensor& f) {
        o.features[static_cast<std::size_t>(2 * t + branch)] = f;
      });
  return o;
}

// L_pix = mean_t sqrt(||P_t - Q_t||^2 + eps^2); L_skt = mean over t and both propagation
// branches of || F_P / ||F_P|| - F_Q / ||F_Q|| ||^2.
std::pair<at::Tensor, at::Tensor> losses(const Outputs& p, const Outputs& q) {
  at::Tensor l_pix = at::zeros({}), l_skt = at::zeros({});
  for (std::size_t t = 0; t < p.frames.size(); ++t)
    l_pix = l_pix + at::sqrt((p.frames[t] - q.frames[t]).square().sum() + kCharbonnierEps * kCharbonnierEps);
  for (std::size_t k = 0; k < p.features.size(); ++k) {
    const at::Tensor fp = p.features[k] / (p.features[k].norm() + 1e-12);
    const at::Tensor fq = q.features[k] / (q.features[k].norm() + 1e-12);
    l_skt = l_skt + (fp - fq).square().sum();
  }
  return {l_pix / static_cast<double>(p.frames.size()), l_skt / static_cast<double>(p.features.size())};
}

// Layer `only` fake-quantized on a plan, every other layer in fp32: one layer's share of the error.
// A centre crop with its fp32 flows and frames: what the error of a quantized network is measured on.
struct Probe {
  at::Tensor lr, fwd, bwd, target;  // target [T,3,4h,4w]
};

std::vector<Probe> make_probes(const BasicVSR& teacher, const std::vector<std::vector<Image>>& sequences,
                               int crop, std::size_t count) {
  std::vector<Probe> probes;
  count = std::min(count, sequences.size());
  for (std::size_t k = 0; k < count; ++k) {
    Probe p;
    p.lr = crop_sequence(sequences[k * sequences.size() / count], crop, nullptr);
    std::tie(p.fwd, p.bwd) = teacher.compute_flows(p.lr);
    Fp32Engine fp32;
    std::vector<at::Tensor> frames;
    teacher.propagate(p.lr, p.fwd, p.bwd, fp32,
                      [&](int64_t, const at::Tensor& out) { frames.push_back(out); });
    p.target = at::cat(frames, 0);
    probes.push_back(std::move(p));
  }
  return probes;
}

// Mean squared error against the probes' fp32 frames, and per frame index (summed over probes in
// `per_step`, when given). SPyNet runs through the engine only when `flows` (it is quantized).
double probe_mse(const BasicVSR& net, const std::vector<Probe>& probes, Engine& engine, bool flows,
                 std::vector<double>* per_step = nullptr) {
  double err = 0;
  for (const auto& p : probes) {
    at::Tensor fwd = p.fwd, bwd = p.bwd;
    if (flows) std::tie(fwd, bwd) = net.compute_flows(p.lr, engine);
    net.propagate(p.lr, fwd, bwd, engine, [&](int64_t t, const at::Tensor& out) {
      const double e = (out - p.target.narrow(0, t, 1)).square().mean().item<double>();
      err += e / static_cast<double>(p.target.size(0) * probes.size());
      if (per_step) {
        if (per_step->size() <= static_cast<std::size_t>(t)) per_step->resize(t + 1, 0.0);
        (*per_step)[static_cast<std::size_t>(t)] += e / static_cast<double>(probes.size());
      }
    });
  }
  return err;
}

std::vector<double> to_psnr(const std::vector<double>& mse) {
  std::vector<double> out;
  for (double e : mse) out.push_back(-10.0 * std::log10(std::max(e, 1e-20)));
  return out;
}

// Every quantized layer's output error alone at bits and bits + 2 (ranges as in q, b_L ignored).
std::vector<LayerError> layer_errors(const BasicVSR& net, const Architecture& arch, const QuantSettings& q,
                                     const std::vector<Probe>& probes) {
  const int lo = q.b_base, hi = std::min(kMaxBits, q.b_base + 2);
  QuantSettings at_lo = q, at_hi = q;
  for (auto* s : {&at_lo, &at_hi})
    for (auto& [name, lq] : s->layers) lq.b_L = 0;
  at_hi.b_base = hi;
  const QuantPlan plan_lo(arch, at_lo), plan_hi(arch, at_hi);
  FakeEngine fake_lo(plan_lo), fake_hi(plan_hi);
  const auto layers = conv_layers(arch);
  std::vector<LayerError> errors;
  for (std::size_t id = 0; id < layers.size(); ++id) {
    if (!plan_lo.quantized(static_cast<int>(id))) continue;
    LayerError e{0, 0, lo, hi};
    OneLayerEngine one_lo(fake_lo, static_cast<int>(id)), one_hi(fake_hi, static_cast<int>(id));
    e.err_lo = probe_mse(net, probes, one_lo, layers[id].spynet);
    e.err_hi = hi == lo ? e.err_lo : probe_mse(net, probes, one_hi, layers[id].spynet);
    errors.push_back(e);
  }
  return errors;
}

}  // namespace

int CalibrationOptions::min_allocated_bits() const { return std::max(kMinBits, bits - 1); }

void CalibrationOptions::validate() const {
  if (bits < kMinBits || bits > kMaxBits) throw Error("--bits must be in 2..8");
  if (iters < 0 || batch < 1 || crop < 8) throw Error("iters >= 0, batch >= 1 and crop >= 8 are needed");
  if (target_bits && !(*target_bits >= min_allocated_bits() && *target_bits <= kMaxBits))
    throw Error("--target-bits must be in " + std::to_string(min_allocated_bits()) + "..8 for --bits " +
                std::to_string(bits) + " (each layer gets between bits - 1 and 8)");
  if (!(lr_weights >= 0 && lr_ranges >= 0)) throw Error("--lr and --lr-ranges must be >= 0");
  if (sensitivity_sequences < 1) throw Error("at least one sensitivity sequence is needed");
  if (!(equalize >= 0 && equalize <= 1)) throw Error("--equalize must be auto or in 0..1");
  if (compute == Compute::Fp16)
    throw Error("--compute must be auto, fp32 or bf16 (fp16 is for GPU inference)");
}

namespace {

// What the statistics pass gathers: the observers' samples, each sequence's complexity, and the
// crops (with the teacher's frames) the range search scores on.
struct Statistics {
  StatsEngine engine;
  std::vector<VideoComplexity> complexity;
  std::vector<at::Tensor> search_crops, search_targets;
};

// Phase 1: the teacher in fp32 over a centre crop of every sequence (TS-LBA statistics and ranges)
// and over its whole frames (FG-VBA's measurements).
void collect_statistics(const BasicVSR& teacher, const std::vector<std::vector<Image>>& sequences,
                        const CalibrationOptions& o, Statistics& st) {
  // The range search scores on the statistics crops of up to kRangeSearchSequences sequences,
  // evenly spread, against the teacher frames this pass computes anyway.
  const std::size_t n_search = o.range_search ? std::min(sequences.size(), kRangeSearchSequences) : 0;
  if (o.hessian_rounding)
    for (const auto& layer : conv_layers(teacher.arch()))
      st.engine.moments_of.push_back(quantized_in(layer, o.scope));
  c10::InferenceMode guard;
  for (std::size_t s = 0; s < sequences.size(); ++s) {
    const auto& seq = sequences[s];
    const at::Tensor crop = crop_sequence(seq, o.crop, nullptr);
    const bool searched =
        st.search_crops.size() < n_search && s == st.search_crops.size() * sequences.size() / n_search;
    std::vector<at::Tensor> frames;
    teacher.forward(crop, st.engine, [&](int64_t, const at::Tensor& out) {
      if (searched) frames.push_back(out);
    });
    if (searched) {
      st.search_crops.push_back(crop);
      st.search_targets.push_back(at::cat(frames, 0));
    }
    st.engine.ts.end_clip();
    const at::Tensor full = images_to_tensor(seq);
    const auto [fwd, bwd] = teacher.compute_flows(full);
    st.complexity.push_back(measure_complexity(full, fwd, bwd, FgVbaParams()));
  }
}

// Phase 0 (with o.equalize): `fp` with its residual streams equalised from their channels'
// largest magnitudes over the centre crops the statistics pass uses.
Model equalized(const Model& fp, const std::vector<std::vector<Image>>& sequences,
                const CalibrationOptions& o, CalibrationReport& report) {
  if (o.equalize <= 0) return fp;
  c10::InferenceMode guard;
  const BasicVSR net(fp);
  StreamMaxEngine engine(fp.arch);
  for (const auto& seq : sequences) net.forward(crop_sequence(seq, o.crop, nullptr), engine);
  const StreamScales s = stream_scales(to_vector(engine.max[0]), to_vector(engine.max[1]), o.equalize);
  std::vector<float> all = s.backward;
  all.insert(all.end(), s.forward.begin(), s.forward.end());
  report.stream_scale_min = *std::min_element(all.begin(), all.end());
  report.stream_scale_max = *std::max_element(all.begin(), all.end());
  return equalize_streams(fp, s);
}

// One factor for every initial range: the one whose fake-quantized network (`net`, the teacher's
// weights or their rounding; b_V = 0) reproduces the teacher's frames best on the search crops.
QuantSettings search_range_scale(const BasicVSR& net, const Architecture& arch, const QuantSettings& q,
                                 const Statistics& st, CalibrationReport& report) {
  c10::InferenceMode guard;
  double best_err = -1;
  QuantSettings best = q;
  for (double scale : kRangeScales) {
    QuantSettings scaled = q;
    for (auto& [name, lq] : scaled.layers) {
      lq.l = static_cast<float>(lq.l * scale);
      lq.u = static_cast<float>(lq.u * scale);
    }
    QuantPlan plan(arch, scaled);
    FakeEngine fake(plan);
    double err = 0;
    for (std::size_t i = 0; i < st.search_crops.size(); ++i)
      err += (net.forward(st.search_crops[i], fake) - st.search_targets[i]).square().mean().item<double>();
    err /= static_cast<double>(st.search_crops.size());
    report.range_search.push_back({scale, err});
    if (best_err < 0 || err < best_err) {
      best_err = err;
      best = scaled;
      report.range_scale = scale;
    }
  }
  return best;
}

// Phase 2: the first quantization settings from the statistics: FG-VBA's lambda and thresholds
// over the sequences, TS-LBA's thresholds and each layer's offset, each layer's initial range
// (percentiles, or the least-squares clip); the per-sequence C_V, b_V and the layers go into
// the report, TS-LBA's thresholds into `th`.
QuantSettings initial_settings(const std::vector<LayerInfo>& layers, const CalibrationOptions& o,
                               Statistics& st, CalibrationReport& report, TsLbaThresholds& th) {
  StatsEngine& stats = st.engine;
  auto& complexity = st.complexity;
  QuantSettings q;
  q.b_base = o.bits;
  q.scope = o.scope;
  // FG-VBA: lambda balances the mean detail and motion terms over the calibration sequences.
  double mean_s = 0, mean_t = 0;
  for (const auto& c : complexity) {
    mean_s += c.mean_S / static_cast<double>(complexity.size());
    mean_t += (c.mean_T_mag + o.gamma * c.mean_T_cons) / static_cast<double>(complexity.size());
  }
  q.fg_vba.gamma = o.gamma;
  q.fg_vba.lambda = o.lambda ? *o.lambda : (mean_t > 1e-9 ? mean_s / mean_t : 0.0);
  for (auto& c : complexity) finish_complexity(c, q.fg_vba);
  for (const auto& c : complexity) report.sequence_C_V.push_back(c.C_V);
  if (o.fg_vba) {
    q.fg_vba.tau_lo = percentile(report.sequence_C_V, o.tau_percentile);
    q.fg_vba.tau_hi = percentile(report.sequence_C_V, 100.0 - o.tau_percentile);
  }
  for (const auto& c : report.sequence_C_V) report.sequence_b_V.push_back(fg_vba_offset(c, q.fg_vba));
  // TS-LBA over the layers the scope quantizes.
  const auto ts_stats = stats.ts.statistics();
  std::vector<double> s_space, s_temp;
  for (std::size_t id = 0; id < layers.size(); ++id)
    if (quantized_in(layers[id], o.scope)) {
      s_space.push_back(ts_stats.at(static_cast<int>(id)).first);
      s_temp.push_back(ts_stats.at(static_cast<int>(id)).second);
    }
  th = ts_lba_thresholds(s_space, s_temp, o.ts_lba_lo, o.ts_lba_hi);
  if (o.ts_lba && !o.target_bits) q.ts_lba = th;  // with a target the allocation sets b_L
  const auto percentile_ranges =
      stats.ranges.ranges(100.0 - std::max(o.range_percentile, 50.0), std::max(o.range_percentile, 50.0));
  for (std::size_t id = 0; id < layers.size(); ++id) {
    const auto [ss, tt] = ts_stats.at(static_cast<int>(id));
    LayerCalibration lc{layers[id].name, quantized_in(layers[id], o.scope), ss, tt, 0, 0, 0};
    if (lc.quantized) {
      LayerQuant& lq = q.layers[lc.name];
      lq.b_L = o.ts_lba ? ts_lba_offset(ss, tt, th) : 0;
      lq.has_range = true;
      const auto range = o.range_percentile > 0
                             ? percentile_ranges.at(static_cast<int>(id))
                             : stats.ranges.mse_range(static_cast<int>(id), layer_bits(o.bits, 0, lq.b_L));
      lq.l = range.first;
      lq.u = std::max(range.second, lq.l + 1e-3f);
      lc.b_L = lq.b_L;
    }
    report.layers.push_back(lc);
  }
  return q;
}

// With --target-bits: each layer's bits where they reduce the output error most for the mean
// asked (instead of TS-LBA's fixed percentiles); the measured errors and the choice go into the
// report.
void allocate_layer_bits(const BasicVSR& teacher, const Architecture& arch,
                         const std::vector<LayerInfo>& layers, const CalibrationOptions& o,
                         const std::vector<Probe>& probes, QuantSettings& q, CalibrationReport& report) {
  // Bits where they reduce the output error most, for the mean asked (instead of TS-LBA's
  // fixed percentiles); the measured errors and the choice go into the report.
  c10::InferenceMode guard;
  const auto errors = layer_errors(teacher, arch, q, probes);
  const auto bits = allocate_bits(errors, *o.target_bits, o.min_allocated_bits(), kMaxBits);
  std::size_t k = 0;
  for (std::size_t id = 0; id < layers.size(); ++id) {
    if (!quantized_in(layers[id], o.scope)) continue;
    q.layers[layers[id].name].b_L = bits[k] - o.bits;
    report.layers[id].b_L = bits[k] - o.bits;
    report.sensitivity.push_back({layers[id].name, errors[k], bits[k]});
    ++k;
  }
}

// With hessian_rounding: each layer with input moments gets its clips and weights rounded for them
// (hessian_round_weight) at its bits for b_V = 0. The weights replace `model`'s, the clips go into
// q, both relative output errors into the report.
void round_weights(Model& model, const std::vector<LayerInfo>& layers, const Statistics& st, QuantSettings& q,
                   CalibrationReport& report) {
  c10::InferenceMode guard;
  BasicVSR net(model);
  const auto convs = net.layers();
  for (const auto& [id, m] : st.engine.moments) {
    const LayerInfo& info = layers[static_cast<std::size_t>(id)];
    LayerQuant& lq = q.layers.at(info.name);
    const int bits = layer_bits(q.b_base, 0, lq.b_L), fc = info.frame_channels;
    const at::Tensor full = convs[static_cast<std::size_t>(id)]->weight.contiguous().clone();
    at::Tensor w = fc ? full.narrow(1, fc, full.size(1) - fc) : full;
    const at::Tensor h = m.h / static_cast<double>(std::max<int64_t>(m.rows, 1));
    at::Tensor clip;
    const at::Tensor rounded = hessian_round_weight(w, h, bits, &clip);
    auto& lc = report.layers[static_cast<std::size_t>(id)];
    // Relative to the output's own energy (a layer whose input never varied reports 0).
    const double signal = weighted_weight_error(w, at::zeros_like(w), h).sum().item<double>();
    auto relative = [&](const at::Tensor& q) {
      return signal > 0 ? weighted_weight_error(w, q, h).sum().item<double>() / signal : 0.0;
    };
    lc.weight_error_nearest = relative(fake_quant_weight(w, weight_clip_values(w, {}), bits));
    lc.weight_error_rounded = relative(rounded);
    w.copy_(rounded);
    model.weights[info.name + ".weight"] = to_host(full);
    lq.weight_clip = to_vector(clip);
  }
}

// A digest of the calibration sequences (their count, sizes and samples): a checkpoint records it
// so that a run resumes on the clips it started with.
std::string sequences_digest(const std::vector<std::vector<Image>>& sequences) {
  FramesDigest d;
  d.add_count(sequences.size());
  for (const auto& seq : sequences) d.add(seq);
  return d.hex();
}

// One recorded option as the command line gives it ("--bits 4", "--no-fg-vba").
std::string describe_option(const std::string& key, const json& v) {
  const auto on_off = [&](const char* off_flag, const char* on_text) {
    return v.is_boolean() && !v.get<bool>() ? std::string(off_flag) : std::string(on_text);
  };
  if (key == "keep_weights") return std::string("--keep-weights ") + (v == true ? "yes" : "no");
  if (key == "hessian_rounding")
    return std::string("--weight-rounding ") + (v == true ? "hessian" : "nearest");
  if (key == "dynamic_ranges") return std::string("--dynamic-ranges ") + (v == true ? "yes" : "no");
  if (key == "ts_lba") return on_off("--no-ts-lba", "TS-LBA");
  if (key == "fg_vba") return on_off("--no-fg-vba", "FG-VBA");
  if (key == "range_search") return on_off("--no-range-search", "the range search");
  if (key == "target_bits" && v.is_null()) return "TS-LBA's percentiles (no --target-bits)";
  if (key == "lambda" && v.is_null()) return "the default --lambda";
  return option_flag(key, v);
}

// Phase 3's learner: the student network (the teacher's weights, or a checkpoint's) with a
// learnable range [l, u] and bias for every quantized layer, and its weights and per-channel
// weight clip unless `keep_weights`.
struct Student {
  Student(const Model& weights, const std::vector<LayerInfo>& layers, const QuantPlan& plan,
          const QuantSettings& q, bool keep_weights)
      : net(weights), convs(net.layers()), l(layers.size()), u(layers.size()), clip(layers.size()) {
    for (std::size_t id = 0; id < layers.size(); ++id) {
      if (!plan.quantized(static_cast<int>(id))) continue;
      const LayerQuant& lq = *q.layer(layers[id].name);
      l[id] = at::tensor(lq.l).requires_grad_();
      u[id] = at::tensor(lq.u).requires_grad_();
      // A trunk's input conv quantizes only its feature columns (the LR frame stays exact).
      const int fc = layers[id].frame_channels;
      const at::Tensor quantized_w =
          fc ? convs[id]->weight.narrow(1, fc, convs[id]->weight.size(1) - fc) : convs[id]->weight;
      clip[id] = weight_clip_values(quantized_w, lq.weight_clip).contiguous();
      convs[id]->bias.requires_grad_();
      weight_params.push_back(convs[id]->bias);
      range_params.insert(range_params.end(), {l[id], u[id]});
      if (keep_weights) continue;
      clip[id].requires_grad_();
      convs[id]->weight.requires_grad_();
      weight_params.push_back(convs[id]->weight);
      range_params.push_back(clip[id]);
    }
  }
  Student(const Student&) = delete;
  Student& operator=(const Student&) = delete;

  // The quantized model as it stands: fp's file with the student's quantized layers and learnt
  // ranges and clips, and the training state (iteration, losses, the run's options) for a checkpoint.
  Model export_model(const Model& fp, const std::vector<LayerInfo>& layers, const QuantPlan& plan,
                     const QuantSettings& q, const CalibrationReport& report, int iteration,
                     const json& run) const {
    Model m = fp;
    QuantSettings out = q;
    for (std::size_t id = 0; id < layers.size(); ++id) {
      if (!plan.quantized(static_cast<int>(id))) continue;
      m.weights[layers[id].name + ".weight"] = to_host(convs[id]->weight);
      m.weights[layers[id].name + ".bias"] = to_host(convs[id]->bias);
      LayerQuant& lq = out.layers[layers[id].name];
      lq.l = l[id].item<float>();
      lq.u = std::max(u[id].item<float>(), lq.l + 1e-6f);
      lq.weight_clip = to_vector(at::clamp_min(clip[id], 0.0));
    }
    m.quantization = out;
    json losses_json = json::array();
    for (const auto& s : report.losses) losses_json.push_back({s.iteration, s.loss, s.l_pix, s.l_skt});
    const json state{{"iteration", iteration},
                     {"losses", losses_json},
                     {"compute", report.bf16 ? "bf16" : "fp32"},
                     {"run", run}};
    m.extra_metadata[kStateKey] = state.dump();
    return m;
  }

  BasicVSR net;
  std::vector<Conv*> convs;
  std::vector<at::Tensor> l, u, clip;
  std::vector<at::Tensor> weight_params, range_params;
};

// Phase 3: distillation from iteration `start`: random crops and flips, bits as the element would
// pick them per sequence, L_pix + lambda_skt L_skt against the teacher, Adam with a cosine decay
// of both learning rates to zero. Returns false when it stopped at o.stop_at (checkpoint written).
bool distill(const BasicVSR& teacher, Student& student, QuantPlan& plan,
             const std::vector<std::vector<Image>>& sequences, const CalibrationOptions& o, int start,
             const std::string& resume, const std::function<Model(int)>& checkpoint_model,
             CalibrationReport& report, const std::function<void(const CalibrationProgress&)>& progress) {
  Adam adam;
  adam.add(student.weight_params, o.lr_weights);
  adam.add(student.range_params, o.lr_ranges);
  if (!resume.empty()) adam.restore(read_safetensors(resume + ".adam"));
  TrainEngine train(plan, student.l, student.u, student.clip, report.bf16);
  Fp32Engine fp32;
  const TrainingLoop loop(start, o.iters, o.stop_at, o.checkpoint_every, o.checkpoint);
  for (int it = start; it < o.iters; ++it) {
    double l_sum = 0, pix_sum = 0, skt_sum = 0;
    for (int b = 0; b < o.batch; ++b) {
      std::mt19937_64 rng(o.seed * 1000003ull + static_cast<uint64_t>(it) * 7919ull +
                          static_cast<uint64_t>(b));
      const std::size_t idx = std::uniform_int_distribution<std::size_t>(0, sequences.size() - 1)(rng);
      const at::Tensor lr = crop_sequence(sequences[idx], o.crop, &rng);
      plan.set_offset(report.sequence_b_V[idx]);
      Outputs target;
      at::Tensor fwd, bwd;
      {
        at::NoGradGuard no_grad;
        std::tie(fwd, bwd) = teacher.compute_flows(lr, fp32);
        target = run(teacher, lr, fwd, bwd, fp32);
      }
      // SPyNet is float in the partial scope: the student's flows are the teacher's.
      if (o.scope == Scope::Full) std::tie(fwd, bwd) = student.net.compute_flows(lr, train);
      const Outputs pred = run(student.net, lr, fwd, bwd, train);
      const auto [l_pix, l_skt] = losses(target, pred);
      const at::Tensor loss = l_pix + o.lambda_skt * l_skt;
      (loss / static_cast<double>(o.batch)).backward();
      l_sum += loss.item<double>() / o.batch;
      pix_sum += l_pix.item<double>() / o.batch;
      skt_sum += l_skt.item<double>() / o.batch;
    }
    adam.step(loop.lr_scale(it));
    report.losses.push_back({it + 1, l_sum, pix_sum, skt_sum});
    if (progress) progress({it + 1, o.iters, l_sum, pix_sum, skt_sum, loop.rate(it), loop.eta(it)});
    if (loop.finish(it, adam, [&] { return checkpoint_model(it + 1); })) {
      report.train_seconds = loop.seconds();
      return false;
    }
  }
  report.train_seconds = loop.seconds();
  return true;
}

// Phase 4: what the result runs at and how it reproduces the teacher: the mean bits over the
// sequences' b_V, per-frame PSNR on the probes, the learnt ranges.
void measure_result(const Model& out, const CalibrationOptions& o, const std::vector<Probe>& probes,
                    CalibrationReport& report) {
  QuantPlan plan(out.arch, *out.quantization);
  double bits = 0;
  for (int b_V : report.sequence_b_V) {
    plan.set_offset(b_V);
    bits += plan.mean_bits();
  }
  report.mean_bits = bits / static_cast<double>(report.sequence_b_V.size());
  {
    c10::InferenceMode guard;
    const BasicVSR tuned(out);
    QuantPlan final_plan(out.arch, *out.quantization);
    FakeEngine fake(final_plan);
    std::vector<double> steps;
    probe_mse(tuned, probes, fake, o.scope == Scope::Full, &steps);
    report.step_psnr_final = to_psnr(steps);
  }
  for (auto& lc : report.layers)
    if (lc.quantized) {
      lc.l = out.quantization->layer(lc.name)->l;
      lc.u = out.quantization->layer(lc.name)->u;
    }
}

// Resuming: the checkpoint's ranges, clips and weights into q and the student, its loss history
// into the report; returns the iteration it stopped at.
int restore_checkpoint(const Model& ck, const std::string& resume, const Model& fp, QuantSettings& q,
                       Model& student_model, CalibrationReport& report) {
  if (!ck.quantization || !ck.extra_metadata.count(kStateKey) || !(ck.arch == fp.arch))
    throw Error(resume + ": not a calibration checkpoint of this model");
  const auto state = json::parse(ck.extra_metadata.at(kStateKey), nullptr, false);
  if (state.is_discarded() || !state.contains("iteration"))
    throw Error(resume + ": damaged checkpoint state");
  for (const auto& s : state.value("losses", json::array()))
    report.losses.push_back({s[0].get<int>(), s[1].get<double>(), s[2].get<double>(), s[3].get<double>()});
  for (auto& [name, lq] : q.layers) {
    const LayerQuant* saved = ck.quantization->layer(name);
    if (!saved || !saved->has_range) throw Error(resume + ": checkpoint lacks layer " + name);
    lq.l = saved->l;
    lq.u = saved->u;
    lq.weight_clip = saved->weight_clip;
  }
  student_model.weights = ck.weights;
  return state["iteration"].get<int>();
}

}  // namespace

std::string calibration_options_json(const CalibrationOptions& o) {
  return json{{"bits", o.bits},
              {"scope", scope_name(o.scope)},
              {"iterations", o.iters},
              {"batch", o.batch},
              {"crop", o.crop},
              {"lr", o.lr_weights},
              {"lr_ranges", o.lr_ranges},
              {"keep_weights", o.keep_weights},
              {"lambda_skt", o.lambda_skt},
              {"gamma", o.gamma},
              {"lambda", o.lambda ? json(*o.lambda) : json(nullptr)},
              {"ts_lba", o.ts_lba},
              {"fg_vba", o.fg_vba},
              {"range_percentile", o.range_percentile},
              {"range_search", o.range_search},
              {"equalize", o.equalize},
              {"target_bits", o.target_bits ? json(*o.target_bits) : json(nullptr)},
              {"sensitivity_sequences", o.sensitivity_sequences},
              {"hessian_rounding", o.hessian_rounding},
              {"dynamic_ranges", o.dynamic_ranges},
              {"seed", o.seed}}
      .dump();
}

namespace {

// check_resumable with the sequences' digest already taken (or null: not compared).
void check_resumable_digest(const CalibrationOptions& o, const Model& ck, const std::string& resume,
                            const std::string* digest) {
  const json was = recorded_run(ck, kStateKey);
  if (was.is_null()) return;
  // The rounding first: auto --equalize and --keep-weights follow it.
  check_recorded_options(was, json::parse(calibration_options_json(o)), {"hessian_rounding"}, describe_option,
                         resume);
  if (digest)
    check_recorded_data(was, "sequences", *digest, "calibration sequences",
                        "--clips, --frames, --max-sequences and --degradation", resume);
}

}  // namespace

void check_resumable(const CalibrationOptions& o, const Model& ck, const std::string& resume,
                     const std::vector<std::vector<Image>>* sequences) {
  const std::string digest = sequences ? sequences_digest(*sequences) : "";
  check_resumable_digest(o, ck, resume, sequences ? &digest : nullptr);
}

Model calibrate(const Model& source, const std::vector<std::vector<Image>>& sequences,
                const CalibrationOptions& o, CalibrationReport* report_out,
                const std::function<void(const CalibrationProgress&)>& progress, const std::string& resume) {
  if (source.quantization)
    throw Error("the model is already quantized; calibrate its full-precision source instead");
  o.validate();
  if (sequences.empty()) throw Error("no calibration sequences");
  for (std::size_t i = 0; i < sequences.size(); ++i)
    if (sequences[i].size() < 2)
      throw Error("calibration sequence " + std::to_string(i) + " has " +
                  std::to_string(sequences[i].size()) + " frame(s); at least 2 are needed");
  configure_runtime(o.threads);
  CalibrationReport report;
  // The checkpoint is read once, and its arithmetic checked before minutes of statistics.
  const Model ck = resume.empty() ? Model() : load_model(resume);
  report.bf16 = (resume.empty() ? run_arithmetic(o.compute, "") : run_arithmetic(o.compute, ck, resume)) ==
                Compute::Bf16;
  // What the result depends on, for checkpoints: the options and the sequences.
  const std::string digest = sequences_digest(sequences);  // one pass over the frames
  json run_record = json::parse(calibration_options_json(o));
  run_record["sequences"] = digest;
  if (!resume.empty()) check_resumable_digest(o, ck, resume, &digest);
  // 0. The network to quantize: the source, its streams equalised with o.equalize (the same
  // function in float, so it is the teacher too).
  const Model fp = equalized(source, sequences, o, report);
  const auto layers = conv_layers(fp.arch);
  const BasicVSR teacher(fp);

  // 1. Statistics: TS-LBA and ranges on centre crops, FG-VBA on whole frames, all in fp32.
  const auto t_stats = Clock::now();
  Statistics st;
  collect_statistics(teacher, sequences, o, st);
  TsLbaThresholds th;
  QuantSettings q = initial_settings(layers, o, st, report, th);
  // Dynamic ranges before anything measures the quantized network: the bits, the range search and
  // distillation all see the grids the model will run with.
  if (o.dynamic_ranges)
    for (const std::string& name : dynamic_range_layers(fp.arch))
      if (q.layers.count(name)) q.layers[name].dynamic = true;
  std::vector<Probe> probes;
  {
    c10::InferenceMode guard;
    probes = make_probes(teacher, sequences, o.crop, static_cast<std::size_t>(o.sensitivity_sequences));
  }
  if (o.target_bits) allocate_layer_bits(teacher, fp.arch, layers, o, probes, q, report);
  // The student's first weights: the teacher's, or rounded for their inputs.
  Model start_model = fp;
  std::optional<BasicVSR> rounded_net;
  if (o.hessian_rounding) {
    round_weights(start_model, layers, st, q, report);
    rounded_net.emplace(start_model);
  }
  const BasicVSR& start_net = rounded_net ? *rounded_net : teacher;
  if (o.range_search) q = search_range_scale(start_net, fp.arch, q, st, report);
  {
    c10::InferenceMode guard;
    QuantPlan plan(fp.arch, q);
    FakeEngine fake(plan);
    std::vector<double> steps;
    probe_mse(start_net, probes, fake, o.scope == Scope::Full, &steps);
    report.step_psnr_initial = to_psnr(steps);
  }
  report.lambda = q.fg_vba.lambda;
  report.gamma = q.fg_vba.gamma;
  report.tau_lo = q.fg_vba.tau_lo.value_or(0);
  report.tau_hi = q.fg_vba.tau_hi.value_or(0);
  report.ts_lba = th;
  report.stats_seconds = seconds_since(t_stats);

  // 2. The student: the first weights (or a checkpoint's), learnable ranges and weight clips.
  Model student_model = start_model;
  const int start = resume.empty() ? 0 : restore_checkpoint(ck, resume, fp, q, student_model, report);
  report.start_iteration = start;
  QuantPlan plan(fp.arch, q);
  Student student(student_model, layers, plan, q, o.keep_weights);
  auto export_at = [&](int iteration) {
    return student.export_model(fp, layers, plan, q, report, iteration, run_record);
  };

  // 3. Distillation; 4. the result and its measurements.
  if (!distill(teacher, student, plan, sequences, o, start, resume, export_at, report, progress)) {
    report.stopped = true;
    if (report_out) *report_out = report;
    return Model();
  }
  Model out = export_at(o.iters);
  out.extra_metadata.erase(kStateKey);
  measure_result(out, o, probes, report);
  if (report_out) *report_out = report;
  return out;
}

}  // namespace qbasicvsr
