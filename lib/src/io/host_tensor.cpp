#include "qbasicvsr/host_tensor.h"

#include <cstring>

#include "qbasicvsr/error.h"

namespace qbasicvsr {

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F64, "F64", 8},   {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4},   {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::Bool, "BOOL", 1},
};

const DTypeInfo& info(DType dtype) {
  for (const auto& i : kDTypes)
    if (i.dtype == dtype) return i;
  throw Error("unknown dtype");
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ff;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

const char* dtype_name(DType dtype) { return info(dtype).name; }
std::size_t dtype_size(DType dtype) { return info(dtype).size; }

bool parse_dtype(const std::string& name, DType* out) {
  for (const auto& i : kDTypes) {
    if (name == i.name) {
      *out = i.dtype;
      return true;
    }
  }
  return false;
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<float> HostTensor::to_f32() const {
  const auto n = static_cast<std::size_t>(numel());
  if (bytes.size() != n * dtype_size(dtype)) throw Error("tensor data size does not match its shape");
  std::vector<float> out(n);
  const uint8_t* p = bytes.data();
  switch (dtype) {
    case DType::F32:
      if (n) std::memcpy(out.data(), p, n * 4);
      break;
    case DType::F64:
      for (std::size_t i = 0; i < n; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      break;
    case DType::F16:
      for (std::size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = half_to_float(h);
      }
      break;
    case DType::BF16:
      for (std::size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        const uint32_t bits = static_cast<uint32_t>(h) << 16;
        std::memcpy(&out[i], &bits, 4);
      }
      break;
    default:
      throw Error(std::string("expected a floating-point tensor, got ") + dtype_name(dtype));
  }
  return out;
}

HostTensor HostTensor::from_f32(std::vector<int64_t> shape, const std::vector<float>& values) {
  HostTensor t;
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  if (static_cast<std::size_t>(t.numel()) != values.size())
    throw Error("from_f32: " + std::to_string(values.size()) + " values for shape " + shape_string(t.shape));
  t.bytes.resize(values.size() * 4);
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

HostTensor gather_strided(DType dtype, const uint8_t* storage, int64_t offset,
                          const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
  HostTensor t;
  t.dtype = dtype;
  t.shape = size;
  const std::size_t elem = dtype_size(dtype);
  const auto numel = static_cast<std::size_t>(t.numel());
  t.bytes.resize(numel * elem);
  std::vector<int64_t> idx(size.size(), 0);
  for (std::size_t i = 0; i < numel; ++i) {
    int64_t off = offset;
    for (std::size_t d = 0; d < idx.size(); ++d) off += idx[d] * stride[d];
    std::memcpy(t.bytes.data() + i * elem, storage + off * static_cast<int64_t>(elem), elem);
    for (std::size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < size[d]) break;
      idx[d] = 0;
    }
  }
  return t;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace qbasicvsr
