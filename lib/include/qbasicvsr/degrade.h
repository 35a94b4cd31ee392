// Degradations that make LR test clips from ground truth (DESIGN.md section 3), and the bicubic
// baseline. No LibTorch: plain loops in double precision.
#pragma once

#include <string>
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
// BD as BasicVSR's BD_degradation.m makes it (its BD checkpoints were trained and scored on it):
// fspecial('gaussian', 12, 1.6), imfilter(..., 'replicate'), rows and columns 2:4:end-2
// (1-based), rounded half away from zero: LR pixel i is a Gaussian centred at HR 4i + 1.5.
Image degrade_bd(const Image& gt);
// The 12 taps of that Gaussian (offsets -5.5 .. 5.5), normalised.
std::vector<double> bd_kernel();
// The DUF convention older tables used: 13x13 Gaussian (sigma 1.6), mirror (reflect-101)
// borders, every 4th pixel from 0. Named "BD-duf"; the official BD weights score 8 dB lower on it.
Image degrade_bd_duf(const Image& gt);

enum class Degradation { BI, BD, BDDuf };
// "BI", "BD" or "BD-duf"; throws Error otherwise.
Degradation parse_degradation(const std::string& name);
const char* degradation_name(Degradation d);
// The degradation of a ground-truth frame whose sides are multiples of 4.
Image degrade(const Image& gt, Degradation d);
// The same for a frame of any size, cropped to multiples of 4 first.
Image degrade_cropped(const Image& gt, Degradation d);
// The bicubic x4 baseline: imresize(lr, 4, 'bicubic') rounded to uint8.
Image upscale_bicubic(const Image& lr);
// Crops to the largest multiple of 4 in each side (the "modcrop" of SR benchmarks).
Image modcrop(const Image& img, int multiple = 4);

}  // namespace qbasicvsr
