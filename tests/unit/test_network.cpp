// SPyNet, warping and the BasicVSR network on analytically known cases.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>

#include "net/basicvsr.h"
#include "net/spynet.h"
#include "qbasicvsr/calibration.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/runtime.h"
#include "qbasicvsr/training.h"
#include "qbasicvsr/upscaler.h"
#include "runtime/tiling.h"
#include "test_util.h"
#include "train/training_internal.h"

using namespace qbasicvsr;
using test::error_of;

namespace {

// A model whose SPyNet is all zero except the bias of the last conv of `level` (if >= 0).
Model spynet_bias_model(int level, float bx, float by) {
  Model m = random_model(test::tiny_arch(), 5);
  for (auto& [name, t] : m.weights) {
    if (name.rfind("spynet.", 0) == 0) t = HostTensor::from_f32(t.shape, std::vector<float>(t.numel(), 0.0f));
  }
  if (level >= 0)
    m.weights["spynet.basic_module." + std::to_string(level) + ".basic_module.8.bias"] =
        HostTensor::from_f32({2}, {bx, by});
  return m;
}

float max_abs(const at::Tensor& t) { return t.abs().max().item<float>(); }

class NetworkTest : public ::testing::Test {
 protected:
  void SetUp() override { configure_runtime(2); }
  c10::InferenceMode guard;
};

}  // namespace

TEST_F(NetworkTest, IntegerFlowMovesPixelsExactly) {
  const at::Tensor x = at::rand({1, 2, 5, 6});
  at::Tensor flow = at::zeros({1, 2, 5, 6});
  flow.select(1, 0).fill_(1.0);  // sample one pixel to the right
  flow.select(1, 1).fill_(2.0);  // and two rows down
  const at::Tensor zeros = flow_warp(x, flow, false);
  const at::Tensor border = flow_warp(x, flow, true);
  for (int y = 0; y < 5; ++y) {
    for (int xx = 0; xx < 6; ++xx) {
      const bool inside = y + 2 < 5 && xx + 1 < 6;
      const at::Tensor expect_border = x.select(2, std::min(y + 2, 4)).select(2, std::min(xx + 1, 5));
      const at::Tensor got_zero = zeros.select(2, y).select(2, xx);
      const at::Tensor got_border = border.select(2, y).select(2, xx);
      if (inside) {
        EXPECT_LT(max_abs(got_zero - expect_border), 1e-6f) << y << "," << xx;
        EXPECT_LT(max_abs(got_border - expect_border), 1e-6f);
      } else {
        EXPECT_LT(max_abs(got_zero), 1e-6f) << "zeros padding outside at " << y << "," << xx;
        EXPECT_LT(max_abs(got_border - expect_border), 1e-6f) << "border repeats the edge";
      }
    }
  }
}

// Features in channels_last take the library's own warp (every pixel blends its neighbours'
// channel vectors); NCHW tensors take ATen's grid_sampler. Both must agree, at every channel
// count (16-wide vectors and the scalar rest), for flows that leave the frame, land on whole
// pixels and on the border.
TEST_F(NetworkTest, ChannelsLastWarpMatchesGridSampler) {
  for (int64_t c : {64, 20, 3}) {
    const at::Tensor x = at::rand({2, c, 13, 17});
    at::Tensor flow = at::randn({2, 2, 13, 17}) * 4.0;
    flow.select(0, 1).select(0, 0).narrow(0, 0, 3).fill_(2.0);    // whole pixels
    flow.select(0, 1).select(0, 1).narrow(0, 3, 3).fill_(-0.5);   // half a pixel up
    flow.select(0, 0).select(0, 0).narrow(0, 6, 2).fill_(-30.0);  // far outside
    flow.select(0, 0).select(0, 1).narrow(1, 16, 1).fill_(0.0);   // the last column, exactly
    const at::Tensor fast = flow_warp(x.contiguous(at::MemoryFormat::ChannelsLast), flow);
    const at::Tensor aten = flow_warp(x.contiguous(), flow);
    EXPECT_TRUE(fast.is_contiguous(at::MemoryFormat::ChannelsLast)) << c;
    EXPECT_LT(max_abs(fast - aten), 1e-6f) << c << " channels";
    EXPECT_GT(max_abs(aten), 0.1f);
  }
}

