#include "qbasicvsr/architecture.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "qbasicvsr/error.h"

namespace qbasicvsr {

namespace {

constexpr int kMaxChannels = 1024;
constexpr int kMaxBlocks = 200;
// SPyNet basic module: five 7x7 convolutions 8->32->64->32->16->2.
constexpr int kSpyConvs = 5;
constexpr int kSpyChannels[kSpyConvs + 1] = {8, 32, 64, 32, 16, 2};

}  // namespace

void Architecture::validate() const {
  if (channels < 1 || channels > kMaxChannels)
    throw Error("architecture: channels must be in 1.." + std::to_string(kMaxChannels));
  if (blocks < 0 || blocks > kMaxBlocks)
    throw Error("architecture: blocks must be in 0.." + std::to_string(kMaxBlocks));
  if (hr_channels < 1 || hr_channels > kMaxChannels)
    throw Error("architecture: hr_channels must be in 1.." + std::to_string(kMaxChannels));
  if (scale != 4) throw Error("architecture: only scale 4 is supported");
  if (spynet_levels != 6) throw Error("architecture: SPyNet must have 6 levels");
}

std::string Architecture::to_json() const {
  nlohmann::json j = {{"network", "BasicVSR"},
                      {"channels", channels},
                      {"blocks", blocks},
                      {"hr_channels", hr_channels},
                      {"scale", scale},
                      {"spynet_levels", spynet_levels},
                      {"base_upsample", base_upsample == BaseUpsample::Bilinear ? "bilinear" : "bicubic"}};
  return j.dump();
}

Architecture Architecture::from_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error("architecture: metadata is not a JSON object");
  if (j.value("network", std::string()) != "BasicVSR")
    throw Error("architecture: network must be \"BasicVSR\"");
  auto get_int = [&](const char* key, int fallback, bool required) {
    if (!j.contains(key)) {
      if (required) throw Error(std::string("architecture: missing field \"") + key + "\"");
      return fallback;
    }
    const auto& v = j.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < -1000000 || v.get<int64_t>() > 1000000)
      throw Error(std::string("architecture: field \"") + key + "\" must be an integer");
    return v.get<int>();
  };
  Architecture a;
  a.channels = get_int("channels", 64, true);
  a.blocks = get_int("blocks", 30, true);
  a.hr_channels = get_int("hr_channels", 64, true);
  a.scale = get_int("scale", 4, false);
  a.spynet_levels = get_int("spynet_levels", 6, false);
  const auto base = j.contains("base_upsample") && j["base_upsample"].is_string()
                        ? j["base_upsample"].get<std::string>()
                        : std::string("bilinear");
  if (base == "bilinear") {
    a.base_upsample = BaseUpsample::Bilinear;
  } else if (base == "bicubic") {
    a.base_upsample = BaseUpsample::Bicubic;
  } else {
    throw Error("architecture: base_upsample must be \"bilinear\" or \"bicubic\"");
  }
  a.validate();
  return a;
}

Architecture Architecture::parse(const std::string& text) {
  const Error bad("--arch must be C,N or C,N,HR (numbers), got \"" + text + "\"");
  std::vector<int> v;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    char* end = nullptr;
    errno = 0;
    const long x = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end || errno || x < 0 || x > kMaxChannels || v.size() == 3) throw bad;
    v.push_back(static_cast<int>(x));
    pos = comma + 1;
  }
  if (v.size() < 2) throw bad;
  Architecture a;
  a.channels = v[0];
  a.blocks = v[1];
  a.hr_channels = v.size() == 3 ? v[2] : v[0];
  a.validate();
  return a;
}

std::string Architecture::summary() const {
  return "C=" + std::to_string(channels) + " N=" + std::to_string(blocks) +
         " hr=" + std::to_string(hr_channels) +
         (base_upsample == BaseUpsample::Bilinear ? " base=bilinear" : " base=bicubic");
}

bool Architecture::operator==(const Architecture& o) const {
  return channels == o.channels && blocks == o.blocks && hr_channels == o.hr_channels && scale == o.scale &&
         spynet_levels == o.spynet_levels && base_upsample == o.base_upsample;
}

std::vector<ConvLayer> network_layers(const Architecture& arch) {
  std::vector<ConvLayer> v;
  for (int level = 0; level < arch.spynet_levels; ++level)
    for (int k = 0; k < kSpyConvs; ++k)
      v.push_back({"spynet.basic_module." + std::to_string(level) + ".basic_module." + std::to_string(2 * k),
                   kSpyChannels[k], kSpyChannels[k + 1], 7, LayerPart::SpyNet});
  const int c = arch.channels;
  for (const LayerPart part : {LayerPart::BackwardTrunk, LayerPart::ForwardTrunk}) {
    const std::string b = part == LayerPart::BackwardTrunk ? "backward_trunk" : "forward_trunk";
    v.push_back({b + ".main.0", c + kFrameChannels, c, 3, part, kFrameChannels});
    for (int i = 0; i < arch.blocks; ++i) {
      v.push_back({b + ".main.2." + std::to_string(i) + ".conv1", c, c, 3, part});
      v.push_back({b + ".main.2." + std::to_string(i) + ".conv2", c, c, 3, part});
    }
  }
  const int h = arch.hr_channels;
  v.push_back({"fusion", 2 * c, c, 1, LayerPart::Reconstruction});
  v.push_back({"upconv1", c, 4 * c, 3, LayerPart::Reconstruction});
  v.push_back({"upconv2", c, 4 * h, 3, LayerPart::Reconstruction});
  v.push_back({"conv_hr", h, h, 3, LayerPart::Reconstruction});
  v.push_back({"conv_last", h, 3, 3, LayerPart::Reconstruction});
  return v;
}

LayerIds layer_ids(const Architecture& arch) {
  LayerIds ids;
  ids.spynet_count = arch.spynet_levels * kSpyConvs;
  ids.backward_trunk = ids.spynet + ids.spynet_count;
  ids.forward_trunk = ids.backward_trunk + 1 + 2 * arch.blocks;
  ids.fusion = ids.forward_trunk + 1 + 2 * arch.blocks;
  ids.count = ids.fusion + 5;
  return ids;
}

std::vector<TensorSpec> expected_tensors(const Architecture& arch) {
  std::vector<TensorSpec> v;
  for (const ConvLayer& l : network_layers(arch)) {
    v.push_back({l.name + ".weight", {l.out_channels, l.in_channels, l.kernel, l.kernel}});
    v.push_back({l.name + ".bias", {l.out_channels}});
  }
  return v;
}

int64_t parameter_count(const Architecture& arch) {
  int64_t n = 0;
  for (const auto& t : expected_tensors(arch)) {
    int64_t k = 1;
    for (auto d : t.shape) k *= d;
    n += k;
  }
  return n;
}

}  // namespace qbasicvsr
