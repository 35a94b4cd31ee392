#include "quant/int8_engine.h"

#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <limits>
#include <tuple>

#include "net/dnnl_ops.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/profile.h"
#include "quant/quantizer.h"

namespace qbasicvsr {

namespace {

using namespace dnnl_ops;
// Adding and subtracting 1.5 * 2^23 rounds a float of magnitude < 2^22 to the nearest integer,
// ties to even, in the default rounding mode, and vectorizes where nearbyint() would not.
constexpr float kRoundMagic = 12582912.0f;

// Without VNNI, oneDNN's int8 kernels multiply u8 activations by s8 weights with vpmaddubsw, which
// adds each pair of neighbouring input channels' products into a saturating int16: 8-bit
// activations (up to 255) times 8-bit weights (up to 127) overflow it (2 * 255 * 127 > 32767), and
// the result is silently wrong. VNNI (AVX-512 or AVX) and AMX accumulate in int32.
// The VNNI bit is what avx512_core_vnni adds to avx512_core, and avx2_vnni to avx2; the effective
// ISA is capped by ONEDNN_MAX_CPU_ISA (how the tests reach this path on any AVX2 machine).
bool int8_pairs_saturate() {
  return !effective_isa_adds(dnnl::cpu_isa::avx512_core_vnni, dnnl::cpu_isa::avx512_core) &&
         !effective_isa_adds(dnnl::cpu_isa::avx2_vnni, dnnl::cpu_isa::avx2);
}

}  // namespace

namespace {

// t = clamp(x / S, -zp, qmax - zp), rounded half to even, plus zp. Comparisons written so that
// NaN maps to the lowest code.
void quantize_scalar(const float* src, uint8_t* dst, int64_t n, float inv, float lo, float hi, float zp) {
  for (int64_t i = 0; i < n; ++i) {
    float t = src[i] * inv;
    t = t > lo ? t : lo;
    t = t < hi ? t : hi;
    t = (t + kRoundMagic) - kRoundMagic;
    dst[i] = static_cast<uint8_t>(static_cast<int>(t + zp));
  }
}

// GCC 12 warns inside its own AVX-512 intrinsics (their undefined pass-through operands).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// The same, 16 values at a time: this pass runs once per residual block on the whole feature
// map, and the portable loop above is what the compiler leaves scalar.
__attribute__((target("avx512f"))) void quantize_avx512(const float* src, uint8_t* dst, int64_t n, float inv,
                                                        float lo, float hi, float zp) {
  const __m512 vinv = _mm512_set1_ps(inv), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  const __m512i vzp = _mm512_set1_epi32(static_cast<int>(zp));
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 t = _mm512_mul_ps(_mm512_loadu_ps(src + i), vinv);
    t = _mm512_min_ps(_mm512_max_ps(t, vlo), vhi);  // max_ps returns vlo when t is NaN
    // Default MXCSR rounding: nearest, ties to even, of x / S itself; the zero point after it (a
    // tie such as 7.5 goes to 8, where 7.5 + 5 would go to 12).
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(t), vzp);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm512_cvtepi32_epi8(q));
  }
  quantize_scalar(src + i, dst + i, n - i, inv, lo, hi, zp);
}
#pragma GCC diagnostic pop

}  // namespace

at::Tensor quantize_codes(const at::Tensor& x_in, const ActGrid& g) {
  const profile::Scope scope(profile::Stage::Quantize);
  const at::Tensor x = x_in.dim() == 4 ? x_in.contiguous(at::MemoryFormat::ChannelsLast) : x_in.contiguous();
  at::Tensor q = at::empty_like(x, x.options().dtype(at::kByte));
  const float* src = x.data_ptr<float>();
  uint8_t* dst = q.data_ptr<uint8_t>();
  const float inv = 1.0f / g.scale;
  const float lo = static_cast<float>(-g.zero_point), hi = static_cast<float>(g.qmax - g.zero_point);
  const float zp = static_cast<float>(g.zero_point);
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t b, int64_t e) {
    if (avx512)
      quantize_avx512(src + b, dst + b, e - b, inv, lo, hi, zp);
    else
      quantize_scalar(src + b, dst + b, e - b, inv, lo, hi, zp);
  });
  return q;
}

struct Int8Engine::Impl {
  Impl(const QuantPlan& p, FloatMath m)
      : plan(p), eng(dnnl::engine::kind::cpu, 0), strm(eng), float_layers(m) {}

