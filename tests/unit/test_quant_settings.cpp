// Quantization settings in model files: round trip, and a named error for every bad field.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "qbasicvsr/error.h"
#include "qbasicvsr/model_file.h"
#include "test_util.h"

using namespace qbasicvsr;
using test::error_of;

namespace {

QuantSettings sample_settings() {
  QuantSettings q;
  q.b_base = 6;
  q.scope = Scope::Full;
  q.layers["fusion"] = LayerQuant{-1, true, -0.25f, 3.0000002f, {}};
  q.layers["conv_last"] = LayerQuant{1, true, 0.0f, 1.5f, {0.5f, 0.25f, 0.125f}};
  q.layers["upconv1"] = LayerQuant{0, false, 0.0f, 0.0f, {}, true};  // dynamic, no calibrated range
  q.fg_vba.lambda = 7.5;
  q.fg_vba.gamma = 0.3;
  q.fg_vba.tau_lo = 20.0;
  q.fg_vba.tau_hi = 45.5;
  q.ts_lba = TsLbaThresholds{0.1, 0.2, 0.3, 0.4};
  return q;
}

std::string settings_error(const std::string& json) {
  return error_of([&] { QuantSettings::from_json(json).validate(test::tiny_arch()); });
}

}  // namespace

TEST(QuantSettings, JsonRoundTripIsExact) {
  const QuantSettings q = sample_settings();
  const QuantSettings r = QuantSettings::from_json(q.to_json());
  EXPECT_EQ(r.b_base, 6);
  EXPECT_EQ(r.scope, Scope::Full);
  ASSERT_EQ(r.layers.size(), 3u);
  EXPECT_TRUE(r.layers.at("upconv1").dynamic);
  EXPECT_FALSE(r.layers.at("upconv1").has_range);
  EXPECT_FALSE(r.layers.at("fusion").dynamic);
  EXPECT_EQ(r.layers.at("fusion").b_L, -1);
  EXPECT_EQ(r.layers.at("fusion").u, 3.0000002f);  // floats survive bit for bit
  EXPECT_EQ(r.layers.at("conv_last").weight_clip, (std::vector<float>{0.5f, 0.25f, 0.125f}));
  EXPECT_EQ(*r.fg_vba.tau_hi, 45.5);
  EXPECT_EQ(r.ts_lba->u_temp, 0.4);
  EXPECT_EQ(r.to_json(), q.to_json());
}

TEST(QuantSettings, ModelFileCarriesThem) {
  Model m = random_model(test::tiny_arch(), 1);
  m.quantization = sample_settings();
  const auto f = model_to_safetensors(m);
  ASSERT_EQ(f.metadata.count(kQuantizationKey), 1u);
  const auto bytes = serialize_safetensors(f);
  const Model r = model_from_safetensors(parse_safetensors(bytes.data(), bytes.size()));
  ASSERT_TRUE(r.quantization.has_value());
  EXPECT_EQ(r.quantization->to_json(), m.quantization->to_json());
  EXPECT_EQ(r.extra_metadata.count(kQuantizationKey), 0u);
  EXPECT_FALSE(random_model(test::tiny_arch(), 1).quantization.has_value());
}

