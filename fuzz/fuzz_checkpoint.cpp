// libFuzzer target: torch.save files (zip and legacy) through the unpickler and materialisation.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qbasicvsr/error.h"
#include "qbasicvsr/torch_checkpoint.h"

namespace {

void materialize_all(const qbasicvsr::TorchCheckpoint& c, qbasicvsr::PyRef v, int depth) {
  using Kind = qbasicvsr::PyValue::Kind;
  if (!v || depth > 8) return;
  if (v->kind == Kind::Tensor) {
    try {
      c.materialize(v->tensor);
    } catch (const qbasicvsr::Error&) {
    }
  }
  for (const auto& [k, x] : v->dict) materialize_all(c, x, depth + 1);
  for (auto x : v->items) materialize_all(c, x, depth + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto c = qbasicvsr::TorchCheckpoint::parse(std::vector<uint8_t>(data, data + size));
    materialize_all(c, c.root(), 0);
  } catch (const qbasicvsr::Error&) {
  }
  return 0;
}