// Training differentiates through the warp: features that need a gradient keep it.
TEST(Warp, FeaturesThatNeedAGradientKeepIt) {
  const at::Tensor x = at::rand({1, 16, 6, 7}).contiguous(at::MemoryFormat::ChannelsLast).requires_grad_();
  const at::Tensor flow = (at::randn({1, 2, 6, 7}) * 2.0).requires_grad_();
  flow_warp(x, flow).sum().backward();
  ASSERT_TRUE(x.grad().defined());
  ASSERT_TRUE(flow.grad().defined());
  EXPECT_GT(x.grad().abs().sum().item<float>(), 0.0f);
  EXPECT_GT(flow.grad().abs().sum().item<float>(), 0.0f);
}

TEST_F(NetworkTest, ConstantResidualsDoubleAtEachFinerLevel) {
  // A constant residual b added at pyramid level k reaches the 1/1 level multiplied by
  // 2^(5-k) (each level upsamples and doubles the flow); the result is then resized to HxW
  // and scaled by w/w_up, h/h_up. Here 50x70 runs at 64x96.
  const int64_t h = 50, w = 70;
  const at::Tensor ref = at::rand({1, 3, h, w}), supp = at::rand({1, 3, h, w});
  for (int level : {0, 3, 5}) {
    const SpyNet net(spynet_bias_model(level, 0.5f, -0.25f).weights);
    const at::Tensor flow = net.flow(ref, supp);
    const float gain = static_cast<float>(1 << (5 - level));
    EXPECT_LT(max_abs(flow.select(1, 0) - 0.5f * gain * 70.0f / 96.0f), 1e-5f) << level;
    EXPECT_LT(max_abs(flow.select(1, 1) + 0.25f * gain * 50.0f / 64.0f), 1e-5f) << level;
  }
  // Every level at once: 1 + 2 + 4 + 8 + 16 + 32 = 63.
  Model all = spynet_bias_model(-1, 0, 0);
  for (int level = 0; level < 6; ++level)
    all.weights["spynet.basic_module." + std::to_string(level) + ".basic_module.8.bias"] =
        HostTensor::from_f32({2}, {1.0f, 1.0f});
  const at::Tensor flow = SpyNet(all.weights).flow(ref, supp);
  EXPECT_LT(max_abs(flow.select(1, 0) - 63.0f * 70.0f / 96.0f), 1e-4f);
  EXPECT_LT(max_abs(flow.select(1, 1) - 63.0f * 50.0f / 64.0f), 1e-4f);
}

TEST_F(NetworkTest, ZeroSpyNetGivesZeroFlow) {
  const SpyNet net(spynet_bias_model(-1, 0, 0).weights);
  EXPECT_EQ(max_abs(net.flow(at::rand({2, 3, 33, 65}), at::rand({2, 3, 33, 65}))), 0.0f);
}

TEST_F(NetworkTest, ZeroOutputConvGivesTheBilinearBase) {
  Model m = random_model(test::tiny_arch(), 9);
  m.weights["conv_last.weight"] = HostTensor::from_f32({3, 4, 3, 3}, std::vector<float>(108, 0.0f));
  const BasicVSR net(m);
  const at::Tensor lr = at::rand({3, 3, 9, 13});
  const at::Tensor out = net.forward(lr);
  const at::Tensor base = at::upsample_bilinear2d(lr, {36, 52}, false);
  EXPECT_LT(max_abs(out - base), 1e-6f);
}

TEST_F(NetworkTest, AnySizeAndLengthGivesFourTimesTheFrames) {
  const BasicVSR net(random_model(test::tiny_arch(), 2));
  for (auto [t, h, w] : std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {2, 5, 7}, {4, 99, 17}, {1, 70, 3}}) {
    const at::Tensor out = net.forward(at::rand({t, 3, h, w}));
    EXPECT_EQ(out.sizes().vec(), (std::vector<int64_t>{t, 3, 4 * h, 4 * w}));
    EXPECT_TRUE(at::isfinite(out).all().item<bool>());
  }
}

TEST_F(NetworkTest, FlowsFollowTheDesignConvention) {
  // flows_backward[i] = spynet(x_i, x_{i+1}) and flows_forward[i] = spynet(x_{i+1}, x_i).
  const Model m = random_model(test::tiny_arch(), 4, 1.0f);
  const BasicVSR net(m);
  const SpyNet spy(m.weights);
  const at::Tensor lr = at::rand({3, 3, 20, 24});
  const auto [fwd, bwd] = net.compute_flows(lr);
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_LT(max_abs(bwd.narrow(0, i, 1) - spy.flow(lr.narrow(0, i, 1), lr.narrow(0, i + 1, 1))), 1e-5f);
    EXPECT_LT(max_abs(fwd.narrow(0, i, 1) - spy.flow(lr.narrow(0, i + 1, 1), lr.narrow(0, i, 1))), 1e-5f);
  }
}

