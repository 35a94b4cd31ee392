// FG-VBA's measure of how hard a clip is (DESIGN.md section 1): spatial detail S_t per frame,
// flow magnitude T_mag and flow consistency T_cons per frame pair, their combination C_V and
// the bit offset b_V it maps to. No LibTorch here.
#pragma once

#include <vector>

#include "qbasicvsr/quantization.h"

namespace qbasicvsr {

struct VideoComplexity {
  std::vector<double> S;       // per frame
  std::vector<double> T_mag;   // per pair (t, t+1), over the forward and backward flows
  std::vector<double> T_cons;  // per pair
  double mean_S = 0, mean_T_mag = 0, mean_T_cons = 0;
  double C_V = 0;
  int b_V = 0;
};

// Fills the means, C_V = mean S + lambda * mean(T_mag + gamma * T_cons) (no motion term for a
// single frame) and b_V from the per-frame and per-pair values already set.
void finish_complexity(VideoComplexity& c, const FgVbaParams& p);

}  // namespace qbasicvsr
