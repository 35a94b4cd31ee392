// libFuzzer target: Torch7 files through the object reader and the convolution extraction.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "qbasicvsr/error.h"
#include "qbasicvsr/torch7.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    qbasicvsr::parse_t7_convolutions(std::vector<uint8_t>(data, data + size));
  } catch (const qbasicvsr::Error&) {
  }
  return 0;
}
