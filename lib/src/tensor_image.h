// Conversions between 8-bit RGB images and float tensors in [0,1]. Internal: includes ATen.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "qbasicvsr/image.h"

namespace qbasicvsr {

// [T,3,H,W] float in [0,1]; throws Error if the frames differ in size.
at::Tensor images_to_tensor(const std::vector<Image>& frames);
// [1,3,H,W] or [3,H,W] float -> 8-bit RGB, clamped to [0,1] and rounded to nearest.
Image tensor_to_image(const at::Tensor& t);
// [3,H,W] float -> [H,W,3] bytes, the same conversion.
at::Tensor to_hwc_bytes(const at::Tensor& chw);
Image hwc_bytes_to_image(const at::Tensor& hwc);

}  // namespace qbasicvsr
