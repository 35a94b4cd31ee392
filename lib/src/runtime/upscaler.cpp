#include "qbasicvsr/upscaler.h"

#include <chrono>
#include <cmath>
#include <tuple>

#include "adapt/fg_vba.h"
#include "net/basicvsr.h"
#include "net/tensor_image.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/profile.h"
#include "qbasicvsr/runtime.h"
#include "quant/engines.h"
#include "quant/int8_engine.h"
#include "runtime/tiling.h"

namespace qbasicvsr {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "fake") return Precision::Fake;
  if (name == "int8") return Precision::Int8;
  throw Error("unknown precision \"" + name + "\" (expected fp32, fake or int8)");
}

Precision default_precision(const Model& model, const std::string& device) {
  if (!model.quantization) return Precision::FP32;
  return device == "cuda" ? Precision::Fake : Precision::Int8;
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

// The arithmetic of the float convolutions: on a GPU all of them follow float_layers (auto: fp32,
// IEEE); on the CPU only the layers int8 leaves in float do, and fp32 and fake compute in fp32.
FloatMath float_math(const UpscalerOptions& o, bool all_layers) {
  if (o.device == "cuda") {
    if (o.float_layers == Compute::Bf16) return FloatMath::Bf16;
    return o.float_layers == Compute::Fp16 ? FloatMath::Fp16 : FloatMath::Fp32;
  }
  if (all_layers) return FloatMath::Fp32;
  return uses_bf16(o.float_layers) ? FloatMath::Bf16 : FloatMath::Fp32;
}

}  // namespace

struct Upscaler::Impl {
  Impl(const Model& model, const UpscalerOptions& o) : net(model), options(o), fp32(float_math(o, true)) {
    if (o.device == "cuda") {
      device = at::Device(at::kCUDA, 0);
      feature_type = float_type(float_math(o, true));
      net.to(device);
      // fp32 means IEEE fp32, as on the CPU; TF32 would round every product to 10 bits.
      at::globalContext().setAllowTF32CuDNN(false);
      at::globalContext().setAllowTF32CuBLAS(false);
      at::globalContext().setBenchmarkCuDNN(true);
    }
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
      engine = std::make_unique<FakeEngine>(*plan, float_math(options, true));
    else
      engine = std::make_unique<Int8Engine>(*plan, float_math(options, false));
  }

  // Ranges for every quantized layer that has none, from an fp32 pass over part of the clip.
  void observe(const at::Tensor& lr) {
    RangeObserver observer;
    net.forward(centre_crop(lr).to(at::kFloat), observer, [](int64_t, const at::Tensor&) {});
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
    if (!plan) return net.compute_flows(lr, fp32);
    return net.compute_flows(lr, *engine);
  }

  double estimate_bytes(int64_t height, int64_t width, int64_t frames, int64_t emitted, int64_t rows) const;
  int64_t tile_rows(int64_t height, int64_t width, int64_t frames, int64_t emitted) const;
  // Output frames have `depth` bits per sample.
  ClipReport run(const at::Tensor& lr, int64_t first, int64_t last, detail::StreamData* stream, int depth,
                 const std::function<void(std::size_t, Image&&)>& sink);

  // The frames of a pass as [T,3,H,W] on the device, one upload per chunk, in the type the
  // features take there: on a GPU that of the convolutions, so that features stay fp16/bf16
  // between them (SpyNet's pyramid and flows, the warps' sampling grids and the output samples
  // stay float).
  at::Tensor upload(const std::vector<Image>& frames) const {
    return images_to_tensor(frames).to(device, feature_type);
  }

  BasicVSR net;
  UpscalerOptions options;
  at::Device device = at::kCPU;
  at::ScalarType feature_type = at::kFloat;
  std::optional<QuantSettings> settings;
  std::optional<QuantPlan> plan;
  std::unique_ptr<Engine> engine;
  Fp32Engine fp32;  // kept: its convolutions' primitives and reordered weights are reused
  bool observed = false;
};

Upscaler::Upscaler(const Model& model, const UpscalerOptions& options) {
  check_device(options.device);
  if (options.device == "cuda" && options.precision == Precision::Int8)
    throw Error(
        "precision int8 runs on the CPU (oneDNN); on device cuda use fake (simulated quantization, "
        "its convolutions in float-layers fp16/bf16/fp32)");
  if (options.device != "cuda" && options.float_layers == Compute::Fp16)
    throw Error("float layers fp16 need device cuda (on the CPU: fp32, bf16 or auto)");
  if (options.bits != 0 && (options.bits < kMinBits || options.bits > kMaxBits))
    throw Error("bits must be in 2..8");
  if (options.tile_rows < 0 || options.tile_overlap < 0 || options.max_memory_mb < 0)
    throw Error("tile size, tile overlap and memory budget must not be negative");
  configure_runtime(options.threads);
  impl_ = std::make_unique<Impl>(model, options);
}

