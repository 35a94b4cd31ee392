// libFuzzer target: PNG bytes through the chunk checks and the decoder. Half the inputs get their
// chunk CRCs repaired first, so that mutations reach the decoder instead of the CRC check.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "qbasicvsr/error.h"
#include "qbasicvsr/image.h"

namespace {

void repair_crcs(std::vector<uint8_t>& b) {
  std::size_t at = 8;
  while (at + 12 <= b.size()) {
    const uint32_t n =
        uint32_t{b[at]} << 24 | uint32_t{b[at + 1]} << 16 | uint32_t{b[at + 2]} << 8 | b[at + 3];
    if (n > b.size() - at - 12) return;
    const uint32_t crc = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), &b[at + 4], n + 4));
    for (int i = 0; i < 4; ++i) b[at + 8 + n + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
    at += 12 + n;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::vector<uint8_t> bytes(data + 1, data + size);
  if (data[0] & 1) repair_crcs(bytes);
  try {
    qbasicvsr::decode_picture(bytes, "fuzz.png");
  } catch (const qbasicvsr::Error&) {
  }
  return 0;
}
