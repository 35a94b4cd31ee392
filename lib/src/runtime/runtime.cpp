#include "qbasicvsr/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <malloc.h>
#ifdef QBASICVSR_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "net/dnnl_ops.h"
#include "qbasicvsr/error.h"

namespace qbasicvsr {

void check_device(const std::string& device) {
  if (device == "cpu") return;
  if (device != "cuda") throw Error("unknown device \"" + device + "\" (cpu or cuda)");
#ifdef QBASICVSR_CUDA
  if (!at::hasCUDA())
    throw Error(
        "device cuda: this CUDA build sees no GPU (no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides it)");
#else
  throw Error("device cuda: this build has no CUDA (only cpu); tools/scripts/build-cuda.sh makes one");
#endif
}

void configure_runtime(int threads) {
  static std::once_flag malloc_once;
  std::call_once(malloc_once, [] {
    const char* keep = std::getenv("QBASICVSR_KEEP_MALLOC");
    if (keep && *keep && std::string(keep) != "0") return;
    // No mmap for large blocks, and never trim the heap: freed feature maps get reused warm.
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
  });
  int n = threads;
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  at::set_num_threads(n);
}

int runtime_threads() { return at::get_num_threads(); }

double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0.0;
}

namespace {
// The first /proc/cpuinfo line starting with `key`, with a space appended ("" without one).
std::string cpuinfo_line(const char* key) {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return line + " ";
  return "";
}
}  // namespace

bool cpu_has_bf16() {
  static const bool has = cpuinfo_line("flags").find(" avx512_bf16 ") != std::string::npos;
  return has;
}

bool uses_bf16(Compute c) { return c == Compute::Bf16 || (c == Compute::Auto && bf16_faster()); }

bool bf16_faster() {
  static const bool faster = [] {
    // oneDNN may use bf16 (ONEDNN_MAX_CPU_ISA can forbid it): the bf16 bit is what
    // avx512_core_bf16 adds to avx512_core_vnni, and AMX ISAs include it.
    if (!dnnl_ops::effective_isa_adds(dnnl::cpu_isa::avx512_core_bf16, dnnl::cpu_isa::avx512_core_vnni))
      return false;
    const std::string flags = cpuinfo_line("flags");
    if (flags.find(" amx_bf16 ") != std::string::npos) return true;
    return cpu_has_bf16() && cpuinfo_line("vendor_id").find("AuthenticAMD") != std::string::npos;
  }();
  return faster;
}

Compute parse_compute(const std::string& name) {
  if (name == "auto") return Compute::Auto;
  if (name == "fp32") return Compute::Fp32;
  if (name == "bf16") return Compute::Bf16;
  if (name == "fp16") return Compute::Fp16;
  throw Error("unknown compute \"" + name + "\" (auto, fp32, bf16 or fp16)");
}

const char* compute_name(Compute c) {
  switch (c) {
    case Compute::Fp32:
      return "fp32";
    case Compute::Bf16:
      return "bf16";
    case Compute::Fp16:
      return "fp16";
    default:
      return "auto";
  }
}

#ifdef QBASICVSR_CUDA
double peak_device_mb() {
  if (!at::hasCUDA()) return 0;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
  return static_cast<double>(stats.reserved_bytes[0].peak) / (1 << 20);  // [0]: all pools
}

void reset_peak_device_memory() {
  if (at::hasCUDA()) c10::cuda::CUDACachingAllocator::resetPeakStats(0);
}
#else
double peak_device_mb() { return 0; }
void reset_peak_device_memory() {}
#endif

}  // namespace qbasicvsr
