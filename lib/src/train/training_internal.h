// Pieces of training.cpp that tests check on their own. Internal: includes ATen.
#pragma once

#include <ATen/ATen.h>

#include <random>
#include <vector>

#include "qbasicvsr/training.h"

namespace qbasicvsr {

// A uniform number in [lo, hi) from the training's random engine.
inline double uniform(std::mt19937_64& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

struct FlowBatch {
  at::Tensor ref, supp, flow;  // [N,3,S,S], [N,3,S,S], [N,2,S,S]: ref(p) = supp(p + flow(p))
};

// One synthetic training pair for the flow network from a pool of [3,H,W] frames: a crop `supp`
// of a real frame, a flow field made of a random affine motion plus a smooth elastic
// displacement, `ref` sampled from the frame along that flow (content enters from outside the
// crop as it does in video), then patches of other frames pasted with their own integer motion,
// which makes occlusion boundaries with exact flow. ref [3,S,S], supp [3,S,S], flow [2,S,S].
void synthetic_pair(const std::vector<at::Tensor>& pool, int size, const FlowPretrainOptions& o,
                    std::mt19937_64& rng, at::Tensor& ref, at::Tensor& supp, at::Tensor& flow);

// The flow of a flipped image: flow [N,2,H,W] flipped along `dim` (2: rows, 3: columns) with
// `component` (1: y, 0: x) negated.
at::Tensor flip_flow(const at::Tensor& flow, int64_t dim, int component);

// Where the camera window of camera_clip() looks in one frame: its centre in photograph pixels
// (x, y; (0,0) is the first pixel's centre), the photograph pixels per window pixel (step >= 1)
// and its rotation in radians.
struct CameraPose {
  double cx = 0, cy = 0, step = 1, angle = 0;
};

// The window of width x height (pixel (i, j) at cx + step*R(angle)*(i - (width-1)/2, j -
// (height-1)/2)) sampled bicubically from `still` ([1,3,H,W] float, 0..255), rounded to 8 bits.
// A whole-pixel centre with step 1 and angle 0 is an exact crop.
Image render_view(const at::Tensor& still, const CameraPose& pose, int width, int height);

}  // namespace qbasicvsr
