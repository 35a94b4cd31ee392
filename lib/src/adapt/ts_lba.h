// TS-LBA statistics (DESIGN.md section 1), accumulated clip by clip so that calibration never
// holds the stacked activations X[T,B,C,H,W] of all its clips. Internal: includes ATen.
#pragma once

#include <map>
#include <utility>

#include "net/engine.h"

namespace qbasicvsr {

// Runs in fp32 and folds every layer's input into s_space (mean over t, b, h, w of the std over
// channels) and s_temp (mean over b, c, h, w of the std over time steps). Each batch item of a
// call is one time step of the current clip; end_clip() closes the clip. Standard deviations are
// unbiased (PyTorch's default). s_temp is estimated on a regular grid of at most
// kMaxTemporalPositions pixel positions per channel, which bounds memory for any frame size.
class TsLbaObserver : public Engine {
 public:
  static constexpr int64_t kMaxTemporalPositions = 4096;

  Act conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) override;
  void observe(int id, const at::Tensor& x);
  void end_clip();
  // (s_space, s_temp) of every layer seen; s_temp is 0 for layers never seen over two steps.
  std::map<int, std::pair<double, double>> statistics() const;

 private:
  struct Layer {
    double space_sum = 0, temp_sum = 0;
    int64_t space_count = 0, temp_count = 0;
    at::Tensor sum, sum_sq;  // current clip, per sampled position, in double
    int64_t steps = 0;
  };
  Fp32Engine fp32_;
  std::map<int, Layer> layers_;
};

}  // namespace qbasicvsr
