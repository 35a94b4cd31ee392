#include "qbasicvsr/upscaler.h"

#include <cmath>

#include "basicvsr.h"
#include "qbasicvsr/error.h"
#include "qbasicvsr/runtime.h"
#include "tensor_image.h"

namespace qbasicvsr {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "fake") return Precision::Fake;
  if (name == "int8") return Precision::Int8;
  throw Error("unknown precision \"" + name + "\" (expected fp32, fake or int8)");
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32:
      return "fp32";
    case Precision::Fake:
      return "fake";
    default:
      return "int8";
  }
}

struct Upscaler::Impl {
  explicit Impl(const Model& model) : net(model) {}
  BasicVSR net;
};

Upscaler::Upscaler(const Model& model, const UpscalerOptions& options) {
  if (options.device != "cpu")
    throw Error("device \"" + options.device + "\" is not available in this build (only cpu)");
  if (options.precision != Precision::FP32)
    throw Error(std::string("precision ") + precision_name(options.precision) +
                " is not implemented yet; use -p fp32");
  configure_runtime(options.threads);
  impl_ = std::make_unique<Impl>(model);
}

Upscaler::~Upscaler() = default;

const Architecture& Upscaler::architecture() const { return impl_->net.arch(); }

void Upscaler::upscale(const std::vector<Image>& frames,
                       const std::function<void(std::size_t, Image&&)>& sink) {
  if (frames.empty()) return;
  const at::Tensor lr = images_to_tensor(frames);
  impl_->net.forward(
      lr, [&](int64_t i, const at::Tensor& out) { sink(static_cast<std::size_t>(i), tensor_to_image(out)); });
}

}  // namespace qbasicvsr
