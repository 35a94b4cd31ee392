#include "qbasicvsr/importer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "qbasicvsr/error.h"
#include "qbasicvsr/torch7.h"
#include "qbasicvsr/torch_checkpoint.h"

namespace qbasicvsr {

namespace {

using Kind = PyValue::Kind;

// ImageNet statistics SPyNet normalises with; checkpoints carry them as buffers.
constexpr float kSpyMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kSpyStd[3] = {0.229f, 0.224f, 0.225f};
constexpr int kSpyLevels = 6;

const char* format_name(CheckpointFormat f) {
  switch (f) {
    case CheckpointFormat::BasicSR:
      return "basicsr";
    case CheckpointFormat::MMagic:
      return "mmagic";
    default:
      return "auto";
  }
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// Provenance keeps file names, not the importing machine's directories.
std::string basename(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// mmagic/mmedit key (without "generator.") -> canonical BasicSR key; empty if not a weight.
std::string canonical_from_mmagic(const std::string& key) {
  static const std::regex spy(R"(spynet\.basic_module\.(\d+)\.basic_module\.(\d+)\.conv\.(weight|bias))");
  std::smatch m;
  if (std::regex_match(key, m, spy)) {
    const int k = std::stoi(m[2]);
    if (k > 4) return "?" + key;
    return "spynet.basic_module." + m[1].str() + ".basic_module." + std::to_string(2 * k) + "." + m[3].str();
  }
  for (const char* dir : {"backward", "forward"}) {
    const std::string from = std::string(dir) + "_resblocks.";
    if (starts_with(key, from)) return std::string(dir) + "_trunk." + key.substr(from.size());
  }
  if (starts_with(key, "upsample1.upsample_conv.")) return "upconv1." + key.substr(24);
  if (starts_with(key, "upsample2.upsample_conv.")) return "upconv2." + key.substr(24);
  return key;
}

void check_spynet_buffer(const HostTensor& t, const float* expected, const std::string& name) {
  const auto v = t.to_f32();
  if (v.size() != 3)
    throw Error("checkpoint: " + name + " has shape " + shape_string(t.shape) + ", expected 3 values");
  for (int i = 0; i < 3; ++i)
    if (std::fabs(v[i] - expected[i]) > 1e-5f)
      throw Error("checkpoint: " + name + " differs from the ImageNet statistics SPyNet expects");
}

int max_index_plus_one(const std::map<std::string, HostTensor>& w, const std::string& prefix) {
  int n = 0;
  for (const auto& kv : w) {
    if (!starts_with(kv.first, prefix)) continue;
    const std::string rest = kv.first.substr(prefix.size());
    const auto dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || dot > 4) continue;
    const std::string idx = rest.substr(0, dot);
    if (!std::all_of(idx.begin(), idx.end(), ::isdigit)) continue;
    n = std::max(n, std::stoi(idx) + 1);
  }
  return n;
}

int level_of(const std::string& path, int fallback) {
  static const std::regex level(R"(modelL([1-6])_[^/]*\.t7$)");
  std::smatch m;
  if (std::regex_search(path, m, level)) return std::stoi(m[1]);
  return fallback;
}

}  // namespace

CheckpointFormat parse_checkpoint_format(const std::string& name) {
  if (name == "auto") return CheckpointFormat::Auto;
  if (name == "basicsr") return CheckpointFormat::BasicSR;
  if (name == "mmagic" || name == "mmedit") return CheckpointFormat::MMagic;
  if (name == "spynet-t7")
    throw Error(
        "--format spynet-t7: SPyNet level files replace the flow network of a BasicVSR "
        "checkpoint; give the checkpoint first, then the six modelL*.t7 files");
  throw Error("unknown checkpoint format \"" + name + "\" (expected auto, basicsr or mmagic)");
}

Model import_checkpoint(const std::string& checkpoint, const std::vector<std::string>& spynet_t7,
                        CheckpointFormat format, ImportReport* report) {
  ImportReport rep;
  const TorchCheckpoint ckpt = TorchCheckpoint::read(checkpoint);
  PyRef root = ckpt.root();
  if (root->kind != Kind::Dict) throw Error(checkpoint + ": top-level object is not a dict");

  PyRef sd = nullptr;
  for (const char* key : {"params_ema", "params", "state_dict"}) {
    PyRef v = root->get(key);
    if (v && v->kind == Kind::Dict) {
      sd = v;
      rep.state_dict_key = key;
      break;
    }
  }
  if (!sd) {
    sd = root;
    rep.state_dict_key = "<root>";
  }
  bool mmagic_keys = false;
  for (const auto& [k, v] : sd->dict)
    if (k->kind == Kind::Str && starts_with(k->s, "generator.")) mmagic_keys = true;
  rep.format = format != CheckpointFormat::Auto
                   ? format
                   : (mmagic_keys ? CheckpointFormat::MMagic : CheckpointFormat::BasicSR);

  std::map<std::string, HostTensor> weights;
  for (const auto& [k, v] : sd->dict) {
    if (k->kind != Kind::Str) throw Error(checkpoint + ": state dict has a non-string key");
    std::string name = k->s;
    if (rep.format == CheckpointFormat::MMagic) {
      if (!starts_with(name, "generator.")) {  // generator_ema.*, step_counter, discriminator ...
        ++rep.ignored_keys;
        continue;
      }
      name = canonical_from_mmagic(name.substr(10));
    }
    if (v->kind != Kind::Tensor) throw Error(checkpoint + ": entry \"" + k->s + "\" is not a tensor");
    HostTensor t = ckpt.materialize(v->tensor);
    if (name == "spynet.mean" || name == "spynet.std") {
      check_spynet_buffer(t, name == "spynet.mean" ? kSpyMean : kSpyStd, k->s);
      ++rep.ignored_keys;
      continue;
    }
    if (name == "step_counter") {
      ++rep.ignored_keys;
      continue;
    }
    try {
      weights[name] = HostTensor::from_f32(t.shape, t.to_f32());
    } catch (const Error& e) {
      throw Error(checkpoint + ": entry \"" + k->s + "\": " + e.what());
    }
  }

  Model model;
  const auto in = weights.find("backward_trunk.main.0.weight");
  const auto hr = weights.find("conv_hr.weight");
  if (in == weights.end() || in->second.shape.size() != 4 || hr == weights.end() ||
      hr->second.shape.size() != 4)
    throw Error(checkpoint + ": not a BasicVSR " + format_name(rep.format) +
                " checkpoint (no backward_trunk input conv or conv_hr found)");
  model.arch.channels = static_cast<int>(in->second.shape[0]);
  model.arch.hr_channels = static_cast<int>(hr->second.shape[0]);
  model.arch.blocks = max_index_plus_one(weights, "backward_trunk.main.2.");
  model.weights = std::move(weights);

  nlohmann::json spy_prov = nlohmann::json::array();
  if (!spynet_t7.empty()) {
    if (spynet_t7.size() != kSpyLevels)
      throw Error("SPyNet needs six level files (modelL1..6_*.t7), got " + std::to_string(spynet_t7.size()));
    std::vector<std::string> by_level(kSpyLevels);
    for (std::size_t i = 0; i < spynet_t7.size(); ++i) {
      const int level = level_of(spynet_t7[i], static_cast<int>(i) + 1);
      if (!by_level[level - 1].empty())
        throw Error("SPyNet level " + std::to_string(level) + " given twice (" + by_level[level - 1] + ", " +
                    spynet_t7[i] + ")");
      by_level[level - 1] = spynet_t7[i];
    }
    for (int level = 0; level < kSpyLevels; ++level) {
      const auto convs = read_t7_convolutions(by_level[level]);
      if (convs.size() != 5)
        throw Error(by_level[level] + ": expected 5 convolutions, found " + std::to_string(convs.size()));
      for (int k = 0; k < 5; ++k) {
        const std::string base =
            "spynet.basic_module." + std::to_string(level) + ".basic_module." + std::to_string(2 * k);
        auto& w = model.weights[base + ".weight"];
        if (w.shape != convs[k].weight.shape)
          throw Error(by_level[level] + ": convolution " + std::to_string(k + 1) + " has shape " +
                      shape_string(convs[k].weight.shape) + ", expected " + shape_string(w.shape));
        w = convs[k].weight;
        model.weights[base + ".bias"] = convs[k].bias;
      }
      spy_prov.push_back(
          {{"level", level + 1}, {"file", by_level[level]}, {"sha256", file_sha256(by_level[level])}});
    }
  }
  try {
    model.validate();
  } catch (const Error& e) {
    throw Error(checkpoint + ": " + e.what());
  }
  nlohmann::json prov = {{"source", basename(checkpoint)},
                         {"source_sha256", file_sha256(checkpoint)},
                         {"source_format", format_name(rep.format)},
                         {"state_dict_key", rep.state_dict_key},
                         {"importer", "qbasicvsr-import"}};
  if (!spy_prov.empty()) prov["spynet_t7"] = spy_prov;
  model.provenance_json = prov.dump();
  if (report) *report = rep;
  return model;
}

}  // namespace qbasicvsr
