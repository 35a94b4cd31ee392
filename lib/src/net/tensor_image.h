// Conversions between RGB images (8 or 16 bits) and float tensors in [0,1]. Internal: includes
// ATen.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "qbasicvsr/image.h"

namespace qbasicvsr {

// [T,3,H,W] float in [0,1]; throws Error if the frames differ in size.
at::Tensor images_to_tensor(const std::vector<Image>& frames);
// [1,3,H,W] or [3,H,W] float -> RGB at `depth` bits, clamped to [0,1] and rounded to nearest.
Image tensor_to_image(const at::Tensor& t, int depth = 8);
// [3,H,W] float -> [H,W,3] samples at `depth` bits (8: bytes, 16: int32), the same conversion.
at::Tensor to_hwc_samples(const at::Tensor& chw, int depth);
Image hwc_samples_to_image(const at::Tensor& hwc, int depth);

}  // namespace qbasicvsr
