// What the oneDNN convolutions of the float and int8 paths share (float_conv.cpp,
// int8_engine.cpp, runtime.cpp): names, the activation post-op and the effective ISA. Internal:
// includes oneDNN.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include "net/float_conv.h"

namespace qbasicvsr::dnnl_ops {

using dnnl::memory;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// BasicVSR's LeakyReLU slope.
constexpr float kLeakySlope = 0.1f;

// ReLU or LeakyReLU as an eltwise post-op (nothing for PostOp::None).
inline void append_activation(dnnl::post_ops& ops, PostOp post) {
  if (post == PostOp::ReLU) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  if (post == PostOp::LeakyReLU) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, kLeakySlope, 0.0f);
}

// Whether oneDNN's effective ISA (the CPU's, capped by ONEDNN_MAX_CPU_ISA) has the instructions
// `isa` adds to `base`. The ISA values are bit sets, each a superset of the ones it extends.
inline bool effective_isa_adds(dnnl::cpu_isa isa, dnnl::cpu_isa base) {
  const auto bits = [](dnnl::cpu_isa i) { return static_cast<unsigned>(i); };
  return (bits(dnnl::get_effective_cpu_isa()) & bits(isa) & ~bits(base)) != 0;
}

}  // namespace qbasicvsr::dnnl_ops
