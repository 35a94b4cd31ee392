// FG-VBA measurements on tensors (DESIGN.md section 1). Internal: includes ATen.
#pragma once

#include <ATen/ATen.h>

#include "qbasicvsr/complexity.h"

namespace qbasicvsr {

// d/dx and d/dy of f [..., H, W] with numpy.gradient's convention: central differences inside,
// one-sided at the borders, zero along a dimension of size 1.
at::Tensor gradient_x(const at::Tensor& f);
at::Tensor gradient_y(const at::Tensor& f);

// S_t = 1000 * mean(|dY/dx| + |dY/dy|) of the BT.601 luma of each frame of lr [T,3,H,W].
std::vector<double> spatial_detail(const at::Tensor& lr);
// Per flow [N,2,H,W]: mean sqrt(u^2 + v^2) and mean of the Jacobian's absolute entries.
std::vector<double> flow_magnitude(const at::Tensor& flows);
std::vector<double> flow_inconsistency(const at::Tensor& flows);

// Adds weight x the per-pair T_mag and T_cons of flows (each [T-1,2,H,W]; forward and backward
// averaged) to c's per-pair values, sizing them on first use.
void add_motion(VideoComplexity& c, const at::Tensor& flows_forward, const at::Tensor& flows_backward,
                double weight);

// Everything for one clip, from its frames and its SPyNet flows (each [T-1,2,H,W]).
VideoComplexity measure_complexity(const at::Tensor& lr, const at::Tensor& flows_forward,
                                   const at::Tensor& flows_backward, const FgVbaParams& p);

}  // namespace qbasicvsr