Upscaler::~Upscaler() = default;

const Architecture& Upscaler::architecture() const { return impl_->net.arch(); }
const UpscalerOptions& Upscaler::options() const { return impl_->options; }
std::optional<QuantSettings> Upscaler::quantization() const { return impl_->settings; }
bool Upscaler::observed_ranges() const { return impl_->observed; }

const char* Upscaler::float_arithmetic() const {
  switch (float_math(impl_->options, impl_->options.precision != Precision::Int8)) {
    case FloatMath::Bf16:
      return "bf16";
    case FloatMath::Fp16:
      return "fp16";
    default:
      return "fp32";
  }
}

VideoComplexity Upscaler::analyze(const std::vector<Image>& frames) {
  c10::InferenceMode guard;
  const at::Tensor lr = impl_->upload(frames);
  if (impl_->settings && !impl_->plan) impl_->observe(lr);
  if (impl_->plan) impl_->plan->set_offset(0);
  const auto [fwd, bwd] = impl_->flows(lr);
  return measure_complexity(lr, fwd, bwd, impl_->settings ? impl_->settings->fg_vba : FgVbaParams());
}

namespace {

// What the memory estimate adds on top of per-pixel costs: the libraries, the model, the int8
// primitives, reconstruction bands. SPyNet's per-pixel cost below was raised to four live
// tensors after peak RSS measured with the official 64/30 weights in int8 through the element
// went over the budget at 1280x720 (docs/PERF.md, "Large frames"); the estimate still
// under-counts what does not shrink with the band height (up to ~15 % there).
constexpr double kFixedBytes = 700.0 * (1 << 20);
// Smallest band of LR rows worth running.
constexpr int64_t kMinTileRows = 16;

using Flows = std::pair<at::Tensor, at::Tensor>;  // forward, backward: [pairs,2,H,W] each

}  // namespace

struct detail::StreamData {
  at::Tensor last_lr;               // [1,3,H,W]: the last frame output
  int64_t band_rows = 0;            // core rows of the spatial bands, fixed for the stream
  std::vector<at::Tensor> forward;  // per band: the forward feature at last_lr
  std::vector<Flows> lookahead;     // per band: flows of the pairs from last_lr on, at the base bits
};

StreamState::StreamState() = default;
StreamState::~StreamState() = default;
StreamState::StreamState(StreamState&&) noexcept = default;
StreamState& StreamState::operator=(StreamState&&) noexcept = default;
bool StreamState::empty() const { return !data_ || !data_->last_lr.defined(); }
void StreamState::reset() { data_.reset(); }

double Upscaler::estimate_bytes(int64_t height, int64_t width, int64_t frames, int64_t emitted,
                                int64_t rows) const {
  return impl_->estimate_bytes(height, width, frames, emitted, rows);
}

int64_t Upscaler::tile_rows(int64_t height, int64_t width, int64_t frames, int64_t emitted) const {
  return impl_->tile_rows(height, width, frames, emitted);
}

double Upscaler::planned_memory_mb(int64_t height, int64_t width, int64_t chunk, int64_t lookahead) const {
  // A carried chunk runs over the previous frame, its own and the lookahead.
  const int64_t frames = chunk + lookahead + 1;
  return estimate_bytes(height, width, frames, chunk, tile_rows(height, width, frames, chunk)) / (1 << 20);
}

double Upscaler::Impl::estimate_bytes(int64_t height, int64_t width, int64_t frames, int64_t emitted,
                                      int64_t rows) const {
  const double c = net.arch().channels;
  if (rows <= 0 || rows > height) rows = height;
  const auto bands =
      make_bands(height, rows, rows < height ? std::min<int64_t>(options.tile_overlap, rows) : 0);
  double widest = 0, all = 0;  // the tallest band's rows and every band's, overlaps included
  for (const Band& b : bands) {
    widest = std::max(widest, static_cast<double>(b.ext1 - b.ext0));
    all += static_cast<double>(b.ext1 - b.ext0);
  }
  // Per LR pixel of the band being run: its kept backward features, SPyNet's widest level for a
  // batch of 8 images (four live 64-channel tensors: three, and the convolutions' scratch), the
  // trunks' transients.
  const double band = static_cast<double>(emitted) * c * 4 + 8 * 64 * 4 * 4 + 12 * c * 4;
  // Per LR pixel of every band at once: the flows of the window's pairs (2 directions x 2
  // channels, computed for all bands before any runs) and the carried forward feature.
  const double held = static_cast<double>(frames) * 16 + c * 4;
  // Per pixel of the frame: the window in float, its frames as bytes where the caller holds them
  // (chunker, element), the output frame being handed over (two 8-bit copies of 16 pixels) and,
  // when tiled, the finished outputs as bytes.
  const double frame = static_cast<double>(frames) * (12 + 8) + 96 +
                       (bands.size() > 1 ? static_cast<double>(emitted) * 48 : 0);
  return kFixedBytes +
         (band * widest + held * all + frame * static_cast<double>(height)) * static_cast<double>(width);
}

