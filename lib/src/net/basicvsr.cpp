#include "net/basicvsr.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "qbasicvsr/error.h"
#include "qbasicvsr/profile.h"

namespace qbasicvsr {

namespace {

// Frame pairs per SPyNet batch: enough to fill the cores, few enough to bound memory.
constexpr int64_t kFlowBatch = 4;
// Reconstruction runs in bands of at most this many LR rows: convolutions over smaller
// high-resolution tensors run ~1.8x faster here (cache and page reuse) and memory stays bounded
// for big frames; wide frames get fewer rows so that one 64-channel HR band stays near
// kBandBytes.
constexpr int64_t kBandRows = 64;
constexpr int64_t kBandBytes = 96ll << 20;
// LR rows of context a band needs so that its centre rows are exact: upconv1 (1 row), upconv2
// at 2x (1/2 row), conv_hr and conv_last at 4x (1/4 row each).
constexpr int64_t kBandHalo = 2;

// The hidden feature warped along the flow, timed as its own stage.
at::Tensor warp(const at::Tensor& feat, const at::Tensor& flow) {
  const profile::Scope scope(profile::Stage::Warp);
  return flow_warp(feat, flow);
}

}  // namespace

BasicVSR::Trunk BasicVSR::make_trunk(const Model& model, int first_id) {
  const auto table = network_layers(model.arch);
  auto conv = [&](int id) { return Conv::from_weights(model.weights, table.at(id).name); };
  Trunk t;
  t.first_id = first_id;
  t.input = conv(first_id);
  for (int i = 0; i < model.arch.blocks; ++i)
    t.blocks.emplace_back(conv(first_id + 1 + 2 * i), conv(first_id + 2 + 2 * i));
  return t;
}

Conv BasicVSR::reconstruction_conv(const Model& model, int k) {
  return Conv::from_weights(model.weights,
                            network_layers(model.arch).at(layer_ids(model.arch).fusion + k).name);
}

BasicVSR::BasicVSR(const Model& model)
    : arch_(model.arch),
      spynet_(model.weights),
      backward_(make_trunk(model, layer_ids(model.arch).backward_trunk)),
      forward_(make_trunk(model, layer_ids(model.arch).forward_trunk)),
      fusion_id_(layer_ids(model.arch).fusion),
      fusion_(reconstruction_conv(model, 0)),
      upconv1_(reconstruction_conv(model, 1)),
      upconv2_(reconstruction_conv(model, 2)),
      conv_hr_(reconstruction_conv(model, 3)),
      conv_last_(reconstruction_conv(model, 4)) {
  model.validate();
}

at::Tensor BasicVSR::Trunk::run(const at::Tensor& lr_frame, const at::Tensor& feat, Engine& engine) const {
  const profile::Scope scope(profile::Stage::Trunk);
  at::Tensor x;
  if (engine.quantizes(first_id)) {
    // The frame's columns in float, the features' through the engine, summed before the
    // activation (LayerInfo::frame_channels). Views of the weight: training reaches it.
    const int64_t fc = kFrameChannels;
    if (lr_frame.size(1) != fc)
      throw Error("a trunk's frame has " + std::to_string(lr_frame.size(1)) + " channels");
    x = at::conv2d(lr_frame, input.weight.narrow(1, 0, fc).to(lr_frame.scalar_type()), {}, {1, 1},
                   {input.padding, input.padding})
            .contiguous(at::MemoryFormat::ChannelsLast);
    const Conv features{input.weight.narrow(1, fc, input.weight.size(1) - fc), input.bias, input.padding};
    x = finish_differentiable(engine.conv(first_id, features, feat, PostOp::None, -1, &x).values(),
                              PostOp::LeakyReLU, nullptr)
            .values();
  } else {
    x = engine
            .conv(first_id, input, at::cat({lr_frame, feat}, 1).contiguous(at::MemoryFormat::ChannelsLast),
                  PostOp::LeakyReLU)
            .values();
  }
  int id = first_id + 1;
  for (const auto& [conv1, conv2] : blocks) {
    const Act r = engine.conv(id, conv1, x, PostOp::ReLU, id + 1);
    engine.conv(id + 1, conv2, r, PostOp::None, -1, &x);
    id += 2;
  }
  return x;
}

std::pair<at::Tensor, at::Tensor> BasicVSR::compute_flows(const at::Tensor& lr) const {
  c10::InferenceMode guard;
  Fp32Engine engine;
  return compute_flows(lr, engine);
}

std::pair<at::Tensor, at::Tensor> BasicVSR::compute_flows(const at::Tensor& lr, Engine& engine) const {
  const profile::Scope scope(profile::Stage::SpyNet);
  const int64_t t = lr.size(0);
  if (t < 2)
    return {lr.new_empty({0, 2, lr.size(2), lr.size(3)}), lr.new_empty({0, 2, lr.size(2), lr.size(3)})};
  const auto a = lr.narrow(0, 0, t - 1);  // x_i
  const auto b = lr.narrow(0, 1, t - 1);  // x_{i+1}
  std::vector<at::Tensor> fwd, bwd;
  for (int64_t s = 0; s < t - 1; s += kFlowBatch) {
    const int64_t n = std::min(kFlowBatch, t - 1 - s);
    const auto ai = a.narrow(0, s, n), bi = b.narrow(0, s, n);
    // One SPyNet batch for both directions keeps the convolutions wide.
    const auto flows = spynet_.flow(at::cat({bi, ai}, 0), at::cat({ai, bi}, 0), engine);
    fwd.push_back(flows.narrow(0, 0, n));
    bwd.push_back(flows.narrow(0, n, n));
  }
  return {at::cat(fwd, 0), at::cat(bwd, 0)};
}

at::Tensor BasicVSR::reconstruct_band(const at::Tensor& backward_feat, const at::Tensor& forward_feat,
                                      Engine& engine) const {
  const int id = fusion_id_;
  // LeakyReLU commutes with the pixel shuffle, so it is applied inside each conv.
  Act x = engine.conv(id, fusion_,
                      at::cat({backward_feat, forward_feat}, 1).contiguous(at::MemoryFormat::ChannelsLast),
                      PostOp::LeakyReLU, id + 1);
  x = pixel_shuffle2(engine.conv(id + 1, upconv1_, x, PostOp::LeakyReLU, id + 2));
  x = pixel_shuffle2(engine.conv(id + 2, upconv2_, x, PostOp::LeakyReLU, id + 3));
  x = engine.conv(id + 3, conv_hr_, x, PostOp::LeakyReLU, id + 4);
  const profile::Scope scope(profile::Stage::ConvLast);
  return engine.conv(id + 4, conv_last_, x, PostOp::None).values();
}

at::Tensor BasicVSR::reconstruct(const at::Tensor& lr_frame, const at::Tensor& backward_feat,
                                 const at::Tensor& forward_feat, Engine& engine) const {
  const profile::Scope scope(profile::Stage::Reconstruction);
  const int64_t h = lr_frame.size(2), w = lr_frame.size(3), s = arch_.scale;
  at::Tensor out = arch_.base_upsample == BaseUpsample::Bilinear
                       ? at::upsample_bilinear2d(lr_frame, {h * s, w * s}, false)
                       : at::upsample_bicubic2d(lr_frame, {h * s, w * s}, false);
  // A 64-channel float tensor at 4x: 4 * 4 * 64 * 4 bytes per LR pixel.
  const int64_t rows = std::clamp<int64_t>(kBandBytes / (w * 4096), 4, kBandRows);
  // One band (training crops, small frames): out of place, so that autograd sees plain ops.
  if (rows >= h) return out + reconstruct_band(backward_feat, forward_feat, engine);
  for (int64_t r0 = 0; r0 < h; r0 += rows) {
    const int64_t r1 = std::min(h, r0 + rows);
    const int64_t a = std::max<int64_t>(0, r0 - kBandHalo), b = std::min(h, r1 + kBandHalo);
    const at::Tensor band =
        reconstruct_band(backward_feat.narrow(2, a, b - a), forward_feat.narrow(2, a, b - a), engine);
    out.narrow(2, r0 * s, (r1 - r0) * s).add_(band.narrow(2, (r0 - a) * s, (r1 - r0) * s));
  }
  return out;
}

void BasicVSR::propagate(const at::Tensor& lr_in, const at::Tensor& flows_forward,
                         const at::Tensor& flows_backward, Engine& engine,
                         const std::function<void(int64_t, const at::Tensor&)>& sink, int64_t first,
                         int64_t last, const FeatureSink& features, const at::Tensor& forward_init) const {
  const at::Tensor lr = lr_in.contiguous();
  const int64_t t = lr.size(0), h = lr.size(2), w = lr.size(3);
  if (last < 0) last = t;
  first = std::clamp<int64_t>(first, 0, t);
  last = std::clamp<int64_t>(last, first, t);
  const bool carried = forward_init.defined();
  if (carried && first < 1) throw Error("a carried forward feature needs the frame before the first output");
  // Frames before `first` only feed the forward branch and frames from `last` on only the
  // backward branch, so neither is reconstructed.
  std::vector<at::Tensor> backward_feats(t);
  const at::Tensor zero =
      at::zeros({1, arch_.channels, h, w}, lr.options()).contiguous(at::MemoryFormat::ChannelsLast);
  if (sink) {
    at::Tensor feat = zero;
    for (int64_t i = t - 1; i >= first; --i) {
      if (i < t - 1) feat = warp(feat, flows_backward.narrow(0, i, 1));
      feat = backward_.run(lr.narrow(0, i, 1), feat, engine);
      if (features && i < last) features(i, 0, feat);
      if (i < last) backward_feats[i] = feat;
    }
  }
  at::Tensor feat = carried ? forward_init : zero;
  for (int64_t i = carried ? first : 0; i < last; ++i) {
    if (i > 0) feat = warp(feat, flows_forward.narrow(0, i - 1, 1));
    feat = forward_.run(lr.narrow(0, i, 1), feat, engine);
    if (i < first) continue;
    if (features) features(i, 1, feat);
    if (!sink) continue;
    const at::Tensor out = reconstruct(lr.narrow(0, i, 1), backward_feats[i], feat, engine);
    backward_feats[i].reset();  // no longer needed: free it before the next frame
    sink(i, out);
  }
}

void BasicVSR::forward(const at::Tensor& lr_in, Engine& engine,
                       const std::function<void(int64_t, const at::Tensor&)>& sink) const {
  const at::Tensor lr = lr_in.contiguous();
  const auto [flows_forward, flows_backward] = compute_flows(lr, engine);
  propagate(lr, flows_forward, flows_backward, engine, sink);
}

at::Tensor BasicVSR::forward(const at::Tensor& lr, Engine& engine) const {
  std::vector<at::Tensor> outs;
  forward(lr, engine, [&](int64_t, const at::Tensor& out) { outs.push_back(out); });
  return at::cat(outs, 0);
}

std::pair<at::Tensor, at::Tensor> BasicVSR::compute_flows_batch(const at::Tensor& lr, Engine& engine) const {
  const int64_t b = lr.size(0), t = lr.size(1), h = lr.size(3), w = lr.size(4);
  const auto a = lr.narrow(1, 0, t - 1).reshape({b * (t - 1), 3, h, w});  // x_i
  const auto n = lr.narrow(1, 1, t - 1).reshape({b * (t - 1), 3, h, w});  // x_{i+1}
  const auto flows = spynet_.flow(at::cat({n, a}, 0), at::cat({a, n}, 0), engine);
  return {flows.narrow(0, 0, b * (t - 1)).reshape({b, t - 1, 2, h, w}),
          flows.narrow(0, b * (t - 1), b * (t - 1)).reshape({b, t - 1, 2, h, w})};
}

at::Tensor BasicVSR::forward_batch(const at::Tensor& lr, const at::Tensor& flows_forward,
                                   const at::Tensor& flows_backward, Engine& engine) const {
  const int64_t b = lr.size(0), t = lr.size(1), h = lr.size(3), w = lr.size(4);
  std::vector<at::Tensor> backward_feats(t), outs(t);
  const at::Tensor zero =
      at::zeros({b, arch_.channels, h, w}, lr.options()).contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor feat = zero;
  for (int64_t i = t - 1; i >= 0; --i) {
    if (i < t - 1) feat = flow_warp(feat, flows_backward.select(1, i));
    feat = backward_.run(lr.select(1, i), feat, engine);
    backward_feats[i] = feat;
  }
  feat = zero;
  for (int64_t i = 0; i < t; ++i) {
    if (i > 0) feat = flow_warp(feat, flows_forward.select(1, i - 1));
    feat = forward_.run(lr.select(1, i), feat, engine);
    outs[i] = reconstruct(lr.select(1, i), backward_feats[i], feat, engine);
  }
  return at::stack(outs, 1);
}

std::vector<Conv*> BasicVSR::layers() {
  std::vector<Conv*> out = spynet_.layers();
  for (Trunk* t : {&backward_, &forward_}) {
    out.push_back(&t->input);
    for (auto& [c1, c2] : t->blocks) {
      out.push_back(&c1);
      out.push_back(&c2);
    }
  }
  for (Conv* c : {&fusion_, &upconv1_, &upconv2_, &conv_hr_, &conv_last_}) out.push_back(c);
  return out;
}

void BasicVSR::to(const at::Device& device) {
  spynet_.to(device);
  for (Conv* c : layers()) {
    c->weight = c->weight.to(device).contiguous(at::MemoryFormat::ChannelsLast);
    if (c->bias.defined()) c->bias = c->bias.to(device);
  }
}

at::Tensor BasicVSR::forward(const at::Tensor& lr) const {
  c10::InferenceMode guard;
  Fp32Engine engine;
  return forward(lr, engine);
}

}  // namespace qbasicvsr