TEST(Upscaler, RejectsClipsWithMixedFrameSizes) {
  Upscaler up(random_model(test::tiny_arch(), 1), UpscalerOptions{});
  std::vector<Image> frames(2);
  frames[0] = {4, 3, std::vector<uint8_t>(36, 10), 8, {}};
  frames[1] = {5, 3, std::vector<uint8_t>(45, 10), 8, {}};
  try {
    up.upscale(frames, [](std::size_t, Image&&) {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("frame 1 is 5x3"), std::string::npos);
  }
}

TEST(Upscaler, UnsupportedSettingsAreErrors) {
  UpscalerOptions gpu;
  gpu.device = "cuda";
  if (!at::hasCUDA()) try {
      Upscaler(random_model(test::tiny_arch(), 1), gpu);
      ADD_FAILURE() << "cuda accepted by a build that cannot run it";
    } catch (const Error& e) {
      // What is missing is named: CUDA in the build, or a GPU.
      EXPECT_NE(std::string(e.what()).find("device cuda: this "), std::string::npos) << e.what();
    }
  gpu.device = "tpu";
  EXPECT_THROW(Upscaler(random_model(test::tiny_arch(), 1), gpu), Error);
  EXPECT_THROW(parse_precision("int4"), Error);
}

TEST(Upscaler, EmitsEveryFrameInOrderAtFourTimesTheSize) {
  Upscaler up(random_model(test::tiny_arch(), 1), UpscalerOptions{});
  std::vector<Image> frames(3, Image{7, 5, std::vector<uint8_t>(105, 128), 8, {}});
  std::vector<std::size_t> order;
  up.upscale(frames, [&](std::size_t i, Image&& out) {
    order.push_back(i);
    EXPECT_EQ(out.width, 28);
    EXPECT_EQ(out.height, 20);
    EXPECT_EQ(out.rgb.size(), 28u * 20u * 3u);
  });
  EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 2}));
}

// --- training ---------------------------------------------------------------------------------

TEST_F(NetworkTest, SyntheticPairWithoutOccludersIsSuppWarpedByItsFlow) {
  const std::vector<at::Tensor> pool{at::rand({3, 90, 120})};
  FlowPretrainOptions o;
  o.occluders = 0;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    std::mt19937_64 rng(seed);
    at::Tensor ref, supp, flow;
    synthetic_pair(pool, 48, o, rng, ref, supp, flow);
    const at::Tensor warped = flow_warp(supp.unsqueeze(0), flow.unsqueeze(0), true)[0];
    // Where the sampling point falls inside the crop, both images sample the same frame pixels.
    const auto gx = at::arange(48).view({1, 48}).to(at::kFloat),
               gy = at::arange(48).view({48, 1}).to(at::kFloat);
    const at::Tensor inside =
        (flow[0] + gx >= 0) & (flow[0] + gx <= 47) & (flow[1] + gy >= 0) & (flow[1] + gy <= 47);
    ASSERT_GT(inside.sum().item<int64_t>(), 48 * 48 / 2) << "the motion keeps most samples inside";
    const at::Tensor diff = (ref - warped).abs().amax(0).masked_select(inside);
    EXPECT_LT(diff.max().item<float>(), 1e-4f) << "seed " << seed;
    EXPECT_GT(flow.abs().max().item<float>(), 0.1f) << "the pair moves";
  }
}

TEST_F(NetworkTest, SyntheticOccludersCarryTheirOwnExactMotion) {
  const std::vector<at::Tensor> pool{at::rand({3, 90, 120}), at::rand({3, 64, 64})};
  FlowPretrainOptions o;
  o.occluders = 3;
  double err_flow = 0, err_zero = 0;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    std::mt19937_64 rng(seed);
    at::Tensor ref, supp, flow;
    synthetic_pair(pool, 48, o, rng, ref, supp, flow);
    err_flow += (ref - flow_warp(supp.unsqueeze(0), flow.unsqueeze(0), true)[0]).abs().mean().item<double>();
    err_zero += (ref - supp).abs().mean().item<double>();
  }
  // Random-noise frames: any wrong flow costs ~1/3 per pixel; the true flow only at the few
  // pixels whose neighbours an occluder replaced and at samples outside the crop.
  EXPECT_LT(err_flow, 0.3 * err_zero);
}

