// Quantizers, fake vs int8 execution, FG-VBA measurements and TS-LBA statistics.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "adapt/fg_vba.h"
#include "adapt/ts_lba.h"
#include "net/basicvsr.h"
#include "net/engine.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/profile.h"
#include "qbasicvsr/runtime.h"
#include "qbasicvsr/upscaler.h"
#include "quant/engines.h"
#include "quant/equalize.h"
#include "quant/int8_engine.h"
#include "quant/quantizer.h"
#include "test_util.h"

using namespace qbasicvsr;

namespace {

at::Tensor vec(std::vector<float> v) { return at::tensor(v); }

std::vector<float> values(const at::Tensor& t) {
  const at::Tensor c = t.contiguous().to(at::kFloat);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

double psnr(const at::Tensor& a, const at::Tensor& b) {
  const double mse = (a.to(at::kDouble) - b.to(at::kDouble)).square().mean().item<double>();
  return mse == 0 ? 1e9 : 10.0 * std::log10(1.0 / mse);
}

class QuantTest : public ::testing::Test {
 protected:
  void SetUp() override {
    configure_runtime(2);
    at::manual_seed(7);
  }
};

// C=16, N=2, hr 16: big enough for every path, small enough for a unit test.
Architecture small_arch() {
  Architecture a;
  a.channels = 16;
  a.blocks = 2;
  a.hr_channels = 16;
  return a;
}

// A model of C=16, N=2 with every layer's range observed on `lr`.
QuantSettings observed_settings(const BasicVSR& net, const at::Tensor& lr, Scope scope, int bits) {
  RangeObserver obs;
  net.forward(lr, obs);
  QuantSettings q;
  q.b_base = bits;
  q.scope = scope;
  const auto layers = conv_layers(net.arch());
  for (const auto& [id, r] : obs.ranges(0.01, 99.99)) {
    auto& lq = q.layers[layers[id].name];
    lq.has_range = true;
    lq.l = r.first;
    lq.u = std::max(r.second, r.first + 1e-3f);
  }
  return q;
}

}  // namespace

// --- Activation quantizer on hand-computed cases ---------------------------------------------

TEST_F(QuantTest, ActGridNudgesTheZeroPoint) {
  // [-1, 2] at 2 bits: S = 1, zp = round(1) = 1, grid -1, 0, 1, 2.
  ActGrid g = ActGrid::make(-1.0f, 2.0f, 2);
  EXPECT_FLOAT_EQ(g.scale, 1.0f);
  EXPECT_EQ(g.zero_point, 1);
  EXPECT_EQ(g.qmax, 3);
  // [-0.3, 1.2] at 2 bits: S = 0.5, -l/S = 0.6 -> zp 1: the range moves to [-0.5, 1.0].
  g = ActGrid::make(-0.3f, 1.2f, 2);
  EXPECT_FLOAT_EQ(g.scale, 0.5f);
  EXPECT_EQ(g.zero_point, 1);
  EXPECT_FLOAT_EQ(g.lo(), -0.5f);
  EXPECT_FLOAT_EQ(g.hi(), 1.0f);
  // A range above zero keeps zero in the grid: zp clamps to 0, the range becomes [0, u - l].
  g = ActGrid::make(0.5f, 2.0f, 8);
  EXPECT_EQ(g.zero_point, 0);
  EXPECT_FLOAT_EQ(g.lo(), 0.0f);
  // And below zero: zp clamps to qmax.
  g = ActGrid::make(-3.0f, -1.0f, 8);
  EXPECT_EQ(g.zero_point, 255);
  EXPECT_FLOAT_EQ(g.hi(), 0.0f);
  // 8 bits over [0, 2.55]: S = 0.01, zp = 0.
  g = ActGrid::make(0.0f, 2.55f, 8);
  EXPECT_NEAR(g.scale, 0.01f, 1e-9f);
  EXPECT_EQ(g.zero_point, 0);
}

TEST_F(QuantTest, FakeQuantActRoundsHalfToEvenAndClamps) {
  const ActGrid g = ActGrid::make(-1.0f, 2.0f, 2);  // grid -1, 0, 1, 2
  const auto out = values(fake_quant_act(vec({-5.0f, -1.0f, -0.5f, 0.49f, 0.5f, 1.5f, 2.5f, 9.0f}), g));
  const std::vector<float> expected{-1.0f, -1.0f, -0.0f, 0.0f, 0.0f, 2.0f, 2.0f, 2.0f};
  ASSERT_EQ(out.size(), expected.size());
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_FLOAT_EQ(out[i], expected[i]) << i;
  // The scalar reference gives the same.
  EXPECT_FLOAT_EQ(g.quantize(0.5f), 0.0f);
  EXPECT_FLOAT_EQ(g.quantize(1.5f), 2.0f);
  EXPECT_FLOAT_EQ(g.quantize(-7.0f), -1.0f);
}

TEST_F(QuantTest, FakeQuantAct8BitsIsFineAndExactOnGrid) {
  const ActGrid g = ActGrid::make(0.0f, 2.55f, 8);
  const at::Tensor grid = at::arange(256, at::kFloat) * g.scale;
  EXPECT_EQ(at::equal(fake_quant_act(grid, g), grid), true);
  EXPECT_FLOAT_EQ(values(fake_quant_act(vec({3.0f}), g))[0], 255 * g.scale);
  EXPECT_FLOAT_EQ(values(fake_quant_act(vec({-1.0f}), g))[0], 0.0f);
}

TEST_F(QuantTest, QuantizeCodesMatchesFakeQuant) {
  for (int bits : {2, 4, 6, 8}) {
    const ActGrid g = ActGrid::make(-0.7f, 1.9f, bits);
    const at::Tensor x = (at::rand({2, 5, 7, 9}) * 4.0 - 1.5).contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor codes = quantize_codes(x, g);
    Act a;
    a.t = codes;
    a.codes = true;
    a.grid = g;
    EXPECT_TRUE(at::equal(a.values(), fake_quant_act(x, g))) << bits;
    EXPECT_LE(codes.max().item<int>(), g.qmax);
  }
  // Ties with an odd zero point, 32 of them (the vector loop, not only its scalar tail): [-1, 2] at
  // 2 bits has S = 1, zp = 1; x / S = -0.5, 0.5, 1.5 round half to even to -0, 0, 2: codes 1, 1, 3
  // (rounding x / S + zp instead would give 0, 2, 2).
  const ActGrid g = ActGrid::make(-1.0f, 2.0f, 2);
  const at::Tensor ties = vec({-0.5f, 0.5f, 1.5f, 0.5f}).repeat({8}).view({1, 32, 1, 1});
  EXPECT_EQ(values(quantize_codes(ties, g).to(at::kFloat)),
            values(vec({1.0f, 1.0f, 3.0f, 1.0f}).repeat({8})));
}

// --- Weight quantizer ------------------------------------------------------------------------

TEST_F(QuantTest, WeightsUseTheRestrictedSymmetricRange) {
  // Two output channels; clip = max |w|: channel 0 u = 1.4, channel 1 u = 0.3.
  const at::Tensor w = at::tensor({1.4f, -0.7f, 0.35f, -1.4f, 0.3f, 0.1f, -0.05f, 0.0f}).view({2, 4, 1, 1});
  const at::Tensor clip = weight_clip_values(w, {});
  EXPECT_EQ(values(clip), (std::vector<float>{1.4f, 0.3f}));
  // 2 bits: one level each side, S = u: codes in {-1, 0, 1}.
  auto q = values(fake_quant_weight(w, clip, 2));
  const std::vector<float> expected2{1.4f, -0.0f, 0.0f, -1.4f, 0.3f, 0.0f, -0.0f, 0.0f};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(q[i], expected2[i]) << i;
  // 3 bits: S = u / 3; 0.7 / (1.4 / 3) = 1.5 -> ties to even: 2; 0.35 / (1.4/3) = 0.75 -> 1.
  q = values(fake_quant_weight(w, clip, 3));
  EXPECT_FLOAT_EQ(q[1], -2.0f * 1.4f / 3.0f);
  EXPECT_FLOAT_EQ(q[2], 1.4f / 3.0f);
  // 8 bits: S = u / 127 and the largest weight is exact.
  q = values(fake_quant_weight(w, clip, 8));
  EXPECT_FLOAT_EQ(q[0], 1.4f);
  EXPECT_NEAR(q[5], std::nearbyint(0.1f / (0.3f / 127.0f)) * 0.3f / 127.0f, 1e-7f);
  // A clip below max |w| clamps to +-clip.
  q = values(fake_quant_weight(w, vec({0.7f, 0.3f}), 8));
  EXPECT_FLOAT_EQ(q[0], 0.7f);
  EXPECT_FLOAT_EQ(q[3], -0.7f);
  EXPECT_EQ(weight_qmax(2), 1);
  EXPECT_EQ(weight_qmax(8), 127);
}

// --- Straight-through gradients --------------------------------------------------------------

TEST_F(QuantTest, SteActivationGradients) {
  // [l, u] = [-1, 2] at 2 bits: S = 1, zp = 1; x inside, below and above the range.
  const at::Tensor l = at::tensor(-1.0f).requires_grad_(), u = at::tensor(2.0f).requires_grad_();
  const at::Tensor x = at::tensor({0.3f, -3.0f, 5.0f}).requires_grad_();
  const at::Tensor y = ste_quant_act(x, l, u, 2);
  EXPECT_EQ(values(y.detach()), (std::vector<float>{0.0f, -1.0f, 2.0f}));
  y.sum().backward();
  // d/dx: 1 inside, 0 where clamped.
  EXPECT_EQ(values(x.grad()), (std::vector<float>{1.0f, 0.0f, 0.0f}));
  // y = round(x_c / S) * S with S = (u - l) / 3 and bounds -zp*S, (3 - zp)*S:
  //  inside: d/dS (round(x/S)*S) = round(x/S) - x/S = 0 - 0.3 = -0.3;
  //  below: y = -zp*S -> dy/dS = -1;  above: y = (3 - zp)*S -> dy/dS = 2.
  // dS/du = 1/3, dS/dl = -1/3: du = (-0.3 - 1 + 2) / 3, dl = -du.
  EXPECT_NEAR(u.grad().item<float>(), 0.7f / 3.0f, 1e-6f);
  EXPECT_NEAR(l.grad().item<float>(), -0.7f / 3.0f, 1e-6f);
}

TEST_F(QuantTest, SteWeightGradients) {
  const at::Tensor w = at::tensor({0.5f, -2.0f}).view({1, 2, 1, 1}).requires_grad_();
  const at::Tensor clip = at::tensor({1.0f}).requires_grad_();
  // 3 bits: S = clip / 3; 0.5 -> round(1.5) = 2 -> 2/3; -2 clamps to -1.
  const at::Tensor y = ste_quant_weight(w, clip, 3);
  EXPECT_NEAR(values(y.detach())[0], 2.0f / 3.0f, 1e-6f);
  EXPECT_NEAR(values(y.detach())[1], -1.0f, 1e-6f);
  y.sum().backward();
  EXPECT_EQ(values(w.grad()), (std::vector<float>{1.0f, 0.0f}));
  // d/dclip: inside (round(w/S) - w/S) / 3 = (2 - 1.5) / 3; clamped low: -1.
  EXPECT_NEAR(clip.grad().item<float>(), 0.5f / 3.0f - 1.0f, 1e-6f);
}

// --- Fake vs int8 execution ------------------------------------------------------------------

// Hand-computed: w = [1, 0.3, 0.38] (one output channel, 1x1), 2 bits (codes -1, 0, 1), input
// moments H = [[3, .5, 0], [.5, 2, .5], [0, .5, 1]], no damping. Clips: max |w| = 1 gives nearest
// q = [1, 0, 0] with error d H d = 2 (.3)^2 + (.38)^2 + 2 (.5)(.3)(.38) = 0.4384, the least of the
// fractions tried (0.8: .38 / .8 < .5 still rounds to 0, and 0.8 moves w0). Columns by decreasing
// diagonal (0, 1, 2): column 0 is exact; column 1 rounds .3 to 0 and its error moves onto column 2
// by H12 / H22 = .5: w2 = .38 + .15 = .53 rounds to 1. So Q = [1, 0, 1] with error
// 2 (.09) + (.62)^2 + 2 (.5)(.3)(-.62) = 0.3784.
TEST_F(QuantTest, HessianRoundingCarriesTheErrorForward) {
  const at::Tensor w = at::tensor(std::vector<double>{1.0, 0.3, 0.38}).view({1, 3, 1, 1});
  const at::Tensor h = at::tensor(std::vector<double>{3, .5, 0, .5, 2, .5, 0, .5, 1}).view({3, 3});
  at::Tensor clip;
  const at::Tensor q = hessian_round_weight(w, h, 2, &clip, /*damp=*/0.0);
  EXPECT_DOUBLE_EQ(clip.item<double>(), 1.0);
  const auto v = values(q);
  EXPECT_FLOAT_EQ(v[0], 1.0f);
  EXPECT_FLOAT_EQ(v[1], 0.0f);
  EXPECT_FLOAT_EQ(v[2], 1.0f);
  EXPECT_NEAR(weighted_weight_error(w, q, h).item<double>(), 0.3784, 1e-12);
  EXPECT_NEAR(weighted_weight_error(w, fake_quant_weight(w, clip, 2), h).item<double>(), 0.4384, 1e-12);
}

// An input that is always zero (a dead ReLU channel) carries no error: it must not pull the clip.
// The case above with a fourth weight, 0.75, on such an input: a clip of 0.75 would round it
// exactly but costs the live columns 0.4684 (Q = [.75, 0, .75]) against 0.4384 at clip 1.
TEST_F(QuantTest, HessianRoundingIgnoresInputsThatNeverVary) {
  const at::Tensor w = at::tensor(std::vector<double>{1.0, 0.3, 0.38, 0.75}).view({1, 4, 1, 1});
  const at::Tensor h =
      at::tensor(std::vector<double>{3, .5, 0, 0, .5, 2, .5, 0, 0, .5, 1, 0, 0, 0, 0, 0}).view({4, 4});
  at::Tensor clip;
  const at::Tensor q = hessian_round_weight(w, h, 2, &clip, /*damp=*/1e-9);
  EXPECT_DOUBLE_EQ(clip.item<double>(), 1.0);
  const auto v = values(q);
  EXPECT_EQ(v, (std::vector<float>{1.0f, 0.0f, 1.0f, 1.0f}));
  EXPECT_NEAR(weighted_weight_error(w, q, h).item<double>(), 0.3784, 1e-9);
}

// On correlated inputs: the result lies on its clips' grid (the engines round it to itself), the
// clips are fractions of max |w|, and the output error is well below nearest rounding's at the
// same clips and at max |w|, and in no channel above it. With uncorrelated inputs nothing is
// carried: nearest at the clips.
TEST_F(QuantTest, HessianRoundingBeatsNearestOnCorrelatedInputs) {
  at::manual_seed(3);
  const at::Tensor w = at::randn({8, 2, 3, 3}) * 0.1;
  const at::Tensor mix = at::randn({18, 18}) + 2.0 * at::eye(18);
  const at::Tensor x = at::mm(at::randn({400, 18}), mix) + 0.5;  // correlated, not centred
  at::Tensor gram;  // accumulated in two parts, as the calibration observes frame by frame
  add_gram(gram, x.narrow(0, 0, 150));
  add_gram(gram, x.narrow(0, 150, 250));
  const at::Tensor h = gram / 400.0;
  EXPECT_TRUE(
      at::allclose(h, at::mm(x.t().to(at::kDouble), x.to(at::kDouble)).to(at::kFloat) / 400.0, 1e-5, 1e-4));
  for (int bits : {3, 4, 6}) {
    at::Tensor clip;
    const at::Tensor q = hessian_round_weight(w, h, bits, &clip);
    EXPECT_TRUE(at::equal(fake_quant_weight(q, clip, bits), q)) << bits;
    const at::Tensor max_abs = w.abs().amax({1, 2, 3});
    EXPECT_TRUE((clip <= max_abs).all().item<bool>() && (clip >= 0.5 * max_abs - 1e-7).all().item<bool>());
    const double rounded = weighted_weight_error(w, q, h).sum().item<double>();
    const double at_clips =
        weighted_weight_error(w, fake_quant_weight(w, clip, bits), h).sum().item<double>();
    const double at_max =
        weighted_weight_error(w, fake_quant_weight(w, max_abs, bits), h).sum().item<double>();
    EXPECT_LT(rounded, 0.8 * at_clips) << bits;
    // No channel ends worse than its nearest rounding at its clip.
    EXPECT_TRUE((weighted_weight_error(w, q, h) <=
                 weighted_weight_error(w, fake_quant_weight(w, clip, bits), h) * (1 + 1e-6) + 1e-12)
                    .all()
                    .item<bool>())
        << bits;
    EXPECT_LE(at_clips, at_max) << bits;
  }
  const at::Tensor diag = at::diag(at::rand({18}) + 0.5);
  at::Tensor clip;
  const at::Tensor q = hessian_round_weight(w, diag, 4, &clip);
  EXPECT_TRUE(at::equal(q, fake_quant_weight(w, clip, 4)));
  EXPECT_THROW(hessian_round_weight(w, at::eye(17), 4, &clip), Error);
}

TEST_F(QuantTest, Int8MatchesFakeOnARandomNetwork) {
  c10::InferenceMode guard;
  const Architecture arch = small_arch();
  // BasicSR's initialisation scale: a chaotic network (scale 1) would amplify the rare
  // one-step rounding differences of float and integer accumulation far beyond real models.
  const BasicVSR net(random_model(arch, 3));
  const at::Tensor lr = at::rand({3, 3, 20, 28});
  for (Scope scope : {Scope::Partial, Scope::Full}) {
    for (int bits : {8, 6, 4}) {
      QuantPlan plan(arch, observed_settings(net, lr, scope, bits));
      FakeEngine fake(plan);
      Int8Engine int8(plan);
      const at::Tensor a = net.forward(lr, fake), b = net.forward(lr, int8);
      EXPECT_GE(psnr(a, b), 60.0) << scope_name(scope) << " W" << bits;
      EXPECT_LT(psnr(a, net.forward(lr)), 200.0) << "quantization changed nothing";
    }
  }
}

// The default float layers (Auto) resolve by bf16_faster(), which never picks bf16 where oneDNN may
// not use it: quant-no-vnni runs this with oneDNN capped at AVX2 on CPUs that may have bf16, where
// an int8 Upscaler with default options must still run (in fp32 float layers).
TEST_F(QuantTest, Int8DefaultFloatLayersRunWhereverAutoResolves) {
  EXPECT_EQ(UpscalerOptions().float_layers, Compute::Auto);
  EXPECT_EQ(uses_bf16(Compute::Auto), bf16_faster());
  EXPECT_TRUE(uses_bf16(Compute::Bf16));
  EXPECT_FALSE(uses_bf16(Compute::Fp32));
  if (!cpu_has_bf16()) {
    EXPECT_FALSE(bf16_faster()) << "bf16 is never picked without the instructions";
  }
  const char* cap = std::getenv("ONEDNN_MAX_CPU_ISA");
  if (cap && std::string(cap) == "AVX2") {
    EXPECT_FALSE(bf16_faster()) << "oneDNN capped at AVX2 has no bf16 convolutions";
  }
  UpscalerOptions o;
  o.precision = Precision::Int8;
  o.bits = 6;
  Upscaler up(random_model(small_arch(), 3), o);
  EXPECT_STREQ(up.float_arithmetic(), bf16_faster() ? "bf16" : "fp32");
  std::vector<Image> frames(3, Image{9, 7, std::vector<uint8_t>(9 * 7 * 3, 90), 8, {}});
  for (std::size_t i = 0; i < frames[1].rgb.size(); ++i) frames[1].rgb[i] = static_cast<uint8_t>(i * 37);
  std::size_t emitted = 0;
  up.upscale(frames, [&](std::size_t, Image&& out) {
    EXPECT_EQ(out.width, 36);
    ++emitted;
  });
  EXPECT_EQ(emitted, 3u);
}

// fp32 that reports itself as quantizing and records the input channels each layer sees.
class SplitProbe : public Engine {
 public:
  Act conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) override {
    channels[id] = x.t.size(1);
    return fp32_.conv(id, c, x, post, next, residual);
  }
  bool quantizes(int) const override { return true; }
  std::map<int, int64_t> channels;

