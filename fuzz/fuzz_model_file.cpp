// libFuzzer target: the model file reader must turn any bytes into a model or an Error.
#include <cstddef>
#include <cstdint>

#include "qbasicvsr/error.h"
#include "qbasicvsr/model_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    qbasicvsr::model_from_safetensors(qbasicvsr::parse_safetensors(data, size));
  } catch (const qbasicvsr::Error&) {
  }
  return 0;
}
