#include "qbasicvsr/metrics.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "qbasicvsr/error.h"

namespace qbasicvsr {

namespace {

struct Plane {
  int w = 0, h = 0;
  std::vector<double> v;
  double at(int x, int y) const { return v[static_cast<std::size_t>(y) * w + x]; }
};

// Channel c (0..2) of the cropped image, or its luma for c < 0.
Plane plane(const Image& img, int crop, int c) {
  Plane p;
  p.w = img.width - 2 * crop;
  p.h = img.height - 2 * crop;
  p.v.reserve(static_cast<std::size_t>(p.w) * p.h);
  for (int y = crop; y < img.height - crop; ++y)
    for (int x = crop; x < img.width - crop; ++x) {
      const uint8_t* px = img.rgb.data() + (static_cast<std::size_t>(y) * img.width + x) * 3;
      p.v.push_back(c >= 0 ? px[c] : 16.0 + (65.481 * px[0] + 128.553 * px[1] + 24.966 * px[2]) / 255.0);
    }
  return p;
}

void check(const Image& a, const Image& b, int crop, int min_side) {
  if (a.width != b.width || a.height != b.height)
    throw Error("images differ in size: " + std::to_string(a.width) + "x" + std::to_string(a.height) +
                " vs " + std::to_string(b.width) + "x" + std::to_string(b.height));
  if (crop < 0 || a.width - 2 * crop < min_side || a.height - 2 * crop < min_side)
    throw Error("crop " + std::to_string(crop) + " leaves too little of a " + std::to_string(a.width) + "x" +
                std::to_string(a.height) + " image");
}

double ssim_plane(const Plane& a, const Plane& b) {
  constexpr int kRadius = 5;
  constexpr double kSigma = 1.5, c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255);
  double g[2 * kRadius + 1], sum = 0;
  for (int i = -kRadius; i <= kRadius; ++i)
    sum += g[i + kRadius] = std::exp(-(i * i) / (2 * kSigma * kSigma));
  for (double& v : g) v /= sum;
  double total = 0;
  int count = 0;
  for (int y = kRadius; y < a.h - kRadius; ++y)
    for (int x = kRadius; x < a.w - kRadius; ++x) {
      double ma = 0, mb = 0, saa = 0, sbb = 0, sab = 0;
      for (int dy = -kRadius; dy <= kRadius; ++dy)
        for (int dx = -kRadius; dx <= kRadius; ++dx) {
          const double w = g[dy + kRadius] * g[dx + kRadius];
          const double va = a.at(x + dx, y + dy), vb = b.at(x + dx, y + dy);
          ma += w * va;
          mb += w * vb;
          saa += w * va * va;
          sbb += w * vb * vb;
          sab += w * va * vb;
        }
      const double va = saa - ma * ma, vb = sbb - mb * mb, cov = sab - ma * mb;
      total += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
      ++count;
    }
  return total / count;
}

}  // namespace

double psnr(const Image& a, const Image& b, int crop, bool rgb) {
  check(a, b, crop, 1);
  double se = 0;
  std::size_t n = 0;
  for (int c = rgb ? 0 : -1; c < (rgb ? 3 : 0); ++c) {
    const Plane pa = plane(a, crop, c), pb = plane(b, crop, c);
    for (std::size_t i = 0; i < pa.v.size(); ++i) se += (pa.v[i] - pb.v[i]) * (pa.v[i] - pb.v[i]);
    n += pa.v.size();
  }
  if (se == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / (se / static_cast<double>(n)));
}

double ssim(const Image& a, const Image& b, int crop, bool rgb) {
  check(a, b, crop, 11);
  if (!rgb) return ssim_plane(plane(a, crop, -1), plane(b, crop, -1));
  double s = 0;
  for (int c = 0; c < 3; ++c) s += ssim_plane(plane(a, crop, c), plane(b, crop, c));
  return s / 3;
}

}  // namespace qbasicvsr