 private:
  Fp32Engine fp32_;
};

TEST_F(QuantTest, TrunkInputConvKeepsTheFrameOutOfTheQuantizedInput) {
  c10::InferenceMode guard;
  const Architecture arch = test::tiny_arch();
  const BasicVSR net(random_model(arch, 5));
  const at::Tensor lr = at::rand({3, 3, 12, 16});
  SplitProbe probe;
  const at::Tensor split = net.forward(lr, probe);
  // The frame's columns run beside the engine and are added before the activation: the same
  // function as the concatenated conv, to float rounding.
  EXPECT_LE((split - net.forward(lr)).abs().max().item<float>(), 1e-5f);
  const auto layers = conv_layers(arch);
  for (std::size_t id = 0; id < layers.size(); ++id) {
    if (layers[id].name.find(".main.0") == std::string::npos) continue;
    EXPECT_EQ(layers[id].frame_channels, 3) << layers[id].name;
    EXPECT_EQ(probe.channels.at(static_cast<int>(id)), arch.channels) << layers[id].name;
  }
}

// Only the backward trunk's input conv quantized, on a grid ([-0.5, 0.5], 8 bits) that would clip
// half of the frame's [0, 1]: at the last frame the propagated feature is zero (exact on any grid
// with a nudged zero point), so the backward feature there is exactly fp32's when the frame stays
// out of the grid, and far from it when it does not.
TEST_F(QuantTest, QuantizedTrunkInputConvSeesTheFrameExactly) {
  c10::InferenceMode guard;
  const Architecture arch = test::tiny_arch();
  const BasicVSR net(random_model(arch, 6));
  const auto layers = conv_layers(arch);
  int id = 0;
  while (layers[id].name != "backward_trunk.main.0") ++id;
  QuantSettings q;
  q.b_base = 8;
  for (const auto& info : layers) q.layers[info.name] = LayerQuant{0, true, -0.5f, 0.5f, {}};
  const QuantPlan plan(arch, q);
  FakeEngine fake(plan);
  Int8Engine int8(plan);
  const at::Tensor lr = at::rand({3, 3, 12, 16}) * 0.5 + 0.5;  // all in [0.5, 1]: clipped on the grid
  const auto [fwd, bwd] = net.compute_flows(lr);
  auto last_backward_feature = [&](Engine& e) {
    at::Tensor f;
    net.propagate(
        lr, fwd, bwd, e, [](int64_t, const at::Tensor&) {}, 0, -1,
        [&](int64_t t, int branch, const at::Tensor& x) {
          if (t == 2 && branch == 0) f = x.clone();
        });
    return f;
  };
  Fp32Engine fp32;
  const at::Tensor ref = last_backward_feature(fp32);
  for (Engine* e : {static_cast<Engine*>(&fake), static_cast<Engine*>(&int8)}) {
    OneLayerEngine only(*e, id);
    // Weights on their 8-bit grid: relative error ~1e-2 at most.
    EXPECT_LE((last_backward_feature(only) - ref).abs().max().item<float>(),
              2e-2f * ref.abs().max().item<float>());
  }
  // The same grid applied to [frame, features] together (the engine asked for the whole input)
  // clips the frame: a much larger error, which is what the split avoids.
  FakeEngine fake_whole(plan);  // its own weight cache: the whole conv's weights
  struct Whole : OneLayerEngine {
    using OneLayerEngine::OneLayerEngine;
    bool quantizes(int) const override { return false; }
  } whole(fake_whole, id);
  EXPECT_GT((last_backward_feature(whole) - ref).abs().max().item<float>(),
            0.1f * ref.abs().max().item<float>());
}

