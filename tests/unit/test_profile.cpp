// The stage profiler's accounting (qbasicvsr-bench --profile): calls, nesting, exclusive time.
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>

#include "qbasicvsr/profile.h"

using namespace qbasicvsr::profile;

namespace {

// Spins (no sleep: the scheduler's granularity would dominate) for at least `ms` of wall time.
void spin(double ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(ms);
  while (std::chrono::steady_clock::now() < end) {
  }
}

class ProfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_enabled(true);
    reset();
  }
  void TearDown() override {
    set_enabled(false);
    reset();
  }
};

}  // namespace

TEST_F(ProfileTest, DisabledScopesRecordNothing) {
  set_enabled(false);
  {
    const Scope s(Stage::Trunk);
    spin(1);
  }
  const Totals t = totals();
  EXPECT_EQ(t.total_ms(), 0.0);
  EXPECT_EQ(t.calls[static_cast<int>(Stage::Trunk)], 0);
}

TEST_F(ProfileTest, NestedTimeIsExclusive) {
  {
    const Scope outer(Stage::Trunk);
    spin(2);
    {
      const Scope inner(conv_stage());
      spin(20);
    }
  }
  const Totals t = totals();
  const double outer = t.ms[static_cast<int>(Stage::Trunk)], inner = t.ms[static_cast<int>(Stage::TrunkConv)];
  EXPECT_GE(inner, 20.0);
  EXPECT_GE(outer, 2.0);
  EXPECT_LT(outer, 15.0) << "the inner scope's time was also counted in the outer one";
  EXPECT_DOUBLE_EQ(t.total_ms(), outer + inner);
  EXPECT_DOUBLE_EQ(t.conv_ms(), inner);
  EXPECT_EQ(t.calls[static_cast<int>(Stage::Trunk)], 1);
  EXPECT_EQ(t.calls[static_cast<int>(Stage::TrunkConv)], 1);
}

TEST_F(ProfileTest, ConvolutionsBelongToTheirStage) {
  EXPECT_EQ(conv_stage(), Stage::Other);
  const std::pair<Stage, Stage> cases[] = {{Stage::SpyNet, Stage::SpyNetConv},
                                           {Stage::Trunk, Stage::TrunkConv},
                                           {Stage::Reconstruction, Stage::ReconstructionConv},
                                           {Stage::ConvLast, Stage::ConvLast},
                                           {Stage::Warp, Stage::Other}};
  for (const auto& [around, conv] : cases) {
    const Scope s(around);
    EXPECT_EQ(conv_stage(), conv) << stage_name(around);
  }
  for (int i = 0; i < kStages; ++i) {
    const auto s = static_cast<Stage>(i);
    EXPECT_EQ(is_conv(s), s == Stage::SpyNetConv || s == Stage::TrunkConv || s == Stage::ReconstructionConv ||
                              s == Stage::ConvLast)
        << stage_name(s);
  }
}

TEST_F(ProfileTest, AScopeInsideItsOwnStageIsOneCall) {
  {
    const Scope last(Stage::ConvLast);
    const Scope conv(conv_stage());
  }
  {
    const Scope other(Stage::Other);
    const Scope last(Stage::ConvLast);
  }
  EXPECT_EQ(totals().calls[static_cast<int>(Stage::ConvLast)], 2);
  reset();
  EXPECT_EQ(totals().calls[static_cast<int>(Stage::ConvLast)], 0);
  EXPECT_EQ(totals().total_ms(), 0.0);
}

TEST_F(ProfileTest, StageNamesAreDistinct) {
  std::set<std::string> names;
  for (int i = 0; i < kStages; ++i) names.insert(stage_name(static_cast<Stage>(i)));
  EXPECT_EQ(static_cast<int>(names.size()), kStages);
  EXPECT_EQ(names.count("?"), 0u);
}