TEST_F(NetworkTest, FlippedFlowWarpsTheFlippedImage) {
  const at::Tensor x = at::rand({2, 3, 9, 11});
  const at::Tensor flow = at::randn({2, 2, 9, 11}) * 2.0;
  for (auto [dim, comp] : {std::pair{int64_t{3}, 0}, std::pair{int64_t{2}, 1}}) {
    const at::Tensor a = flow_warp(x.flip({dim}), flip_flow(flow, dim, comp)),
                     b = flow_warp(x, flow).flip({dim});
    EXPECT_LT(max_abs(a - b), 1e-5f) << "dim " << dim;
  }
}

namespace {

Image random_still(int width, int height, uint64_t seed) {
  Image im;
  im.width = width;
  im.height = height;
  std::mt19937_64 rng(seed);
  for (int k = 0; k < width * height * 3; ++k) im.rgb.push_back(static_cast<uint8_t>(rng() & 255));
  return im;
}

at::Tensor picture_tensor(const Image& im) {
  return at::from_blob(const_cast<uint8_t*>(im.rgb.data()), {im.height, im.width, 3}, at::kByte)
      .permute({2, 0, 1})
      .unsqueeze(0)
      .to(at::kFloat);
}

uint8_t pixel(const Image& im, int x, int y, int c) {
  return im.rgb[(static_cast<std::size_t>(y) * im.width + x) * 3 + c];
}

}  // namespace

TEST_F(NetworkTest, CameraViewAtAWholePixelCentreIsACrop) {
  const Image still = random_still(50, 40, 1);
  CameraPose pose;
  pose.cx = 20;  // a 9x7 window: its pixel (0,0) sits on (16, 12)
  pose.cy = 15;
  const Image view = render_view(picture_tensor(still), pose, 9, 7);
  for (int y = 0; y < 7; ++y)
    for (int x = 0; x < 9; ++x)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(pixel(view, x, y, c), pixel(still, 16 + x, 12 + y, c));
}

TEST_F(NetworkTest, CameraViewFollowsTheZoomAndRotationOnARamp) {
  // Every pixel of the view is the ramp at the point the pose maps it to: within the rounding to
  // 8 bits and the small error of bicubic a = -0.75 on a slope (only a = -0.5 reproduces a ramp
  // exactly; measured < 0.11 here). A wrong sign of the angle or step would be off by several.
  Image still;
  still.width = 50;
  still.height = 40;
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 50; ++x)
      for (int c = 0; c < 3; ++c) still.rgb.push_back(static_cast<uint8_t>(2 * x + 3 * y + 10 + c));
  const CameraPose pose{24.3, 19.7, 1.2, 0.3};
  const Image view = render_view(picture_tensor(still), pose, 8, 6);
  for (int j = 0; j < 6; ++j)
    for (int i = 0; i < 8; ++i) {
      const double u = i - 3.5, v = j - 2.5;
      const double x = pose.cx + pose.step * (std::cos(pose.angle) * u - std::sin(pose.angle) * v);
      const double y = pose.cy + pose.step * (std::sin(pose.angle) * u + std::cos(pose.angle) * v);
      for (int c = 0; c < 3; ++c)
        EXPECT_LE(std::abs(pixel(view, i, j, c) - (2 * x + 3 * y + 10 + c)), 0.62) << i << "," << j;
    }
}

TEST_F(NetworkTest, CameraClipPansByWholePixels) {
  const Image still = random_still(300, 260, 2);
  CameraMotion m;
  m.frames = 6;
  m.pan_share = 1;
  for (uint64_t seed = 0; seed < 3; ++seed) {
    const GtClip clip = camera_clip(still, m, seed, "still");
    ASSERT_EQ(clip.frames.size(), 6u);
    const Image& f0 = clip.frames[0];
    EXPECT_EQ(f0.width % 4, 0);
    EXPECT_EQ(f0.height % 4, 0);
    EXPECT_GE(std::min(f0.width, f0.height), m.min_window);
    int moved = 0;
    for (std::size_t t = 0; t + 1 < clip.frames.size(); ++t) {
      const Image &a = clip.frames[t], &b = clip.frames[t + 1];
      // b shows a's content displaced by a whole-pixel (dx, dy), |dx|,|dy| <= 4 * max_speed.
      bool found = false;
      for (int dy = -8; dy <= 8 && !found; ++dy)
        for (int dx = -8; dx <= 8 && !found; ++dx) {
          bool same = true;
          for (int y = 8; y < a.height - 8 && same; y += 3)
            for (int x = 8; x < a.width - 8 && same; x += 3)
              same = pixel(b, x, y, 0) == pixel(a, x + dx, y + dy, 0) &&
                     pixel(b, x, y, 2) == pixel(a, x + dx, y + dy, 2);
          if (same) found = true, moved += dx != 0 || dy != 0;
        }
      EXPECT_TRUE(found) << "seed " << seed << " frame " << t;
    }
    EXPECT_GT(moved, 0) << "seed " << seed;
  }
}