TEST_F(QuantTest, Int8ConvMatchesFakeConvLayerByLayer) {
  c10::InferenceMode guard;
  Architecture arch = test::tiny_arch();
  const Model m = random_model(arch, 4, 1.0f);
  const auto layers = conv_layers(arch);
  // One SPyNet conv (7x7, 8 -> 32), one trunk conv (3x3), fusion (1x1).
  for (const std::string name :
       {"spynet.basic_module.5.basic_module.0", "backward_trunk.main.2.0.conv1", "fusion"}) {
    int id = 0;
    while (layers[id].name != name) ++id;
    const Conv c = Conv::from_weights(m.weights, name);
    for (int bits : {8, 6, 4}) {
      for (int64_t side : {1, 2, 5, 9}) {
        // mode: no activation, ReLU and LeakyReLU into the next layer, a residual; dynamic: no
        // dynamic range, this layer's, the next layer's (this one then hands over floats).
        for (int k = 0; k < 12; ++k) {
          const int mode = k % 4, dynamic = k / 4;
          QuantSettings q;
          q.b_base = bits;
          q.scope = Scope::Full;
          q.layers[name] = LayerQuant{0, true, -0.8f, 1.7f, {}, dynamic == 1};
          q.layers[layers[id + 1].name] = LayerQuant{0, true, -0.3f, 2.2f, {}, dynamic == 2};
          QuantPlan plan(arch, q);
          FakeEngine fake(plan);
          Int8Engine int8(plan);
          // The second frame 4x the first: dynamic grids are per frame.
          at::Tensor x = at::rand({2, c.weight.size(1), side, side + 2}) * 3 - 1;
          x[1].mul_(4);
          x = x.contiguous(at::MemoryFormat::ChannelsLast);
          const PostOp post = mode == 1 ? PostOp::ReLU : mode == 2 ? PostOp::LeakyReLU : PostOp::None;
          const int next = mode == 1 || mode == 2 ? id + 1 : -1;
          at::Tensor a, b;
          if (mode == 3) {
            at::Tensor ra =
                at::rand({2, c.weight.size(0), side, side + 2}).contiguous(at::MemoryFormat::ChannelsLast);
            at::Tensor rb = ra.clone();
            a = fake.conv(id, c, x, post, -1, &ra).values();
            b = int8.conv(id, c, x, post, -1, &rb).values();
          } else {
            a = fake.conv(id, c, x, post, next, nullptr).values();
            b = int8.conv(id, c, x, post, next, nullptr).values();
            // The int8 engine hands over codes; the fake engine the float the next layer quantizes.
            // Into or out of a dynamic range both hand over floats.
            if (next >= 0 && dynamic == 0) a = fake_quant_act(a, plan.grid(next));
          }
          const bool codes = next >= 0 && dynamic == 0;
          EXPECT_EQ(int8.conv(id, c, x, post, next, nullptr).codes, codes);
          const float err = (a - b).abs().max().item<float>();
          const float tol = codes ? plan.grid(next).scale * 1.01f : 1e-3f * a.abs().max().item<float>();
          EXPECT_LE(err, tol) << name << " W" << bits << " mode " << mode << " dynamic " << dynamic;
          if (codes) {
            // Codes: a value that float accumulation puts on the other side of a rounding
            // boundary moves by one step. How many do depends on the CPU's kernels (none here
            // in most cases; about 1% seen on a CI machine): a wrong zero point, clip or slope
            // would move most of them.
            const double flipped =
                (a - b).abs().gt(0.5f * plan.grid(next).scale).to(at::kDouble).mean().item<double>();
            EXPECT_LE(flipped, 0.05) << name << " W" << bits << " mode " << mode << " side " << side;
          } else {
            EXPECT_GE(psnr(a / a.abs().max(), b / a.abs().max()), 55.0)
                << name << " W" << bits << " mode " << mode << " side " << side << " dynamic " << dynamic;
          }
        }
      }
    }
  }
}

