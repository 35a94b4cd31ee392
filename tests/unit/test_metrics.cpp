// Degradations (MATLAB imresize, BD blur) and PSNR/SSIM on hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>

#include "qbasicvsr/degrade.h"
#include "qbasicvsr/metrics.h"
#include "test_util.h"

using namespace qbasicvsr;

namespace {

Image flat(int w, int h, uint8_t v) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.assign(static_cast<std::size_t>(w) * h * 3, v);
  return img;
}

FloatImage gray_row(const std::vector<double>& v) {
  FloatImage f{static_cast<int>(v.size()), 1, 3, {}};
  for (double x : v) f.data.insert(f.data.end(), {x, x, x});
  return f;
}

}  // namespace

TEST(Imresize, UpscaleWeightsAtTheBorderByHand) {
  // x4 up, output pixel 1 (1-based): u = 1/4 + 0.375 = 0.625, taps j = -1..2 with Keys a = -0.5
  // weights cubic(1.625) = -0.0439453125, cubic(0.625) = 0.3896484375,
  // cubic(-0.375) = 0.7275390625, cubic(-1.375) = -0.0732421875; symmetric borders map
  // j = -1, 0, 1, 2 to x2, x1, x1, x2: out = 1.1171875 x1 - 0.1171875 x2.
  const FloatImage out = imresize_bicubic(gray_row({100, 20}), 4.0);
  ASSERT_EQ(out.width, 8);
  ASSERT_EQ(out.height, 4);
  EXPECT_NEAR(out.at(0, 0, 0), 1.1171875 * 100 - 0.1171875 * 20, 1e-9);
  EXPECT_NEAR(out.at(0, 3, 2), 109.375, 1e-9);  // rows of a 1-row image are copies
  EXPECT_EQ(to_uint8(out).rgb[0], 109);
  // Mirror image at the other end.
  EXPECT_NEAR(out.at(7, 0, 0), 1.1171875 * 20 - 0.1171875 * 100, 1e-9);
}

TEST(Imresize, AntialiasedShrinkKeepsLinearRampsInTheInterior) {
  // Keys' kernel reproduces linear functions; away from the borders output i (1-based) of a
  // x1/4 shrink samples the ramp at u = 4 i - 1.5.
  std::vector<double> ramp;
  for (int j = 1; j <= 32; ++j) ramp.push_back(j);
  const FloatImage out = imresize_bicubic(gray_row(ramp), 0.25);
  ASSERT_EQ(out.width, 8);
  for (int i = 3; i <= 6; ++i) EXPECT_NEAR(out.at(i - 1, 0, 1), 4.0 * i - 1.5, 1e-9) << i;
  // Constant images stay constant, through both degradations.
  EXPECT_EQ(degrade_bi(flat(16, 8, 77)).rgb, flat(4, 2, 77).rgb);
  EXPECT_EQ(degrade_bd(flat(16, 8, 77)).rgb, flat(4, 2, 77).rgb);
  EXPECT_EQ(degrade_bd_duf(flat(16, 8, 77)).rgb, flat(4, 2, 77).rgb);
  EXPECT_EQ(upscale_bicubic(flat(3, 2, 200)).rgb, flat(12, 8, 200).rgb);
  EXPECT_NE(test::error_of([] { degrade_bi(flat(10, 8, 0)); }), "");
}

TEST(Degrade, BdKernelIsMatlabsTwelveTapGaussian) {
  // fspecial('gaussian', 12, 1.6): taps at -5.5 .. 5.5, exp(-x^2 / 5.12), normalised.
  const std::vector<double> k = bd_kernel();
  ASSERT_EQ(k.size(), 12u);
  double sum = 0;
  for (int t = 0; t < 12; ++t) sum += std::exp(-(t - 5.5) * (t - 5.5) / 5.12);
  for (int t = 0; t < 12; ++t) {
    EXPECT_NEAR(k[t], std::exp(-(t - 5.5) * (t - 5.5) / 5.12) / sum, 1e-15) << t;
    EXPECT_DOUBLE_EQ(k[t], k[11 - t]) << t;  // symmetric about the half-way point
  }
  // By hand: the sum of the 12 exponentials is 4.0100483; a centre tap exp(-0.25 / 5.12) = 0.9523450.
  EXPECT_NEAR(k[5], 0.23749, 1e-5);
  EXPECT_NEAR(k[0], 0.00067756, 1e-8);  // exp(-30.25 / 5.12) = 0.0027171, over the same sum
}

TEST(Degrade, BdPutsLrPixelIAtHrFourIPlusOneAndAHalf) {
  // An impulse at HR (x 9, y 5) of a 24x16 frame: LR pixel (i, j) sums HR x = 4i+1-5 .. 4i+1+6
  // with tap t at x = 4i - 4 + t, so x 9 is tap 5 for i = 2 (weight k5) and tap 9 for i = 1 (k9,
  // the Gaussian 3.5 px away); y 5 is tap 5 for j = 1.
  const std::vector<double> k = bd_kernel();
  Image img = flat(24, 16, 0);
  for (int c = 0; c < 3; ++c) img.rgb[(5 * 24 + 9) * 3 + c] = 255;
  const Image lr = degrade_bd(img);
  ASSERT_EQ(lr.width, 6);
  ASSERT_EQ(lr.height, 4);
  EXPECT_EQ(lr.rgb[(1 * 6 + 2) * 3], static_cast<uint8_t>(std::round(255 * k[5] * k[5])));  // 14
  EXPECT_EQ(lr.rgb[(1 * 6 + 1) * 3], static_cast<uint8_t>(std::round(255 * k[9] * k[5])));
  EXPECT_EQ(lr.rgb[(1 * 6 + 3) * 3], static_cast<uint8_t>(std::round(255 * k[1] * k[5])));
  // The same impulse one pixel to the right (x 10) is tap 6 for i = 2: k6 = k5, the same value —
  // the Gaussian is centred half-way between HR 9 and 10 (4 * 2 + 1.5).
  Image right = flat(24, 16, 0);
  for (int c = 0; c < 3; ++c) right.rgb[(5 * 24 + 10) * 3 + c] = 255;
  EXPECT_EQ(degrade_bd(right).rgb[(1 * 6 + 2) * 3], lr.rgb[(1 * 6 + 2) * 3]);
}

