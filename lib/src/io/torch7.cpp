#include "qbasicvsr/torch7.h"

#include <cstring>
#include <map>
#include <memory>

#include "qbasicvsr/error.h"
#include "qbasicvsr/model_file.h"

namespace qbasicvsr {

namespace {

enum Tag : int32_t { kNil = 0, kNumber = 1, kString = 2, kTable = 3, kTorch = 4, kBoolean = 5 };
// Nesting allowed in a Torch7 file: an nn.Sequential of layers needs about five.
constexpr int kMaxDepth = 32;

struct T7Value {
  int32_t tag = kNil;
  double number = 0;
  bool boolean = false;
  std::string str;                                   // string, or torch class name
  std::vector<std::pair<T7Value*, T7Value*>> table;  // table, or object field table
  T7Value* fields = nullptr;                         // nn.* object: its field table
  // Tensor
  std::vector<int64_t> size, stride;
  int64_t offset = 0;
  T7Value* storage = nullptr;
  // Storage
  DType dtype = DType::F32;
  std::vector<uint8_t> data;

  const T7Value* field(const std::string& key) const {
    const T7Value* t = fields ? fields : this;
    for (const auto& [k, v] : t->table)
      if (k->tag == kString && k->str == key) return v;
    return nullptr;
  }
};

bool storage_type(const std::string& cls, DType* dtype, bool* is_tensor) {
  static const std::pair<const char*, DType> kTypes[] = {
      {"Float", DType::F32}, {"Cuda", DType::F32}, {"Double", DType::F64}, {"Long", DType::I64},
      {"Int", DType::I32},   {"Byte", DType::U8},  {"Char", DType::I8},    {"Short", DType::I16},
  };
  for (const auto& [prefix, d] : kTypes) {
    const std::string p = std::string("torch.") + prefix;
    if (cls == p + "Storage") {
      *dtype = d;
      *is_tensor = false;
      return true;
    }
    if (cls == p + "Tensor") {
      *dtype = d;
      *is_tensor = true;
      return true;
    }
  }
  return false;
}

class T7Reader {
 public:
  explicit T7Reader(const std::vector<uint8_t>& b) : p_(b.data()), end_(b.data() + b.size()) {}

  T7Value* read(int depth = 0) {
    if (depth > kMaxDepth) fail("objects nested too deeply");
    const int32_t tag = i32();
    T7Value* v = make(tag);
    switch (tag) {
      case kNil:
        return v;
      case kNumber:
        std::memcpy(&v->number, take(8), 8);
        return v;
      case kString:
        v->str = string();
        return v;
      case kBoolean:
        v->boolean = i32() != 0;
        return v;
      case kTable:
      case kTorch:
        break;
      default:
        fail("unsupported object type " + std::to_string(tag));
    }
    const int32_t ref = i32();
    const auto seen = refs_.find(ref);
    if (seen != refs_.end()) return seen->second;
    refs_[ref] = v;
    if (tag == kTable) {
      const int32_t n = i32();
      if (n < 0 || n > (end_ - p_)) fail("bad table size");
      for (int32_t i = 0; i < n; ++i) {
        T7Value* k = read(depth + 1);
        T7Value* val = read(depth + 1);
        v->table.emplace_back(k, val);
      }
      return v;
    }
    std::string cls = string();
    if (cls.rfind("V ", 0) == 0) cls = string();
    v->str = cls;
    bool is_tensor = false;
    if (storage_type(cls, &v->dtype, &is_tensor)) {
      if (is_tensor) {
        const int32_t nd = i32();
        if (nd < 0 || nd > 8) fail("bad tensor rank");
        for (int32_t i = 0; i < nd; ++i) v->size.push_back(i64());
        for (int32_t i = 0; i < nd; ++i) v->stride.push_back(i64());
        const int64_t offset = i64();  // 1-based
        if (offset < 0 || offset > (1ll << 40)) fail("bad tensor offset");
        v->offset = offset - 1;
        v->storage = read(depth + 1);
        if (v->storage->tag != kTorch && v->storage->tag != kNil) fail("tensor storage is not a storage");
      } else {
        const int64_t n = i64();
        const std::size_t elem = dtype_size(v->dtype);
        if (n < 0 || static_cast<uint64_t>(n) > static_cast<uint64_t>(end_ - p_) / elem)
          fail("storage is truncated");
        const uint8_t* b = take(static_cast<std::size_t>(n) * elem);
        v->data.assign(b, b + static_cast<std::size_t>(n) * elem);
      }
      return v;
    }
    if (cls.rfind("torch.", 0) == 0 && cls.find("Storage") != std::string::npos)
      fail("unsupported storage class " + cls);
    v->fields = read(depth + 1);
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { throw Error("Torch7 file: " + why); }
  const uint8_t* take(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) fail("truncated data");
    const uint8_t* r = p_;
    p_ += n;
    return r;
  }
  int32_t i32() {
    int32_t v;
    std::memcpy(&v, take(4), 4);
    return v;
  }
  int64_t i64() {
    int64_t v;
    std::memcpy(&v, take(8), 8);
    return v;
  }
  std::string string() {
    const int32_t n = i32();
    if (n < 0) fail("negative string length");
    const uint8_t* b = take(static_cast<std::size_t>(n));
    return std::string(reinterpret_cast<const char*>(b), static_cast<std::size_t>(n));
  }
  T7Value* make(int32_t tag) {
    arena_.push_back(std::make_unique<T7Value>());
    arena_.back()->tag = tag;
    return arena_.back().get();
  }