TEST_F(QuantTest, DynamicRangesAreEachFramesOwn) {
  c10::InferenceMode guard;
  Architecture arch = test::tiny_arch();
  const Model m = random_model(arch, 4, 1.0f);
  const auto layers = conv_layers(arch);
  int id = 0;
  while (layers[id].name != "fusion") ++id;
  const Conv c = Conv::from_weights(m.weights, "fusion");
  QuantSettings q;
  q.b_base = 4;
  q.layers["fusion"] = LayerQuant{0, true, -0.1f, 0.1f, {}, true};  // the calibrated range is unused
  QuantPlan plan(arch, q);
  FakeEngine fake(plan);
  // Frame 0 in [-1, 2] (and both ends reached), frame 1 in [0.5, 8]: grids [-1, 2] and [0, 8].
  at::Tensor x = at::rand({2, c.weight.size(1), 3, 5}) * 3 - 1;
  x[0][0][0][0] = -1.0f;
  x[0][0][0][1] = 2.0f;
  x[1] = x[1].abs() * 2 + 0.5f;
  x[1][0][0][0] = 8.0f;
  const at::Tensor got = fake.conv(id, c, x, PostOp::None, -1, nullptr).values();
  const at::Tensor w = fake_quant_weight(c.weight, weight_clip_values(c.weight, {}), 4);
  for (int64_t i = 0; i < 2; ++i) {
    const ActGrid g = i == 0 ? ActGrid::make(-1.0f, 2.0f, 4) : ActGrid::make(0.0f, 8.0f, 4);
    EXPECT_EQ(dynamic_grid(x[i], 4).scale, g.scale);
    const at::Tensor want = at::conv2d(fake_quant_act(x.narrow(0, i, 1), g), w, c.bias);
    EXPECT_LE((got.narrow(0, i, 1) - want).abs().max().item<float>(), 1e-5f) << "frame " << i;
  }
  // The same frame alone gives the same output: nothing is shared across the batch.
  EXPECT_LE((fake.conv(id, c, x.narrow(0, 1, 1), PostOp::None, -1, nullptr).values() - got.narrow(0, 1, 1))
                .abs()
                .max()
                .item<float>(),
            1e-5f);
}

