#include "quant/equalize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "qbasicvsr/error.h"

namespace qbasicvsr {

namespace {

std::vector<float> scales_of(const std::vector<float>& m, double alpha) {
  const float widest = m.empty() ? 0.0f : *std::max_element(m.begin(), m.end());
  std::vector<float> s(m.size(), 1.0f);
  if (!(widest > 0.0f)) return s;
  for (std::size_t c = 0; c < m.size(); ++c) {
    const double r = std::max(static_cast<double>(m[c]) / widest, 1e-3);
    s[c] = static_cast<float>(std::pow(r, -alpha));
  }
  return s;
}

// Output row o of a conv weight [out, in, kh, kw] (or bias [out]) times s[o].
void scale_rows(HostTensor& t, const std::vector<float>& s) {
  std::vector<float> v = t.to_f32();
  const int64_t per_row = t.numel() / t.shape[0];
  for (int64_t o = 0; o < t.shape[0]; ++o)
    for (int64_t i = 0; i < per_row; ++i) v[o * per_row + i] *= s[o];
  t = HostTensor::from_f32(t.shape, v);
}

// Input columns first_col + c of a conv weight [out, in, kh, kw] divided by s[c].
void divide_columns(HostTensor& t, const std::vector<float>& s, int64_t first_col) {
  std::vector<float> v = t.to_f32();
  const int64_t out = t.shape[0], in = t.shape[1], k = t.shape[2] * t.shape[3];
  for (int64_t o = 0; o < out; ++o)
    for (std::size_t c = 0; c < s.size(); ++c) {
      float* p = &v[(o * in + first_col + static_cast<int64_t>(c)) * k];
      for (int64_t j = 0; j < k; ++j) p[j] /= s[c];
    }
  t = HostTensor::from_f32(t.shape, v);
}

HostTensor& tensor(Model& m, const std::string& name) {
  auto it = m.weights.find(name);
  if (it == m.weights.end()) throw Error("equalize: the model has no tensor " + name);
  return it->second;
}

}  // namespace

StreamScales stream_scales(const std::vector<float>& backward_max, const std::vector<float>& forward_max,
                           double alpha) {
  return {scales_of(backward_max, alpha), scales_of(forward_max, alpha)};
}

Model equalize_streams(const Model& fp, const StreamScales& s) {
  const int c = fp.arch.channels;
  Model m = fp;
  const std::pair<const char*, const std::vector<float>*> trunks[] = {{"backward_trunk", &s.backward},
                                                                      {"forward_trunk", &s.forward}};
  for (int t = 0; t < 2; ++t) {
    const auto& [name, sp] = trunks[t];
    const std::vector<float>& sc = *sp;
    if (static_cast<int>(sc.size()) != c)
      throw Error("equalize: " + std::to_string(sc.size()) + " scales for a stream of " + std::to_string(c) +
                  " channels");
    for (float v : sc)
      if (!(v > 0.0f) || !std::isfinite(v))
        throw Error("equalize: stream scales must be positive and finite");
    const std::string trunk = name;
    HostTensor& in_w = tensor(m, trunk + ".main.0.weight");
    scale_rows(in_w, sc);
    scale_rows(tensor(m, trunk + ".main.0.bias"), sc);
    divide_columns(in_w, sc, kFrameChannels);
    for (int i = 0; i < fp.arch.blocks; ++i) {
      const std::string block = trunk + ".main.2." + std::to_string(i);
      divide_columns(tensor(m, block + ".conv1.weight"), sc, 0);
      scale_rows(tensor(m, block + ".conv2.weight"), sc);
      scale_rows(tensor(m, block + ".conv2.bias"), sc);
    }
    divide_columns(tensor(m, "fusion.weight"), sc, t == 0 ? 0 : c);
  }
  return m;
}

}  // namespace qbasicvsr