int64_t Upscaler::Impl::tile_rows(int64_t height, int64_t width, int64_t frames, int64_t emitted) const {
  const auto& o = options;
  if (o.tile_rows > 0) return std::min<int64_t>(o.tile_rows, height);
  if (o.max_memory_mb <= 0) return height;
  const double budget = static_cast<double>(o.max_memory_mb) * (1 << 20);
  for (int64_t rows = height; rows > kMinTileRows; rows = rows * 3 / 4)
    if (estimate_bytes(height, width, frames, emitted, rows) <= budget) return rows;
  return std::min(height, kMinTileRows);
}

// One bidirectional pass over lr [T,3,H,W] that outputs frames e0..e1-1; with a stream state
// that carries a chunk, frame 0 of lr is the stream's last frame output (e0 = 1).
ClipReport Upscaler::Impl::run(const at::Tensor& lr, int64_t e0, int64_t e1, detail::StreamData* stream,
                               int depth, const std::function<void(std::size_t, Image&&)>& sink) {
  ClipReport report;
  const auto t0 = std::chrono::steady_clock::now();
  Impl& m = *this;
  const int64_t t = lr.size(0), h = lr.size(2), w = lr.size(3), s = m.net.arch().scale;
  if (m.settings && !m.plan) m.observe(lr);
  if (m.plan) m.plan->set_offset(0);
  const FgVbaParams fg = m.settings ? m.settings->fg_vba : FgVbaParams();
  const bool carried = stream && stream->last_lr.defined();

  if (!carried) {
    const int64_t rows = tile_rows(h, w, t, e1 - e0);
    if (stream) stream->band_rows = rows;
  }
  const int64_t core = carried ? stream->band_rows : tile_rows(h, w, t, e1 - e0);
  const int64_t overlap = core < h ? std::min<int64_t>(m.options.tile_overlap, core) : 0;
  const auto bands = make_bands(h, core, overlap);
  report.tiles = static_cast<int>(bands.size());

  // Flows per band at the base bits; a stream's previous chunk already has those of its lookahead.
  std::vector<Flows> flows;
  for (std::size_t i = 0; i < bands.size(); ++i) {
    const at::Tensor x = bands[i].rows(lr);
    const int64_t known = carried ? stream->lookahead[i].first.size(0) : 0;
    if (known == 0) {
      flows.push_back(m.flows(x));
      continue;
    }
    const auto [f, b] = m.flows(x.narrow(0, known, t - known));
    flows.emplace_back(at::cat({stream->lookahead[i].first, f}), at::cat({stream->lookahead[i].second, b}));
  }
  // C_V from the whole frame's detail and the bands' motion.
  report.complexity.S = spatial_detail(lr);
  for (std::size_t i = 0; i < bands.size(); ++i)
    add_motion(report.complexity, flows[i].first, flows[i].second,
               static_cast<double>(bands[i].core1 - bands[i].core0) / static_cast<double>(h));
  finish_complexity(report.complexity, fg);
  if (stream) {
    stream->lookahead.clear();
    for (const Flows& f : flows)
      stream->lookahead.emplace_back(f.first.narrow(0, e1 - 1, t - e1).clone(),
                                     f.second.narrow(0, e1 - 1, t - e1).clone());
  }

  Engine* engine = &m.fp32;
  if (m.plan) {
    engine = m.engine.get();
    report.b_V = m.options.adaptive ? report.complexity.b_V : 0;
    if (report.b_V != 0) {
      m.plan->set_offset(report.b_V);
      // In the full scope SPyNet is quantized too: its flows depend on the bits.
      if (m.plan->settings().scope == Scope::Full)
        for (std::size_t i = 0; i < bands.size(); ++i) flows[i] = m.flows(bands[i].rows(lr));
    }
    report.mean_bits = m.plan->mean_bits();
  }

  // The forward feature of each band at the last frame output, for the stream's next chunk.
  std::vector<at::Tensor> forward(bands.size());
  auto propagate = [&](std::size_t bi, const std::function<void(int64_t, const at::Tensor&)>& out) {
    m.net.propagate(
        bands[bi].rows(lr), flows[bi].first, flows[bi].second, *engine, out, e0, e1,
        [&](int64_t i, int branch, const at::Tensor& f) {
          if (branch == 1 && i == e1 - 1) forward[bi] = f;
        },
        carried ? stream->forward[bi] : at::Tensor());
  };
  if (!sink) {
    for (std::size_t bi = 0; bi < bands.size(); ++bi) propagate(bi, {});
  } else if (bands.size() == 1) {
    propagate(0, [&](int64_t i, const at::Tensor& out) {
      sink(static_cast<std::size_t>(i), tensor_to_image(out, depth));
    });
  } else {
    // Each band's output is final where it alone covers the frame; across a boundary two bands
    // blend linearly over the middle half of their overlap. `pending` holds, per frame, the
    // weighted bottom zone of the previous band. Finished rows are kept as output samples.
    const int64_t half = overlap * s / 2;
    std::vector<at::Tensor> hr(static_cast<std::size_t>(e1 - e0)), pending(hr.size());
    for (auto& f : hr)
      f = at::empty({h * s, w * s, 3}, lr.options().dtype(depth == 16 ? at::kInt : at::kByte));
    for (std::size_t bi = 0; bi < bands.size(); ++bi) {
      const Band& b = bands[bi];
      const bool top = bi > 0, bottom = bi + 1 < bands.size();
      const int64_t y_top = b.core0 * s, y_bot = b.core1 * s, y_ext = b.ext0 * s;
      const int64_t lo = top ? y_top - half : y_top;     // first row this band writes
      const int64_t hi = bottom ? y_bot + half : y_bot;  // one past the last
      propagate(bi, [&](int64_t i, const at::Tensor& out) {
        const std::size_t k = static_cast<std::size_t>(i - e0);
        at::Tensor rows = out.select(0, 0).narrow(1, lo - y_ext, hi - lo);
        const at::Tensor weight =
            band_weights(lo, hi - lo, top ? y_top : -1, bottom ? y_bot : -1, half, lr.device());
        at::Tensor contrib = rows * weight.view({1, -1, 1});
        if (top) contrib.narrow(1, 0, 2 * half).add_(pending[k]);
        const int64_t done = bottom ? hi - lo - 2 * half : hi - lo;
        hr[k].narrow(0, lo, done).copy_(to_hwc_samples(contrib.narrow(1, 0, done), depth));
        if (bottom) pending[k] = contrib.narrow(1, done, 2 * half).clone();
      });
    }
    for (std::size_t k = 0; k < hr.size(); ++k) {
      sink(static_cast<std::size_t>(e0) + k, hwc_samples_to_image(hr[k], depth));
      hr[k].reset();
    }
  }
  if (stream) {
    stream->forward = std::move(forward);
    stream->last_lr = lr.narrow(0, e1 - 1, 1).clone();
  }
  report.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

ClipReport Upscaler::upscale(const std::vector<Image>& frames,
                             const std::function<void(std::size_t, Image&&)>& sink, std::size_t first,
                             std::size_t count) {
  if (frames.empty()) return {};
  c10::InferenceMode guard;
  const profile::Scope scope(profile::Stage::Other);
  const at::Tensor lr = impl_->upload(frames);
  const int64_t t = lr.size(0);
  const int64_t e0 = std::min<int64_t>(static_cast<int64_t>(first), t);
  const int64_t e1 = count > static_cast<std::size_t>(t - e0) ? t : e0 + static_cast<int64_t>(count);
  return impl_->run(lr, e0, e1, nullptr, frames[0].depth, sink);
}

ClipReport Upscaler::upscale_chunk(const std::vector<Image>& frames, std::size_t count, StreamState& state,
                                   const std::function<void(std::size_t, Image&&)>& sink) {
  if (count == 0 || count > frames.size()) throw Error("a chunk outputs between 1 and all of its frames");
  c10::InferenceMode guard;
  const profile::Scope scope(profile::Stage::Other);
  at::Tensor lr = impl_->upload(frames);
  if (!state.data_) state.data_ = std::make_unique<detail::StreamData>();
  detail::StreamData& st = *state.data_;
  const int64_t n = static_cast<int64_t>(count);
  const int depth = frames[0].depth;
  if (!st.last_lr.defined()) return impl_->run(lr, 0, n, &st, depth, sink);
  if (st.last_lr.size(2) != lr.size(2) || st.last_lr.size(3) != lr.size(3))
    throw Error("the frame size changed from " + std::to_string(st.last_lr.size(3)) + "x" +
                std::to_string(st.last_lr.size(2)) + " to " + std::to_string(lr.size(3)) + "x" +
                std::to_string(lr.size(2)) + " within a stream");
  lr = at::cat({st.last_lr, lr});
  if (!sink) return impl_->run(lr, 1, n + 1, &st, depth, {});
  return impl_->run(lr, 1, n + 1, &st, depth, [&](std::size_t i, Image&& f) { sink(i - 1, std::move(f)); });
}

}  // namespace qbasicvsr
