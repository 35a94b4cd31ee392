#include <cmath>
#include <random>

#include "qbasicvsr/model_file.h"

namespace qbasicvsr {

Model random_model(const Architecture& arch, uint64_t seed, float scale) {
  arch.validate();
  Model m;
  m.arch = arch;
  std::mt19937_64 rng(seed);
  for (const auto& spec : expected_tensors(arch)) {
    int64_t n = 1;
    for (auto d : spec.shape) n *= d;
    std::vector<float> v(static_cast<std::size_t>(n), 0.0f);
    if (spec.shape.size() == 4) {
      const double fan_in = static_cast<double>(spec.shape[1] * spec.shape[2] * spec.shape[3]);
      const double bound = std::sqrt(6.0 / fan_in) * scale;
      std::uniform_real_distribution<double> dist(-bound, bound);
      for (auto& x : v) x = static_cast<float>(dist(rng));
    }
    m.weights[spec.name] = HostTensor::from_f32(spec.shape, v);
  }
  m.provenance_json = "{\"source\":\"random\",\"seed\":" + std::to_string(seed) + "}";
  return m;
}

}  // namespace qbasicvsr