// --- Bits -------------------------------------------------------------------------------------

TEST_F(QuantTest, LayerBitsClampToTwoAndEight) {
  EXPECT_EQ(layer_bits(6, 0, 0), 6);
  EXPECT_EQ(layer_bits(6, 1, 1), 8);
  EXPECT_EQ(layer_bits(8, 1, 1), 8);
  EXPECT_EQ(layer_bits(2, -1, -1), 2);
  EXPECT_EQ(layer_bits(4, -1, 0), 3);
  QuantSettings q;
  q.b_base = 4;
  q.layers["fusion"].b_L = 1;
  q.layers["conv_hr"].b_L = -1;
  QuantPlan plan(test::tiny_arch(), q);
  const auto layers = conv_layers(test::tiny_arch());
  auto id_of = [&](const std::string& n) {
    for (std::size_t i = 0; i < layers.size(); ++i)
      if (layers[i].name == n) return static_cast<int>(i);
    return -1;
  };
  EXPECT_EQ(plan.bits(id_of("fusion")), 5);
  EXPECT_EQ(plan.bits(id_of("conv_hr")), 3);
  EXPECT_EQ(plan.bits(id_of("upconv1")), 4);
  EXPECT_FALSE(plan.quantized(0));  // SPyNet stays float in the partial scope
  EXPECT_FALSE(plan.quantized(id_of("conv_last")));
  plan.set_offset(-1);
  EXPECT_EQ(plan.bits(id_of("fusion")), 4);
  EXPECT_EQ(plan.bits(id_of("conv_hr")), 2);
  EXPECT_EQ(plan.bits(id_of("upconv1")), 3);
}

TEST_F(QuantTest, FgVbaOffsetAtTheThresholds) {
  FgVbaParams p;
  EXPECT_EQ(fg_vba_offset(1e9, p), 0);  // uncalibrated: never changes the bits
  p.tau_lo = 10.0;
  p.tau_hi = 20.0;
  EXPECT_EQ(fg_vba_offset(9.999, p), -1);
  EXPECT_EQ(fg_vba_offset(10.0, p), 0);
  EXPECT_EQ(fg_vba_offset(15.0, p), 0);
  EXPECT_EQ(fg_vba_offset(20.0, p), 0);
  EXPECT_EQ(fg_vba_offset(20.001, p), 1);
}

