#include "quant/quantizer.h"

#include <ATen/Parallel.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <string>

#include "qbasicvsr/error.h"
#ifdef QBASICVSR_CUDA
#include "quant/cuda/cuda_ops.h"
#endif

namespace qbasicvsr {

namespace {

// round() with a straight-through gradient.
at::Tensor ste_round(const at::Tensor& x) { return x + (at::round(x) - x).detach(); }

}  // namespace

at::Tensor fake_quant_act(const at::Tensor& x, const ActGrid& g) {
  // Multiply by 1/S, as the integer path does, so that both land on the same codes.
  const float inv = 1.0f / g.scale;
  return at::round(at::clamp(x * inv, -g.zero_point, g.qmax - g.zero_point)) * g.scale;
}

#ifdef QBASICVSR_CUDA
namespace {

// The kernel's name for a tensor type, or nothing.
std::optional<cuda::Type> kernel_type(at::ScalarType t) {
  if (t == at::kFloat) return cuda::Type::Float;
  if (t == at::kHalf) return cuda::Type::Half;
  if (t == at::kBFloat16) return cuda::Type::BFloat16;
  return std::nullopt;
}

}  // namespace
#endif

at::Tensor fake_quant_act(const at::Tensor& x, const ActGrid& g, at::ScalarType type) {
#ifdef QBASICVSR_CUDA
  const auto in_type = kernel_type(x.scalar_type()), out_type = kernel_type(type);
  if (x.is_cuda() && in_type && out_type && !x.requires_grad()) {
    const at::Tensor in = x.is_non_overlapping_and_dense() ? x : x.contiguous();
    at::Tensor out = at::empty_like(in, in.options().dtype(type));  // same strides: elementwise
    const float lo = static_cast<float>(-g.zero_point), hi = static_cast<float>(g.qmax - g.zero_point);
    if (const char* err = cuda::fake_quant(in.data_ptr(), *in_type, out.data_ptr(), *out_type, in.numel(),
                                           1.0f / g.scale, g.scale, lo, hi))
      throw Error(std::string("CUDA: ") + err);
    return out;
  }
#endif
  return fake_quant_act(x.to(at::kFloat), g).to(type);
}

ActGrid dynamic_grid(const at::Tensor& x, int bits) {
  if (x.device().is_cpu() && x.scalar_type() == at::kFloat && x.is_non_overlapping_and_dense()) {
    // One pass in every thread's slice (ATen's aminmax took ~15 ms per HR feature map here, as
    // long as the convolution that follows). The bounds start at 0: the grid spans zero anyway,
    // and a NaN leaves them as they are.
    const float* p = x.data_ptr<float>();
    const int64_t n = x.numel();
    const int64_t grain = 1 << 16;
    std::vector<float> lo(static_cast<std::size_t>((n + grain - 1) / grain + 1), 0.0f), hi(lo);
    at::parallel_for(0, (n + grain - 1) / grain, 1, [&](int64_t b, int64_t e) {
      for (int64_t k = b; k < e; ++k) {
        float l = 0.0f, u = 0.0f;
        for (int64_t i = k * grain, end = std::min(n, i + grain); i < end; ++i) {
          l = p[i] < l ? p[i] : l;
          u = p[i] > u ? p[i] : u;
        }
        lo[static_cast<std::size_t>(k)] = l;
        hi[static_cast<std::size_t>(k)] = u;
      }
    });
    return ActGrid::spanning(*std::min_element(lo.begin(), lo.end()), *std::max_element(hi.begin(), hi.end()),
                             bits);
  }
  const auto [lo, hi] = at::aminmax(x);
  return ActGrid::spanning(lo.item<float>(), hi.item<float>(), bits);
}

at::Tensor per_sample(const at::Tensor& x, const std::function<at::Tensor(const at::Tensor&)>& f) {
  if (x.size(0) == 1) return f(x);
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < x.size(0); ++i) parts.push_back(f(x.narrow(0, i, 1)));
  return at::cat(parts, 0);
}

at::Tensor weight_clip_values(const at::Tensor& w, const std::vector<float>& clip) {
  if (!clip.empty()) return at::tensor(clip, w.options());
  return w.abs().amax({1, 2, 3});
}

at::Tensor weight_scales(const at::Tensor& clip, int bits) {
  return at::clamp_min(clip / static_cast<double>(weight_qmax(bits)), 1e-12);
}

at::Tensor weight_codes(const at::Tensor& w, const at::Tensor& scales, int bits) {
  const int qm = weight_qmax(bits);
  return at::clamp(at::round(w / scales.view({-1, 1, 1, 1})), -qm, qm);
}

at::Tensor fake_quant_weight(const at::Tensor& w, const at::Tensor& clip, int bits) {
  const auto s = weight_scales(clip, bits);
  return weight_codes(w, s, bits) * s.view({-1, 1, 1, 1});
}

void add_gram(at::Tensor& h, const at::Tensor& rows) {
  const int64_t k = rows.size(1);
  if (!h.defined()) h = at::zeros({k, k}, rows.options().dtype(at::kFloat));
  if (!rows.is_cpu() || !h.is_cpu() || h.scalar_type() != at::kFloat || !h.is_contiguous()) {
    h.addmm_(rows.t().to(h.scalar_type()), rows.to(h.scalar_type()));
    return;
  }
  const at::Tensor r = rows.to(at::kFloat).contiguous();
  // Row-major C = 1 * A^T B + 1 * C with A = B = rows [N,K].
  const dnnl_status_t status = dnnl_sgemm('T', 'N', k, k, r.size(0), 1.0f, r.data_ptr<float>(), k,
                                          r.data_ptr<float>(), k, 1.0f, h.data_ptr<float>(), k);
  if (status != dnnl_success) throw Error("oneDNN sgemm failed (status " + std::to_string(status) + ")");
}

