// The full-precision BasicVSR network (DESIGN.md section 2). Internal: includes ATen.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <utility>
#include <vector>

#include "net/engine.h"
#include "net/spynet.h"
#include "qbasicvsr/model_file.h"

namespace qbasicvsr {

// Receives the propagated features of frame t: branch 0 backward, 1 forward ([1,C,H,W]).
using FeatureSink = std::function<void(int64_t t, int branch, const at::Tensor& feat)>;

// Everything but the fp32 conveniences runs in the caller's autograd mode: calibration trains
// through the same code.
class BasicVSR {
 public:
  explicit BasicVSR(const Model& model);

  const Architecture& arch() const { return arch_; }

  // flows_forward[i] = spynet(x[i+1], x[i]), flows_backward[i] = spynet(x[i], x[i+1]);
  // lr is [T,3,H,W], each result [T-1,2,H,W].
  std::pair<at::Tensor, at::Tensor> compute_flows(const at::Tensor& lr, Engine& engine) const;
  std::pair<at::Tensor, at::Tensor> compute_flows(const at::Tensor& lr) const;  // fp32

  // Upscales lr [T,3,H,W] (RGB in [0,1]) with precomputed flows; calls sink(t, out[1,3,4H,4W])
  // for t = first..last-1 (last < 0: T) in order, so that callers need not hold every
  // high-resolution frame. The other frames are context for the two propagation branches.
  // With `forward_init` (the forward feature of frame first-1, first >= 1), the forward branch
  // continues from it at frame `first` instead of starting from zeros at frame 0: a stream's
  // chunks then get exactly the forward half one pass over the stream gives. Without a sink only
  // the forward branch runs (no backward branch, no reconstruction): `features` still sees it.
  void propagate(const at::Tensor& lr, const at::Tensor& flows_forward, const at::Tensor& flows_backward,
                 Engine& engine, const std::function<void(int64_t, const at::Tensor&)>& sink,
                 int64_t first = 0, int64_t last = -1, const FeatureSink& features = {},
                 const at::Tensor& forward_init = {}) const;
  void forward(const at::Tensor& lr, Engine& engine,
               const std::function<void(int64_t, const at::Tensor&)>& sink) const;
  // All outputs as [T,3,4H,4W].
  at::Tensor forward(const at::Tensor& lr, Engine& engine) const;
  at::Tensor forward(const at::Tensor& lr) const;  // fp32

  // Training on a batch: lr [B,T,3,H,W], flows [B,T-1,2,H,W] -> [B,T,3,4H,4W]; runs in the
  // caller's autograd mode (use a differentiable engine such as AutogradEngine).
  std::pair<at::Tensor, at::Tensor> compute_flows_batch(const at::Tensor& lr, Engine& engine) const;
  at::Tensor forward_batch(const at::Tensor& lr, const at::Tensor& flows_forward,
                           const at::Tensor& flows_backward, Engine& engine) const;

  // Every convolution in conv_layers() order, for training and export.
  std::vector<Conv*> layers();
  // Moves the weights to `device` (inputs must then live there too).
  void to(const at::Device& device);

 private:
  struct Trunk {
    int first_id = 0;  // layer index of the input conv; block i uses first_id + 1 + 2i, + 2 + 2i
    Conv input;
    std::vector<std::pair<Conv, Conv>> blocks;
    at::Tensor run(const at::Tensor& lr_frame, const at::Tensor& feat, Engine& engine) const;
  };
  // The trunk whose input conv is layer first_id of network_layers().
  static Trunk make_trunk(const Model& model, int first_id);
  // Reconstruction conv k (0 fusion, 1 upconv1, 2 upconv2, 3 conv_hr, 4 conv_last).
  static Conv reconstruction_conv(const Model& model, int k);
  // Fusion to conv_last on a band of feature rows (no base image).
  at::Tensor reconstruct_band(const at::Tensor& backward_feat, const at::Tensor& forward_feat,
                              Engine& engine) const;
  at::Tensor reconstruct(const at::Tensor& lr_frame, const at::Tensor& backward_feat,
                         const at::Tensor& forward_feat, Engine& engine) const;

  Architecture arch_;
  SpyNet spynet_;
  Trunk backward_, forward_;
  int fusion_id_ = 0;  // fusion; upconv1, upconv2, conv_hr, conv_last follow
  Conv fusion_, upconv1_, upconv2_, conv_hr_, conv_last_;
};

}  // namespace qbasicvsr
