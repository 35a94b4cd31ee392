// Spatial tiling of the Upscaler: frames run as bands of full-width LR rows with rows of context
// on both sides, and neighbouring bands blend linearly across their boundary. Internal: includes
// ATen.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace qbasicvsr {

// LR rows [core0, core1) are this band's own; it runs on [ext0, ext1), `overlap` more each side.
struct Band {
  int64_t core0, core1, ext0, ext1;
  at::Tensor rows(const at::Tensor& x) const { return x.narrow(2, ext0, ext1 - ext0); }
};

// Bands of `core` rows partitioning h rows, each with `overlap` rows of context (clipped at the
// frame). A remainder shorter than the overlap joins the last band, so that every blend zone
// (the middle half of an overlap) lies inside both bands it joins. Needs overlap <= core.
std::vector<Band> make_bands(int64_t h, int64_t core, int64_t overlap);

// Weight of the band above a boundary at HR row `boundary` for HR rows y0 .. y0+rows-1 (sampled
// at their centres): a linear ramp from 1 to 0 over 2 * half rows centred on the boundary, a step
// when half is 0. The band below gets 1 minus it.
at::Tensor ramp_down(int64_t y0, int64_t rows, int64_t boundary, int64_t half, const at::TensorOptions& o);

// A band's weights for its HR rows y0 .. y0+rows-1 with a boundary above at `top` and below at
// `bottom` (-1: none), as float on `device` (fp16 could not count rows past 2048). Across a
// boundary the two bands' weights sum to 1.
at::Tensor band_weights(int64_t y0, int64_t rows, int64_t top, int64_t bottom, int64_t half,
                        const at::Device& device);

}  // namespace qbasicvsr
