#include "qbasicvsr/quantization.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "qbasicvsr/error.h"

namespace qbasicvsr {

namespace {

using nlohmann::json;

// Smallest activation range accepted: a degenerate [l, l] range would give a zero step.
constexpr float kMinRange = 1e-6f;
// Smallest weight step, for all-zero channels.
constexpr float kMinWeightScale = 1e-12f;

double get_number(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j.at(key).is_number()) throw Error(where + ": missing number \"" + key + "\"");
  const double v = j.at(key).get<double>();
  if (!std::isfinite(v)) throw Error(where + ": \"" + key + "\" is not finite");
  return v;
}

// A JSON number that must fit a float (values beyond it would become infinities).
float get_float(const json& v, const std::string& where) {
  if (!v.is_number()) throw Error(where + " must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max())
    throw Error(where + " is out of range");
  return static_cast<float>(d);
}

int get_int(const json& j, const char* key, int lo, int hi, const std::string& where) {
  if (!j.contains(key) || !j.at(key).is_number_integer())
    throw Error(where + ": missing integer \"" + key + "\"");
  const int64_t v = j.at(key).get<int64_t>();
  if (v < lo || v > hi)
    throw Error(where + ": \"" + key + "\" must be in " + std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<int>(v);
}

}  // namespace

Scope parse_scope(const std::string& name) {
  if (name == "partial" || name == "pq") return Scope::Partial;
  if (name == "full" || name == "fq") return Scope::Full;
  throw Error("unknown scope \"" + name + "\" (expected partial or full)");
}

const char* scope_name(Scope s) { return s == Scope::Partial ? "partial" : "full"; }

int layer_bits(int b_base, int b_V, int b_L) { return std::clamp(b_base + b_V + b_L, kMinBits, kMaxBits); }

ActGrid ActGrid::make(float l, float u, int bits) {
  if (bits < kMinBits || bits > kMaxBits) throw Error("activation bits must be in 2..8");
  if (!(u - l >= kMinRange)) u = l + kMinRange;
  ActGrid g;
  g.qmax = (1 << bits) - 1;
  g.scale = (u - l) / static_cast<float>(g.qmax);
  const float zp = std::nearbyint(-l / g.scale);
  g.zero_point = static_cast<int>(std::clamp(zp, 0.0f, static_cast<float>(g.qmax)));
  return g;
}

ActGrid ActGrid::spanning(float lo, float hi, int bits) {
  const float l = std::isfinite(lo) ? std::min(lo, 0.0f) : 0.0f;
  const float u = std::isfinite(hi) ? std::max(hi, 0.0f) : 0.0f;
  return make(l, u, bits);
}

float ActGrid::quantize(float x) const {
  const float q =
      std::clamp(std::nearbyint(x / scale) + static_cast<float>(zero_point), 0.0f, static_cast<float>(qmax));
  return (q - static_cast<float>(zero_point)) * scale;
}

int weight_qmax(int bits) {
  if (bits < kMinBits || bits > kMaxBits) throw Error("weight bits must be in 2..8");
  return (1 << (bits - 1)) - 1;
}

float weight_scale(float clip, int bits) {
  return std::max(clip / static_cast<float>(weight_qmax(bits)), kMinWeightScale);
}

int fg_vba_offset(double complexity, const FgVbaParams& p) {
  if (p.tau_lo && complexity < *p.tau_lo) return -1;
  if (p.tau_hi && complexity > *p.tau_hi) return +1;
  return 0;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) throw Error("percentile of an empty set");
  const double pos = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(values.size() - 1);
  const auto i = static_cast<std::size_t>(std::floor(pos));
  const double frac = pos - static_cast<double>(i);
  // Selection instead of a sort: observers take percentiles of a million samples per layer.
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(i), values.end());
  const double vi = values[i];
  if (i + 1 >= values.size()) return vi;
  const double vj = *std::min_element(values.begin() + static_cast<std::ptrdiff_t>(i) + 1, values.end());
  return vi + (vj - vi) * frac;
}

TsLbaThresholds ts_lba_thresholds(const std::vector<double>& s_space, const std::vector<double>& s_temp,
                                  double p_lo, double p_hi) {
  TsLbaThresholds t;
  t.l_space = percentile(s_space, p_lo);
  t.u_space = percentile(s_space, p_hi);
  t.l_temp = percentile(s_temp, p_lo);
  t.u_temp = percentile(s_temp, p_hi);
  return t;
}