TEST(QuantSettings, BadFieldsAreNamed) {
  EXPECT_NE(settings_error("[]").find("not a JSON object"), std::string::npos);
  EXPECT_NE(settings_error(R"({"scope": "partial"})").find("b_base"), std::string::npos);
  EXPECT_NE(settings_error(R"({"b_base": 9, "scope": "partial"})").find("b_base"), std::string::npos);
  EXPECT_NE(settings_error(R"({"b_base": 1, "scope": "partial"})").find("b_base"), std::string::npos);
  EXPECT_NE(settings_error(R"({"b_base": 6, "scope": "half"})").find("unknown scope"), std::string::npos);
  EXPECT_NE(
      settings_error(R"({"b_base": 6, "scope": "pq", "layers": {"nope": {"b_L": 0}}})").find("\"nope\""),
      std::string::npos);
  EXPECT_NE(
      settings_error(R"({"b_base": 6, "scope": "pq", "layers": {"fusion": {"b_L": 0, "range": [2, 1]}}})")
          .find("l < u"),
      std::string::npos);
  EXPECT_NE(
      settings_error(R"({"b_base": 6, "scope": "pq", "layers": {"fusion": {"b_L": 0, "range": [0, 1e39]}}})")
          .find("out of range"),
      std::string::npos);
  EXPECT_NE(settings_error(R"({"b_base": 6, "scope": "pq", "layers": {"fusion": {"b_L": 20}}})").find("b_L"),
            std::string::npos);
  // conv_last has 3 output channels.
  EXPECT_NE(settings_error(
                R"({"b_base": 6, "scope": "pq", "layers": {"conv_last": {"b_L": 0, "weight_clip": [1, 2]}}})")
                .find("weight_clip needs 3"),
            std::string::npos);
  EXPECT_NE(settings_error(R"({"b_base": 6, "scope": "pq", "fg_vba": {"lambda": 1}})").find("gamma"),
            std::string::npos);
  EXPECT_NE(settings_error(R"({"b_base": 6, "scope": "pq", "fg_vba": {"lambda": 1, "gamma": 1, "tau_lo": 5,
            "tau_hi": 4}})")
                .find("tau_lo"),
            std::string::npos);
  EXPECT_NE(settings_error(R"({"b_base": 6, "scope": "pq", "ts_lba": {"l_space": 1}})").find("u_space"),
            std::string::npos);
  EXPECT_NE(settings_error(R"({"b_base": 6, "scope": "pq", "layers": {"fusion": {"b_L": 0, "dynamic": 1}}})")
                .find("dynamic must be true or false"),
            std::string::npos);
  EXPECT_EQ(settings_error(sample_settings().to_json()), "");
}

TEST(QuantSettings, RangesCoverTheScope) {
  const Architecture arch = test::tiny_arch();
  QuantSettings q;
  EXPECT_FALSE(q.has_ranges(arch));
  for (const auto& l : conv_layers(arch))
    if (quantized_in(l, Scope::Partial)) q.layers[l.name] = LayerQuant{0, true, 0.0f, 1.0f, {}};
  EXPECT_TRUE(q.has_ranges(arch));
  // A dynamic layer needs no calibrated range.
  q.layers["fusion"] = LayerQuant{0, false, 0.0f, 0.0f, {}, true};
  EXPECT_TRUE(q.has_ranges(arch));
  q.layers["fusion"].dynamic = false;
  EXPECT_FALSE(q.has_ranges(arch));
  q.layers["fusion"].has_range = true;
  q.scope = Scope::Full;  // SPyNet and conv_last need ranges too
  EXPECT_FALSE(q.has_ranges(arch));
  // 30 SPyNet convs, 1 + 2N per trunk, fusion, two upconvs, conv_hr, conv_last.
  EXPECT_EQ(conv_layers(arch).size(), 30u + 2 * 3 + 5);
}

TEST(QuantSettings, DynamicRangesGoToTheTrunkInputsAndTheReconstruction) {
  EXPECT_EQ(dynamic_range_layers(test::tiny_arch()),
            (std::vector<std::string>{"backward_trunk.main.0", "forward_trunk.main.0", "fusion", "upconv1",
                                      "upconv2", "conv_hr"}));
}

TEST(QuantGrid, SpanningGridsKeepZeroAndIgnoreWhatIsNotFinite) {
  // [0.5, 2] spans [0, 2]: at 8 bits S = 2/255, zp 0.
  ActGrid g = ActGrid::spanning(0.5f, 2.0f, 8);
  EXPECT_FLOAT_EQ(g.scale, 2.0f / 255);
  EXPECT_EQ(g.zero_point, 0);
  // [-3, -1] spans [-3, 0]: zp = qmax.
  g = ActGrid::spanning(-3.0f, -1.0f, 4);
  EXPECT_FLOAT_EQ(g.scale, 3.0f / 15);
  EXPECT_EQ(g.zero_point, 15);
  // [-1, 2] at 2 bits as ActGrid::make: S = 1, zp 1.
  g = ActGrid::spanning(-1.0f, 2.0f, 2);
  EXPECT_FLOAT_EQ(g.scale, 1.0f);
  EXPECT_EQ(g.zero_point, 1);
  // NaN or infinite bounds count as 0 (a finite grid whatever the frame holds); all zero gives
  // the smallest range.
  g = ActGrid::spanning(std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), 8);
  EXPECT_TRUE(std::isfinite(g.scale) && g.scale > 0);
  EXPECT_EQ(g.zero_point, 0);
  EXPECT_EQ(g.quantize(0.0f), 0.0f);
}