at::Tensor weighted_weight_error(const at::Tensor& w, const at::Tensor& q, const at::Tensor& h) {
  const at::Tensor d = (w - q).reshape({w.size(0), -1}).to(at::kDouble);
  return (at::mm(d, h.to(at::kDouble)) * d).sum(1);
}

at::Tensor hessian_round_weight(const at::Tensor& w, const at::Tensor& h, int bits, at::Tensor* clip_out,
                                double damp) {
  static constexpr double kClipFractions[] = {1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5};
  const int64_t o = w.size(0), k = w[0].numel();
  if (h.dim() != 2 || h.size(0) != k || h.size(1) != k)
    throw Error("hessian_round_weight: H is not " + std::to_string(k) + "x" + std::to_string(k));
  const at::Tensor w64 = w.detach().reshape({o, k}).to(at::kDouble);
  const at::Tensor hd = h.detach().to(at::kDouble);
  const at::Tensor max_abs = at::clamp_min(w64.abs().amax(1), 1e-12);
  // 1. Per channel, the clip whose plain rounding gives the least output error.
  at::Tensor clip = max_abs.clone(), nearest = w64.clone(),
             best = at::full({o}, std::numeric_limits<double>::infinity(), hd.options());
  for (double f : kClipFractions) {
    const at::Tensor c = max_abs * f;
    const at::Tensor q = fake_quant_weight(w64.view({o, k, 1, 1}), c, bits).view({o, k});
    const at::Tensor e = weighted_weight_error(w64, q, hd);
    const at::Tensor better = e < best;
    best = at::where(better, e, best);
    clip = at::where(better, c, clip);
    nearest = at::where(better.view({o, 1}), q, nearest);
  }
  // 2. Columns in order of decreasing diagonal, each one's error spread forward.
  const at::Tensor perm = at::argsort(hd.diagonal(), 0, /*descending=*/true);
  at::Tensor hp = hd.index_select(0, perm).index_select(1, perm);
  // Inputs that are always zero (dead ReLU channels) carry no error, but their zero rows need the
  // damping to factorize; an input that never varied at all gets unit damping.
  const double mean_diag = hp.diagonal().mean().item<double>();
  hp.diagonal().add_(mean_diag > 0 ? damp * mean_diag : 1.0);
  const at::Tensor hinv = at::cholesky_inverse(at::linalg_cholesky(hp));
  const at::Tensor u = at::linalg_cholesky(hinv, /*upper=*/true);
  at::Tensor wp = w64.index_select(1, perm).clone(), qp = at::empty_like(wp);
  const int qm = weight_qmax(bits);
  const at::Tensor step = at::clamp_min(clip / static_cast<double>(qm), 1e-12);
  for (int64_t j = 0; j < k; ++j) {
    const at::Tensor col = wp.select(1, j);
    const at::Tensor q = at::clamp(at::round(col / step), -qm, qm) * step;
    qp.select(1, j).copy_(q);
    if (j + 1 < k) {
      const at::Tensor err = (col - q) / u[j][j];
      wp.narrow(1, j + 1, k - j - 1).sub_(at::outer(err, u[j].narrow(0, j + 1, k - j - 1)));
    }
  }
  at::Tensor out = at::empty_like(qp);
  out.index_copy_(1, perm, qp);
  // The carried errors are greedy: where a channel came out worse than its nearest rounding at the
  // same clip, that channel keeps the nearest rounding (the error is a sum over channels).
  const at::Tensor worse = (weighted_weight_error(w64, out, hd) > best).view({o, 1});
  out = at::where(worse, nearest, out);
  // The returned values in the type of w: the steps as the engines compute them (float), so that
  // rounding them again lands on the same codes.
  const at::Tensor clip_f = clip.to(w.scalar_type());
  const at::Tensor codes = at::round(out / step.view({-1, 1}));
  if (clip_out) *clip_out = clip_f;
  return (codes.to(w.scalar_type()) * weight_scales(clip_f, bits).view({-1, 1})).view(w.sizes());
}

at::Tensor ste_quant_act(const at::Tensor& x, const at::Tensor& l, const at::Tensor& u, int bits) {
  const double qmax = static_cast<double>((1 << bits) - 1);
  const at::Tensor scale = at::clamp_min(u - l, 1e-6) / qmax;
  // Nudged zero point: an integer, so no gradient flows through its rounding.
  const at::Tensor zp = at::clamp(at::round(-l / scale), 0.0, qmax).detach();
  const at::Tensor lo = -zp * scale, hi = (qmax - zp) * scale;
  const at::Tensor xc = at::minimum(at::maximum(x, lo), hi);
  return ste_round(xc / scale) * scale;
}

at::Tensor ste_quant_weight(const at::Tensor& w, const at::Tensor& clip, int bits) {
  const double qm = weight_qmax(bits);
  const at::Tensor c = at::clamp_min(clip, 1e-8).view({-1, 1, 1, 1});
  const at::Tensor scale = c / qm;
  const at::Tensor wc = at::minimum(at::maximum(w, -c), c);
  return ste_round(wc / scale) * scale;
}

}  // namespace qbasicvsr
