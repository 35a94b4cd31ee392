// SPyNet optical flow (DESIGN.md section 2). Internal: includes ATen.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <map>
#include <string>
#include <vector>

#include "net/conv.h"

namespace qbasicvsr {

class Engine;

class SpyNet {
 public:
  static constexpr int kLevels = 6;

  explicit SpyNet(const std::map<std::string, HostTensor>& weights);

  // Flow [N,2,H,W] that warps `supp` onto `ref` (both [N,3,H,W], RGB in [0,1]), in pixels of
  // the input size; any H, W >= 1.
  // Its convolutions are layers layer_ids().spynet + 5 * level + k of network_layers(), run by
  // `engine`.
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
  int first_id_ = 0;  // layer id of level 0's first conv (layer_ids().spynet)
  at::Tensor mean_, std_;
};

}  // namespace qbasicvsr