TEST(QuantGrid, ScalarQuantizer) {
  const ActGrid g = ActGrid::make(-1.0f, 2.0f, 2);
  EXPECT_EQ(g.quantize(0.5f), 0.0f);  // tie to even code 1 (value 0)
  EXPECT_EQ(g.quantize(-0.5f), -0.0f);
  EXPECT_EQ(g.quantize(1.5f), 2.0f);  // x / S = 1.5 rounds to the even 2
  EXPECT_FLOAT_EQ(weight_scale(1.27f, 8), 0.01f);
  EXPECT_GT(weight_scale(0.0f, 4), 0.0f);  // all-zero channels get a tiny positive step
  EXPECT_NE(error_of([] { ActGrid::make(0, 1, 9); }), "");
  EXPECT_NE(error_of([] { parse_scope("most"); }), "");
}

TEST(BitAllocation, ErrorModelInterpolatesGeometrically) {
  // Measured 16 at 6 bits and 1 at 8: a quarter per bit, so 4 at 7, 64 at 5, 0.25 at 9.
  const LayerError e{16.0, 1.0, 6, 8};
  EXPECT_DOUBLE_EQ(e.at(6), 16.0);
  EXPECT_DOUBLE_EQ(e.at(7), 4.0);
  EXPECT_DOUBLE_EQ(e.at(8), 1.0);
  EXPECT_DOUBLE_EQ(e.at(5), 64.0);
  // A ratio below 4^-2 (measurement noise) is held at it; above 1 (more bits, more error) at 1.
  EXPECT_DOUBLE_EQ((LayerError{16.0, 0.001, 6, 8}.at(7)), 4.0);
  EXPECT_DOUBLE_EQ((LayerError{16.0, 20.0, 6, 8}.at(8)), 16.0);
  EXPECT_DOUBLE_EQ((LayerError{0.0, 0.0, 6, 8}.at(4)), 0.0);
}

TEST(BitAllocation, GreedyFollowsTheLargestGain) {
  // Layer a: 16 at 6 bits, quarter per bit. Layer b: 4 at 6 bits, quarter per bit. Layer c:
  // clipping-bound, 8 at 6 and 8 at 8 (no gain). From 5 bits each (a 64, b 16, c 8) a mean of 6
  // gives 3 bits: a 5->6 (gain 48), a 6->7 (12), b 5->6 (12, a tie: the lower index, a, went
  // first) -> a 7, b 6, c 5.
  const std::vector<LayerError> errs{{16, 1, 6, 8}, {4, 0.25, 6, 8}, {8, 8, 6, 8}};
  EXPECT_EQ(allocate_bits(errs, 6.0, 5, 8), (std::vector<int>{7, 6, 5}));
  // One more bit (mean 6.34: floor(19.02) = 19 bits): a 7->8 and b 6->7 both gain 3; a first.
  EXPECT_EQ(allocate_bits(errs, 6.34, 5, 8), (std::vector<int>{8, 6, 5}));
  // The whole range: nothing gains on c, so it is raised only when a and b are at the top.
  EXPECT_EQ(allocate_bits(errs, 7.0, 5, 8), (std::vector<int>{8, 8, 5}));
  EXPECT_EQ(allocate_bits(errs, 8.0, 5, 8), (std::vector<int>{8, 8, 8}));
  EXPECT_EQ(allocate_bits(errs, 5.0, 5, 8), (std::vector<int>{5, 5, 5}));
  // The mean never exceeds the target.
  for (double t : {5.2, 5.5, 6.65, 7.9}) {
    const auto b = allocate_bits(errs, t, 5, 8);
    EXPECT_LE((b[0] + b[1] + b[2]) / 3.0, t + 1e-12) << t;
  }
}

TEST(BitAllocation, BadBoundsAreRefused) {
  const std::vector<LayerError> errs{{1, 1, 6, 8}};
  EXPECT_NE(error_of([&] { allocate_bits(errs, 4.5, 5, 8); }).find("below the lowest"), std::string::npos);
  EXPECT_NE(error_of([&] { allocate_bits(errs, 6, 1, 8); }).find("bounds"), std::string::npos);
  EXPECT_NE(error_of([&] { allocate_bits(errs, 6, 5, 9); }).find("bounds"), std::string::npos);
}