int ts_lba_offset(double s_space, double s_temp, const TsLbaThresholds& t) {
  // Both statistics low: the layer's input is smooth in space and stable in time, fewer bits do.
  if (s_space <= t.l_space && s_temp <= t.l_temp) return -1;
  // Both high: detail and motion both vary a lot, give it a bit more.
  if (s_space >= t.u_space && s_temp >= t.u_temp) return +1;
  return 0;
}

double LayerError::at(int bits) const {
  const int span = std::max(1, bits_hi - bits_lo);
  if (!(err_lo > 0)) return 0.0;
  const double ratio = std::clamp(err_hi / err_lo, std::pow(0.25, span), 1.0);
  return err_lo * std::pow(ratio, static_cast<double>(bits - bits_lo) / span);
}

std::vector<int> allocate_bits(const std::vector<LayerError>& errors, double target_mean, int min_bits,
                               int max_bits) {
  if (min_bits < kMinBits || max_bits > kMaxBits || min_bits > max_bits)
    throw Error("bit allocation: bounds must satisfy 2 <= min <= max <= 8");
  if (!(target_mean >= min_bits))
    throw Error("bit allocation: a mean of " + std::to_string(target_mean) + " bits is below the lowest " +
                std::to_string(min_bits));
  const std::size_t n = errors.size();
  std::vector<int> bits(n, min_bits);
  // Whole bits the mean allows beyond min_bits (a small tolerance keeps 6.5 * 2 layers at 13).
  auto budget = static_cast<long long>(std::floor(target_mean * static_cast<double>(n) + 1e-9)) -
                static_cast<long long>(min_bits) * static_cast<long long>(n);
  while (budget > 0) {
    std::size_t best = n;
    double best_gain = -1;
    for (std::size_t i = 0; i < n; ++i) {
      if (bits[i] >= max_bits) continue;
      const double gain = errors[i].at(bits[i]) - errors[i].at(bits[i] + 1);
      if (gain > best_gain) best_gain = gain, best = i;
    }
    if (best == n) break;  // every layer at max_bits
    ++bits[best];
    --budget;
  }
  return bits;
}

std::vector<LayerInfo> conv_layers(const Architecture& arch) {
  std::vector<LayerInfo> v;
  for (const ConvLayer& l : network_layers(arch))
    v.push_back(
        {l.name, l.out_channels, l.part == LayerPart::SpyNet, l.name == "conv_last", l.frame_channels});
  return v;
}

std::vector<std::string> dynamic_range_layers(const Architecture& arch) {
  std::vector<std::string> names;
  for (const ConvLayer& l : network_layers(arch))
    if (l.frame_channels > 0 || (l.part == LayerPart::Reconstruction && l.name != "conv_last"))
      names.push_back(l.name);
  return names;
}

bool quantized_in(const LayerInfo& layer, Scope scope) {
  return scope == Scope::Full || !(layer.spynet || layer.conv_last);
}

const LayerQuant* QuantSettings::layer(const std::string& name) const {
  const auto it = layers.find(name);
  return it == layers.end() ? nullptr : &it->second;
}

bool QuantSettings::has_ranges(const Architecture& arch) const {
  for (const auto& info : conv_layers(arch)) {
    if (!quantized_in(info, scope)) continue;
    const auto* lq = layer(info.name);
    if (!lq || !(lq->has_range || lq->dynamic)) return false;
  }
  return true;
}

void QuantSettings::validate(const Architecture& arch) const {
  if (b_base < kMinBits || b_base > kMaxBits) throw Error("quantization: b_base must be in 2..8");
  std::map<std::string, int> outs;
  for (const auto& info : conv_layers(arch)) outs[info.name] = info.out_channels;
  for (const auto& [name, lq] : layers) {
    const std::string where = "quantization: layer \"" + name + "\"";
    const auto it = outs.find(name);
    if (it == outs.end()) throw Error(where + " is not a conv layer of " + arch.summary());
    if (lq.b_L < -kMaxBits || lq.b_L > kMaxBits) throw Error(where + ": b_L must be in -8..8");
    if (lq.has_range && !(std::isfinite(lq.l) && std::isfinite(lq.u) && lq.u > lq.l))
      throw Error(where + ": range must have l < u");
    if (!lq.weight_clip.empty()) {
      if (static_cast<int>(lq.weight_clip.size()) != it->second)
        throw Error(where + ": weight_clip needs " + std::to_string(it->second) + " values");
      for (float c : lq.weight_clip)
        if (!(c >= 0.0f) || !std::isfinite(c)) throw Error(where + ": weight_clip values must be >= 0");
    }
  }
  if (fg_vba.tau_lo && fg_vba.tau_hi && *fg_vba.tau_lo > *fg_vba.tau_hi)
    throw Error("quantization: fg_vba tau_lo must not exceed tau_hi");
}

