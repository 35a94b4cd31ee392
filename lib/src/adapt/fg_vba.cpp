#include "adapt/fg_vba.h"

#include <numeric>

namespace qbasicvsr {

namespace {

at::Tensor gradient_along(const at::Tensor& f, int64_t dim) {
  const int64_t n = f.size(dim);
  if (n < 2) return at::zeros_like(f);
  at::Tensor g = at::empty_like(f);
  g.narrow(dim, 0, 1).copy_(f.narrow(dim, 1, 1) - f.narrow(dim, 0, 1));
  g.narrow(dim, n - 1, 1).copy_(f.narrow(dim, n - 1, 1) - f.narrow(dim, n - 2, 1));
  if (n > 2) g.narrow(dim, 1, n - 2).copy_((f.narrow(dim, 2, n - 2) - f.narrow(dim, 0, n - 2)) * 0.5);
  return g;
}

std::vector<double> per_item_mean(const at::Tensor& x) {
  const at::Tensor m = x.reshape({x.size(0), -1}).to(at::kDouble).mean(1).to(at::kCPU).contiguous();
  return std::vector<double>(m.data_ptr<double>(), m.data_ptr<double>() + m.numel());
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

}  // namespace

at::Tensor gradient_x(const at::Tensor& f) { return gradient_along(f, f.dim() - 1); }
at::Tensor gradient_y(const at::Tensor& f) { return gradient_along(f, f.dim() - 2); }

std::vector<double> spatial_detail(const at::Tensor& lr) {
  const at::Tensor x = lr.to(at::kDouble);
  const at::Tensor y = x.select(1, 0) * 0.299 + x.select(1, 1) * 0.587 + x.select(1, 2) * 0.114;
  auto s = per_item_mean(gradient_x(y).abs() + gradient_y(y).abs());
  for (auto& v : s) v *= 1000.0;
  return s;
}

std::vector<double> flow_magnitude(const at::Tensor& flows) {
  const at::Tensor f = flows.to(at::kDouble);
  return per_item_mean(at::sqrt(f.select(1, 0).square() + f.select(1, 1).square()));
}

std::vector<double> flow_inconsistency(const at::Tensor& flows) {
  const at::Tensor f = flows.to(at::kDouble);
  // Sum over u and v of |d/dx| + |d/dy|: the Jacobian's four absolute entries.
  return per_item_mean((gradient_x(f).abs() + gradient_y(f).abs()).sum(1));
}

void finish_complexity(VideoComplexity& c, const FgVbaParams& p) {
  c.mean_S = mean(c.S);
  c.mean_T_mag = mean(c.T_mag);
  c.mean_T_cons = mean(c.T_cons);
  c.C_V = c.mean_S + p.lambda * (c.mean_T_mag + p.gamma * c.mean_T_cons);
  c.b_V = fg_vba_offset(c.C_V, p);
}

void add_motion(VideoComplexity& c, const at::Tensor& flows_forward, const at::Tensor& flows_backward,
                double weight) {
  if (flows_forward.size(0) == 0) return;
  const auto mf = flow_magnitude(flows_forward), mb = flow_magnitude(flows_backward);
  const auto cf = flow_inconsistency(flows_forward), cb = flow_inconsistency(flows_backward);
  c.T_mag.resize(mf.size(), 0.0);
  c.T_cons.resize(mf.size(), 0.0);
  for (std::size_t i = 0; i < mf.size(); ++i) {
    c.T_mag[i] += weight * (0.5 * (mf[i] + mb[i]));
    c.T_cons[i] += weight * (0.5 * (cf[i] + cb[i]));
  }
}

VideoComplexity measure_complexity(const at::Tensor& lr, const at::Tensor& flows_forward,
                                   const at::Tensor& flows_backward, const FgVbaParams& p) {
  VideoComplexity c;
  c.S = spatial_detail(lr);
  add_motion(c, flows_forward, flows_backward, 1.0);
  finish_complexity(c, p);
  return c;
}

}  // namespace qbasicvsr
