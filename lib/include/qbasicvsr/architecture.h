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
  // "C,N" or "C,N,HR" (HR defaults to C) as the programs' --arch takes it; other fields default.
  // Throws Error on anything else.
  static Architecture parse(const std::string& text);
  // "C=64 N=30 hr=64" for logs.
  std::string summary() const;
  bool operator==(const Architecture& o) const;
};

// The LR frame's channels (RGB) at the head of a trunk's input.
constexpr int kFrameChannels = 3;

// Where a convolution sits in the network.
enum class LayerPart { SpyNet, BackwardTrunk, ForwardTrunk, Reconstruction };

// One convolution of the network: the one table of layers from which the model file's tensors,
// the quantization layer list and the network's layer ids all derive.
struct ConvLayer {
  std::string name;  // BasicSR checkpoint name (without ".weight"/".bias")
  int in_channels = 0, out_channels = 0, kernel = 3;
  LayerPart part = LayerPart::SpyNet;
  // Leading input channels that are the LR frame (a trunk's input conv: [frame, features]).
  int frame_channels = 0;
};

// Every convolution, in the order used everywhere (layer ids index it): SPyNet level by level
// (5 each), the backward trunk (input conv, then conv1/conv2 per block), the forward trunk, then
// fusion, upconv1, upconv2, conv_hr, conv_last.
std::vector<ConvLayer> network_layers(const Architecture& arch);

// Layer ids of the parts of network_layers(), for code that walks the network.
struct LayerIds {
  int spynet = 0;          // first SPyNet conv; level L's conv k is spynet + 5L + k
  int spynet_count = 0;    // SPyNet convs: ids [spynet, spynet + spynet_count)
  int backward_trunk = 0;  // input conv; block i uses + 1 + 2i and + 2 + 2i
  int forward_trunk = 0;
  int fusion = 0;  // upconv1, upconv2, conv_hr, conv_last follow
  int count = 0;
};
LayerIds layer_ids(const Architecture& arch);

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