  const uint8_t* p_;
  const uint8_t* end_;
  std::map<int32_t, T7Value*> refs_;
  std::vector<std::unique_ptr<T7Value>> arena_;
};

HostTensor tensor_f32(const T7Value* v, const std::string& what) {
  if (!v || v->tag != kTorch || v->size.size() != v->stride.size() || !v->storage)
    throw Error("Torch7 file: " + what + " is not a tensor");
  const T7Value* s = v->storage;
  if (s->tag != kTorch || s->dtype != v->dtype) throw Error("Torch7 file: " + what + " has no storage");
  const std::size_t elem = dtype_size(v->dtype);
  const int64_t avail = static_cast<int64_t>(s->data.size() / elem);
  int64_t numel = 1, last = v->offset;
  for (std::size_t d = 0; d < v->size.size(); ++d) {
    if (v->size[d] <= 0 || v->stride[d] < 0 || v->size[d] > (1 << 24) || v->stride[d] > (1ll << 32))
      throw Error("Torch7 file: " + what + " has a bad size or stride");
    numel *= v->size[d];
    last += (v->size[d] - 1) * v->stride[d];
    if (numel > (1ll << 30)) throw Error("Torch7 file: " + what + " is too large");
  }
  if (v->offset < 0 || last >= avail) throw Error("Torch7 file: " + what + " exceeds its storage");
  const HostTensor raw = gather_strided(v->dtype, s->data.data(), v->offset, v->size, v->stride);
  return HostTensor::from_f32(raw.shape, raw.to_f32());
}

int64_t number_field(const T7Value* obj, const char* key) {
  const T7Value* v = obj->field(key);
  if (!v || v->tag != kNumber || !(v->number >= 0 && v->number <= 1e6)) return -1;
  return static_cast<int64_t>(v->number);
}

}  // namespace

std::vector<Conv2dWeights> parse_t7_convolutions(const std::vector<uint8_t>& bytes) {
  T7Reader reader(bytes);
  const T7Value* root = reader.read();
  if (root->tag != kTorch || root->str != "nn.Sequential")
    throw Error("Torch7 file: top object is " + (root->tag == kTorch ? root->str : "not an object") +
                ", expected nn.Sequential");
  const T7Value* modules = root->field("modules");
  if (!modules || modules->tag != kTable) throw Error("Torch7 file: nn.Sequential has no modules");
  std::map<int, const T7Value*> ordered;
  for (const auto& [k, v] : modules->table) {
    if (k->tag != kNumber || !(k->number >= 1 && k->number <= 1000))
      throw Error("Torch7 file: bad module index");
    ordered[static_cast<int>(k->number)] = v;
  }
  std::vector<Conv2dWeights> convs;
  for (const auto& [index, m] : ordered) {
    if (m->tag != kTorch) throw Error("Torch7 file: module " + std::to_string(index) + " is not an object");
    const std::string& cls = m->str;
    if (cls == "nn.ReLU" || cls == "cudnn.ReLU") continue;
    if (cls != "nn.SpatialConvolution" && cls != "cudnn.SpatialConvolution" &&
        cls != "nn.SpatialConvolutionMM")
      throw Error("Torch7 file: unsupported module " + cls);
    const std::string what = "module " + std::to_string(index) + " (" + cls + ")";
    Conv2dWeights c;
    c.weight = tensor_f32(m->field("weight"), what + " weight");
    c.bias = tensor_f32(m->field("bias"), what + " bias");
    if (c.weight.shape.size() == 2) {  // nn.SpatialConvolutionMM keeps weights as [out, in*kh*kw]
      const int64_t out = number_field(m, "nOutputPlane"), in = number_field(m, "nInputPlane");
      const int64_t kh = number_field(m, "kH"), kw = number_field(m, "kW");
      if (out <= 0 || in <= 0 || kh <= 0 || kw <= 0 || out * in * kh * kw != c.weight.numel())
        throw Error("Torch7 file: " + what + " has a flat weight that does not match its planes");
      c.weight.shape = {out, in, kh, kw};
    }
    if (c.weight.shape.size() != 4 || c.bias.shape.size() != 1 || c.bias.shape[0] != c.weight.shape[0])
      throw Error("Torch7 file: " + what + " has weight " + shape_string(c.weight.shape) + " and bias " +
                  shape_string(c.bias.shape));
    convs.push_back(std::move(c));
  }
  return convs;
}

std::vector<Conv2dWeights> read_t7_convolutions(const std::string& path) {
  try {
    return parse_t7_convolutions(read_file_bytes(path));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

}  // namespace qbasicvsr
