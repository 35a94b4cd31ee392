// Image quality metrics as the VSR literature computes them (BasicSR's conventions): PSNR and
// SSIM on the BT.601 luma Y = 16 + 65.481 R + 128.553 G + 24.966 B (RGB in [0,1], Y in 0..255,
// not rounded), or on RGB, after cropping `crop` pixels from every side. No LibTorch.
#pragma once

#include "qbasicvsr/image.h"

namespace qbasicvsr {

// Returns +infinity for identical images. Throws Error for different sizes or a crop that
// leaves nothing.
double psnr(const Image& a, const Image& b, int crop = 0, bool rgb = false);
// SSIM with an 11x11 Gaussian window (sigma 1.5), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2,
// over the window positions that fit ("valid"); on RGB the mean over the three channels.
double ssim(const Image& a, const Image& b, int crop = 0, bool rgb = false);

}  // namespace qbasicvsr