TEST(Degrade, BdReplicatesBordersAndRoundsOnce) {
  // A column of 200 at x 0 and 0 elsewhere: LR pixel 0 reads HR x = -4 .. 7, taps 0..4 land on
  // x 0 (replicated) and tap 5 is x 1... so its value is 200 * (k0 + .. + k4). Mirror padding
  // (BD-duf's) would not put five taps there.
  const std::vector<double> k = bd_kernel();
  Image img = flat(16, 8, 0);
  for (int y = 0; y < 8; ++y)
    for (int c = 0; c < 3; ++c) img.rgb[(y * 16) * 3 + c] = 200;
  const double expected = 200 * (k[0] + k[1] + k[2] + k[3] + k[4]);  // 200 * 0.2587.. = 51.7
  const Image lr = degrade_bd(img);
  EXPECT_EQ(lr.rgb[0], static_cast<uint8_t>(std::round(expected)));
  EXPECT_EQ(lr.rgb[(1 * 4 + 0) * 3], lr.rgb[0]);  // every row alike
  EXPECT_NE(degrade_bd_duf(img).rgb[0], lr.rgb[0]);
  // Rounding happens once, half away from zero, on the double result.
  FloatImage half{1, 1, 3, {0.5, 1.5, 254.5}};
  EXPECT_EQ(to_uint8(half).rgb, (std::vector<uint8_t>{1, 2, 255}));
  // Names.
  EXPECT_EQ(parse_degradation("BD"), Degradation::BD);
  EXPECT_EQ(parse_degradation("BD-duf"), Degradation::BDDuf);
  EXPECT_STREQ(degradation_name(Degradation::BI), "BI");
  EXPECT_NE(test::error_of([] { parse_degradation("bd"); }), "");
}

TEST(Degrade, BdDufSamplesTheBlurEveryFourthPixelFromZero) {
  // An impulse at (8, 4) of a 24x16 frame lands on LR pixel (2, 1) with the centre weight of the
  // normalised 13x13 Gaussian, g0^2, and on (1, 1) with weights g0 * g4.
  Image img = flat(24, 16, 0);
  for (int c = 0; c < 3; ++c) img.rgb[(4 * 24 + 8) * 3 + c] = 255;
  double sum = 0;
  for (int i = -6; i <= 6; ++i) sum += std::exp(-i * i / (2 * 1.6 * 1.6));
  const double g0 = 1 / sum, g4 = std::exp(-16 / (2 * 1.6 * 1.6)) / sum;
  const Image lr = degrade_bd_duf(img);
  ASSERT_EQ(lr.width, 6);
  EXPECT_EQ(lr.rgb[(1 * 6 + 2) * 3], static_cast<uint8_t>(std::round(255 * g0 * g0)));
  EXPECT_EQ(lr.rgb[(1 * 6 + 1) * 3], static_cast<uint8_t>(std::round(255 * g0 * g4)));
  EXPECT_EQ(modcrop(flat(10, 7, 1)).width, 8);
  EXPECT_EQ(modcrop(flat(10, 7, 1)).height, 4);
}

TEST(Metrics, PsnrOnYAndRgb) {
  const Image a = flat(8, 8, 100), b = flat(8, 8, 101);
  // Y differs by (65.481 + 128.553 + 24.966) / 255 = 219 / 255.
  EXPECT_NEAR(psnr(a, b), 20 * std::log10(255.0 / (219.0 / 255.0)), 1e-9);
  EXPECT_NEAR(psnr(a, b, 0, true), 20 * std::log10(255.0), 1e-9);  // 48.13 dB
  EXPECT_TRUE(std::isinf(psnr(a, a)));
  // Cropping removes the only differing pixel.
  Image c = a;
  c.rgb[0] = 0;
  EXPECT_TRUE(std::isinf(psnr(a, c, 1)));
  EXPECT_NE(test::error_of([&] { psnr(a, flat(8, 9, 0)); }), "");
  EXPECT_NE(test::error_of([&] { psnr(a, b, 4); }), "");
}

TEST(Metrics, SsimByFormula) {
  const Image a = flat(16, 16, 100), b = flat(16, 16, 101);
  EXPECT_NEAR(ssim(a, a), 1.0, 1e-12);
  // Flat images: no variance, so SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
  const double ya = 16 + 219.0 * 100 / 255, yb = 16 + 219.0 * 101 / 255, c1 = 2.55 * 2.55;
  EXPECT_NEAR(ssim(a, b), (2 * ya * yb + c1) / (ya * ya + yb * yb + c1), 1e-9);
  // A checkerboard against its inverse: strongly negative structure term.
  Image ch = flat(16, 16, 0), inv = flat(16, 16, 0);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x)
      for (int k = 0; k < 3; ++k) {
        ch.rgb[(y * 16 + x) * 3 + k] = (x + y) % 2 ? 200 : 50;
        inv.rgb[(y * 16 + x) * 3 + k] = (x + y) % 2 ? 50 : 200;
      }
  EXPECT_LT(ssim(ch, inv), -0.9);
  EXPECT_NE(test::error_of([&] { ssim(flat(10, 10, 0), flat(10, 10, 0)); }), "");  // smaller than the window
}
