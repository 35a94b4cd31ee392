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

namespace {

// Blurs with the separable kernel k (k.size() taps) and keeps LR pixel (lx, ly), the kernel's tap
// 0 placed at HR coordinate (4 lx + first, 4 ly + first); `border` maps an index into 0..n-1.
template <typename Border>
Image blur_and_sample(const Image& gt, const std::vector<double>& k, int first, Border border) {
  if (gt.width % 4 || gt.height % 4)
    throw Error("ground-truth sides must be multiples of 4 (crop them first)");
  const FloatImage f = to_float(gt);
  const int w = gt.width, h = gt.height, lw = w / 4, lh = h / 4, taps = static_cast<int>(k.size());
  // Blur rows only where sampled, then columns at the sampled points.
  FloatImage rows{w, lh, 3, std::vector<double>(static_cast<std::size_t>(w) * lh * 3, 0.0)};
  for (int ly = 0; ly < lh; ++ly)
    for (int t = 0; t < taps; ++t) {
      const int sy = border(4 * ly + first + t, h);
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) rows.at(x, ly, c) += k[t] * f.at(x, sy, c);
    }
  FloatImage out{lw, lh, 3, std::vector<double>(static_cast<std::size_t>(lw) * lh * 3, 0.0)};
  for (int ly = 0; ly < lh; ++ly)
    for (int lx = 0; lx < lw; ++lx)
      for (int t = 0; t < taps; ++t) {
        const int sx = border(4 * lx + first + t, w);
        for (int c = 0; c < 3; ++c) out.at(lx, ly, c) += k[t] * rows.at(sx, ly, c);
      }
  return to_uint8(out);
}

constexpr double kBdSigma = 1.6;

}  // namespace

std::vector<double> bd_kernel() {
  // fspecial('gaussian', 12, 1.6): taps at offsets -5.5 .. 5.5; the 2-D kernel is the outer
  // product of this one with itself, normalised as a whole, hence each factor normalised.
  std::vector<double> k(12);
  double sum = 0;
  for (int t = 0; t < 12; ++t) sum += k[t] = std::exp(-(t - 5.5) * (t - 5.5) / (2 * kBdSigma * kBdSigma));
  for (double& v : k) v /= sum;
  return k;
}

Image degrade_bd(const Image& gt) {
  // imfilter puts an even kernel's tap 6 (1-based) on the output pixel, so HR pixel p gets taps at
  // p-5 .. p+6: a Gaussian centred at p + 0.5. Rows and columns 2:4:end-2 (1-based) are p = 4i + 1.
  return blur_and_sample(gt, bd_kernel(), 1 - 5, [](int i, int n) { return std::clamp(i, 0, n - 1); });
}

Image degrade_bd_duf(const Image& gt) {
  std::vector<double> k(13);
  double sum = 0;
  for (int t = 0; t < 13; ++t) sum += k[t] = std::exp(-(t - 6) * (t - 6) / (2 * kBdSigma * kBdSigma));
  for (double& v : k) v /= sum;
  return blur_and_sample(gt, k, -6, [](int i, int n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
  });
}

Degradation parse_degradation(const std::string& name) {
  if (name == "BI") return Degradation::BI;
  if (name == "BD") return Degradation::BD;
  if (name == "BD-duf") return Degradation::BDDuf;
  throw Error("unknown degradation \"" + name + "\" (expected BI, BD or BD-duf)");
}

const char* degradation_name(Degradation d) {
  switch (d) {
    case Degradation::BI:
      return "BI";
    case Degradation::BD:
      return "BD";
    default:
      return "BD-duf";
  }
}

Image degrade(const Image& gt, Degradation d) {
  switch (d) {
    case Degradation::BI:
      return degrade_bi(gt);
    case Degradation::BD:
      return degrade_bd(gt);
    default:
      return degrade_bd_duf(gt);
  }
}

Image degrade_cropped(const Image& gt, Degradation d) { return degrade(modcrop(gt), d); }

Image upscale_bicubic(const Image& lr) { return to_uint8(imresize_bicubic(to_float(lr), 4.0)); }

}  // namespace qbasicvsr
