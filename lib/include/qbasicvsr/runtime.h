// Process-wide runtime settings for the compute library.
#pragma once

namespace qbasicvsr {

// Sets LibTorch's intra-op thread count (0 = one per available core) and, once per process,
// makes glibc keep freed memory in the heap instead of returning large blocks to the kernel:
// on VMs where touching fresh pages is slow, re-faulting every per-frame tensor costs more
// than the arithmetic. Set QBASICVSR_KEEP_MALLOC=1 to leave the allocator untouched.
void configure_runtime(int threads);

// Threads LibTorch will use.
int runtime_threads();

// Peak resident set size of this process in MiB (VmHWM).
double peak_rss_mb();

}  // namespace qbasicvsr
