// What a training or calibration checkpoint records of the run that wrote it, so that --resume
// gives the uninterrupted result or refuses: the options the result depends on ("run" in the
// checkpoint's state) and a digest of the frames it learns from. Internal.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qbasicvsr/error.h"
#include "qbasicvsr/image.h"
#include "qbasicvsr/model_file.h"

namespace qbasicvsr {

// FNV-1a (64 bits) over counts, frame sizes and samples, in the order added.
class FramesDigest {
 public:
  void add_count(uint64_t v) { mix(&v, sizeof v); }
  void add(const std::vector<Image>& frames) {
    add_count(frames.size());
    for (const Image& f : frames) {
      for (const int v : {f.width, f.height, f.depth}) add_count(static_cast<uint64_t>(v));
      if (f.depth == 16)
        mix(f.rgb16.data(), f.rgb16.size() * sizeof(uint16_t));
      else
        mix(f.rgb.data(), f.rgb.size());
    }
  }
  std::string hex() const {
    char s[17];
    std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h_));
    return s;
  }

 private:
  void mix(const void* data, std::size_t n) {
    const auto* b = static_cast<const uint8_t*>(data);
    for (std::size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 1099511628211ull;
  }
  uint64_t h_ = 14695981039346656037ull;
};

// The "run" record in a checkpoint's state (metadata key `state_key`); null when there is none
// (checkpoints written before it, or a damaged state, which restoring reports).
inline nlohmann::json recorded_run(const Model& checkpoint, const char* state_key) {
  const auto it = checkpoint.extra_metadata.find(state_key);
  if (it == checkpoint.extra_metadata.end()) return nullptr;
  const auto state = nlohmann::json::parse(it->second, nullptr, false);
  if (state.is_discarded() || !state.is_object() || !state.contains("run") || !state["run"].is_object())
    return nullptr;
  return state["run"];
}

// An option as its command line gives it: "--" and the key with dashes ("iterations": "--iters"),
// then the value.
inline std::string option_flag(const std::string& key, const nlohmann::json& v) {
  std::string flag = "--" + (key == "iterations" ? std::string("iters") : key);
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag + " " + (v.is_string() ? v.get<std::string>() : v.dump());
}

// Throws Error naming the first option (the keys of `first`, then the rest of `now`) that the
// recorded `was` holds with another value: "NAME: the run was started with A, not B; ...", each
// side as `describe` words it. Keys `was` lacks are not compared (older checkpoints).
inline void check_recorded_options(
    const nlohmann::json& was, const nlohmann::json& now, std::vector<std::string> first,
    const std::function<std::string(const std::string&, const nlohmann::json&)>& describe,
    const std::string& name) {
  for (const auto& item : now.items()) first.push_back(item.key());
  for (const std::string& key : first)
    if (was.contains(key) && now.contains(key) && was[key] != now[key])
      throw Error(name + ": the run was started with " + describe(key, was[key]) + ", not " +
                  describe(key, now[key]) +
                  "; resume it with its options (or start it again to change them)");
}

// Throws Error when `was` records a digest of the data under `key` and `digest` differs: "NAME:
// the run was started on other WHAT; resume it with the same OPTIONS ...".
inline void check_recorded_data(const nlohmann::json& was, const char* key, const std::string& digest,
                                const std::string& what, const std::string& options,
                                const std::string& name) {
  if (was.contains(key) && was[key] != digest)
    throw Error(name + ": the run was started on other " + what + "; resume it with the same " + options +
                " (or start it again to change them)");
}

}  // namespace qbasicvsr