TEST_F(QuantTest, TsLbaThresholdsAndOffsets) {
  // numpy.percentile([1, 2, 3, 4, 5], 30) = 2.2, (..., 70) = 3.8.
  EXPECT_DOUBLE_EQ(percentile({5, 1, 4, 2, 3}, 30), 2.2);
  EXPECT_DOUBLE_EQ(percentile({5, 1, 4, 2, 3}, 70), 3.8);
  EXPECT_DOUBLE_EQ(percentile({7}, 30), 7.0);
  const TsLbaThresholds t = ts_lba_thresholds({1, 2, 3, 4, 5}, {10, 20, 30, 40, 50});
  EXPECT_DOUBLE_EQ(t.l_space, 2.2);
  EXPECT_DOUBLE_EQ(t.u_space, 3.8);
  EXPECT_DOUBLE_EQ(t.l_temp, 22.0);
  EXPECT_DOUBLE_EQ(t.u_temp, 38.0);
  EXPECT_EQ(ts_lba_offset(2.2, 22.0, t), -1);  // both at the lower thresholds
  EXPECT_EQ(ts_lba_offset(2.2, 22.01, t), 0);  // temporal just above
  EXPECT_EQ(ts_lba_offset(2.21, 10.0, t), 0);  // spatial just above
  EXPECT_EQ(ts_lba_offset(3.8, 38.0, t), 1);   // both at the upper thresholds
  EXPECT_EQ(ts_lba_offset(3.8, 37.99, t), 0);
  EXPECT_EQ(ts_lba_offset(5.0, 1.0, t), 0);  // high in space, low in time
}

TEST_F(QuantTest, TsLbaStatisticsByHand) {
  // One layer, one clip of three time steps of [1, C=2, H=1, W=2].
  TsLbaObserver obs;
  const float steps[3][4] = {{0, 2, 1, 1}, {1, 4, 3, 1}, {2, 6, 5, 1}};  // c0: (w0, w1), c1: (w0, w1)
  for (const auto& s : steps) obs.observe(7, at::tensor(std::vector<float>(s, s + 4)).view({1, 2, 1, 2}));
  obs.end_clip();
  const auto stats = obs.statistics();
  ASSERT_EQ(stats.count(7), 1u);
  // std over c of two values a, b is |a - b| / sqrt(2): pixels (t, w): |0-1|, |2-1|, |1-3|, |4-1|,
  // |2-5|, |6-1| = 1, 1, 2, 3, 3, 5 -> mean 15/6 / sqrt(2).
  EXPECT_NEAR(stats.at(7).first, 2.5 / std::sqrt(2.0), 1e-12);
  // std over t of (0,1,2) = 1, (2,4,6) = 2, (1,3,5) = 2, (1,1,1) = 0 -> mean 1.25.
  EXPECT_NEAR(stats.at(7).second, 1.25, 1e-12);
  // A second clip is a new batch item: its statistics average with the first's.
  for (int t = 0; t < 2; ++t) obs.observe(7, at::full({1, 2, 1, 2}, static_cast<float>(t)));
  obs.end_clip();
  // Space: 6 pixels as above plus 4 with std 0 -> 15 / sqrt(2) / 10.
  EXPECT_NEAR(obs.statistics().at(7).first, 1.5 / std::sqrt(2.0), 1e-12);
  // Time: 4 positions of the first clip (sum 5) plus 4 with std(0, 1) = 1/sqrt(2).
  EXPECT_NEAR(obs.statistics().at(7).second, (5.0 + 4.0 / std::sqrt(2.0)) / 8.0, 1e-12);
}

TEST_F(QuantTest, ObservedRangesCoverEveryChannelsOwnPercentiles) {
  // 32 input channels as at the first trunk conv: one carries a ramp 0, 0.01, .., 0.99 (the LR
  // frame), 31 a constant 0.1 (the features). Over all samples the ramp is 3 % of the data and
  // P(99) would clip it near 0.7; per channel it keeps its own P(1) = 0.0099, P(99) = 0.9801.
  RangeObserver obs;
  at::Tensor x = at::full({1, 32, 10, 10}, 0.1f);
  x[0][0] = at::arange(100, at::kFloat).view({10, 10}) / 100;
  obs.record(3, x.contiguous(at::MemoryFormat::ChannelsLast));
  const auto r = obs.ranges(1, 99).at(3);
  EXPECT_NEAR(r.first, 0.0099f, 1e-6f);
  EXPECT_NEAR(r.second, 0.9801f, 1e-6f);
  // A batch of two more with a negative channel: channels accumulate across calls and items.
  at::Tensor y = at::full({2, 32, 10, 10}, 0.1f);
  y.select(1, 5).fill_(-0.25f);
  obs.record(3, y);
  const auto r2 = obs.ranges(0, 100).at(3);
  EXPECT_FLOAT_EQ(r2.first, -0.25f);
  EXPECT_FLOAT_EQ(r2.second, 0.99f);
}

// --- FG-VBA measurements ----------------------------------------------------------------------

TEST_F(QuantTest, SpatialDetailOfRampAndConstantImages) {
  const int64_t h = 6, w = 11;
  // Luma ramp 0 .. 0.5 across the width (R = G = B, so Y equals it): dY/dx = 0.05, dY/dy = 0.
  const at::Tensor ramp = (at::arange(w, at::kFloat) * 0.05f).view({1, 1, 1, w}).expand({1, 3, h, w});
  EXPECT_NEAR(spatial_detail(ramp)[0], 1000.0 * 0.05, 1e-4);
  // A vertical ramp in green only: Y = 0.587 * G.
  at::Tensor green = at::zeros({1, 3, h, w});
  green.select(1, 1).copy_((at::arange(h, at::kFloat) * 0.1f).view({h, 1}).expand({h, w}));
  EXPECT_NEAR(spatial_detail(green)[0], 1000.0 * 0.587 * 0.1, 1e-4);
  EXPECT_EQ(spatial_detail(at::full({2, 3, h, w}, 0.3f)), (std::vector<double>{0.0, 0.0}));
  // numpy.gradient on [0, 1, 4]: one-sided 1 at the left, central (4-0)/2 = 2, one-sided 3: mean 2.
  const at::Tensor sq = at::tensor({0.0f, 1.0f, 4.0f}).view({1, 1, 1, 3}).expand({1, 3, 1, 3});
  EXPECT_NEAR(spatial_detail(sq)[0], 2000.0, 1e-3);
}