TEST_F(NetworkTest, CameraClipIsReproducibleAndChecksItsPhotograph) {
  const Image still = random_still(300, 260, 3);
  CameraMotion m;
  m.frames = 4;
  m.pan_share = 0;  // gliding: sub-pixel centre, zoom and rotation
  const GtClip a = camera_clip(still, m, 5, "s"), b = camera_clip(still, m, 5, "s"),
               c = camera_clip(still, m, 6, "s");
  for (std::size_t t = 0; t < 4; ++t) EXPECT_EQ(a.frames[t].rgb, b.frames[t].rgb);
  EXPECT_NE(a.frames[0].rgb, c.frames[0].rgb);
  EXPECT_NE(a.frames[0].rgb, a.frames[3].rgb);
  EXPECT_NE(error_of([&] {
              camera_clip(random_still(150, 260, 1), m, 1, "tiny.png");
            }).find("tiny.png: 150x260 is too small"),
            std::string::npos);
}

TEST_F(NetworkTest, BatchedTrainingForwardEqualsTheInferencePath) {
  const Model m = random_model(test::tiny_arch(), 9, 0.3f);
  const BasicVSR net(m);
  const at::Tensor lr = at::rand({2, 4, 3, 12, 10});
  AutogradEngine engine;
  const auto [fwd, bwd] = net.compute_flows_batch(lr, engine);
  const at::Tensor out = net.forward_batch(lr, fwd, bwd, engine);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{2, 4, 3, 48, 40}));
  for (int64_t b = 0; b < 2; ++b) {
    const auto [f1, b1] = net.compute_flows(lr[b]);
    EXPECT_LT(max_abs(fwd[b] - f1), 1e-4f);
    EXPECT_LT(max_abs(bwd[b] - b1), 1e-4f);
    EXPECT_LT(max_abs(out[b] - net.forward(lr[b])), 1e-4f) << "sequence " << b;
  }
}

TEST_F(NetworkTest, InitialModelIsExactlyItsBaseUpsampling) {
  Architecture a = test::tiny_arch();
  a.base_upsample = BaseUpsample::Bicubic;
  const Model m = initial_model(a, 3);
  const at::Tensor lr = at::rand({3, 3, 8, 6});
  EXPECT_EQ(max_abs(BasicVSR(m).forward(lr) - at::upsample_bicubic2d(lr, {32, 24}, false)), 0.0f);
  // The same seed gives the same weights; residual blocks start small.
  const Model again = initial_model(a, 3);
  EXPECT_EQ(m.weights.at("fusion.weight").to_f32(), again.weights.at("fusion.weight").to_f32());
  double block = 0, input = 0;
  for (float v : m.weights.at("backward_trunk.main.2.0.conv1.weight").to_f32())
    block = std::max(block, std::abs(double(v)));
  for (float v : m.weights.at("backward_trunk.main.0.weight").to_f32())
    input = std::max(input, std::abs(double(v)));
  EXPECT_LT(block, 0.1 / std::sqrt(36.0) + 1e-6);  // bound 0.1 / sqrt(fan_in), fan_in = 4 * 9
  EXPECT_GT(input, 0.5 / std::sqrt(63.0));         // bound 1 / sqrt(7 * 9), nearly reached
}

TEST_F(NetworkTest, Bf16TrainingConvolutionsStayCloseToFp32) {
  const Model m = random_model(test::tiny_arch(), 4, 0.3f);
  const BasicVSR net(m);
  const at::Tensor lr = at::rand({1, 3, 3, 10, 12});
  AutogradEngine fp32, bf16(true);
  const auto [fwd, bwd] = net.compute_flows_batch(lr, fp32);
  const at::Tensor a = net.forward_batch(lr, fwd, bwd, fp32), b = net.forward_batch(lr, fwd, bwd, bf16);
  // bfloat16 keeps 8 significant bits: the network's residual differs by well under 1 %.
  const float residual = max_abs(a - at::upsample_bilinear2d(lr[0], {40, 48}, false).unsqueeze(0));
  EXPECT_GT(max_abs(a - b), 0.0f) << "bf16 really ran";
  EXPECT_LT(max_abs(a - b), 0.02f * residual + 1e-4f);
}

