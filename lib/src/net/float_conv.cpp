#include "net/float_conv.h"

#include <ATen/core/grad_mode.h>

#include <map>
#include <tuple>
#include <unordered_map>

#include "net/dnnl_ops.h"
#include "qbasicvsr/error.h"

namespace qbasicvsr {

namespace {

using namespace dnnl_ops;
// Primitives kept per FloatConvs; a stream needs a handful per layer (batch and band sizes).
constexpr std::size_t kMaxPrimitives = 512;

}  // namespace

struct FloatConvs::Impl {
  Impl() : eng(dnnl::engine::kind::cpu, 0), strm(eng) {}

  // Weights (by storage: the tensor is held, so the address stays unique), shape, post-op, sum.
  using Key =
      std::tuple<const void*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, bool>;
  struct Prim {
    at::Tensor weight;  // keeps the key's address alive
    dnnl::convolution_forward conv;
    memory weights, bias;
  };

  Prim& get(const Conv& c, FloatMath math, int64_t n, int64_t h, int64_t w, PostOp post, bool sum) {
    const Key key{c.weight.data_ptr(),
                  c.weight.size(0),
                  c.weight.size(1),
                  c.weight.size(2),
                  c.bias.defined() ? 1 : 0,
                  n,
                  h,
                  w,
                  static_cast<int>(post),
                  sum};
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    if (cache.size() >= kMaxPrimitives) cache.clear();

    const int64_t out_c = c.weight.size(0), in_c = c.weight.size(1), kh = c.weight.size(2),
                  kw = c.weight.size(3);
    const dt in_t = math == FloatMath::Bf16 ? dt::bf16 : dt::f32;
    const memory::dims w_dims{out_c, in_c, kh, kw};
    const memory::desc src_md({n, in_c, h, w}, in_t, tag::nhwc);
    const memory::desc w_md(w_dims, in_t, tag::any);
    const memory::desc b_md({out_c}, dt::f32, tag::x);
    const memory::desc dst_md({n, out_c, h, w}, dt::f32, tag::nhwc);
    const memory::dims pad{c.padding, c.padding};
    const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                               dnnl::algorithm::convolution_direct, src_md, w_md, b_md,
                                               dst_md, {1, 1}, pad, pad);
    dnnl::post_ops ops;
    append_activation(ops, post);
    if (sum) ops.append_sum(1.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    dnnl::convolution_forward::primitive_desc pd;
    try {
      pd = dnnl::convolution_forward::primitive_desc(desc, attr, eng);
    } catch (const dnnl::error& e) {
      throw Error(std::string("no ") + (math == FloatMath::Bf16 ? "bf16" : "fp32") +
                  " convolution for this CPU in oneDNN (" + e.what() + ")" +
                  (math == FloatMath::Bf16 ? "; use fp32 float layers" : ""));
    }

    Prim p;
    p.weight = c.weight;
    p.conv = dnnl::convolution_forward(pd);
    // The weights as oihw in the primitive's type, then reordered once into its layout.
    const at::Tensor user = c.weight.contiguous().to(math == FloatMath::Bf16 ? at::kBFloat16 : at::kFloat);
    memory user_w({w_dims, in_t, tag::oihw}, eng, user.data_ptr());
    p.weights = memory(pd.weights_desc(), eng);
    dnnl::reorder(user_w, p.weights).execute(strm, user_w, p.weights);
    p.bias = memory(b_md, eng);
    float* b = static_cast<float*>(p.bias.get_data_handle());
    if (c.bias.defined()) {
      const at::Tensor bias = c.bias.contiguous().to(at::kFloat);
      std::copy_n(bias.data_ptr<float>(), out_c, b);
    } else {
      std::fill_n(b, out_c, 0.0f);
    }
    strm.wait();
    return cache.emplace(key, std::move(p)).first->second;
  }

  dnnl::engine eng;
  dnnl::stream strm;
  std::map<Key, Prim> cache;
};

at::ScalarType float_type(FloatMath math) {
  switch (math) {
    case FloatMath::Bf16:
      return at::kBFloat16;
    case FloatMath::Fp16:
      return at::kHalf;
    default:
      return at::kFloat;
  }
}

FloatConvs::FloatConvs(FloatMath math) : math_(math), impl_(std::make_unique<Impl>()) {
  if (math == FloatMath::Fp16) throw Error("fp16 convolutions run on a GPU only (device cuda)");
}
FloatConvs::~FloatConvs() = default;

bool FloatConvs::usable(const Conv& c, const at::Tensor& x) {
  const bool grad = at::GradMode::is_enabled() && (x.requires_grad() || c.weight.requires_grad() ||
                                                   (c.bias.defined() && c.bias.requires_grad()));
  return !grad && x.dim() == 4 && x.scalar_type() == at::kFloat && x.device().is_cpu() &&
         c.weight.scalar_type() == at::kFloat && c.weight.device().is_cpu() && c.weight.dim() == 4 &&
         x.size(1) == c.weight.size(1) && c.weight.size(2) == 2 * c.padding + 1 &&
         c.weight.size(3) == 2 * c.padding + 1;
}

at::Tensor FloatConvs::run(const Conv& c, const at::Tensor& x_in, PostOp post, at::Tensor* residual) {
  const at::Tensor x = math_ == FloatMath::Bf16
                           ? x_in.contiguous(at::MemoryFormat::ChannelsLast).to(at::kBFloat16)
                           : x_in.contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3), out_c = c.weight.size(0);
  auto& p = impl_->get(c, math_, n, h, w, post, residual != nullptr);
  at::Tensor out;
  if (residual) {
    if (!residual->is_contiguous(at::MemoryFormat::ChannelsLast))
      *residual = residual->contiguous(at::MemoryFormat::ChannelsLast);
    out = *residual;
  } else {
    out = at::empty({n, out_c, h, w}, x_in.options().dtype(at::kFloat), at::MemoryFormat::ChannelsLast);
  }
  const memory::desc src_md({n, x.size(1), h, w}, math_ == FloatMath::Bf16 ? dt::bf16 : dt::f32, tag::nhwc);
  const memory::desc dst_md({n, out_c, h, w}, dt::f32, tag::nhwc);
  memory src_m(src_md, impl_->eng, x.data_ptr());
  memory dst_m(dst_md, impl_->eng, out.data_ptr());
  p.conv.execute(
      impl_->strm,
      {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_BIAS, p.bias}, {DNNL_ARG_DST, dst_m}});
  impl_->strm.wait();
  return out;
}

}  // namespace qbasicvsr
