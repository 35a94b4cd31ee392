// The GPU path: what does not need a GPU runs everywhere (the typed quantizer and convolutions on
// the CPU, the errors); the rest compares GPU against CPU and skips where no GPU is visible
// (bench/gpu.sh runs this binary on a GPU machine).
#include <gtest/gtest.h>

#include <cmath>

#include "net/engine.h"
#include "qbasicvsr/calibration.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/runtime.h"
#include "qbasicvsr/upscaler.h"
#include "quant/quantizer.h"
#include "test_util.h"

using namespace qbasicvsr;

namespace {

bool gpu() { return at::hasCUDA(); }

// A clip with structure (gradients, an edge, moving by one pixel per frame), not noise.
std::vector<Image> moving_clip(int w, int h, int frames) {
  std::vector<Image> clip(frames);
  for (int t = 0; t < frames; ++t) {
    Image& f = clip[t];
    f.width = w;
    f.height = h;
    f.rgb.resize(static_cast<std::size_t>(w) * h * 3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const int u = x + t;
        uint8_t* p = &f.rgb[(static_cast<std::size_t>(y) * w + x) * 3];
        p[0] = static_cast<uint8_t>((u * 7 + y * 3) % 256);
        p[1] = static_cast<uint8_t>(u > w / 2 ? 200 : 40);
        p[2] = static_cast<uint8_t>(128 + 100 * std::sin(0.3 * u + 0.2 * y));
      }
  }
  return clip;
}

std::vector<Image> run(const Model& model, UpscalerOptions o, const std::vector<Image>& clip) {
  Upscaler up(model, o);
  std::vector<Image> out;
  up.upscale(clip, [&](std::size_t, Image&& f) { out.push_back(std::move(f)); });
  return out;
}

double psnr(const std::vector<Image>& a, const std::vector<Image>& b) {
  double se = 0, n = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t k = 0; k < a[i].rgb.size(); ++k) {
      const double d = static_cast<double>(a[i].rgb[k]) - b[i].rgb[k];
      se += d * d;
      n += 1;
    }
  return se == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / (se / n));
}

Model quantized_model() {
  Model m = random_model(test::tiny_arch(), 3);
  m.quantization = QuantSettings();
  m.quantization->b_base = 6;
  return m;  // ranges observed on the first clip
}

}  // namespace

TEST(Device, TypedQuantizerOnTheCpuIsTheQuantizerThenTheCast) {
  const at::Tensor x = at::randn({2, 8, 5, 7}) * 3;
  const ActGrid g = ActGrid::make(-2.0f, 5.0f, 6);
  for (const auto type : {at::kFloat, at::kHalf, at::kBFloat16}) {
    const at::Tensor q = fake_quant_act(x, g, type);
    EXPECT_EQ(q.scalar_type(), type);
    EXPECT_TRUE(at::equal(q, fake_quant_act(x, g).to(type)));
    // From 16-bit features: quantized from their float values.
    const at::Tensor h = x.to(at::kBFloat16);
    EXPECT_TRUE(at::equal(fake_quant_act(h, g, type), fake_quant_act(h.to(at::kFloat), g).to(type)));
  }
}

TEST(Device, TypedConvolutionsCastTheWeightsOnce) {
  c10::InferenceMode guard;
  Conv c;
  c.weight = at::randn({6, 4, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast);
  c.bias = at::randn({6});
  c.padding = 1;
  const at::Tensor x = at::randn({1, 4, 9, 11});
  DeviceConvs convs;
  const at::Tensor y = convs.run(c, x.to(at::kBFloat16));
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);  // features stay in the convolutions' type
  const at::Tensor ref =
      at::conv2d(x.to(at::kBFloat16), c.weight.to(at::kBFloat16), c.bias.to(at::kBFloat16), {1, 1}, {1, 1});
  EXPECT_TRUE(at::allclose(y.to(at::kFloat), ref.to(at::kFloat), 1e-2, 1e-2));
  EXPECT_TRUE(at::equal(convs.run(c, x), c(x)));  // fp32 as it is
}

TEST(Device, Fp16AndGpuOnlySettingsAreErrorsWhereTheyCannotRun) {
  UpscalerOptions o;
  o.float_layers = Compute::Fp16;
  EXPECT_NE(test::error_of([&] { Upscaler(random_model(test::tiny_arch(), 1), o); }).find("need device cuda"),
            std::string::npos);
  EXPECT_THROW(FloatConvs(FloatMath::Fp16), Error);
  CalibrationOptions c;
  c.compute = Compute::Fp16;
  EXPECT_THROW(c.validate(), Error);
  EXPECT_EQ(parse_compute("fp16"), Compute::Fp16);
  // A quantized model runs simulated on the GPU, which has no int8 path.
  EXPECT_EQ(default_precision(quantized_model(), "cuda"), Precision::Fake);
  EXPECT_EQ(default_precision(quantized_model(), "cpu"), Precision::Int8);
  EXPECT_EQ(default_precision(random_model(test::tiny_arch(), 1), "cuda"), Precision::FP32);
  EXPECT_STREQ(compute_name(Compute::Fp16), "fp16");
  if (!gpu()) {
    o.float_layers = Compute::Fp32;
    o.device = "cuda";
    EXPECT_NE(
        test::error_of([&] { Upscaler(random_model(test::tiny_arch(), 1), o); }).find("device cuda: this "),
        std::string::npos);
  }
}

