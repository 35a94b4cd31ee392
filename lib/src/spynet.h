// SPyNet optical flow and flow warping (DESIGN.md section 2). Internal: includes ATen.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <map>
#include <string>
#include <vector>

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

class Engine;

class SpyNet {
 public:
  static constexpr int kLevels = 6;

  explicit SpyNet(const std::map<std::string, HostTensor>& weights);

  // Flow [N,2,H,W] that warps `supp` onto `ref` (both [N,3,H,W], RGB in [0,1]), in pixels of
  // the input size; any H, W >= 1.
  // Its convolutions are layers 0..29 (level * 5 + k) of conv_layers(), run by `engine`.
  at::Tensor flow(const at::Tensor& ref, const at::Tensor& supp, Engine& engine) const;
  at::Tensor flow(const at::Tensor& ref, const at::Tensor& supp) const;  // in fp32
  // The pyramid on inputs whose sides are multiples of 32.
  at::Tensor process(const at::Tensor& ref, const at::Tensor& supp, Engine& engine) const;
  // Its convolutions, level by level.
  std::vector<Conv*> layers();
  // Moves the normalisation constants to `device` (layers() hold the weights).
  void to(const at::Device& device);

 private:
  std::array<std::vector<Conv>, kLevels> levels_;
  at::Tensor mean_, std_;
};

}  // namespace qbasicvsr
