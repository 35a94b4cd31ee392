#include "qbasicvsr/training.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "net/basicvsr.h"
#include "net/engine.h"
#include "net/spynet.h"
#include "net/tensor_image.h"
#include "qbasicvsr/degrade.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/metrics.h"
#include "qbasicvsr/runtime.h"
#include "train/adam.h"
#include "train/loop.h"
#include "train/resume.h"
#include "train/training_internal.h"

namespace qbasicvsr {

namespace {

using nlohmann::json;

constexpr double kCharbonnierEps = 1e-3;
constexpr const char* kStateKey = kTrainingStateKey;
// Held-out synthetic flow pairs (fixed seed, independent of the training seed).
constexpr int kSyntheticValPairs = 64;
constexpr uint64_t kSyntheticValSeed = 0x5eed;

int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

// A [3,H,W] float tensor in [0,1] per frame.
std::vector<at::Tensor> frame_pool(const std::vector<std::vector<Image>>& clips) {
  std::vector<at::Tensor> pool;
  for (const auto& clip : clips)
    for (const auto& f : clip) pool.push_back(images_to_tensor({f})[0]);
  return pool;
}

// --- synthetic motion -------------------------------------------------------------------------

FlowBatch synthetic_batch(const std::vector<at::Tensor>& pool, int n, int size, const FlowPretrainOptions& o,
                          std::mt19937_64& rng) {
  std::vector<at::Tensor> refs, supps, flows;
  for (int i = 0; i < n; ++i) {
    at::Tensor r, s, f;
    synthetic_pair(pool, size, o, rng, r, s, f);
    refs.push_back(r);
    supps.push_back(s);
    flows.push_back(f);
  }
  return {at::stack(refs), at::stack(supps), at::stack(flows)};
}

// Mean end-point error.
at::Tensor epe(const at::Tensor& pred, const at::Tensor& gt) {
  return at::sqrt((pred - gt).square().sum(1) + 1e-8).mean();
}

// Writes convs (conv_layers() order from the first layer on: SPyNet's alone, or the whole
// network's) into the model's weights.
void store_convs(Model& model, const std::vector<Conv*>& convs) {
  const auto layers = conv_layers(model.arch);
  for (std::size_t id = 0; id < convs.size(); ++id) {
    model.weights[layers[id].name + ".weight"] = to_host(convs[id]->weight);
    model.weights[layers[id].name + ".bias"] = to_host(convs[id]->bias);
  }
}

FlowReport measure_flow(const SpyNet& net, const std::vector<std::vector<Image>>& validation,
                        const FlowPretrainOptions& o) {
  FlowReport r;
  at::NoGradGuard no_grad;
  Fp32Engine engine;
  const auto pool = frame_pool(validation);
  if (pool.empty()) return r;
  std::mt19937_64 rng(kSyntheticValSeed);
  double sum = 0, sum_zero = 0;
  for (int done = 0; done < kSyntheticValPairs; done += 8) {
    const FlowBatch b = synthetic_batch(pool, 8, o.size, o, rng);
    const at::Tensor pred = net.flow(b.ref, b.supp, engine);
    sum += epe(pred, b.flow).item<double>() * 8;
    sum_zero += epe(at::zeros_like(b.flow), b.flow).item<double>() * 8;
    r.pairs_synthetic += 8;
  }
  r.synthetic_epe = sum / r.pairs_synthetic;
  r.synthetic_epe_zero = sum_zero / r.pairs_synthetic;
  double warp = 0, warp_zero = 0;
  for (const auto& clip : validation)
    for (std::size_t t = 0; t + 1 < clip.size(); ++t) {
      const at::Tensor ref = images_to_tensor({clip[t]}), supp = images_to_tensor({clip[t + 1]});
      const at::Tensor f = net.flow(ref, supp, engine);
      warp += (ref - flow_warp(supp, f, true)).abs().mean().item<double>() * 255.0;
      warp_zero += (ref - supp).abs().mean().item<double>() * 255.0;
      ++r.pairs_real;
    }
  if (r.pairs_real) {
    r.real_warp_error = warp / r.pairs_real;
    r.real_warp_error_zero = warp_zero / r.pairs_real;
  }
  return r;
}

// --- super-resolution data ----------------------------------------------------------------------

struct ClipData {
  at::Tensor hr;  // [T,H,W,3] uint8
  at::Tensor lr;  // [T,3,h,w] float in [0,1]
  // Flows of the frozen SPyNet between frames i and i+1 (forward, backward), [2,h,w] each,
  // computed when first needed.
  std::vector<std::optional<std::pair<at::Tensor, at::Tensor>>> flows;
};

ClipData prepare(const GtClip& clip, Degradation d) {
  ClipData c;
  std::vector<Image> lr;
  std::vector<at::Tensor> hr;
  for (const auto& f : clip.frames) {
    lr.push_back(degrade_cropped(f, d));
    hr.push_back(
        at::from_blob(const_cast<uint8_t*>(f.rgb.data()), {f.height, f.width, 3}, at::kByte).clone());
  }
  c.lr = images_to_tensor(lr);
  c.hr = at::stack(hr);
  c.flows.resize(clip.frames.size() - 1);
  return c;
}

const std::pair<at::Tensor, at::Tensor>& cached_flow(ClipData& c, int64_t i, const BasicVSR& net) {
  auto& slot = c.flows[static_cast<std::size_t>(i)];
  if (!slot) {
    // One pair at a time, so that the values never depend on which pairs were computed together
    // (a resumed run fills the cache in another order).
    at::NoGradGuard no_grad;
    Fp32Engine engine;
    const auto [fwd, bwd] = net.compute_flows(c.lr.narrow(0, i, 2), engine);
    slot = std::make_pair(fwd[0].clone(), bwd[0].clone());
  }
  return *slot;
}

struct Sample {
  at::Tensor lr, hr, fwd, bwd;  // [T,3,c,c], [T,3,4c,4c], [T-1,2,c,c] x2 (fwd/bwd undefined: compute)
};

Sample draw(std::vector<ClipData>& data, const TrainOptions& o, const BasicVSR& net, bool cached_flows,
            std::mt19937_64& rng) {
  int64_t total = 0;
  for (const auto& d : data) total += d.lr.size(0) - o.frames + 1;
  int64_t k = uniform_int(rng, 0, total - 1);
  std::size_t ci = 0;
  while (k >= data[ci].lr.size(0) - o.frames + 1) k -= data[ci++].lr.size(0) - o.frames + 1;
  ClipData& d = data[ci];
  const int64_t start = k, h = d.lr.size(2), w = d.lr.size(3), c = o.crop;
  const int64_t y = uniform_int(rng, 0, h - c), x = uniform_int(rng, 0, w - c);
  const bool hflip = uniform_int(rng, 0, 1) == 1, vflip = uniform_int(rng, 0, 1) == 1;
  const bool reverse = uniform_int(rng, 0, 1) == 1;
  Sample s;
  s.lr = d.lr.narrow(0, start, o.frames).narrow(2, y, c).narrow(3, x, c);
  s.hr = d.hr.narrow(0, start, o.frames)
             .narrow(1, 4 * y, 4 * c)
             .narrow(2, 4 * x, 4 * c)
             .permute({0, 3, 1, 2})
             .to(at::kFloat)
             .div(255.0);
  if (cached_flows) {
    std::vector<at::Tensor> fwd, bwd;
    for (int64_t i = start; i + 1 < start + o.frames; ++i) {
      const auto& f = cached_flow(d, i, net);
      fwd.push_back(f.first.narrow(1, y, c).narrow(2, x, c));
      bwd.push_back(f.second.narrow(1, y, c).narrow(2, x, c));
    }
    s.fwd = at::stack(fwd);
    s.bwd = at::stack(bwd);
  }
  // Flips and time reversal; the flows follow (a flipped axis negates its component, reversed
  // time swaps the two directions).
  for (auto [on, dim, comp] : {std::tuple{hflip, int64_t{3}, 0}, std::tuple{vflip, int64_t{2}, 1}}) {
    if (!on) continue;
    s.lr = s.lr.flip({dim});
    s.hr = s.hr.flip({dim});
    if (s.fwd.defined()) {
      s.fwd = flip_flow(s.fwd, dim, comp);
      s.bwd = flip_flow(s.bwd, dim, comp);
    }
  }
  if (reverse) {
    s.lr = s.lr.flip({0});
    s.hr = s.hr.flip({0});
    if (s.fwd.defined()) std::swap(s.fwd, s.bwd), s.fwd = s.fwd.flip({0}), s.bwd = s.bwd.flip({0});
  }
  s.lr = s.lr.contiguous();
  s.hr = s.hr.contiguous();
  return s;
}

Model export_model(const Model& base, BasicVSR& net) {
  Model m = base;
  store_convs(m, net.layers());
  m.extra_metadata.erase(kStateKey);
  return m;
}

}  // namespace

void synthetic_pair(const std::vector<at::Tensor>& pool, int size, const FlowPretrainOptions& o,
                    std::mt19937_64& rng, at::Tensor& ref, at::Tensor& supp, at::Tensor& flow) {
  const at::Tensor& frame = pool[static_cast<std::size_t>(uniform_int(rng, 0, pool.size() - 1))];
  const int64_t fh = frame.size(1), fw = frame.size(2), s = size;
  const int64_t y0 = uniform_int(rng, 0, std::max<int64_t>(fh - s, 0));
  const int64_t x0 = uniform_int(rng, 0, std::max<int64_t>(fw - s, 0));
  // Flow in pixels: target(p) = A (p - c) + c + t + e(p).
  // Signed squares of uniform numbers: small motions (most of real LR video) are frequent, the
  // largest still occur.
  auto skewed = [&rng](double max) {
    const double u = uniform(rng, -1.0, 1.0);
    return max * u * std::abs(u);
  };
  const double angle = skewed(o.max_rotate) * M_PI / 180.0;
  const double zoom = 1.0 + skewed(o.max_zoom);
  const double tx = skewed(o.max_shift), ty = skewed(o.max_shift);
  const double a = zoom * std::cos(angle), b = -zoom * std::sin(angle);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<float> coarse(2 * 4 * 4);
  const double amp = uniform(rng, 0.0, o.elastic);
  for (auto& v : coarse) v = static_cast<float>(normal(rng) * amp);
  const at::Tensor elastic = at::upsample_bilinear2d(
      at::from_blob(coarse.data(), {1, 2, 4, 4}, at::kFloat).clone(), {s, s}, true)[0];
  const auto opts = frame.options();
  const at::Tensor gx = at::arange(s, opts).view({1, s}).expand({s, s});
  const at::Tensor gy = at::arange(s, opts).view({s, 1}).expand({s, s});
  const double c = (s - 1) / 2.0;
  const at::Tensor dx = (gx - c) * a + (gy - c) * b + c + tx - gx;
  const at::Tensor dy = (gx - c) * (-b) + (gy - c) * a + c + ty - gy;
  flow = at::stack({dx, dy}, 0) + elastic;
  // Sample the frame at (x0, y0) + p + flow(p), border padding outside the frame.
  const at::Tensor sx = (flow[0] + gx + static_cast<double>(x0)) * (2.0 / std::max<int64_t>(fw - 1, 1)) - 1.0;
  const at::Tensor sy = (flow[1] + gy + static_cast<double>(y0)) * (2.0 / std::max<int64_t>(fh - 1, 1)) - 1.0;
  ref = at::grid_sampler(frame.unsqueeze(0), at::stack({sx, sy}, 2).unsqueeze(0), 0, 1, true)[0];
  supp = at::zeros({3, s, s}, opts);
  const int64_t ch = std::min(s, fh), cw = std::min(s, fw);
  supp.narrow(1, 0, ch).narrow(2, 0, cw).copy_(frame.narrow(1, y0, ch).narrow(2, x0, cw));
  const int occluders = static_cast<int>(uniform_int(rng, 0, o.occluders));
  for (int k = 0; k < occluders; ++k) {
    const at::Tensor& src = pool[static_cast<std::size_t>(uniform_int(rng, 0, pool.size() - 1))];
    const int64_t p = std::min<int64_t>(uniform_int(rng, 6, std::max<int64_t>(6, s / 3)),
                                        std::min(src.size(1), src.size(2)));
    const int64_t sy0 = uniform_int(rng, 0, src.size(1) - p), sx0 = uniform_int(rng, 0, src.size(2) - p);
    const at::Tensor patch = src.narrow(1, sy0, p).narrow(2, sx0, p);
    const int64_t py = uniform_int(rng, 0, s - p), px = uniform_int(rng, 0, s - p);
    const int64_t shift = static_cast<int64_t>(o.max_shift);
    const int64_t my = uniform_int(rng, std::max(-shift, -py), std::min(shift, s - p - py));
    const int64_t mx = uniform_int(rng, std::max(-shift, -px), std::min(shift, s - p - px));
    ref.narrow(1, py, p).narrow(2, px, p).copy_(patch);
    supp.narrow(1, py + my, p).narrow(2, px + mx, p).copy_(patch);
    flow[0].narrow(0, py, p).narrow(1, px, p).fill_(static_cast<double>(mx));
    flow[1].narrow(0, py, p).narrow(1, px, p).fill_(static_cast<double>(my));
  }
}

at::Tensor flip_flow(const at::Tensor& flow, int64_t dim, int component) {
  const at::Tensor f = flow.flip({dim});
  return at::cat({component == 0 ? -f.narrow(1, 0, 1) : f.narrow(1, 0, 1),
                  component == 1 ? -f.narrow(1, 1, 1) : f.narrow(1, 1, 1)},
                 1);
}

Model initial_model(const Architecture& arch, uint64_t seed) {
  Model m = random_model(arch, seed, 1.0f / std::sqrt(6.0f));  // bound sqrt(6/fan_in)/sqrt(6)
  for (auto& [name, t] : m.weights) {
    if (t.shape.size() != 4) continue;
    float scale = 1.0f;
    if (name.find(".main.2.") != std::string::npos) scale = 0.1f;  // residual blocks
    if (name.rfind("spynet.", 0) == 0 && name.find(".basic_module.8.") != std::string::npos) scale = 0.1f;
    if (name == "conv_last.weight") scale = 0.0f;
    if (scale == 1.0f) continue;
    auto v = t.to_f32();
    for (auto& x : v) x *= scale;
    t = HostTensor::from_f32(t.shape, v);
  }
  m.provenance_json = json{{"source", "initial"}, {"seed", seed}}.dump();
  return m;
}

FlowReport evaluate_flow(const Model& model, const std::vector<std::vector<Image>>& validation,
                         const FlowPretrainOptions& o) {
  configure_runtime(o.threads);
  return measure_flow(SpyNet(model.weights), validation, o);
}

void pretrain_flow(Model& model, const std::vector<std::vector<Image>>& frames,
                   const std::vector<std::vector<Image>>& validation, const FlowPretrainOptions& o,
                   FlowReport* report, const std::function<void(const FlowProgress&)>& progress) {
  if (o.iters < 0 || o.batch < 1 || o.size < 32)
    throw Error("flow pretraining needs iters >= 0, batch >= 1, size >= 32");
  const auto pool = frame_pool(frames);
  if (pool.empty()) throw Error("flow pretraining: no frames");
  configure_runtime(o.threads);
  SpyNet net(model.weights);
  std::vector<at::Tensor> params;
  for (Conv* c : net.layers()) {
    c->weight.requires_grad_();
    c->bias.requires_grad_();
    params.insert(params.end(), {c->weight, c->bias});
  }
  Adam adam;
  adam.add(params, o.lr);
  AutogradEngine engine(run_arithmetic(o.compute, "") == Compute::Bf16);
  std::vector<std::pair<int, double>> losses;  // (iteration, training EPE)
  const TrainingLoop loop(0, o.iters, 0, 0, "");
  for (int it = 0; it < o.iters; ++it) {
    std::mt19937_64 rng(o.seed * 1000003ull + static_cast<uint64_t>(it));
    FlowBatch b;
    {
      at::NoGradGuard no_grad;
      b = synthetic_batch(pool, o.batch, o.size, o, rng);
    }
    const at::Tensor loss = epe(net.flow(b.ref, b.supp, engine), b.flow);
    loss.backward();
    adam.step(loop.lr_scale(it));
    losses.emplace_back(it + 1, loss.item<double>());
    if (progress) progress({it + 1, o.iters, losses.back().second, loop.rate(it), loop.eta(it)});
  }
  const double seconds = loop.seconds();
  store_convs(model, net.layers());
  if (report) {
    *report = measure_flow(net, validation, o);
    report->losses = std::move(losses);
    report->seconds = seconds;
  }
}

void check_training_data(const std::vector<GtClip>& clips, const TrainOptions& o) {
  if (o.iters < 0 || o.batch < 1 || o.crop < 8 || o.frames < 2)
    throw Error("training needs iters >= 0, batch >= 1, crop >= 8 and frames >= 2");
  if (clips.empty()) throw Error("no training clips");
  for (const auto& c : clips) {
    if (static_cast<int>(c.frames.size()) < o.frames)
      throw Error(c.name + ": " + std::to_string(c.frames.size()) + " frame(s); --frames " +
                  std::to_string(o.frames) + " needs at least that many");
    if (c.frames[0].width / 4 < o.crop || c.frames[0].height / 4 < o.crop)
      throw Error(c.name + ": frames of " + std::to_string(c.frames[0].width) + "x" +
                  std::to_string(c.frames[0].height) + " are too small for LR crops of " +
                  std::to_string(o.crop));
  }
}

double validate(const Model* model, const std::vector<GtClip>& validation, Degradation degradation) {
  if (validation.empty()) return 0;
  std::optional<BasicVSR> net;
  if (model) net.emplace(*model);
  double sum = 0;
  for (const auto& clip : validation) {
    std::vector<Image> lr, gt;
    for (const auto& f : clip.frames) {
      gt.push_back(modcrop(f));
      lr.push_back(degrade_cropped(f, degradation));
    }
    double clip_sum = 0;
    if (net) {
      c10::InferenceMode guard;
      const at::Tensor out = net->forward(images_to_tensor(lr));
      for (std::size_t t = 0; t < gt.size(); ++t)
        clip_sum += psnr(tensor_to_image(out[static_cast<int64_t>(t)]), gt[t]);
    } else {
      for (std::size_t t = 0; t < gt.size(); ++t) clip_sum += psnr(upscale_bicubic(lr[t]), gt[t]);
    }
    sum += clip_sum / static_cast<double>(gt.size());
  }
  return sum / static_cast<double>(validation.size());
}

namespace {
Compute fresh_arithmetic(Compute requested) {
  if (requested != Compute::Auto && requested != Compute::Fp32 && requested != Compute::Bf16)
    throw Error(std::string("training and calibration compute in auto, fp32 or bf16, not ") +
                compute_name(requested));
  return requested == Compute::Bf16 || (requested == Compute::Auto && bf16_faster()) ? Compute::Bf16
                                                                                     : Compute::Fp32;
}
}  // namespace

Compute run_arithmetic(Compute requested, const std::string& checkpoint) {
  if (checkpoint.empty()) return fresh_arithmetic(requested);
  return run_arithmetic(requested, load_model(checkpoint), checkpoint);
}

Compute run_arithmetic(Compute requested, const Model& checkpoint, const std::string& name) {
  const Compute fresh = fresh_arithmetic(requested);
  std::string recorded;
  for (const char* key : {kStateKey, kCalibrationStateKey}) {
    const auto it = checkpoint.extra_metadata.find(key);
    if (it == checkpoint.extra_metadata.end()) continue;
    const auto state = json::parse(it->second, nullptr, false);
    if (!state.is_discarded() && state.contains("compute") && state["compute"].is_string())
      recorded = state["compute"].get<std::string>();
  }
  if (recorded.empty()) return fresh;
  const Compute kept = recorded == "bf16" ? Compute::Bf16 : Compute::Fp32;
  if (requested != Compute::Auto && requested != kept)
    throw Error(name + ": this run computes in " + recorded + "; resume it with --compute " + recorded +
                " or auto (or start it again to change the arithmetic)");
  return kept;
}

std::string training_options_json(const TrainOptions& o) {
  return json{{"iterations", o.iters},
              {"batch", o.batch},
              {"crop", o.crop},
              {"frames", o.frames},
              {"lr", o.lr},
              {"flow_lr_scale", o.flow_lr_scale},
              {"flow_freeze", o.flow_freeze},
              {"degradation", degradation_name(o.degradation)},
              {"seed", o.seed}}
      .dump();
}

namespace {

// A digest of the training clips (their frames' sizes and samples, in order).
std::string clips_digest(const std::vector<GtClip>& clips) {
  FramesDigest d;
  d.add_count(clips.size());
  for (const auto& c : clips) d.add(c.frames);
  return d.hex();
}

std::string describe_training_option(const std::string& key, const json& v) {
  if (key == "flow_freeze" && v == -1) return "the default --flow-freeze";
  return option_flag(key, v);
}

// check_resumable with the clips' digest already taken (or null: not compared).
void check_resumable_digest(const TrainOptions& o, const Model& ck, const std::string& name,
                            const std::string* digest) {
  const json was = recorded_run(ck, kStateKey);
  if (was.is_null()) return;
  check_recorded_options(was, json::parse(training_options_json(o)), {}, describe_training_option, name);
  if (digest)
    check_recorded_data(was, "clips", *digest, "training clips", "--clips, --stills and --max-frames", name);
}

}  // namespace

void check_resumable(const TrainOptions& o, const Model& ck, const std::string& name,
                     const std::vector<GtClip>* clips) {
  const std::string digest = clips ? clips_digest(*clips) : "";
  check_resumable_digest(o, ck, name, clips ? &digest : nullptr);
}

Model train(const Model& init, const std::vector<GtClip>& clips, const std::vector<GtClip>& validation,
            const TrainOptions& o, TrainReport* report_out,
            const std::function<void(const TrainProgress&)>& progress,
            const std::function<void(const Validation&)>& on_validation, const std::string& resume) {
  if (init.quantization) throw Error("training needs a full-precision model, not a quantized one");
  check_training_data(clips, o);
  configure_runtime(o.threads);
  TrainReport report;
  Model start_model = init;
  int start = 0;
  const std::string digest = clips_digest(clips);  // one pass over the frames
  if (!resume.empty()) {
    Model ck = load_model(resume);
    if (!ck.extra_metadata.count(kStateKey) || !(ck.arch == init.arch))
      throw Error(resume + ": not a training checkpoint of this model");
    const auto state = json::parse(ck.extra_metadata[kStateKey], nullptr, false);
    if (state.is_discarded() || !state.contains("iteration"))
      throw Error(resume + ": damaged checkpoint state");
    start = state["iteration"].get<int>();
    for (const auto& l : state.value("losses", json::array()))
      report.losses.emplace_back(l[0].get<int>(), l[1].get<double>());
    for (const auto& v : state.value("validations", json::array()))
      report.validations.push_back({v[0].get<int>(), v[1].get<double>(), 0.0});
    start_model.weights = ck.weights;
    report.bf16 = run_arithmetic(o.compute, ck, resume) == Compute::Bf16;
    check_resumable_digest(o, ck, resume, &digest);
  } else {
    report.bf16 = run_arithmetic(o.compute, "") == Compute::Bf16;
  }
  report.start_iteration = start;
  const int freeze = o.flow_freeze >= 0 ? o.flow_freeze : o.iters / 5;

  std::vector<ClipData> data;
  for (const auto& c : clips) data.push_back(prepare(c, o.degradation));
  // While SPyNet is frozen its weights are those training started (or resumed) with, so the
  // cached flows come from the network being trained itself.
  BasicVSR net(start_model);
  const auto convs = net.layers();
  const auto table = network_layers(start_model.arch);
  auto in_spynet = [&](std::size_t id) { return table.at(id).part == LayerPart::SpyNet; };
  std::vector<at::Tensor> main_params, flow_params;
  for (std::size_t id = 0; id < convs.size(); ++id) {
    auto& dst = in_spynet(id) ? flow_params : main_params;
    if (!in_spynet(id)) {
      convs[id]->weight.requires_grad_();
      convs[id]->bias.requires_grad_();
    }
    dst.insert(dst.end(), {convs[id]->weight, convs[id]->bias});
  }
  Adam adam;
  adam.beta2 = 0.99;
  adam.add(main_params, o.lr);
  adam.add(flow_params, o.lr * o.flow_lr_scale);
  if (!resume.empty()) adam.restore(read_safetensors(resume + ".adam"));
  AutogradEngine engine(report.bf16);
  if (!validation.empty()) report.bicubic_psnr = validate(nullptr, validation, o.degradation);
  for (auto& v : report.validations) v.bicubic = report.bicubic_psnr;

  json run = json::parse(training_options_json(o));
  run["clips"] = digest;
  auto state_model = [&](int iteration) {
    Model m = export_model(init, net);
    json losses = json::array(), vals = json::array();
    for (const auto& [i, l] : report.losses) losses.push_back({i, l});
    for (const auto& v : report.validations) vals.push_back({v.iteration, v.psnr});
    const json state{{"iteration", iteration},
                     {"losses", losses},
                     {"validations", vals},
                     {"compute", report.bf16 ? "bf16" : "fp32"},
                     {"run", run}};
    m.extra_metadata[kStateKey] = state.dump();
    return m;
  };
  auto run_validation = [&](int iteration) {
    if (validation.empty()) return;
    const Model m = export_model(init, net);
    const Validation v{iteration, validate(&m, validation, o.degradation), report.bicubic_psnr};
    report.validations.push_back(v);
    if (on_validation) on_validation(v);
  };

  const TrainingLoop loop(start, o.iters, o.stop_at, o.checkpoint_every, o.checkpoint);
  bool flow_frozen = true;
  for (int it = start; it < o.iters; ++it) {
    const bool frozen = it < freeze;
    if (frozen != flow_frozen || it == start) {
      for (std::size_t id = 0; id < convs.size(); ++id) {
        if (!in_spynet(id)) continue;
        convs[id]->weight.requires_grad_(!frozen);
        convs[id]->bias.requires_grad_(!frozen);
      }
      flow_frozen = frozen;
    }
    std::mt19937_64 rng(o.seed * 1000003ull + static_cast<uint64_t>(it) * 7919ull);
    std::vector<at::Tensor> lr, hr, fwd, bwd;
    for (int b = 0; b < o.batch; ++b) {
      Sample s = draw(data, o, net, frozen, rng);
      lr.push_back(s.lr);
      hr.push_back(s.hr);
      if (frozen) {
        fwd.push_back(s.fwd);
        bwd.push_back(s.bwd);
      }
    }
    const at::Tensor lr_b = at::stack(lr), hr_b = at::stack(hr);
    at::Tensor flows_f, flows_b;
    if (frozen) {
      flows_f = at::stack(fwd);
      flows_b = at::stack(bwd);
    } else {
      std::tie(flows_f, flows_b) = net.compute_flows_batch(lr_b, engine);
    }
    const at::Tensor out = net.forward_batch(lr_b, flows_f, flows_b, engine);
    const at::Tensor loss = at::sqrt((out - hr_b).square() + kCharbonnierEps * kCharbonnierEps).mean();
    loss.backward();
    adam.step(loop.lr_scale(it));
    report.losses.emplace_back(it + 1, loss.item<double>());
    if (progress)
      progress({it + 1, o.iters, report.losses.back().second, loop.rate(it), loop.eta(it), frozen});
    if (o.val_every > 0 && (it + 1) % o.val_every == 0 && it + 1 < o.iters) run_validation(it + 1);
    if (loop.finish(it, adam, [&] { return state_model(it + 1); })) {
      report.stopped = true;
      report.seconds = loop.seconds();
      if (report_out) *report_out = report;
      return Model();
    }
  }
  report.seconds = loop.seconds();
  run_validation(o.iters);
  if (report_out) *report_out = report;
  return export_model(init, net);
}

}  // namespace qbasicvsr
