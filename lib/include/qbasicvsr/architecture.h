// The shape of a BasicVSR network and the tensors a model of that shape holds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qbasicvsr {

enum class BaseUpsample { Bilinear, Bicubic };

struct Architecture {
  int channels = 64;     // C: feature channels of the propagation branches
  int blocks = 30;       // N: residual blocks per branch
  int hr_channels = 64;  // channels after the second pixel shuffle (64 in the BasicSR code)
  int scale = 4;
  int spynet_levels = 6;
  BaseUpsample base_upsample = BaseUpsample::Bilinear;

  // Throws Error when a field is outside what the network supports.
  void validate() const;
  std::string to_json() const;
  static Architecture from_json(const std::string& text);
  // "C=64 N=30 hr=64" for logs.
  std::string summary() const;
  bool operator==(const Architecture& o) const;
};

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor of a full-precision model, in a fixed order, with its expected shape.
// Names follow the BasicSR checkpoint (the project's canonical names).
std::vector<TensorSpec> expected_tensors(const Architecture& arch);

// Number of parameters of the network.
int64_t parameter_count(const Architecture& arch);

}  // namespace qbasicvsr
