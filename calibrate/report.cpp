#include "report.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

namespace qbasicvsr {

using nlohmann::json;

std::string report_json(const CalibrationReport& r) {
  json layers = json::array();
  for (const auto& l : r.layers)
    layers.push_back(
        {{"name", l.name},
         {"quantized", l.quantized},
         {"s_space", l.s_space},
         {"s_temp", l.s_temp},
         {"b_L", l.b_L},
         {"range", {l.l, l.u}},
         {"weight_error", {{"nearest", l.weight_error_nearest}, {"rounded", l.weight_error_rounded}}}});
  json sensitivity = json::array();
  for (const auto& l : r.sensitivity)
    sensitivity.push_back({{"name", l.name},
                           {"mse",
                            {{std::to_string(l.error.bits_lo), l.error.err_lo},
                             {std::to_string(l.error.bits_hi), l.error.err_hi}}},
                           {"bits", l.bits}});
  json losses = json::array();
  for (const auto& s : r.losses)
    losses.push_back({{"iteration", s.iteration}, {"loss", s.loss}, {"l_pix", s.l_pix}, {"l_skt", s.l_skt}});
  json range_search = json::array();
  for (const auto& [scale, mse] : r.range_search) range_search.push_back({{"scale", scale}, {"mse", mse}});
  return json{
      {"layers", layers},
      {"sequences", {{"C_V", r.sequence_C_V}, {"b_V", r.sequence_b_V}}},
      {"fg_vba", {{"lambda", r.lambda}, {"gamma", r.gamma}, {"tau_lo", r.tau_lo}, {"tau_hi", r.tau_hi}}},
      {"ts_lba",
       {{"l_space", r.ts_lba.l_space},
        {"u_space", r.ts_lba.u_space},
        {"l_temp", r.ts_lba.l_temp},
        {"u_temp", r.ts_lba.u_temp}}},
      {"mean_bits", r.mean_bits},
      {"sensitivity", sensitivity},
      {"step_psnr", {{"initial", r.step_psnr_initial}, {"final", r.step_psnr_final}}},
      {"range_scale", r.range_scale},
      {"range_search", range_search},
      {"stream_scales", {{"min", r.stream_scale_min}, {"max", r.stream_scale_max}}},
      {"losses", losses},
      {"start_iteration", r.start_iteration},
      {"stats_seconds", r.stats_seconds},
      {"train_seconds", r.train_seconds}}
      .dump(1);
}

std::string report_svg(const CalibrationReport& r) {
  // Top: per quantized layer, s_space and s_temp (each scaled to its maximum) as bars, coloured
  // by b_L. Bottom: the loss curve.
  std::vector<const LayerCalibration*> q;
  for (const auto& l : r.layers)
    if (l.quantized) q.push_back(&l);
  const double width = 960, bar_h = 220, loss_h = 180, margin = 40;
  double max_space = 1e-12, max_temp = 1e-12;
  for (const auto* l : q) {
    max_space = std::max(max_space, l->s_space);
    max_temp = std::max(max_temp, l->s_temp);
  }
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(2);
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='"
    << (bar_h + loss_h + 4 * margin)
    << "' font-family='sans-serif' font-size='12'>\n<rect width='100%' height='100%' fill='white'/>\n";
  s << "<text x='" << margin
    << "' y='20'>Per-layer TS-LBA statistics (bars: s_space left, s_temp right, scaled to "
    << "their maxima); colour = b_L (blue -1, grey 0, red +1)</text>\n";
  const double slot = (width - 2 * margin) / std::max<std::size_t>(q.size(), 1);
  for (std::size_t i = 0; i < q.size(); ++i) {
    const char* colour = q[i]->b_L < 0 ? "#3b6fb6" : q[i]->b_L > 0 ? "#c8413b" : "#999999";
    const double x = margin + i * slot, hs = bar_h * q[i]->s_space / max_space,
                 ht = bar_h * q[i]->s_temp / max_temp;
    s << "<rect x='" << x << "' y='" << (margin + bar_h - hs) << "' width='" << slot * 0.45 << "' height='"
      << hs << "' fill='" << colour << "'><title>" << q[i]->name << " s_space " << q[i]->s_space << " b_L "
      << q[i]->b_L << "</title></rect>\n";
    s << "<rect x='" << x + slot * 0.45 << "' y='" << (margin + bar_h - ht) << "' width='" << slot * 0.45
      << "' height='" << ht << "' fill='" << colour << "' fill-opacity='0.5'><title>" << q[i]->name
      << " s_temp " << q[i]->s_temp << "</title></rect>\n";
  }
  const double y0 = 2 * margin + bar_h + 20;
  s << "<text x='" << margin << "' y='" << y0 - 8
    << "'>Loss L = L_pix + lambda_skt L_skt per iteration</text>\n";
  if (!r.losses.empty()) {
    double lo = r.losses[0].loss, hi = lo;
    for (const auto& p : r.losses) {
      lo = std::min(lo, p.loss);
      hi = std::max(hi, p.loss);
    }
    const double span = std::max(hi - lo, 1e-12);
    s << "<polyline fill='none' stroke='#222' stroke-width='1.5' points='";
    for (std::size_t i = 0; i < r.losses.size(); ++i) {
      const double x = margin + (width - 2 * margin) * i / std::max<std::size_t>(r.losses.size() - 1, 1);
      s << x << "," << (y0 + loss_h * (hi - r.losses[i].loss) / span) << " ";
    }
    s << "'/>\n<text x='" << width - margin - 200 << "' y='" << y0 + 12 << "'>max " << hi << ", min " << lo
      << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

}  // namespace qbasicvsr
