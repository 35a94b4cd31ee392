#include "qbasicvsr/degrade.h"

#include <algorithm>
#include <cmath>

#include "qbasicvsr/error.h"

namespace qbasicvsr {

namespace {

// Keys' cubic convolution kernel with a = -0.5, as MATLAB's imresize.
double cubic(double x) {
  const double ax = std::fabs(x), ax2 = ax * ax, ax3 = ax2 * ax;
  if (ax <= 1) return 1.5 * ax3 - 2.5 * ax2 + 1;
  if (ax <= 2) return -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2;
  return 0;
}

struct Contribution {
  std::vector<int> index;  // 0-based input indices, mirrored into range
  std::vector<double> weight;
};

// MATLAB's contributions(): for each output index, the input indices and normalised weights.
std::vector<Contribution> contributions(int in_len, int out_len, double scale) {
  const bool shrink = scale < 1;
  const double kernel_width = shrink ? 4.0 / scale : 4.0;
  std::vector<Contribution> out(out_len);
  for (int i = 0; i < out_len; ++i) {
    const double u = (i + 1) / scale + 0.5 * (1 - 1 / scale);  // 1-based input coordinate
    const int left = static_cast<int>(std::floor(u - kernel_width / 2));
    const int taps = static_cast<int>(std::ceil(kernel_width)) + 2;
    Contribution& c = out[i];
    double sum = 0;
    for (int k = 0; k < taps; ++k) {
      const int j = left + k;  // 1-based
      const double w = shrink ? scale * cubic(scale * (u - j)) : cubic(u - j);
      // Symmetric padding: ... 2 1 | 1 2 ... n | n n-1 ...
      int m = (j - 1) % (2 * in_len);
      if (m < 0) m += 2 * in_len;
      const int idx = m < in_len ? m : 2 * in_len - 1 - m;
      c.index.push_back(idx);
      c.weight.push_back(w);
      sum += w;
    }
    for (double& w : c.weight) w /= sum;
  }
  return out;
}

FloatImage resize_rows(const FloatImage& img, int out_h, double scale) {
  const auto contrib = contributions(img.height, out_h, scale);
  FloatImage out{img.width, out_h, img.channels, {}};
  out.data.assign(static_cast<std::size_t>(img.width) * out_h * img.channels, 0.0);
  for (int y = 0; y < out_h; ++y)
    for (std::size_t k = 0; k < contrib[y].index.size(); ++k) {
      const double w = contrib[y].weight[k];
      if (w == 0) continue;
      const int sy = contrib[y].index[k];
      for (int x = 0; x < img.width; ++x)
        for (int c = 0; c < img.channels; ++c) out.at(x, y, c) += w * img.at(x, sy, c);
    }
  return out;
}

FloatImage transpose(const FloatImage& img) {
  FloatImage out{img.height, img.width, img.channels, std::vector<double>(img.data.size())};
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      for (int c = 0; c < img.channels; ++c) out.at(y, x, c) = img.at(x, y, c);
  return out;
}

}  // namespace

FloatImage to_float(const Image& img) {
  FloatImage f{img.width, img.height, 3, std::vector<double>(img.rgb.begin(), img.rgb.end())};
  return f;
}

Image to_uint8(const FloatImage& img) {
  if (img.channels != 3) throw Error("to_uint8 needs 3 channels");
  Image out;
  out.width = img.width;
  out.height = img.height;
  out.rgb.resize(img.data.size());
  for (std::size_t i = 0; i < img.data.size(); ++i)
    out.rgb[i] = static_cast<uint8_t>(std::clamp(std::round(img.data[i]), 0.0, 255.0));
  return out;
}

FloatImage imresize_bicubic(const FloatImage& img, double scale) {
  if (img.width < 1 || img.height < 1) throw Error("imresize of an empty image");
  const int out_h = static_cast<int>(std::ceil(scale * img.height));
  const int out_w = static_cast<int>(std::ceil(scale * img.width));
  // Equal scales: MATLAB resizes the first dimension (rows) first.
  const FloatImage rows = resize_rows(img, out_h, scale);
  return transpose(resize_rows(transpose(rows), out_w, scale));
}

Image modcrop(const Image& img, int multiple) {
  const int w = img.width / multiple * multiple, h = img.height / multiple * multiple;
  if (w == img.width && h == img.height) return img;
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(static_cast<std::size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    std::copy_n(img.rgb.begin() + static_cast<std::ptrdiff_t>(y) * img.width * 3, w * 3,
                out.rgb.begin() + static_cast<std::ptrdiff_t>(y) * w * 3);
  return out;
}

Image degrade_bi(const Image& gt) {
  if (gt.width % 4 || gt.height % 4)
    throw Error("ground-truth sides must be multiples of 4 (crop them first)");
  return to_uint8(imresize_bicubic(to_float(gt), 0.25));
}

Image degrade_bd(const Image& gt) {
  if (gt.width % 4 || gt.height % 4)
    throw Error("ground-truth sides must be multiples of 4 (crop them first)");
  constexpr int kRadius = 6;
  constexpr double kSigma = 1.6;
  double k1[2 * kRadius + 1], sum = 0;
  for (int i = -kRadius; i <= kRadius; ++i)
    sum += k1[i + kRadius] = std::exp(-(i * i) / (2 * kSigma * kSigma));
  for (double& v : k1) v /= sum;  // the 2-D Gaussian is separable: outer product of k1
  auto reflect = [](int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
  };
  const FloatImage f = to_float(gt);
  const int w = gt.width, h = gt.height, lw = w / 4, lh = h / 4;
  // Blur rows only where sampled, then columns at the sampled points.
  FloatImage rows{w, lh, 3, std::vector<double>(static_cast<std::size_t>(w) * lh * 3, 0.0)};
  for (int ly = 0; ly < lh; ++ly)
    for (int k = -kRadius; k <= kRadius; ++k) {
      const int sy = reflect(4 * ly + k, h);
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) rows.at(x, ly, c) += k1[k + kRadius] * f.at(x, sy, c);
    }
  FloatImage out{lw, lh, 3, std::vector<double>(static_cast<std::size_t>(lw) * lh * 3, 0.0)};
  for (int ly = 0; ly < lh; ++ly)
    for (int lx = 0; lx < lw; ++lx)
      for (int k = -kRadius; k <= kRadius; ++k) {
        const int sx = reflect(4 * lx + k, w);
        for (int c = 0; c < 3; ++c) out.at(lx, ly, c) += k1[k + kRadius] * rows.at(sx, ly, c);
      }
  return to_uint8(out);
}

Image upscale_bicubic(const Image& lr) { return to_uint8(imresize_bicubic(to_float(lr), 4.0)); }

}  // namespace qbasicvsr
