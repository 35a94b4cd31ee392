// Reader for Torch7 binary files (DESIGN.md section 2), enough for the original SPyNet
// level files modelL{1..6}_<variant>.t7.
#pragma once

#include <string>
#include <vector>

#include "qbasicvsr/host_tensor.h"

namespace qbasicvsr {

struct Conv2dWeights {
  HostTensor weight;  // [out, in, k, k], float32
  HostTensor bias;    // [out], float32
};

// The convolutions of one SPyNet level file, in order (five for a SPyNet basic module).
// Throws Error naming the problem for anything that is not an nn.Sequential of convolutions
// and ReLUs.
std::vector<Conv2dWeights> read_t7_convolutions(const std::string& path);
std::vector<Conv2dWeights> parse_t7_convolutions(const std::vector<uint8_t>& bytes);

}  // namespace qbasicvsr
