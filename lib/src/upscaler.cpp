#include "qbasicvsr/upscaler.h"

#include <chrono>
#include <cmath>
#include <tuple>

#include "basicvsr.h"
#include "fg_vba.h"
#include "int8_engine.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/runtime.h"
#include "tensor_image.h"

namespace qbasicvsr {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "fake") return Precision::Fake;
  if (name == "int8") return Precision::Int8;
  throw Error("unknown precision \"" + name + "\" (expected fp32, fake or int8)");
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32:
      return "fp32";
    case Precision::Fake:
      return "fake";
    default:
      return "int8";
  }
}

namespace {

// The observer pass for models without calibrated ranges: a centre crop of the first frames,
// enough for stable percentiles at a fraction of a clip's cost.
constexpr int64_t kObserveFrames = 4;
constexpr int64_t kObserveSide = 96;
// Percentiles of the observed inputs taken as [l, u]: robust to a few outliers.
constexpr double kObserveLo = 0.01, kObserveHi = 99.99;

at::Tensor centre_crop(const at::Tensor& lr) {
  const int64_t t = std::min(lr.size(0), kObserveFrames);
  const int64_t h = std::min(lr.size(2), kObserveSide), w = std::min(lr.size(3), kObserveSide);
  return lr.narrow(0, 0, t)
      .narrow(2, (lr.size(2) - h) / 2, h)
      .narrow(3, (lr.size(3) - w) / 2, w)
      .contiguous();
}

}  // namespace

struct Upscaler::Impl {
  Impl(const Model& model, const UpscalerOptions& o) : net(model), options(o) {
    if (o.precision == Precision::FP32) return;
    QuantSettings q = model.quantization.value_or(QuantSettings());
    if (o.bits != 0) q.b_base = o.bits;
    if (o.scope) {
      if (model.quantization && *o.scope != model.quantization->scope)
        throw Error(std::string("the model is calibrated for the ") + scope_name(model.quantization->scope) +
                    " scope; it cannot run in the " + scope_name(*o.scope) + " scope");
      q.scope = *o.scope;
    }
    q.validate(model.arch);
    settings = q;
    if (q.has_ranges(model.arch)) make_plan();
  }

  void make_plan() {
    plan.emplace(net.arch(), *settings);
    if (options.precision == Precision::Fake)
      engine = std::make_unique<FakeEngine>(*plan);
    else
      engine = std::make_unique<Int8Engine>(*plan);
  }

  // Ranges for every quantized layer that has none, from an fp32 pass over part of the clip.
  void observe(const at::Tensor& lr) {
    RangeObserver observer;
    net.forward(centre_crop(lr), observer, [](int64_t, const at::Tensor&) {});
    const auto layers = conv_layers(net.arch());
    for (const auto& [id, range] : observer.ranges(kObserveLo, kObserveHi)) {
      LayerQuant& lq = settings->layers[layers[id].name];
      if (lq.has_range) continue;
      lq.has_range = true;
      lq.l = range.first;
      lq.u = std::max(range.second, range.first + 1e-6f);
    }
    observed = true;
    make_plan();
  }

  std::pair<at::Tensor, at::Tensor> flows(const at::Tensor& lr) {
    if (!plan) return net.compute_flows(lr);
    return net.compute_flows(lr, *engine);
  }

  BasicVSR net;
  UpscalerOptions options;
  std::optional<QuantSettings> settings;
  std::optional<QuantPlan> plan;
  std::unique_ptr<Engine> engine;
  bool observed = false;
};

Upscaler::Upscaler(const Model& model, const UpscalerOptions& options) {
  if (options.device != "cpu")
    throw Error("device \"" + options.device + "\" is not available in this build (only cpu)");
  if (options.bits != 0 && (options.bits < kMinBits || options.bits > kMaxBits))
    throw Error("bits must be in 2..8");
  configure_runtime(options.threads);
  impl_ = std::make_unique<Impl>(model, options);
}

Upscaler::~Upscaler() = default;

const Architecture& Upscaler::architecture() const { return impl_->net.arch(); }
const UpscalerOptions& Upscaler::options() const { return impl_->options; }
std::optional<QuantSettings> Upscaler::quantization() const { return impl_->settings; }
bool Upscaler::observed_ranges() const { return impl_->observed; }

VideoComplexity Upscaler::analyze(const std::vector<Image>& frames) {
  c10::InferenceMode guard;
  const at::Tensor lr = images_to_tensor(frames);
  if (impl_->settings && !impl_->plan) impl_->observe(lr);
  if (impl_->plan) impl_->plan->set_offset(0);
  const auto [fwd, bwd] = impl_->flows(lr);
  return measure_complexity(lr, fwd, bwd, impl_->settings ? impl_->settings->fg_vba : FgVbaParams());
}

ClipReport Upscaler::upscale(const std::vector<Image>& frames,
                             const std::function<void(std::size_t, Image&&)>& sink) {
  ClipReport report;
  if (frames.empty()) return report;
  const auto t0 = std::chrono::steady_clock::now();
  c10::InferenceMode guard;
  const at::Tensor lr = images_to_tensor(frames);
  Impl& m = *impl_;
  if (m.settings && !m.plan) m.observe(lr);
  if (m.plan) m.plan->set_offset(0);
  auto [fwd, bwd] = m.flows(lr);
  report.complexity = measure_complexity(lr, fwd, bwd, m.settings ? m.settings->fg_vba : FgVbaParams());
  auto emit = [&](int64_t i, const at::Tensor& out) {
    sink(static_cast<std::size_t>(i), tensor_to_image(out));
  };
  if (!m.plan) {
    Fp32Engine fp32;
    m.net.propagate(lr, fwd, bwd, fp32, emit);
  } else {
    report.b_V = m.options.adaptive ? report.complexity.b_V : 0;
    if (report.b_V != 0) {
      m.plan->set_offset(report.b_V);
      // In the full scope SPyNet is quantized too: its flows depend on the bits.
      if (m.plan->settings().scope == Scope::Full) std::tie(fwd, bwd) = m.flows(lr);
    }
    report.mean_bits = m.plan->mean_bits();
    m.net.propagate(lr, fwd, bwd, *m.engine, emit);
  }
  report.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace qbasicvsr
