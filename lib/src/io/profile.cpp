#include "qbasicvsr/profile.h"

#include <atomic>
#include <chrono>
#include <vector>

namespace qbasicvsr::profile {

namespace {

std::atomic<bool> g_enabled{false};
std::array<std::atomic<int64_t>, kStages> g_ns{};
std::array<std::atomic<int64_t>, kStages> g_calls{};

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The open scopes of this thread; the innermost accrues time since `since`.
struct Open {
  Stage stage;
  int64_t since;
};
thread_local std::vector<Open> t_open;

void accrue(Open& o, int64_t now) {
  g_ns[static_cast<int>(o.stage)].fetch_add(now - o.since, std::memory_order_relaxed);
  o.since = now;
}

}  // namespace

const char* stage_name(Stage s) {
  static constexpr const char* kNames[kStages] = {
      "other",     "copy_in",       "spynet",   "spynet_conv",    "warp",
      "trunk",     "trunk_conv",    "quantize", "reconstruction", "reconstruction_conv",
      "conv_last", "pixel_shuffle", "copy_out"};
  const int i = static_cast<int>(s);
  return i >= 0 && i < kStages ? kNames[i] : "?";
}

bool is_conv(Stage s) {
  return s == Stage::SpyNetConv || s == Stage::TrunkConv || s == Stage::ReconstructionConv ||
         s == Stage::ConvLast;
}

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }
bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

void reset() {
  for (int i = 0; i < kStages; ++i) {
    g_ns[i].store(0, std::memory_order_relaxed);
    g_calls[i].store(0, std::memory_order_relaxed);
  }
}

double Totals::total_ms() const {
  double sum = 0;
  for (double v : ms) sum += v;
  return sum;
}

double Totals::conv_ms() const {
  double sum = 0;
  for (int i = 0; i < kStages; ++i)
    if (is_conv(static_cast<Stage>(i))) sum += ms[i];
  return sum;
}

Totals totals() {
  Totals t;
  for (int i = 0; i < kStages; ++i) {
    t.ms[i] = static_cast<double>(g_ns[i].load(std::memory_order_relaxed)) / 1e6;
    t.calls[i] = g_calls[i].load(std::memory_order_relaxed);
  }
  return t;
}

Scope::Scope(Stage s) : active_(enabled()) {
  if (!active_) return;
  const int64_t now = now_ns();
  // A scope inside one of the same stage (conv_last's convolution) is the same call.
  if (t_open.empty() || t_open.back().stage != s)
    g_calls[static_cast<int>(s)].fetch_add(1, std::memory_order_relaxed);
  if (!t_open.empty()) accrue(t_open.back(), now);
  t_open.push_back({s, now});
}

Scope::~Scope() {
  if (!active_ || t_open.empty()) return;
  const int64_t now = now_ns();
  accrue(t_open.back(), now);
  t_open.pop_back();
  if (!t_open.empty()) t_open.back().since = now;
}

Stage conv_stage() {
  if (t_open.empty()) return Stage::Other;
  const Stage s = t_open.back().stage;
  switch (s) {
    case Stage::SpyNet:
      return Stage::SpyNetConv;
    case Stage::Trunk:
      return Stage::TrunkConv;
    case Stage::Reconstruction:
      return Stage::ReconstructionConv;
    default:
      return is_conv(s) ? s : Stage::Other;
  }
}

}  // namespace qbasicvsr::profile