TEST(RunArithmetic, AFreshRunResolvesAndAResumedRunKeepsItsOwn) {
  const Compute faster = bf16_faster() ? Compute::Bf16 : Compute::Fp32;
  EXPECT_EQ(run_arithmetic(Compute::Auto, ""), faster);
  EXPECT_EQ(run_arithmetic(Compute::Fp32, ""), Compute::Fp32);
  EXPECT_EQ(run_arithmetic(Compute::Bf16, ""), Compute::Bf16);
  EXPECT_NE(error_of([] { run_arithmetic(Compute::Fp16, ""); }).find("auto, fp32 or bf16"),
            std::string::npos);
  if (!cpu_has_bf16()) {
    EXPECT_FALSE(bf16_faster()) << "bf16 is never picked without the instructions";
  }

  char dir_template[] = "/tmp/qbasicvsr-arith-XXXXXX";
  const std::string dir = mkdtemp(dir_template), path = dir + "/run.ckpt";
  Model ck = random_model(test::tiny_arch(), 1);
  // Both kinds of run record their arithmetic; auto on resume takes it whatever this CPU prefers.
  for (const char* key : {"training_state", "calibration_state"}) {
    for (const Compute c : {Compute::Fp32, Compute::Bf16}) {
      ck.extra_metadata.clear();
      ck.extra_metadata[key] = std::string(R"({"iteration":2,"compute":")") + compute_name(c) + "\"}";
      save_model(path, ck);
      EXPECT_EQ(run_arithmetic(Compute::Auto, path), c) << key;
      EXPECT_EQ(run_arithmetic(c, path), c) << key;
      const Compute other = c == Compute::Fp32 ? Compute::Bf16 : Compute::Fp32;
      const std::string e = error_of([&] { run_arithmetic(other, path); });
      EXPECT_NE(e.find(std::string("this run computes in ") + compute_name(c)), std::string::npos) << e;
      // The form for a checkpoint already loaded answers alike and names what it is told.
      EXPECT_EQ(run_arithmetic(Compute::Auto, ck, "loaded.ckpt"), c) << key;
      EXPECT_EQ(error_of([&] { run_arithmetic(other, ck, "loaded.ckpt"); }).rfind("loaded.ckpt: ", 0), 0u);
    }
  }
  // A checkpoint from before the record resolves like a fresh run.
  ck.extra_metadata.clear();
  ck.extra_metadata["training_state"] = R"({"iteration":2})";
  save_model(path, ck);
  EXPECT_EQ(run_arithmetic(Compute::Auto, path), faster);
  EXPECT_EQ(run_arithmetic(Compute::Bf16, path), Compute::Bf16);
  std::remove(path.c_str());
  rmdir(dir.c_str());
}

