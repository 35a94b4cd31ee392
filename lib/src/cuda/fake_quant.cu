// The fused activation quantizer of simulated quantization on the GPU: clamp(x / S) on the
// integer grid, rounded half to even, times S, written straight in the convolution's input type
// (fp32, fp16 or bf16) -- one pass over the feature map where ATen runs five (multiply, clamp,
// round, multiply, cast). The same float operations in the same order as fake_quant_act on the
// CPU, so fp32 outputs are bit-identical (tests/unit/test_cuda.cpp, bench/gpu.sh).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_ops.h"

namespace qbasicvsr::cuda {

namespace {

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T>
__global__ void fake_quant_kernel(const float* __restrict__ x, T* __restrict__ y, int64_t n, float inv,
                                  float scale, float lo, float hi) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    // __fmul_rn: no contraction into anything else, as on the CPU.
    const float v = fminf(fmaxf(__fmul_rn(x[i], inv), lo), hi);
    y[i] = from_float<T>(__fmul_rn(rintf(v), scale));
  }
}

template <typename T>
const char* launch(const float* x, void* y, int64_t n, float inv, float scale, float lo, float hi) {
  if (n == 0) return nullptr;
  constexpr int kThreads = 256;
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(wanted < 65536 ? wanted : 65536);
  fake_quant_kernel<T><<<blocks, kThreads>>>(x, static_cast<T*>(y), n, inv, scale, lo, hi);
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

}  // namespace

const char* fake_quant(const float* x, void* y, OutType type, int64_t n, float inv, float scale, float lo,
                       float hi) {
  switch (type) {
    case OutType::Half:
      return launch<__half>(x, y, n, inv, scale, lo, hi);
    case OutType::BFloat16:
      return launch<__nv_bfloat16>(x, y, n, inv, scale, lo, hi);
    default:
      return launch<float>(x, y, n, inv, scale, lo, hi);
  }
}

}  // namespace qbasicvsr::cuda