  // A primitive for one layer at one set of bits, output kind and shape.
  using Key = std::tuple<int, int, int, int, int, bool, int64_t, int64_t, int64_t>;
  struct Prim {
    dnnl::convolution_forward conv;
    memory weights, bias;
    bool out_codes = false;
    ActGrid out_grid;
    // The input channels are given twice and the weights split in halves, w = w1 + w2 with
    // |w1|, |w2| <= 64, so that no pair of products saturates (int8_pairs_saturate()).
    bool split = false;
    // A dynamic range: the primitive's input scale is 1 and its output float, so that each
    // call's grid scale S multiplies the output afterwards (the activations are positively
    // homogeneous: post(S z) = S post(z)); the bias in those units, bias / S, is given per call.
    bool dynamic = false;
    at::Tensor bias_f;
  };

  Prim& get(int id, const Conv& c, PostOp post, int next, bool sum, int64_t n, int64_t h, int64_t w) {
    const bool dynamic = plan.dynamic(id);
    // A dynamic next layer takes floats: its grid is made from this output.
    const bool out_codes = !dynamic && next >= 0 && !sum && plan.quantized(next) && !plan.dynamic(next);
    sum = sum && !dynamic;
    const Key key{id,
                  plan.bits(id),
                  out_codes ? next : -1,
                  out_codes ? plan.bits(next) : 0,
                  static_cast<int>(post),
                  sum,
                  n,
                  h,
                  w};
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;

    const int64_t out_c = c.weight.size(0), k = c.weight.size(2);
    // A dynamic layer's grids all have the same qmax as the calibrated one (its bits).
    const ActGrid& in = plan.grid(id);
    const int bits = plan.bits(id);
    const at::Tensor weight = c.weight.contiguous();
    const at::Tensor w_scales = weight_scales(weight_clip_values(weight, plan.weight_clip(id)), bits);
    at::Tensor codes = weight_codes(weight, w_scales, bits).to(at::kChar);
    Prim p;
    p.split = pairs_saturate &&
              2 * int64_t{in.qmax} * codes.abs().max().item<int64_t>() > std::numeric_limits<int16_t>::max();
    if (p.split) {
      const at::Tensor half = codes.div(2, "trunc");
      codes = at::cat({half, codes - half}, 1);
    }
    codes = codes.contiguous();
    const int64_t src_c = codes.size(1);
    // Accumulator units: the bias is added to the int32 sum before the output scale.
    const at::Tensor acc_scale = dynamic ? w_scales : w_scales * in.scale;
    const at::Tensor bias = (c.bias / acc_scale).contiguous();

    p.out_codes = out_codes;
    at::Tensor out_scales = acc_scale;
    if (out_codes) {
      p.out_grid = plan.grid(next);
      out_scales = acc_scale / p.out_grid.scale;
    }
    const auto out_scales_c = out_scales.contiguous();
    const float* os = out_scales_c.data_ptr<float>();

    const memory::dims src_dims{n, src_c, h, w}, w_dims{out_c, src_c, k, k}, dst_dims{n, out_c, h, w};
    const memory::desc src_md(src_dims, dt::u8, tag::nhwc);
    const memory::desc w_md(w_dims, dt::s8, tag::any);
    const memory::desc b_md({out_c}, dt::f32, tag::x);
    const memory::desc dst_md(dst_dims, out_codes ? dt::u8 : dt::f32, tag::nhwc);
    const memory::dims pad{c.padding, c.padding};
    const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                               dnnl::algorithm::convolution_direct, src_md, w_md, b_md,
                                               dst_md, {1, 1}, pad, pad);
    dnnl::primitive_attr attr;
    p.dynamic = dynamic;
    if (dynamic) p.bias_f = bias;
    attr.set_output_scales(1 << 1, std::vector<float>(os, os + out_c));
    attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    if (out_codes) attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});
    dnnl::post_ops ops;
    append_activation(ops, post);
    if (out_codes) {
      // The next layer's b-bit range, in its code units before the zero point is added.
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, static_cast<float>(-p.out_grid.zero_point),
                         static_cast<float>(p.out_grid.qmax - p.out_grid.zero_point));
    }
    if (sum) ops.append_sum(1.0f);
    attr.set_post_ops(ops);
    const dnnl::convolution_forward::primitive_desc pd(desc, attr, eng);
    p.conv = dnnl::convolution_forward(pd);

    memory user_w({w_dims, dt::s8, tag::oihw}, eng, codes.data_ptr<int8_t>());
    p.weights = memory(pd.weights_desc(), eng);
    dnnl::reorder(user_w, p.weights).execute(strm, user_w, p.weights);
    p.bias = memory(b_md, eng);
    std::copy_n(bias.data_ptr<float>(), out_c, static_cast<float*>(p.bias.get_data_handle()));
    strm.wait();
    return cache.emplace(key, std::move(p)).first->second;
  }

  const QuantPlan& plan;
  const bool pairs_saturate = int8_pairs_saturate();
  dnnl::engine eng;
  dnnl::stream strm;
  std::map<Key, Prim> cache;
  Fp32Engine float_layers;
};