TEST(CheckResumable, ACalibrationResumesOnlyWithTheOptionsItStartedWith) {
  Model ck = random_model(test::tiny_arch(), 1);
  ck.extra_metadata["calibration_state"] =
      R"({"iteration":2,"run":{"bits":4,"keep_weights":false,"fg_vba":true,"target_bits":null,"lr":1e-05}})";
  CalibrationOptions o;
  o.bits = 4;
  o.lr_weights = 1e-5;
  EXPECT_NO_THROW(check_resumable(o, ck, "run.ckpt"));
  o.threads = 7;  // not part of the result
  o.stop_at = 9;
  EXPECT_NO_THROW(check_resumable(o, ck, "run.ckpt"));
  const auto refused = [&](const std::function<void(CalibrationOptions&)>& change, const std::string& says) {
    CalibrationOptions other = o;
    change(other);
    const std::string e = error_of([&] { check_resumable(other, ck, "run.ckpt"); });
    EXPECT_EQ(e.rfind("run.ckpt: the run was started with " + says, 0), 0u) << e;
    EXPECT_NE(e.find("resume it with its options"), std::string::npos) << e;
  };
  refused([](CalibrationOptions& c) { c.bits = 6; }, "--bits 4, not --bits 6");
  refused([](CalibrationOptions& c) { c.keep_weights = true; }, "--keep-weights no, not --keep-weights yes");
  refused([](CalibrationOptions& c) { c.fg_vba = false; }, "FG-VBA, not --no-fg-vba");
  refused([](CalibrationOptions& c) { c.target_bits = 6.5; },
          "TS-LBA's percentiles (no --target-bits), not --target-bits 6.5");
  refused([](CalibrationOptions& c) { c.lr_weights = 2e-5; }, "--lr 1e-05, not --lr 2e-05");
  ck.extra_metadata["calibration_state"] = R"({"iteration":2,"run":{"bits":4,"dynamic_ranges":true}})";
  refused([](CalibrationOptions& c) { c.dynamic_ranges = false; },
          "--dynamic-ranges yes, not --dynamic-ranges no");
  // The rounding is named before what auto derives from it (--equalize, --keep-weights).
  ck.extra_metadata["calibration_state"] =
      R"({"iteration":2,"run":{"bits":4,"hessian_rounding":true,"equalize":0.5,"keep_weights":true}})";
  o.hessian_rounding = true;
  o.equalize = 0.5;
  o.keep_weights = true;
  EXPECT_NO_THROW(check_resumable(o, ck, "run.ckpt"));
  refused(
      [](CalibrationOptions& c) {
        c.hessian_rounding = false;
        c.equalize = 0;
        c.keep_weights = false;
      },
      "--weight-rounding hessian, not --weight-rounding nearest");
  // With the sequences: others than the recorded digest are refused; without them, not looked at.
  ck.extra_metadata["calibration_state"] =
      R"({"iteration":2,"run":{"bits":4,"sequences":"0000000000000000"}})";
  const std::vector<std::vector<Image>> sequences(
      1, std::vector<Image>(2, Image{4, 4, std::vector<uint8_t>(48, 7), 8, {}}));
  EXPECT_NO_THROW(check_resumable(o, ck, "run.ckpt"));
  EXPECT_NE(error_of([&] {
              check_resumable(o, ck, "run.ckpt", &sequences);
            }).find("run.ckpt: the run was started on other calibration sequences"),
            std::string::npos);
  // Checkpoints from before the record pass whatever is asked.
  ck.extra_metadata["calibration_state"] = R"({"iteration":2})";
  o.bits = 8;
  o.keep_weights = true;
  EXPECT_NO_THROW(check_resumable(o, ck, "run.ckpt"));
}

TEST(CheckResumable, ATrainingResumesOnlyWithTheOptionsAndClipsItStartedWith) {
  Model ck = random_model(test::tiny_arch(), 1);
  TrainOptions o;
  const std::vector<GtClip> clips{
      {"a", std::vector<Image>(2, Image{4, 4, std::vector<uint8_t>(48, 7), 8, {}})}};
  // The record a run writes: its options and a digest of its clips; the same pass.
  ck.extra_metadata["training_state"] =
      std::string(R"({"iteration":2,"run":)") + training_options_json(o) + "}";
  EXPECT_NO_THROW(check_resumable(o, ck, "t.ckpt", &clips));
  TrainOptions other = o;
  other.threads = 3;
  other.val_every = 7;
  EXPECT_NO_THROW(check_resumable(other, ck, "t.ckpt", &clips));
  other.iters = o.iters + 1;
  EXPECT_EQ(error_of([&] { check_resumable(other, ck, "t.ckpt"); })
                .rfind("t.ckpt: the run was started with --iters " + std::to_string(o.iters) +
                           ", not --iters " + std::to_string(o.iters + 1),
                       0),
            0u);
  other = o;
  other.degradation = Degradation::BD;
  EXPECT_NE(
      error_of([&] { check_resumable(other, ck, "t.ckpt"); }).find("--degradation BI, not --degradation BD"),
      std::string::npos);
  other = o;
  other.flow_freeze = 5;
  EXPECT_NE(error_of([&] {
              check_resumable(other, ck, "t.ckpt");
            }).find("the default --flow-freeze, not --flow-freeze 5"),
            std::string::npos);
  ck.extra_metadata["training_state"] = R"({"iteration":2,"run":{"clips":"0000000000000000"}})";
  EXPECT_NO_THROW(check_resumable(o, ck, "t.ckpt"));
  EXPECT_NE(error_of([&] {
              check_resumable(o, ck, "t.ckpt", &clips);
            }).find("t.ckpt: the run was started on other training clips"),
            std::string::npos);
  ck.extra_metadata["training_state"] = R"({"iteration":2})";  // before the record
  EXPECT_NO_THROW(check_resumable(other, ck, "t.ckpt", &clips));
}