TEST_F(QuantTest, FlowMagnitudeAndConsistencyOfAffineFlows) {
  const int64_t h = 9, w = 13;
  // A translation (2, 1): magnitude sqrt(5), Jacobian zero.
  at::Tensor f = at::zeros({1, 2, h, w});
  f.select(1, 0).fill_(2.0f);
  f.select(1, 1).fill_(1.0f);
  EXPECT_NEAR(flow_magnitude(f)[0], std::sqrt(5.0), 1e-6);
  EXPECT_NEAR(flow_inconsistency(f)[0], 0.0, 1e-9);
  // u = 0.5 + 0.1 y, v = -0.2 x: |du/dy| + |dv/dx| = 0.3 everywhere.
  const at::Tensor ys = at::arange(h, at::kFloat).view({h, 1}).expand({h, w});
  const at::Tensor xs = at::arange(w, at::kFloat).view({1, w}).expand({h, w});
  at::Tensor a = at::zeros({1, 2, h, w});
  a.select(1, 0).copy_(0.5f + 0.1f * ys);
  a.select(1, 1).copy_(-0.2f * xs);
  EXPECT_NEAR(flow_inconsistency(a)[0], 0.3, 1e-6);
  double mag = 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) mag += std::hypot(0.5 + 0.1 * y, -0.2 * x);
  EXPECT_NEAR(flow_magnitude(a)[0], mag / (h * w), 1e-5);
  // C_V combines them: pairs average the forward and backward flows.
  FgVbaParams p;
  p.lambda = 2.0;
  p.gamma = 3.0;
  p.tau_hi = 1.0;
  const at::Tensor lr = at::full({2, 3, h, w}, 0.5f);
  const VideoComplexity c = measure_complexity(lr, f, a, p);
  ASSERT_EQ(c.T_mag.size(), 1u);
  EXPECT_NEAR(c.T_mag[0], 0.5 * (std::sqrt(5.0) + mag / (h * w)), 1e-5);
  EXPECT_NEAR(c.T_cons[0], 0.15, 1e-6);
  EXPECT_NEAR(c.C_V, 0.0 + 2.0 * (c.T_mag[0] + 3.0 * 0.15), 1e-5);
  EXPECT_EQ(c.b_V, 1);
}

// --- The stage profile of a pass (qbasicvsr-bench --profile) ----------------------------------

TEST_F(QuantTest, ProfileCountsEveryStageOfAPass) {
  c10::InferenceMode guard;
  const Architecture arch = small_arch();
  const BasicVSR net(random_model(arch, 3));
  const int64_t t = 6;
  const at::Tensor lr = at::rand({t, 3, 20, 28});
  QuantPlan plan(arch, observed_settings(net, lr, Scope::Partial, 6));
  Fp32Engine fp32;
  Int8Engine int8(plan);
  for (Engine* engine : {static_cast<Engine*>(&fp32), static_cast<Engine*>(&int8)}) {
    const bool quantized = engine == &int8;
    profile::set_enabled(true);
    profile::reset();
    net.forward(lr, *engine);
    profile::set_enabled(false);
    const profile::Totals p = profile::totals();
    auto calls = [&](profile::Stage s) { return p.calls[static_cast<int>(s)]; };
    using profile::Stage;
    // Both directions' flows in batches of up to 4 frame pairs, 30 convolutions each.
    EXPECT_EQ(calls(Stage::SpyNet), 1);
    EXPECT_EQ(calls(Stage::SpyNetConv), 30 * 2);
    EXPECT_EQ(calls(Stage::Warp), 2 * (t - 1));
    EXPECT_EQ(calls(Stage::Trunk), 2 * t);
    EXPECT_EQ(calls(Stage::TrunkConv), 2 * t * (1 + 2 * arch.blocks));
    EXPECT_EQ(calls(Stage::Reconstruction), t);
    EXPECT_EQ(calls(Stage::ReconstructionConv), 4 * t);
    EXPECT_EQ(calls(Stage::ConvLast), t);
    EXPECT_EQ(calls(Stage::PixelShuffle), 2 * t);
    // int8 quantizes each trunk input conv's features and, per block, the residual stream; the
    // reconstruction hands codes from conv to conv after its first input.
    if (quantized) {
      EXPECT_EQ(calls(Stage::Quantize), 2 * t * (1 + arch.blocks) + t);
    } else {
      EXPECT_EQ(calls(Stage::Quantize), 0);
    }
    for (int i = 0; i < profile::kStages; ++i) {
      if (p.calls[i] > 0 && profile::is_conv(static_cast<Stage>(i))) {
        EXPECT_GT(p.ms[i], 0.0) << profile::stage_name(static_cast<Stage>(i));
      }
    }
    EXPECT_LT(p.conv_ms(), p.total_ms());
  }
}

// --- Float convolutions through oneDNN with fused post-ops (FloatConvs) ------------------------

TEST_F(QuantTest, FusedFloatConvsMatchATen) {
  c10::InferenceMode guard;
  Conv c;
  c.weight = (at::randn({12, 8, 3, 3}) * 0.2).contiguous(at::MemoryFormat::ChannelsLast);
  c.bias = at::randn({12}) * 0.1;
  c.padding = 1;
  const at::Tensor x = at::randn({2, 8, 9, 13});  // NCHW: run() makes it channels_last itself
  FloatConvs fp32(FloatMath::Fp32), bf16(FloatMath::Bf16);
  for (PostOp post : {PostOp::None, PostOp::ReLU, PostOp::LeakyReLU}) {
    for (bool sum : {false, true}) {
      const at::Tensor base = at::randn({2, 12, 9, 13});
      const at::Tensor want = apply_post(c(x), post) + (sum ? base : at::zeros_like(base));
      for (FloatConvs* convs : {&fp32, &bf16}) {
        at::Tensor residual = base.clone();  // NCHW: made channels_last, then added into
        const at::Tensor got = convs->run(c, x, post, sum ? &residual : nullptr);
        ASSERT_TRUE(got.is_contiguous(at::MemoryFormat::ChannelsLast));
        const double err = (got - want).abs().max().item<double>();
        // fp32: the same arithmetic up to summation order; bf16: 8-bit mantissas of x and w
        // (relative 2^-8 each) over 72 products of |x w| ~ 0.2.
        const bool is_bf16 = convs == &bf16;
        EXPECT_LT(err, is_bf16 ? 0.05 : 1e-5)
            << "post " << static_cast<int>(post) << " sum " << sum << " bf16 " << is_bf16;
        if (sum) {
          EXPECT_EQ(residual.data_ptr(), got.data_ptr()) << "the residual is added in place";
        }
      }
    }
  }
  // A different shape of the same layer gets its own primitive.
  const at::Tensor x2 = at::randn({1, 8, 5, 7});
  EXPECT_LT(
      (fp32.run(c, x2, PostOp::ReLU, nullptr) - apply_post(c(x2), PostOp::ReLU)).abs().max().item<double>(),
      1e-5);
}

