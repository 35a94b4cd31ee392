// Quantizers, fake vs int8 execution, FG-VBA measurements and TS-LBA statistics.
#include <gtest/gtest.h>

#include <cmath>

#include "basicvsr.h"
#include "engine.h"
#include "fg_vba.h"
#include "int8_engine.h"
#include "qbasicvsr/runtime.h"
#include "quantizer.h"
#include "test_util.h"
#include "ts_lba.h"

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
  void SetUp() override { configure_runtime(2); }
};

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

TEST_F(QuantTest, Int8MatchesFakeOnARandomNetwork) {
  c10::InferenceMode guard;
  Architecture arch;
  arch.channels = 16;
  arch.blocks = 2;
  arch.hr_channels = 16;
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
        for (int mode = 0; mode < 4; ++mode) {
          QuantSettings q;
          q.b_base = bits;
          q.scope = Scope::Full;
          q.layers[name] = LayerQuant{0, true, -0.8f, 1.7f, {}};
          q.layers[layers[id + 1].name] = LayerQuant{0, true, -0.3f, 2.2f, {}};
          QuantPlan plan(arch, q);
          FakeEngine fake(plan);
          Int8Engine int8(plan);
          const at::Tensor x = (at::rand({2, c.weight.size(1), side, side + 2}) * 3 - 1)
                                   .contiguous(at::MemoryFormat::ChannelsLast);
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
            if (next >= 0) a = fake_quant_act(a, plan.grid(next));
          }
          const float err = (a - b).abs().max().item<float>();
          const float tol = next >= 0 ? plan.grid(next).scale * 1.01f : 1e-3f * a.abs().max().item<float>();
          EXPECT_LE(err, tol) << name << " W" << bits << " mode " << mode;
          EXPECT_GE(psnr(a / a.abs().max(), b / a.abs().max()), 55.0)
              << name << " W" << bits << " mode " << mode << " side " << side;
        }
      }
    }
  }
}
