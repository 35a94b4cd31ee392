// Process-wide runtime settings for the compute library.
#pragma once

#include <string>

namespace qbasicvsr {

// Sets LibTorch's intra-op thread count (0 = one per available core) and, once per process,
// makes glibc keep freed memory in the heap instead of returning large blocks to the kernel:
// on VMs where touching fresh pages is slow, re-faulting every per-frame tensor costs more
// than the arithmetic. Set QBASICVSR_KEEP_MALLOC=1 to leave the allocator untouched.
void configure_runtime(int threads);

// Throws Error naming what is missing when the network cannot run on `device` ("cpu" always can;
// "cuda" needs a CUDA build, tools/scripts/build-cuda.sh, and a visible GPU).
void check_device(const std::string& device);

// Threads LibTorch will use.
int runtime_threads();

// Peak resident set size of this process in MiB (VmHWM).
double peak_rss_mb();

// Arithmetic of the convolutions: bfloat16 (mixed precision, fp32 master weights) or fp32. Auto
// means bf16 where bf16_faster(): for training and calibration (a resumed run keeps its
// checkpoint's, run_arithmetic in training.h) and for inference's float layers (uses_bf16).
// On a GPU (device cuda) the same names pick the inference arithmetic of every convolution, Fp16
// is added there, and Auto is fp32 (IEEE) there.
enum class Compute { Auto, Fp32, Bf16, Fp16 };
// Whether this CPU has AVX-512 BF16 instructions.
bool cpu_has_bf16();
// Whether `c` resolves to bfloat16 on this CPU (Auto: where bf16_faster()).
bool uses_bf16(Compute c);
// Whether bf16 convolutions are known to be faster than fp32 ones on this CPU: with AMX-BF16, or
// AVX-512 BF16 on AMD (training 2.2-3.3x faster on the AMD EPYC dev VM; inference's SPyNet 6.4x
// with AMX), and oneDNN may use them (ONEDNN_MAX_CPU_ISA can forbid it). On an Intel Xeon with
// AVX-512 BF16 but no AMX they were 1.6-2x slower. A fixed rule, not a timing, so that every
// process on a machine resolves Auto alike.
bool bf16_faster();
// "auto", "fp32", "bf16" or "fp16"; throws Error otherwise.
Compute parse_compute(const std::string& name);
const char* compute_name(Compute c);

// Peak bytes the GPU allocator held since the last reset, in MiB (0 without a GPU or CUDA). Call
// both only once something ran on the GPU (its allocator exists then).
double peak_device_mb();
void reset_peak_device_memory();

}  // namespace qbasicvsr
