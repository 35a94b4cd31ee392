// Cross-layer equalisation of BasicVSR's two residual streams (docs/QUANTIZATION.md).
//
// A trunk's features after its input conv and every block's output form one residual stream:
// x_{k+1} = x_k + conv2(relu(conv1(x_k))). Channel c of the stream may be rescaled by any s_c > 0
// without changing what the network computes in float: the input conv's output rows (weights
// and bias) and every conv2's output rows are multiplied by s_c (LeakyReLU and the sums are
// positively homogeneous), and every conv that reads the stream divides its input column c by
// s_c: each block's conv1, the trunk's own input conv (the warped stream of the previous frame
// follows the LR frame's 3 columns) and fusion (backward stream first, then forward). Activations
// are quantized on one grid per layer, so channels with small ranges lose precision to the
// widest one; equalising the ranges trades that against wider conv1 weight columns. Torch-free.
#pragma once

#include <vector>

#include "qbasicvsr/model_file.h"

namespace qbasicvsr {

// Per-channel factors of the two streams: stream' = s * stream (C values each, all > 0).
struct StreamScales {
  std::vector<float> backward, forward;
};

// Scales from the largest magnitude each stream channel takes over the blocks (max over the
// conv1 inputs of a trunk): s_c = (m_c / max_c m_c)^-alpha, so the widest channel keeps its range
// and the others grow towards it (alpha 1: all equal; 0: no change). Channels under 1e-3 of the
// widest count as 1e-3 of it (dead channels get a bounded factor).
StreamScales stream_scales(const std::vector<float>& backward_max, const std::vector<float>& forward_max,
                           double alpha);

// `fp` with the streams rescaled by `s` as above: the same function in float, other tensors
// untouched. Throws Error when the scales do not match the model's width or are not positive.
Model equalize_streams(const Model& fp, const StreamScales& s);

}  // namespace qbasicvsr