TEST(Tiling, BandsPartitionTheRowsAndAShortRemainderJoinsTheLastBand) {
  // 50 rows in cores of 16 with 4 rows of context: 0-16, 16-32, 32-50 (a 2-row remainder < 4
  // joins the last band).
  const auto bands = make_bands(50, 16, 4);
  ASSERT_EQ(bands.size(), 3u);
  EXPECT_EQ(bands[0].core0, 0);
  EXPECT_EQ(bands[0].core1, 16);
  EXPECT_EQ(bands[0].ext0, 0);  // clipped at the frame
  EXPECT_EQ(bands[0].ext1, 20);
  EXPECT_EQ(bands[1].core0, 16);
  EXPECT_EQ(bands[1].ext0, 12);
  EXPECT_EQ(bands[1].ext1, 36);
  EXPECT_EQ(bands[2].core0, 32);
  EXPECT_EQ(bands[2].core1, 50);
  EXPECT_EQ(bands[2].ext1, 50);
  // A remainder of at least the overlap is a band of its own.
  EXPECT_EQ(make_bands(52, 16, 4).size(), 4u);
  EXPECT_EQ(make_bands(10, 16, 4).size(), 1u);
}

TEST(Tiling, RampAndWeightsByHand) {
  const auto o = at::TensorOptions().dtype(at::kFloat);
  // Boundary at row 8, half 2: rows 6..9 centred at 6.5..9.5 -> (10 - y) / 4.
  const at::Tensor r = ramp_down(5, 6, 8, 2, o);
  const std::vector<float> want = {1.0f, 0.875f, 0.625f, 0.375f, 0.125f, 0.0f};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(r[i].item<float>(), want[i]) << i;
  // half 0: a step at the boundary.
  const at::Tensor step = ramp_down(6, 4, 8, 0, o);
  EXPECT_TRUE(at::equal(step, at::tensor({1.0f, 1.0f, 0.0f, 0.0f})));
  // Across a boundary the upper band's and the lower band's weights sum to 1, past 2048 rows too.
  const at::Tensor above = band_weights(3000, 8, -1, 3004, 3, at::kCPU);
  const at::Tensor below = band_weights(3000, 8, 3004, -1, 3, at::kCPU);
  EXPECT_TRUE(at::allclose(above + below, at::ones({8})));
  EXPECT_FLOAT_EQ(above[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(below[7].item<float>(), 1.0f);
}

TEST(LayerTable, EverythingDerivesFromOneTable) {
  Architecture arch;
  arch.channels = 8;
  arch.blocks = 3;
  arch.hr_channels = 12;
  const auto table = network_layers(arch);
  const LayerIds ids = layer_ids(arch);
  ASSERT_EQ(static_cast<int>(table.size()), ids.count);
  EXPECT_EQ(ids.spynet_count, 30);
  EXPECT_EQ(table.at(ids.spynet).name, "spynet.basic_module.0.basic_module.0");
  EXPECT_EQ(table.at(ids.backward_trunk).name, "backward_trunk.main.0");
  EXPECT_EQ(table.at(ids.backward_trunk + 2 + 2 * 2).name, "backward_trunk.main.2.2.conv2");
  EXPECT_EQ(table.at(ids.forward_trunk).name, "forward_trunk.main.0");
  EXPECT_EQ(table.at(ids.fusion).name, "fusion");
  EXPECT_EQ(table.back().name, "conv_last");
  EXPECT_EQ(table.at(ids.forward_trunk).frame_channels, kFrameChannels);
  // The model file's tensors, the quantization layers and the network's convolutions follow it.
  const auto tensors = expected_tensors(arch);
  const auto quant = conv_layers(arch);
  ASSERT_EQ(tensors.size(), 2 * table.size());
  ASSERT_EQ(quant.size(), table.size());
  BasicVSR net(random_model(arch, 1));
  const auto convs = net.layers();
  ASSERT_EQ(convs.size(), table.size());
  for (std::size_t i = 0; i < table.size(); ++i) {
    const ConvLayer& l = table[i];
    EXPECT_EQ(tensors[2 * i].name, l.name + ".weight");
    EXPECT_EQ(tensors[2 * i].shape,
              (std::vector<int64_t>{l.out_channels, l.in_channels, l.kernel, l.kernel}));
    EXPECT_EQ(quant[i].name, l.name);
    EXPECT_EQ(quant[i].out_channels, l.out_channels);
    EXPECT_EQ(quant[i].spynet, l.part == LayerPart::SpyNet);
    EXPECT_EQ(convs[i]->weight.sizes().vec(), tensors[2 * i].shape) << l.name;
  }
}
