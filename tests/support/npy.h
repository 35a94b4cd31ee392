// Minimal .npy (float32, C order) reading and writing for the reference tests.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "qbasicvsr/error.h"

namespace qbasicvsr::test {

struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

inline Npy read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open " + path);
  char magic[8];
  f.read(magic, 8);
  if (!f || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw Error(path + ": not a .npy file");
  uint16_t hlen = 0;
  f.read(reinterpret_cast<char*>(&hlen), 2);
  std::string header(hlen, '\0');
  f.read(header.data(), hlen);
  if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
    throw Error(path + ": expected little-endian float32 in C order");
  Npy out;
  const auto open = header.find('('), close = header.find(')');
  std::string dims = header.substr(open + 1, close - open - 1);
  std::size_t pos = 0;
  int64_t n = 1;
  while (pos < dims.size()) {
    const auto comma = dims.find(',', pos);
    const std::string tok = dims.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (tok.find_first_of("0123456789") != std::string::npos) {
      out.shape.push_back(std::stoll(tok));
      n *= out.shape.back();
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  out.data.resize(static_cast<std::size_t>(n));
  f.read(reinterpret_cast<char*>(out.data.data()), static_cast<std::streamsize>(n * 4));
  if (!f) throw Error(path + ": truncated");
  return out;
}

inline void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  std::string dims;
  int64_t n = 1;
  for (auto d : shape) {
    dims += std::to_string(d) + ", ";
    n *= d;
  }
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((header.size() + 11) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  f.write("\x93NUMPY\x01\x00", 8);
  const uint16_t hlen = static_cast<uint16_t>(header.size());
  f.write(reinterpret_cast<const char*>(&hlen), 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * 4));
  if (!f) throw Error("cannot write " + path);
}

}  // namespace qbasicvsr::test
