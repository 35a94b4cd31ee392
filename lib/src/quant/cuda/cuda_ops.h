// The library's own CUDA kernels, behind plain pointers: this header includes neither ATen nor
// CUDA, so that both nvcc and the C++ side compile it. Kernels run on the legacy default stream,
// the one LibTorch's operations use unless told otherwise. Only in CUDA builds.
#pragma once

#include <cstdint>

namespace qbasicvsr::cuda {

enum class Type { Float, Half, BFloat16 };

// y[i] = rint(clamp(x[i] * inv, lo, hi)) * scale for i < n, computed in float, x read as
// `x_type` and y stored as `y_type`. Device pointers; returns nullptr or the launch error.
const char* fake_quant(const void* x, Type x_type, void* y, Type y_type, int64_t n, float inv, float scale,
                       float lo, float hi);

}  // namespace qbasicvsr::cuda
