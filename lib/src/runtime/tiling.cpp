#include "runtime/tiling.h"

#include <algorithm>

namespace qbasicvsr {

std::vector<Band> make_bands(int64_t h, int64_t core, int64_t overlap) {
  std::vector<Band> bands;
  for (int64_t r0 = 0; r0 < h;) {
    int64_t r1 = std::min(h, r0 + core);
    if (h - r1 < overlap) r1 = h;
    bands.push_back({r0, r1, std::max<int64_t>(0, r0 - overlap), std::min(h, r1 + overlap)});
    r0 = r1;
  }
  return bands;
}

at::Tensor ramp_down(int64_t y0, int64_t rows, int64_t boundary, int64_t half, const at::TensorOptions& o) {
  const at::Tensor y = at::arange(y0, y0 + rows, o).add_(0.5);
  if (half == 0) return (y < static_cast<double>(boundary)).to(o.dtype());
  return at::clamp((static_cast<double>(boundary + half) - y) / static_cast<double>(2 * half), 0.0, 1.0);
}

at::Tensor band_weights(int64_t y0, int64_t rows, int64_t top, int64_t bottom, int64_t half,
                        const at::Device& device) {
  const auto o = at::TensorOptions().dtype(at::kFloat).device(device);
  at::Tensor weight = at::ones({rows}, o);
  if (top >= 0) weight = weight - ramp_down(y0, rows, top, half, o);
  if (bottom >= 0) weight = weight * ramp_down(y0, rows, bottom, half, o);
  return weight;
}

}  // namespace qbasicvsr
