// A dense tensor in host memory, independent of LibTorch: what the file readers produce.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qbasicvsr {

enum class DType { F32, F64, F16, BF16, I64, I32, I16, I8, U8, Bool };

// Safetensors spelling of a dtype ("F32", "I8", ...).
const char* dtype_name(DType dtype);
// Bytes per element.
std::size_t dtype_size(DType dtype);
// Parses a safetensors dtype name; returns false for an unknown one.
bool parse_dtype(const std::string& name, DType* out);

struct HostTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // little-endian, C order

  int64_t numel() const;
  // Converts floating-point data to float32 (throws Error for integer tensors).
  std::vector<float> to_f32() const;
  static HostTensor from_f32(std::vector<int64_t> shape, const std::vector<float>& values);
};

std::string shape_string(const std::vector<int64_t>& shape);

// Copies a strided view (element offset, sizes, strides) of `storage` into a C-order tensor.
// The caller has checked that every index of the view lies inside the storage.
HostTensor gather_strided(DType dtype, const uint8_t* storage, int64_t offset,
                          const std::vector<int64_t>& size, const std::vector<int64_t>& stride);

}  // namespace qbasicvsr
