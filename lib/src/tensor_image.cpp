#include "tensor_image.h"

#include "qbasicvsr/error.h"

namespace qbasicvsr {

at::Tensor images_to_tensor(const std::vector<Image>& frames) {
  const int w = frames.at(0).width, h = frames.at(0).height;
  at::Tensor out = at::empty({static_cast<int64_t>(frames.size()), h, w, 3}, at::kByte);
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const Image& f = frames[i];
    if (f.width != w || f.height != h)
      throw Error("frame " + std::to_string(i) + " is " + std::to_string(f.width) + "x" +
                  std::to_string(f.height) + ", the clip is " + std::to_string(w) + "x" + std::to_string(h));
    if (f.rgb.size() != static_cast<std::size_t>(w) * h * 3)
      throw Error("frame " + std::to_string(i) + ": buffer does not match its size");
    std::memcpy(out[static_cast<int64_t>(i)].data_ptr<uint8_t>(), f.rgb.data(), f.rgb.size());
  }
  return out.permute({0, 3, 1, 2}).to(at::kFloat).div_(255.0f).contiguous();
}

at::Tensor to_hwc_bytes(const at::Tensor& chw) {
  return chw.clamp(0.0, 1.0).mul(255.0).round().to(at::kByte).permute({1, 2, 0});
}

Image tensor_to_image(const at::Tensor& t) {
  return hwc_bytes_to_image(to_hwc_bytes(t.dim() == 4 ? t.select(0, 0) : t));
}

Image hwc_bytes_to_image(const at::Tensor& hwc) {
  const at::Tensor bytes = hwc.contiguous();
  Image img;
  img.height = static_cast<int>(bytes.size(0));
  img.width = static_cast<int>(bytes.size(1));
  img.rgb.assign(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
  return img;
}

}  // namespace qbasicvsr
