// Reader for checkpoints written by Python's torch.save, without Python or LibTorch: a strict
// unpickler for the subset torch.save emits, over the zip archive or the legacy stream format.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qbasicvsr/host_tensor.h"

namespace qbasicvsr {

struct PyValue;
// Values live in the checkpoint's arena; references are plain pointers, so a hostile file that
// builds reference cycles through the pickle memo cannot leak or recurse on destruction.
using PyRef = const PyValue*;

// A tensor as torch.save describes it: a view into a storage.
struct TensorView {
  DType dtype = DType::F32;
  std::string storage_key;
  int64_t storage_numel = 0;
  int64_t offset = 0;
  std::vector<int64_t> size;
  std::vector<int64_t> stride;
};

// The Python values the unpickler understands. Anything else (numpy scalars in `meta`,
// optimizer classes, ...) becomes an Opaque value named after its class, so that it can be
// carried without being understood.
struct PyValue {
  enum class Kind {
    None,
    Bool,
    Int,
    BigInt,
    Float,
    Str,
    Bytes,
    List,
    Tuple,
    Dict,
    Global,
    Storage,
    Tensor,
    Opaque
  };
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;             // Str, Bytes, BigInt (little-endian two's complement), Global/Opaque name
  std::vector<PyRef> items;  // List, Tuple, Opaque arguments
  std::vector<std::pair<PyRef, PyRef>> dict;  // Dict, in insertion order
  TensorView tensor;                          // Storage (key, dtype, numel), Tensor

  // The Dict value stored under a string key, or nullptr.
  PyRef get(const std::string& key) const;
};

class TorchCheckpoint {
 public:
  // Reads a file; throws Error naming the problem for anything outside the supported subset.
  static TorchCheckpoint read(const std::string& path);
  static TorchCheckpoint parse(std::vector<uint8_t> bytes);

  const PyRef& root() const { return root_; }
  // A contiguous copy of the tensor's data; throws Error if the view does not fit its storage.
  HostTensor materialize(const TensorView& view) const;

 private:
  PyRef root_ = nullptr;
  std::vector<std::unique_ptr<PyValue>> arena_;
  std::map<std::string, std::vector<uint8_t>> storages_;
  friend class Unpickler;
};

}  // namespace qbasicvsr