TEST_F(QuantTest, FusedFp32NetworkMatchesATen) {
  c10::InferenceMode guard;
  const Architecture arch = small_arch();
  const BasicVSR net(random_model(arch, 3));
  const at::Tensor lr = at::rand({4, 3, 20, 28});
  Fp32Engine fused;
  AutogradEngine aten;  // plain ATen ops, out of place
  const at::Tensor a = net.forward(lr, fused), b = net.forward(lr, aten);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
  // bf16 float layers: a few hundredths of a grey level at most on this network.
  Fp32Engine bf16(FloatMath::Bf16);
  EXPECT_GE(psnr(net.forward(lr, bf16), b), 40.0);
}

TEST_F(QuantTest, FloatConvsStayOutOfAutograd) {
  Conv c;
  c.weight = at::randn({4, 3, 3, 3}).requires_grad_();
  c.bias = at::zeros({4});
  c.padding = 1;
  const at::Tensor x = at::randn({1, 3, 6, 6});
  EXPECT_FALSE(FloatConvs::usable(c, x)) << "training must see the convolution";
  Fp32Engine engine;
  const at::Tensor y = engine.conv(0, c, x, PostOp::ReLU, -1, nullptr).values();
  y.sum().backward();
  ASSERT_TRUE(c.weight.grad().defined());
  {
    at::NoGradGuard no_grad;
    EXPECT_TRUE(FloatConvs::usable(c, x));
  }
}

// --- Cross-layer equalisation of the residual streams ----------------------------------------

TEST(Equalize, ScalesByHand) {
  const std::vector<float> m = {1.0f, 0.5f, 0.25f, 0.0f};
  const StreamScales one = stream_scales(m, m, 1.0), half = stream_scales(m, {2.0f, 8.0f}, 0.5),
                     none = stream_scales(m, m, 0.0);
  const std::vector<float> expect_one = {1, 2, 4, 1000};  // a dead channel counts as 1e-3 of the widest
  for (std::size_t c = 0; c < 4; ++c) {
    EXPECT_FLOAT_EQ(one.backward[c], expect_one[c]);
    EXPECT_FLOAT_EQ(none.forward[c], 1.0f);
  }
  EXPECT_FLOAT_EQ(half.backward[1], std::sqrt(2.0f));
  EXPECT_FLOAT_EQ(half.backward[3], std::sqrt(1000.0f));
  EXPECT_FLOAT_EQ(half.forward[0], 2.0f);  // (2 / 8)^-0.5
  EXPECT_FLOAT_EQ(half.forward[1], 1.0f);
}

TEST(Equalize, FoldsTheScalesIntoTheRightRowsAndColumns) {
  const Architecture arch = test::tiny_arch();
  const int c = arch.channels;
  const Model fp = random_model(arch, 3, 0.3f);
  StreamScales s;
  for (int i = 0; i < c; ++i) {
    s.backward.push_back(0.5f + 0.25f * static_cast<float>(i));
    s.forward.push_back(3.0f - 0.3f * static_cast<float>(i));
  }
  const Model eq = equalize_streams(fp, s);
  auto w = [](const Model& m, const std::string& name) { return m.weights.at(name).to_f32(); };
  const auto in0 = w(fp, "forward_trunk.main.0.weight"), in1 = w(eq, "forward_trunk.main.0.weight");
  const int64_t in = kFrameChannels + c, k = 9;
  for (int o = 0; o < c; ++o)
    for (int64_t col = 0; col < in; ++col) {
      // Output row o times s_o; the frame's columns stay, stream column j is divided by s_j.
      const float expect = in0[(o * in + col) * k + 4] * s.forward[o] /
                           (col < kFrameChannels ? 1.0f : s.forward[col - kFrameChannels]);
      EXPECT_FLOAT_EQ(in1[(o * in + col) * k + 4], expect) << o << " " << col;
    }
  const std::string block = "backward_trunk.main.2." + std::to_string(arch.blocks - 1);
  EXPECT_FLOAT_EQ(w(eq, block + ".conv1.weight")[(1 * c + 2) * k],
                  w(fp, block + ".conv1.weight")[(1 * c + 2) * k] / s.backward[2]);
  EXPECT_FLOAT_EQ(w(eq, block + ".conv1.bias")[1], w(fp, block + ".conv1.bias")[1]);
  EXPECT_FLOAT_EQ(w(eq, block + ".conv2.bias")[2], w(fp, block + ".conv2.bias")[2] * s.backward[2]);
  const auto f0 = w(fp, "fusion.weight"), f1 = w(eq, "fusion.weight");   // 1x1: [C, 2C, 1, 1]
  EXPECT_FLOAT_EQ(f1[2 * c + 1], f0[2 * c + 1] / s.backward[1]);         // row 1, backward column 1
  EXPECT_FLOAT_EQ(f1[2 * c + c + 1], f0[2 * c + c + 1] / s.forward[1]);  // row 1, forward column 1
  for (const char* untouched :
       {"upconv1.weight", "conv_last.weight", "spynet.basic_module.0.basic_module.0.weight"})
    EXPECT_EQ(eq.weights.at(untouched).bytes, fp.weights.at(untouched).bytes) << untouched;

  EXPECT_THROW(equalize_streams(fp, StreamScales{{1.0f}, s.forward}), Error);
  StreamScales bad = s;
  bad.forward[0] = 0.0f;
  EXPECT_THROW(equalize_streams(fp, bad), Error);
}

TEST(Equalize, TheEqualizedNetworkIsTheSameInFloat) {
  configure_runtime(2);
  c10::InferenceMode guard;
  const Architecture arch = test::tiny_arch();
  const Model fp = random_model(arch, 11, 0.3f);
  StreamScales s;
  for (int i = 0; i < arch.channels; ++i) {  // factors spread over 0.25 .. 4
    s.backward.push_back(std::pow(2.0f, static_cast<float>(i % 5) - 2.0f));
    s.forward.push_back(std::pow(2.0f, 2.0f - static_cast<float>(i % 3) * 1.5f));
  }
  const at::Tensor lr = at::rand({4, 3, 12, 14});
  const at::Tensor a = BasicVSR(fp).forward(lr), b = BasicVSR(equalize_streams(fp, s)).forward(lr);
  const float residual = (a - at::upsample_bicubic2d(lr, {48, 56}, false)).abs().max().item<float>();
  EXPECT_GT(residual, 1e-3f) << "the network must do something for the check to mean anything";
  EXPECT_LT((a - b).abs().max().item<float>(), 1e-5f * std::max(1.0f, residual));
}