std::string QuantSettings::to_json() const {
  json j;
  j["b_base"] = b_base;
  j["scope"] = scope_name(scope);
  json ls = json::object();
  for (const auto& [name, lq] : layers) {
    json e;
    e["b_L"] = lq.b_L;
    if (lq.has_range) e["range"] = {lq.l, lq.u};
    if (lq.dynamic) e["dynamic"] = true;
    if (!lq.weight_clip.empty()) e["weight_clip"] = lq.weight_clip;
    ls[name] = e;
  }
  j["layers"] = ls;
  json fg = {{"lambda", fg_vba.lambda}, {"gamma", fg_vba.gamma}};
  if (fg_vba.tau_lo) fg["tau_lo"] = *fg_vba.tau_lo;
  if (fg_vba.tau_hi) fg["tau_hi"] = *fg_vba.tau_hi;
  j["fg_vba"] = fg;
  if (ts_lba)
    j["ts_lba"] = {{"l_space", ts_lba->l_space},
                   {"u_space", ts_lba->u_space},
                   {"l_temp", ts_lba->l_temp},
                   {"u_temp", ts_lba->u_temp}};
  return j.dump();
}

QuantSettings QuantSettings::from_json(const std::string& text) {
  const auto j = json::parse(text, nullptr, false);
  const std::string where = "quantization";
  if (j.is_discarded() || !j.is_object()) throw Error(where + ": metadata is not a JSON object");
  QuantSettings q;
  q.b_base = get_int(j, "b_base", kMinBits, kMaxBits, where);
  if (!j.contains("scope") || !j.at("scope").is_string()) throw Error(where + ": missing \"scope\"");
  q.scope = parse_scope(j.at("scope").get<std::string>());
  if (j.contains("layers")) {
    if (!j.at("layers").is_object()) throw Error(where + ": \"layers\" is not an object");
    for (const auto& [name, e] : j.at("layers").items()) {
      const std::string lw = where + ": layer \"" + name + "\"";
      if (!e.is_object()) throw Error(lw + " is not an object");
      LayerQuant lq;
      lq.b_L = get_int(e, "b_L", -kMaxBits, kMaxBits, lw);
      if (e.contains("range")) {
        const auto& r = e.at("range");
        if (!r.is_array() || r.size() != 2) throw Error(lw + ": range must be [l, u]");
        lq.has_range = true;
        lq.l = get_float(r[0], lw + ": range");
        lq.u = get_float(r[1], lw + ": range");
      }
      if (e.contains("dynamic")) {
        if (!e.at("dynamic").is_boolean()) throw Error(lw + ": dynamic must be true or false");
        lq.dynamic = e.at("dynamic").get<bool>();
      }
      if (e.contains("weight_clip")) {
        const auto& c = e.at("weight_clip");
        if (!c.is_array() || c.size() > 65536) throw Error(lw + ": weight_clip must be an array");
        for (const auto& v : c) lq.weight_clip.push_back(get_float(v, lw + ": weight_clip"));
      }
      q.layers[name] = lq;
    }
  }
  if (j.contains("fg_vba")) {
    const auto& f = j.at("fg_vba");
    const std::string fw = where + ": fg_vba";
    if (!f.is_object()) throw Error(fw + " is not an object");
    q.fg_vba.lambda = get_number(f, "lambda", fw);
    q.fg_vba.gamma = get_number(f, "gamma", fw);
    if (f.contains("tau_lo")) q.fg_vba.tau_lo = get_number(f, "tau_lo", fw);
    if (f.contains("tau_hi")) q.fg_vba.tau_hi = get_number(f, "tau_hi", fw);
  }
  if (j.contains("ts_lba")) {
    const auto& t = j.at("ts_lba");
    const std::string tw = where + ": ts_lba";
    if (!t.is_object()) throw Error(tw + " is not an object");
    q.ts_lba = TsLbaThresholds{get_number(t, "l_space", tw), get_number(t, "u_space", tw),
                               get_number(t, "l_temp", tw), get_number(t, "u_temp", tw)};
  }
  return q;
}

}  // namespace qbasicvsr
