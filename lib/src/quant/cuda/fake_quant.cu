// The fused activation quantizer of simulated quantization on the GPU: clamp(x / S) on the
// integer grid, rounded half to even, times S, read from and written straight in the features'
// and the convolution's types (fp32, fp16 or bf16) -- one pass over the feature map where ATen
// runs five or six (casts, multiply, clamp, round, multiply). The same float operations in the same order as fake_quant_act on the
// CPU, so fp32 outputs are bit-identical (tests/unit/test_cuda.cpp, bench/gpu.sh).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "quant/cuda/cuda_ops.h"

namespace qbasicvsr::cuda {

namespace {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

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

template <typename In, typename Out>
__global__ void fake_quant_kernel(const In* __restrict__ x, Out* __restrict__ y, int64_t n, float inv,
                                  float scale, float lo, float hi) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    // __fmul_rn: no contraction into anything else, as on the CPU.
    const float v = fminf(fmaxf(__fmul_rn(to_float(x[i]), inv), lo), hi);
    y[i] = from_float<Out>(__fmul_rn(rintf(v), scale));
  }
}

template <typename In, typename Out>
const char* launch(const void* x, void* y, int64_t n, float inv, float scale, float lo, float hi) {
  if (n == 0) return nullptr;
  constexpr int kThreads = 256;
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(wanted < 65536 ? wanted : 65536);
  fake_quant_kernel<In, Out>
      <<<blocks, kThreads>>>(static_cast<const In*>(x), static_cast<Out*>(y), n, inv, scale, lo, hi);
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

template <typename In>
const char* launch_to(const void* x, void* y, Type y_type, int64_t n, float inv, float scale, float lo,
                      float hi) {
  switch (y_type) {
    case Type::Half:
      return launch<In, __half>(x, y, n, inv, scale, lo, hi);
    case Type::BFloat16:
      return launch<In, __nv_bfloat16>(x, y, n, inv, scale, lo, hi);
    default:
      return launch<In, float>(x, y, n, inv, scale, lo, hi);
  }
}

}  // namespace

const char* fake_quant(const void* x, Type x_type, void* y, Type y_type, int64_t n, float inv, float scale,
                       float lo, float hi) {
  switch (x_type) {
    case Type::Half:
      return launch_to<__half>(x, y, y_type, n, inv, scale, lo, hi);
    case Type::BFloat16:
      return launch_to<__nv_bfloat16>(x, y, y_type, n, inv, scale, lo, hi);
    default:
      return launch_to<float>(x, y, y_type, n, inv, scale, lo, hi);
  }
}

}  // namespace qbasicvsr::cuda
