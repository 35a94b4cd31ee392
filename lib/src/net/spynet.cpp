#include "net/spynet.h"

#include <cmath>

#include "net/engine.h"
#include "qbasicvsr/architecture.h"
#include "qbasicvsr/error.h"

namespace qbasicvsr {

namespace {

// ImageNet statistics the SPyNet weights were trained with.
constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};
constexpr int kPyramidSteps = SpyNet::kLevels - 1;

at::Tensor resize_bilinear(const at::Tensor& x, int64_t h, int64_t w, bool align_corners) {
  if (x.size(2) == h && x.size(3) == w && !align_corners) return x;
  return at::upsample_bilinear2d(x, {h, w}, align_corners);
}

}  // namespace

SpyNet::SpyNet(const std::map<std::string, HostTensor>& weights) {
  // Its layers do not depend on the trunks' size: the default architecture's table has them.
  const Architecture arch;
  const auto table = network_layers(arch);
  const LayerIds ids = layer_ids(arch);
  const int per_level = ids.spynet_count / kLevels;
  first_id_ = ids.spynet;
  for (int level = 0; level < kLevels; ++level)
    for (int k = 0; k < per_level; ++k)
      levels_[level].push_back(
          Conv::from_weights(weights, table.at(ids.spynet + level * per_level + k).name));
  mean_ = at::tensor(at::ArrayRef<float>(kMean, 3)).view({1, 3, 1, 1});
  std_ = at::tensor(at::ArrayRef<float>(kStd, 3)).view({1, 3, 1, 1});
}

at::Tensor SpyNet::process(const at::Tensor& ref_in, const at::Tensor& supp_in, Engine& engine) const {
  std::vector<at::Tensor> ref{(ref_in - mean_) / std_};
  std::vector<at::Tensor> supp{(supp_in - mean_) / std_};
  for (int i = 0; i < kPyramidSteps; ++i) {
    // avg_pool2d(kernel 2, stride 2, no padding, ceil_mode false, count_include_pad false)
    ref.insert(ref.begin(), at::avg_pool2d(ref.front(), {2, 2}, {2, 2}, {0, 0}, false, false));
    supp.insert(supp.begin(), at::avg_pool2d(supp.front(), {2, 2}, {2, 2}, {0, 0}, false, false));
  }
  // Zero flow at the coarsest level: the same as upsampling a zero flow from half its size.
  at::Tensor flow;
  for (int level = 0; level < kLevels; ++level) {
    at::Tensor up = level == 0
                        ? at::zeros({ref[0].size(0), 2, ref[0].size(2), ref[0].size(3)}, ref[0].options())
                        : resize_bilinear(flow, flow.size(2) * 2, flow.size(3) * 2, true) * 2.0;
    const int64_t th = ref[level].size(2), tw = ref[level].size(3);
    // An odd pyramid size leaves the upsampled flow one short: repeat the last row/column.
    if (up.size(2) != th) up = at::replication_pad2d(up, {0, 0, 0, th - up.size(2)});
    if (up.size(3) != tw) up = at::replication_pad2d(up, {0, tw - up.size(3), 0, 0});
    at::Tensor x = at::cat({ref[level], flow_warp(supp[level], up, true), up}, 1)
                       .contiguous(at::MemoryFormat::ChannelsLast);
    const auto& convs = levels_[level];
    const int n = static_cast<int>(convs.size());
    Act a(x);
    for (int k = 0; k < n; ++k) {
      const int id = first_id_ + level * n + k;
      const bool last = k + 1 == n;
      a = engine.conv(id, convs[k], a, last ? PostOp::None : PostOp::ReLU, last ? -1 : id + 1);
    }
    flow = a.values() + up;
  }
  return flow;
}

std::vector<Conv*> SpyNet::layers() {
  std::vector<Conv*> out;
  for (auto& level : levels_)
    for (auto& c : level) out.push_back(&c);
  return out;
}

void SpyNet::to(const at::Device& device) {
  mean_ = mean_.to(device);
  std_ = std_.to(device);
}

at::Tensor SpyNet::flow(const at::Tensor& ref, const at::Tensor& supp) const {
  Fp32Engine engine;
  return flow(ref, supp, engine);
}

at::Tensor SpyNet::flow(const at::Tensor& ref, const at::Tensor& supp, Engine& engine) const {
  const int64_t h = ref.size(2), w = ref.size(3);
  const int64_t hu = (h + 31) / 32 * 32, wu = (w + 31) / 32 * 32;
  const auto r = at::upsample_bilinear2d(ref, {hu, wu}, false);
  const auto s = at::upsample_bilinear2d(supp, {hu, wu}, false);
  at::Tensor flow = at::upsample_bilinear2d(process(r, s, engine), {h, w}, false).contiguous();
  const auto scale = at::tensor({static_cast<float>(w) / static_cast<float>(wu),
                                 static_cast<float>(h) / static_cast<float>(hu)})
                         .view({1, 2, 1, 1})
                         .to(flow.device());
  return flow * scale;
}

}  // namespace qbasicvsr