TEST(Device, FusedQuantizerKernelIsBitIdenticalToTheCpu) {
  if (!gpu()) GTEST_SKIP() << "no GPU";
  // Values on and half-way between grid points, beyond both ends, in channels_last.
  const ActGrid g = ActGrid::make(-1.5f, 4.0f, 6);
  at::Tensor x = (at::arange(-2000, 6000).to(at::kFloat) * (g.scale / 500.0f)).view({1, 8, 40, 25});
  x = at::cat({x, at::randn({1, 8, 40, 25}) * 3}).contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor cpu = fake_quant_act(x, g);
  for (const auto type : {at::kFloat, at::kHalf, at::kBFloat16}) {
    const at::Tensor dev = fake_quant_act(x.to(at::kCUDA), g, type);
    EXPECT_EQ(dev.scalar_type(), type);
    EXPECT_TRUE(dev.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(at::equal(dev.to(at::kCPU), cpu.to(type))) << type;
    for (const auto in : {at::kHalf, at::kBFloat16}) {  // 16-bit features in
      const at::Tensor xi = x.to(in);
      EXPECT_TRUE(at::equal(fake_quant_act(xi.to(at::kCUDA), g, type).to(at::kCPU),
                            fake_quant_act(xi.to(at::kFloat), g).to(type)))
          << in << " -> " << type;
    }
  }
}

TEST(Device, GpuOutputsMatchTheCpuForEveryPrecision) {
  if (!gpu()) GTEST_SKIP() << "no GPU";
  const Model fp = random_model(test::tiny_arch(), 3);
  const Model q = quantized_model();
  const auto clip = moving_clip(40, 24, 5);
  UpscalerOptions cpu, dev;
  dev.device = "cuda";
  const auto ref = run(fp, cpu, clip);
  cpu.precision = dev.precision = Precision::Fake;
  const auto ref_fake = run(q, cpu, clip);
  struct Case {
    Precision p;
    Compute math;
    double min_db;
  };
  for (const Case c : {Case{Precision::FP32, Compute::Fp32, 50}, Case{Precision::FP32, Compute::Fp16, 45},
                       Case{Precision::FP32, Compute::Bf16, 38}, Case{Precision::Fake, Compute::Fp32, 45},
                       Case{Precision::Fake, Compute::Fp16, 40}}) {
    dev.precision = c.p;
    dev.float_layers = c.math;
    const auto out = run(c.p == Precision::FP32 ? fp : q, dev, clip);
    ASSERT_EQ(out.size(), clip.size());
    const double db = psnr(out, c.p == Precision::FP32 ? ref : ref_fake);
    EXPECT_GE(db, c.min_db) << precision_name(c.p) << " " << compute_name(c.math);
    std::printf("GPU vs CPU %s, convolutions %s: %.2f dB\n", precision_name(c.p), compute_name(c.math), db);
  }
  // In bands of 8 LR rows, blended in float whatever the features' type.
  dev.precision = Precision::FP32;
  dev.float_layers = Compute::Fp16;
  dev.tile_rows = 8;
  dev.tile_overlap = 4;
  const double tiled = psnr(run(fp, dev, clip), ref);
  EXPECT_GE(tiled, 35.0);  // bands differ from one pass near their seams; broken blending gives < 20
  std::printf("GPU vs CPU fp32, convolutions fp16, in bands of 8 rows: %.2f dB\n", tiled);
}

TEST(Device, StreamOnTheGpuMatchesTheSameStreamOnTheCpu) {
  if (!gpu()) GTEST_SKIP() << "no GPU";
  const Model fp = random_model(test::tiny_arch(), 3);
  const auto clip = moving_clip(32, 20, 7);
  // Chunks of 3 output frames with 2 lookahead: the forward state crosses chunks on the device.
  auto stream = [&](const std::string& device) {
    UpscalerOptions o;
    o.device = device;
    Upscaler up(fp, o);
    StreamState state;
    std::vector<Image> out;
    for (std::size_t start = 0; start < clip.size(); start += 3) {
      const std::size_t count = std::min<std::size_t>(3, clip.size() - start);
      const std::size_t end = std::min(clip.size(), start + count + 2);
      const std::vector<Image> chunk(clip.begin() + static_cast<long>(start),
                                     clip.begin() + static_cast<long>(end));
      up.upscale_chunk(chunk, count, state, [&](std::size_t, Image&& f) { out.push_back(std::move(f)); });
    }
    return out;
  };
  const auto dev = stream("cuda"), cpu = stream("cpu");
  ASSERT_EQ(dev.size(), clip.size());
  EXPECT_GE(psnr(dev, cpu), 50.0);
}

TEST(Device, Int8OnTheGpuIsAnError) {
  if (!gpu()) GTEST_SKIP() << "no GPU";
  UpscalerOptions o;
  o.device = "cuda";
  o.precision = Precision::Int8;
  EXPECT_NE(test::error_of([&] { Upscaler(quantized_model(), o); }).find("runs on the CPU"),
            std::string::npos);
}
