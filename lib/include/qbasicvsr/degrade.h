// Degradations that make LR test clips from ground truth (DESIGN.md section 3), and the bicubic
// baseline. No LibTorch: plain loops in double precision.
#pragma once

#include <vector>

#include "qbasicvsr/image.h"

namespace qbasicvsr {

// A float image, channels interleaved (RGB), values in 0..255.
struct FloatImage {
  int width = 0, height = 0, channels = 3;
  std::vector<double> data;
  double& at(int x, int y, int c) { return data[(static_cast<std::size_t>(y) * width + x) * channels + c]; }
  double at(int x, int y, int c) const {
    return data[(static_cast<std::size_t>(y) * width + x) * channels + c];
  }
};

FloatImage to_float(const Image& img);
// Rounds half away from zero (MATLAB's uint8 conversion) and clamps to 0..255.
Image to_uint8(const FloatImage& img);

// MATLAB's imresize(x, scale, 'bicubic') with its defaults: cubic kernel a = -0.5, antialiasing
// when shrinking (the kernel stretched by 1/scale), symmetric border handling, rows first.
// Output size ceil(scale * size).
FloatImage imresize_bicubic(const FloatImage& img, double scale);

// BI: imresize(gt, 1/4, 'bicubic') rounded to uint8. GT sides must be multiples of 4.
Image degrade_bi(const Image& gt);
// BD: 13x13 Gaussian blur (sigma 1.6) with mirror (reflect-101) borders, then every 4th pixel
// from offset 0, rounded to uint8.
Image degrade_bd(const Image& gt);
// The bicubic x4 baseline: imresize(lr, 4, 'bicubic') rounded to uint8.
Image upscale_bicubic(const Image& lr);
// Crops to the largest multiple of 4 in each side (the "modcrop" of SR benchmarks).
Image modcrop(const Image& img, int multiple = 4);

}  // namespace qbasicvsr
