// Quantization settings of a model (DESIGN.md sections 1 and 4) and the integer arithmetic they
// define: activation grids, per-layer bit-widths, the FG-VBA and TS-LBA decision rules.
// No LibTorch here: the element, the programs and the model-file readers include it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qbasicvsr/architecture.h"

namespace qbasicvsr {

enum class Scope { Partial, Full };

// Parses "partial" / "full" (also "pq" / "fq"); throws Error otherwise.
Scope parse_scope(const std::string& name);
const char* scope_name(Scope s);

constexpr int kMinBits = 2;
constexpr int kMaxBits = 8;

// b = clamp(b_base + b_V + b_L, 2, 8).
int layer_bits(int b_base, int b_V, int b_L);

// The asymmetric b-bit activation grid for a range [l, u], nudged so that zero is exact:
// S = (u - l) / (2^b - 1), zero_point = clamp(round(-l / S), 0, 2^b - 1); the grid holds
// (q - zero_point) * S for q in 0..2^b - 1.
struct ActGrid {
  float scale = 1.0f;
  int zero_point = 0;
  int qmax = 255;

  static ActGrid make(float l, float u, int bits);
  // The grid of a dynamic range: [min(lo, 0), max(hi, 0)] of the values at hand (lo, hi their
  // smallest and largest), so that zero stays exact; a bound that is not finite counts as 0.
  static ActGrid spanning(float lo, float hi, int bits);
  float lo() const { return static_cast<float>(-zero_point) * scale; }
  float hi() const { return static_cast<float>(qmax - zero_point) * scale; }
  // The quantized value of x (round half to even, as the integer path does).
  float quantize(float x) const;
};

// The symmetric restricted-range weight step of one output channel: S = u / (2^(b-1) - 1).
float weight_scale(float clip, int bits);
// Largest integer weight magnitude at b bits: 2^(b-1) - 1.
int weight_qmax(int bits);

// Per-layer settings. Ranges are those of the layer's input activation.
struct LayerQuant {
  int b_L = 0;
  bool has_range = false;
  float l = 0.0f, u = 0.0f;
  std::vector<float> weight_clip;  // per output channel; empty: max |w| of the channel
  // The input's grid is made at run time from the input itself (ActGrid::spanning of each frame's
  // smallest and largest value), at the layer's bits; a calibrated range, if any, is then unused.
  bool dynamic = false;
};

// FG-VBA: C_V = mean_t S_t + lambda * mean_t (T_mag + gamma * T_cons); b_V from tau_lo/tau_hi.
struct FgVbaParams {
  double lambda = 10.0;
  double gamma = 1.0;
  // Without calibrated thresholds the adaptation never changes the bits.
  std::optional<double> tau_lo, tau_hi;
};

// b_V in {-1, 0, +1}: -1 below tau_lo, +1 above tau_hi, 0 between or uncalibrated.
int fg_vba_offset(double complexity, const FgVbaParams& p);

// TS-LBA thresholds over the layers' statistics (percentiles p_lo / p_hi by default).
struct TsLbaThresholds {
  double l_space = 0, u_space = 0, l_temp = 0, u_temp = 0;
};

// Percentile with linear interpolation between order statistics (numpy's default); p in 0..100.
double percentile(std::vector<double> values, double p);
TsLbaThresholds ts_lba_thresholds(const std::vector<double>& s_space, const std::vector<double>& s_temp,
                                  double p_lo = 30.0, double p_hi = 70.0);
// b_L: -1 if both statistics are at or below their lower thresholds, +1 if both at or above the
// upper ones, else 0.
int ts_lba_offset(double s_space, double s_temp, const TsLbaThresholds& t);

// Output error of the network when one layer alone is quantized, measured at two bit-widths
// (calibration's sensitivity pass); between and beyond them the error is interpolated
// geometrically: err(b) = err_lo * (err_hi / err_lo)^((b - bits_lo) / (bits_hi - bits_lo)), the
// ratio kept in [4^-(bits_hi - bits_lo), 1] (each bit can at best quarter the rounding noise and
// never adds error).
struct LayerError {
  double err_lo = 0, err_hi = 0;
  int bits_lo = 6, bits_hi = 8;
  double at(int bits) const;
};

// Bits per layer that minimise sum_i errors[i].at(b_i) with a mean of b_i at most `target_mean`
// and every b_i in [min_bits, max_bits]: all layers start at min_bits and the bit with the largest
// error reduction goes next (optimal for errors convex in b, as the model above is). Throws Error
// when target_mean < min_bits or the bounds are outside 2..8.
std::vector<int> allocate_bits(const std::vector<LayerError>& errors, double target_mean, int min_bits,
                               int max_bits);

struct QuantSettings {
  int b_base = 8;
  Scope scope = Scope::Partial;
  std::map<std::string, LayerQuant> layers;  // by layer name; absent layers: b_L 0, no range
  FgVbaParams fg_vba;
  std::optional<TsLbaThresholds> ts_lba;

  // True when every quantized layer of the scope has a calibrated input range.
  bool has_ranges(const Architecture& arch) const;
  const LayerQuant* layer(const std::string& name) const;
  // Throws Error naming the first invalid field (bits, ranges, unknown layers, clip sizes).
  void validate(const Architecture& arch) const;
  std::string to_json() const;
  static QuantSettings from_json(const std::string& text);
};

// Conv layers in network order, with the weight name prefix used in model files.
struct LayerInfo {
  std::string name;
  int out_channels = 0;
  bool spynet = false;     // part of the flow network
  bool conv_last = false;  // the final 3-channel conv
  // Leading input channels that are the LR frame (a trunk's input conv: [frame, features]). When
  // the layer is quantized only the feature channels go through its grid and its weights' clips;
  // the frame's 3 channels (4.5 % of the conv's work at C = 64) are convolved in float and added
  // before the activation. An 8-bit frame on a grid shared with the features loses precision even
  // at 8 bits, and this one conv's input was most of the quantized network's error (the
  // sensitivity figures in docs/CALIBRATION.md).
  int frame_channels = 0;
};
std::vector<LayerInfo> conv_layers(const Architecture& arch);
// The layers that calibration gives dynamic ranges (`--dynamic-ranges yes`): the two trunks' input
// convs (input: the LR frame and the warped feature of the previous step) and the reconstruction
// convs before conv_last (fusion, upconv1, upconv2, conv_hr), whose inputs are the propagated
// features. Their ranges vary most from frame to frame and from clip to clip
// (docs/CALIBRATION.md).
std::vector<std::string> dynamic_range_layers(const Architecture& arch);
// Whether a layer is quantized in a scope: partial leaves SPyNet and conv_last in float.
bool quantized_in(const LayerInfo& layer, Scope scope);

// Metadata key of the quantization settings in model files.
constexpr const char* kQuantizationKey = "quantization";

}  // namespace qbasicvsr
