#include "net/tensor_image.h"

#include <cstring>

#include "qbasicvsr/error.h"
#include "qbasicvsr/profile.h"

namespace qbasicvsr {

namespace {

double max_value(int depth) { return depth == 16 ? 65535.0 : 255.0; }

}  // namespace

at::Tensor images_to_tensor(const std::vector<Image>& frames) {
  const profile::Scope scope(profile::Stage::CopyIn);
  const int w = frames.at(0).width, h = frames.at(0).height;
  at::Tensor out = at::empty({static_cast<int64_t>(frames.size()), 3, h, w}, at::kFloat);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const Image& f = frames[i];
    if (f.width != w || f.height != h)
      throw Error("frame " + std::to_string(i) + " is " + std::to_string(f.width) + "x" +
                  std::to_string(f.height) + ", the clip is " + std::to_string(w) + "x" + std::to_string(h));
    try {
      f.check();
    } catch (const Error& e) {
      throw Error("frame " + std::to_string(i) + ": " + e.what());
    }
    const at::Tensor samples =
        f.depth == 8 ? at::from_blob(const_cast<uint8_t*>(f.rgb.data()), {h, w, 3}, at::kByte)
                     : at::from_blob(const_cast<uint16_t*>(f.rgb16.data()), {h, w, 3}, at::kShort)
                           .to(at::kInt)
                           .bitwise_and(0xffff);  // uint16 read through int16
    out[static_cast<int64_t>(i)].copy_(samples.permute({2, 0, 1}).to(at::kFloat).div_(max_value(f.depth)));
  }
  return out;
}

at::Tensor to_hwc_samples(const at::Tensor& chw, int depth) {
  const profile::Scope scope(profile::Stage::CopyOut);
  const at::Tensor scaled = chw.to(at::kFloat).clamp(0.0, 1.0).mul(max_value(depth)).round();
  return scaled.to(depth == 16 ? at::kInt : at::kByte).permute({1, 2, 0});
}

Image tensor_to_image(const at::Tensor& t, int depth) {
  return hwc_samples_to_image(to_hwc_samples(t.dim() == 4 ? t.select(0, 0) : t, depth), depth);
}

Image hwc_samples_to_image(const at::Tensor& hwc, int depth) {
  const profile::Scope scope(profile::Stage::CopyOut);
  const at::Tensor samples = hwc.to(at::kCPU).contiguous();  // from a GPU: one download per frame
  Image img;
  img.height = static_cast<int>(samples.size(0));
  img.width = static_cast<int>(samples.size(1));
  img.depth = depth;
  if (depth == 8) {
    img.rgb.assign(samples.data_ptr<uint8_t>(), samples.data_ptr<uint8_t>() + samples.numel());
  } else {
    const int32_t* p = samples.data_ptr<int32_t>();
    img.rgb16.assign(p, p + samples.numel());
  }
  return img;
}

}  // namespace qbasicvsr
