// The network's building blocks below everything that runs it: a convolution's weights, tensors
// from model-file data, flow warping (DESIGN.md section 2). Internal: includes ATen.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>

#include "qbasicvsr/host_tensor.h"

namespace qbasicvsr {

// A convolution with "same" padding; weights kept channels_last, the fast layout on CPU.
struct Conv {
  at::Tensor weight;
  at::Tensor bias;
  int64_t padding = 0;

  static Conv from_weights(const std::map<std::string, HostTensor>& weights, const std::string& name);
  at::Tensor operator()(const at::Tensor& x) const;
};

at::Tensor to_tensor(const HostTensor& t);

// Warps x [N,C,H,W] by flow [N,2,H,W] (x then y displacement, pixels): output(p) =
// x(p + flow(p)), bilinear, align_corners=True; outside samples are zero, or the border
// pixel when `border` is set (SPyNet's choice).
at::Tensor flow_warp(const at::Tensor& x, const at::Tensor& flow, bool border = false);

}  // namespace qbasicvsr