Int8Engine::Int8Engine(const QuantPlan& plan, FloatMath float_math)
    : impl_(std::make_unique<Impl>(plan, float_math)) {}
Int8Engine::~Int8Engine() = default;

bool Int8Engine::quantizes(int id) const { return impl_->plan.quantized(id); }

Act Int8Engine::conv(int id, const Conv& c, const Act& x, PostOp post, int next, at::Tensor* residual) {
  const QuantPlan& plan = impl_->plan;
  if (!plan.quantized(id)) return impl_->float_layers.conv(id, c, x, post, next, residual);
  const bool dynamic = plan.dynamic(id);
  if (dynamic && x.t.size(0) > 1) {
    // One frame at a time, each on its own grid; a residual is summed into its own rows.
    if (residual && !residual->is_contiguous(at::MemoryFormat::ChannelsLast))
      *residual = residual->contiguous(at::MemoryFormat::ChannelsLast);
    std::vector<at::Tensor> parts;
    Act one;
    for (int64_t i = 0; i < x.t.size(0); ++i) {
      Act xi = x;
      xi.t = x.t.narrow(0, i, 1);
      at::Tensor ri = residual ? residual->narrow(0, i, 1) : at::Tensor();
      one = conv(id, c, xi, post, next, residual ? &ri : nullptr);
      parts.push_back(one.t);
    }
    one.t = residual ? *residual : at::cat(parts, 0).contiguous(at::MemoryFormat::ChannelsLast);
    return one;
  }
  const ActGrid g = dynamic ? dynamic_grid(x.values(), plan.bits(id)) : plan.grid(id);
  at::Tensor src = !dynamic && x.codes && x.grid.scale == g.scale && x.grid.zero_point == g.zero_point &&
                           x.grid.qmax == g.qmax
                       ? x.t.contiguous(at::MemoryFormat::ChannelsLast)
                       : quantize_codes(x.values(), g);
  const int64_t n = src.size(0), h = src.size(2), w = src.size(3);
  if (residual && !residual->is_contiguous(at::MemoryFormat::ChannelsLast))
    *residual = residual->contiguous(at::MemoryFormat::ChannelsLast);
  auto& p = impl_->get(id, c, post, next, residual != nullptr, n, h, w);
  // A dynamic layer's output is scaled after the primitive, so a residual is added after it too.
  at::Tensor* sum_into = p.dynamic ? nullptr : residual;
  if (p.split) src = at::cat({src, src}, 1).contiguous(at::MemoryFormat::ChannelsLast);

  const int64_t out_c = c.weight.size(0);
  Act out;
  if (sum_into) {
    out.t = *sum_into;
  } else {
    out.t = at::empty({n, out_c, h, w}, src.options().dtype(p.out_codes ? at::kByte : at::kFloat),
                      at::MemoryFormat::ChannelsLast);
  }
  out.codes = p.out_codes;
  out.grid = p.out_grid;

  const memory::desc src_md({n, src.size(1), h, w}, dt::u8, tag::nhwc);
  const memory::desc dst_md({n, out_c, h, w}, p.out_codes ? dt::u8 : dt::f32, tag::nhwc);
  memory src_m(src_md, impl_->eng, src.data_ptr());
  memory dst_m(dst_md, impl_->eng, out.t.data_ptr());
  int32_t zp_src = g.zero_point, zp_dst = p.out_grid.zero_point;
  const memory::desc zp_md({1}, dt::s32, tag::x);
  memory zp_src_m(zp_md, impl_->eng, &zp_src), zp_dst_m(zp_md, impl_->eng, &zp_dst);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src_m},
                                       {DNNL_ARG_WEIGHTS, p.weights},
                                       {DNNL_ARG_BIAS, p.bias},
                                       {DNNL_ARG_DST, dst_m},
                                       {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, zp_src_m}};
  if (p.out_codes) args.emplace(DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST, zp_dst_m);
  at::Tensor bias;
  if (p.dynamic) {
    bias = (p.bias_f / g.scale).contiguous();
    args[DNNL_ARG_BIAS] = memory({{out_c}, dt::f32, tag::x}, impl_->eng, bias.data_ptr<float>());
  }
  const profile::Scope scope(profile::conv_stage());
  p.conv.execute(impl_->strm, args);
  impl_->strm.wait();
  if (p.dynamic) {
    out.t.mul_(g.scale);
    if (residual) {
      residual->add_(out.t);
      out.t = *residual;
    }
  }
  return out;
}

}  // namespace qbasicvsr
