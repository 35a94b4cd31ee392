#include "qbasicvsr/torch_checkpoint.h"

#include <zip.h>

#include <algorithm>
#include <cstring>

#include "qbasicvsr/error.h"
#include "qbasicvsr/model_file.h"

namespace qbasicvsr {

namespace {

using Kind = PyValue::Kind;

// The legacy (pre-1.6) torch.save stream starts with this 80-bit magic number, pickled.
constexpr uint8_t kLegacyMagic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kLegacyProtocol = 1001;
// Cap on values one pickle may create: far above any checkpoint, far below memory exhaustion.
constexpr std::size_t kMaxValues = 2'000'000;
// Largest tensor materialised: far above any BasicVSR weight, small enough to allocate.
constexpr uint64_t kMaxTensorBytes = 1ull << 31;
// Deflate cannot expand data by more than about 1032:1; larger claims are corrupt.
constexpr uint64_t kMaxInflateRatio = 1032;

bool storage_dtype(const std::string& name, DType* dtype) {
  static const std::pair<const char*, DType> kTypes[] = {
      {"torch.FloatStorage", DType::F32}, {"torch.DoubleStorage", DType::F64},
      {"torch.HalfStorage", DType::F16},  {"torch.BFloat16Storage", DType::BF16},
      {"torch.LongStorage", DType::I64},  {"torch.IntStorage", DType::I32},
      {"torch.ShortStorage", DType::I16}, {"torch.CharStorage", DType::I8},
      {"torch.ByteStorage", DType::U8},   {"torch.BoolStorage", DType::Bool},
  };
  for (const auto& [n, d] : kTypes) {
    if (name == n) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

}  // namespace

PyRef PyValue::get(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  for (const auto& [k, v] : dict)
    if (k->kind == Kind::Str && k->s == key) return v;
  return nullptr;
}

// Runs one pickle program (up to its STOP opcode) over a byte range.
class Unpickler {
 public:
  Unpickler(TorchCheckpoint& ckpt, const uint8_t* data, std::size_t size)
      : ckpt_(ckpt), p_(data), end_(data + size) {}

  PyRef run();
  std::size_t consumed(const uint8_t* base) const { return static_cast<std::size_t>(p_ - base); }
  // Storages met through persistent ids: key -> (dtype, element count).
  std::map<std::string, std::pair<DType, int64_t>> storages;

 private:
  PyValue* make(Kind kind) {
    if (ckpt_.arena_.size() >= kMaxValues) fail("too many objects");
    ckpt_.arena_.push_back(std::make_unique<PyValue>());
    ckpt_.arena_.back()->kind = kind;
    return ckpt_.arena_.back().get();
  }
  [[noreturn]] void fail(const std::string& why) const { throw Error("checkpoint pickle: " + why); }
  const uint8_t* take(std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n) fail("truncated data");
    const uint8_t* r = p_;
    p_ += n;
    return r;
  }
  uint64_t le(std::size_t n) {
    const uint8_t* b = take(n);
    uint64_t v = 0;
    for (std::size_t i = n; i-- > 0;) v = (v << 8) | b[i];
    return v;
  }
  std::string bytes(std::size_t n) {
    const uint8_t* b = take(n);
    return std::string(reinterpret_cast<const char*>(b), n);
  }
  std::string line() {
    const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p_, '\n', end_ - p_));
    if (!nl) fail("unterminated GLOBAL");
    std::string s(reinterpret_cast<const char*>(p_), nl - p_);
    p_ = nl + 1;
    return s;
  }
  PyRef pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
    PyRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PyValue* top_mutable(const char* op) {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail(std::string(op) + " on an empty stack");
    return const_cast<PyValue*>(stack_.back());
  }
  std::vector<PyRef> pop_mark() {
    if (marks_.empty()) fail("missing MARK");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void push(PyRef v) { stack_.push_back(v); }
  PyRef make_int(int64_t i) {
    PyValue* v = make(Kind::Int);
    v->i = i;
    return v;
  }
  PyRef make_str(Kind kind, std::string s) {
    PyValue* v = make(kind);
    v->s = std::move(s);
    return v;
  }
  PyRef make_tuple(std::vector<PyRef> items) {
    PyValue* v = make(Kind::Tuple);
    v->items = std::move(items);
    return v;
  }
  void memo_put(uint64_t idx) {
    if (stack_.empty()) fail("memo put on an empty stack");
    if (idx > kMaxValues) fail("memo index out of range");
    memo_[idx] = stack_.back();
  }
  PyRef memo_get(uint64_t idx) {
    const auto it = memo_.find(idx);
    if (it == memo_.end()) fail("memo index " + std::to_string(idx) + " not defined");
    return it->second;
  }
  void set_items(PyValue* dict, const std::vector<PyRef>& kv) {
    if (dict->kind != Kind::Dict && dict->kind != Kind::Opaque) fail("SETITEM on a non-dict");
    if (kv.size() % 2) fail("odd number of items for SETITEMS");
    if (dict->kind == Kind::Opaque) return;  // e.g. defaultdict subclasses: carried, not read
    for (std::size_t i = 0; i < kv.size(); i += 2) dict->dict.emplace_back(kv[i], kv[i + 1]);
  }
  void append_items(PyValue* list, const std::vector<PyRef>& items) {
    if (list->kind == Kind::Opaque) return;
    if (list->kind != Kind::List) fail("APPEND on a non-list");
    list->items.insert(list->items.end(), items.begin(), items.end());
  }
  PyRef persistent_load(PyRef pid);
  PyRef reduce(PyRef callable, PyRef args);
  static int64_t as_int(PyRef v, const char* what);
  static std::vector<int64_t> as_int_tuple(PyRef v, const char* what);

  TorchCheckpoint& ckpt_;
  const uint8_t* p_;
  const uint8_t* end_;
  std::vector<PyRef> stack_;
  std::vector<std::size_t> marks_;
  std::map<uint64_t, PyRef> memo_;
};

int64_t Unpickler::as_int(PyRef v, const char* what) {
  if (!v || v->kind != Kind::Int)
    throw Error(std::string("checkpoint pickle: ") + what + " is not an integer");
  return v->i;
}

std::vector<int64_t> Unpickler::as_int_tuple(PyRef v, const char* what) {
  if (!v || (v->kind != Kind::Tuple && v->kind != Kind::List))
    throw Error(std::string("checkpoint pickle: ") + what + " is not a tuple");
  std::vector<int64_t> out;
  for (PyRef x : v->items) out.push_back(as_int(x, what));
  return out;
}

PyRef Unpickler::persistent_load(PyRef pid) {
  // ('storage', storage_type, key, location, numel[, view_metadata])
  if (pid->kind != Kind::Tuple || pid->items.size() < 5 || pid->items[0]->kind != Kind::Str ||
      pid->items[0]->s != "storage")
    fail("unsupported persistent id");
  PyRef type = pid->items[1];
  PyRef key = pid->items[2];
  if (type->kind != Kind::Global) fail("storage type is not a class");
  if (key->kind != Kind::Str) fail("storage key is not a string");
  if (pid->items.size() >= 6 && pid->items[5]->kind != Kind::None) fail("storage views are not supported");
  PyValue* s = make(Kind::Storage);
  if (!storage_dtype(type->s, &s->tensor.dtype)) fail("unsupported storage type " + type->s);
  s->tensor.storage_key = key->s;
  s->tensor.storage_numel = as_int(pid->items[4], "storage size");
  if (s->tensor.storage_numel < 0) fail("negative storage size");
  const auto known = storages.find(key->s);
  if (known != storages.end() &&
      (known->second.first != s->tensor.dtype || known->second.second != s->tensor.storage_numel))
    fail("storage " + key->s + " is declared twice with different types");
  storages[key->s] = {s->tensor.dtype, s->tensor.storage_numel};
  return s;
}

PyRef Unpickler::reduce(PyRef callable, PyRef args) {
  if (args->kind != Kind::Tuple) fail("REDUCE arguments are not a tuple");
  const std::string name = callable->kind == Kind::Global ? callable->s : std::string();
  const auto& a = args->items;
  if (name == "collections.OrderedDict") {
    PyValue* d = make(Kind::Dict);
    if (!a.empty()) {
      if (a[0]->kind != Kind::List) fail("OrderedDict argument is not a list");
      for (PyRef pair : a[0]->items) {
        if (pair->kind != Kind::Tuple && pair->kind != Kind::List) fail("OrderedDict item is not a pair");
        if (pair->items.size() != 2) fail("OrderedDict item is not a pair");
        d->dict.emplace_back(pair->items[0], pair->items[1]);
      }
    }
    return d;
  }
  if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
    if (a.size() < 4 || a[0]->kind != Kind::Storage) fail("malformed tensor");
    PyValue* t = make(Kind::Tensor);
    t->tensor = a[0]->tensor;
    t->tensor.offset = as_int(a[1], "tensor offset");
    t->tensor.size = as_int_tuple(a[2], "tensor size");
    t->tensor.stride = as_int_tuple(a[3], "tensor stride");
    if (t->tensor.size.size() != t->tensor.stride.size()) fail("tensor size and stride differ in length");
    return t;
  }
  if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
    if (a.empty() || a[0]->kind != Kind::Tensor) fail("malformed parameter");
    return a[0];
  }
  // Anything else (numpy scalars, enums, custom classes) is kept opaque, named by its callable.
  PyValue* o = make(Kind::Opaque);
  o->s = name.empty() ? "<call>" : name;
  o->items = a;
  return o;
}

PyRef Unpickler::run() {
  while (true) {
    const uint8_t op = *take(1);
    switch (op) {
      case 0x80:  // PROTO
        if (le(1) > 5) fail("unsupported pickle protocol");
        break;
      case 0x95:  // FRAME (protocol 4): only a length hint
        le(8);
        break;
      case '.': {  // STOP
        PyRef v = pop();
        if (!stack_.empty() || !marks_.empty()) fail("data left on the stack at STOP");
        return v;
      }
      case '(':
        marks_.push_back(stack_.size());
        break;
      case 'N':
        push(make(Kind::None));
        break;
      case 0x88:
      case 0x89: {
        PyValue* v = make(Kind::Bool);
        v->b = op == 0x88;
        push(v);
        break;
      }
      case 'J':
        push(make_int(static_cast<int32_t>(le(4))));
        break;
      case 'K':
        push(make_int(static_cast<int64_t>(le(1))));
        break;
      case 'M':
        push(make_int(static_cast<int64_t>(le(2))));
        break;
      case 0x8a: {  // LONG1
        const std::size_t n = le(1);
        const uint8_t* b = take(n);
        if (n <= 8) {
          uint64_t v = 0;
          for (std::size_t i = n; i-- > 0;) v = (v << 8) | b[i];
          if (n > 0 && n < 8 && (b[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
          push(make_int(static_cast<int64_t>(v)));
        } else {
          push(make_str(Kind::BigInt, std::string(reinterpret_cast<const char*>(b), n)));
        }
        break;
      }
      case 'G': {  // BINFLOAT, big-endian
        const uint8_t* b = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | b[i];
        PyValue* v = make(Kind::Float);
        std::memcpy(&v->f, &bits, 8);
        push(v);
        break;
      }
      case 'X':  // BINUNICODE
        push(make_str(Kind::Str, bytes(le(4))));
        break;
      case 0x8c:  // SHORT_BINUNICODE
        push(make_str(Kind::Str, bytes(le(1))));
        break;
      case 0x8d:  // BINUNICODE8
        push(make_str(Kind::Str, bytes(le(8))));
        break;
      case 'T':  // BINSTRING
        push(make_str(Kind::Str, bytes(le(4))));
        break;
      case 'U':  // SHORT_BINSTRING
        push(make_str(Kind::Str, bytes(le(1))));
        break;
      case 'B':  // BINBYTES
        push(make_str(Kind::Bytes, bytes(le(4))));
        break;
      case 'C':  // SHORT_BINBYTES
        push(make_str(Kind::Bytes, bytes(le(1))));
        break;
      case 0x8e:  // BINBYTES8
        push(make_str(Kind::Bytes, bytes(le(8))));
        break;
      case ')':
        push(make_tuple({}));
        break;
      case 't':
        push(make_tuple(pop_mark()));
        break;
      case 0x85:
      case 0x86:
      case 0x87: {
        const std::size_t n = op - 0x84;
        std::vector<PyRef> items(n);
        for (std::size_t i = n; i-- > 0;) items[i] = pop();
        push(make_tuple(std::move(items)));
        break;
      }
      case ']':
        push(make(Kind::List));
        break;
      case 'l': {
        PyValue* v = make(Kind::List);
        v->items = pop_mark();
        push(v);
        break;
      }
      case '}':
        push(make(Kind::Dict));
        break;
      case 'd': {
        PyValue* v = make(Kind::Dict);
        set_items(v, pop_mark());
        push(v);
        break;
      }
      case 'a': {
        PyRef item = pop();
        append_items(top_mutable("APPEND"), {item});
        break;
      }
      case 'e': {
        auto items = pop_mark();
        append_items(top_mutable("APPENDS"), items);
        break;
      }
      case 's': {
        PyRef value = pop();
        PyRef key = pop();
        set_items(top_mutable("SETITEM"), {key, value});
        break;
      }
      case 'u': {
        auto kv = pop_mark();
        set_items(top_mutable("SETITEMS"), kv);
        break;
      }
      case 0x8f:  // EMPTY_SET
        push(make_str(Kind::Opaque, "builtins.set"));
        break;
      case 0x90:  // ADDITEMS
        pop_mark();
        top_mutable("ADDITEMS");
        break;
      case 'c': {  // GLOBAL
        std::string module = line();
        std::string name = line();
        push(make_str(Kind::Global, module + "." + name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        PyRef name = pop();
        PyRef module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) fail("STACK_GLOBAL needs strings");
        push(make_str(Kind::Global, module->s + "." + name->s));
        break;
      }
      case 'R': {
        PyRef args = pop();
        PyRef callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 0x81: {  // NEWOBJ
        PyRef args = pop();
        PyRef cls = pop();
        if (args->kind != Kind::Tuple) fail("NEWOBJ arguments are not a tuple");
        PyValue* o = make(Kind::Opaque);
        o->s = cls->kind == Kind::Global ? cls->s : "<object>";
        o->items = args->items;
        push(o);
        break;
      }
      case 'b':  // BUILD: object state (e.g. a state dict's _metadata) is not needed
        pop();
        top_mutable("BUILD");
        break;
      case 'Q':  // BINPERSID
        push(persistent_load(pop()));
        break;
      case 'q':
        memo_put(le(1));
        break;
      case 'r':
        memo_put(le(4));
        break;
      case 0x94:  // MEMOIZE
        memo_put(memo_.size());
        break;
      case 'h':
        push(memo_get(le(1)));
        break;
      case 'j':
        push(memo_get(le(4)));
        break;
      case '0':  // POP
        pop();
        break;
      case '2':  // DUP
        push(top_mutable("DUP"));
        break;
      default: {
        char buf[8];
        std::snprintf(buf, sizeof buf, "0x%02x", op);
        fail(std::string("unsupported opcode ") + buf);
      }
    }
  }
}

namespace {

struct ZipCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};

std::vector<uint8_t> read_zip_entry(zip_t* z, zip_int64_t index, const std::string& name,
                                    std::size_t archive_size) {
  zip_stat_t st;
  if (zip_stat_index(z, index, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
    throw Error("checkpoint archive: cannot stat " + name);
  if (st.size > (1ull << 34) || st.size > archive_size * kMaxInflateRatio)
    throw Error("checkpoint archive: entry " + name + " claims an impossible size");
  zip_file_t* f = zip_fopen_index(z, index, 0);
  if (!f) throw Error("checkpoint archive: cannot open " + name + ": " + zip_strerror(z));
  std::vector<uint8_t> data(st.size);
  const zip_int64_t n = data.empty() ? 0 : zip_fread(f, data.data(), data.size());
  zip_fclose(f);
  if (n < 0 || static_cast<zip_uint64_t>(n) != st.size)
    throw Error("checkpoint archive: entry " + name + " is corrupt or truncated");
  return data;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

TorchCheckpoint TorchCheckpoint::read(const std::string& path) {
  try {
    return parse(read_file_bytes(path));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

TorchCheckpoint TorchCheckpoint::parse(std::vector<uint8_t> bytes) {
  TorchCheckpoint ckpt;
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\x03\x04", 4) == 0) {
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* src = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &err);
    if (!src) throw Error("checkpoint archive: cannot read zip data");
    std::unique_ptr<zip_t, ZipCloser> z(zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err));
    if (!z) {
      zip_source_free(src);
      std::string why = zip_error_strerror(&err);
      zip_error_fini(&err);
      throw Error("checkpoint archive: not a valid zip file (" + why + ")");
    }
    zip_error_fini(&err);
    const zip_int64_t count = zip_get_num_entries(z.get(), 0);
    std::string prefix;
    zip_int64_t pkl = -1;
    std::map<std::string, zip_int64_t> entries;
    for (zip_int64_t i = 0; i < count; ++i) {
      const char* n = zip_get_name(z.get(), i, 0);
      if (!n) continue;
      const std::string name = n;
      entries[name] = i;
      if (pkl < 0 && ends_with(name, "data.pkl") && std::count(name.begin(), name.end(), '/') == 1) {
        pkl = i;
        prefix = name.substr(0, name.size() - std::strlen("data.pkl"));
      }
    }
    if (pkl < 0) throw Error("checkpoint archive: no data.pkl (not a torch.save file)");
    const auto bo = entries.find(prefix + "byteorder");
    if (bo != entries.end()) {
      const auto order = read_zip_entry(z.get(), bo->second, "byteorder", bytes.size());
      if (std::string(order.begin(), order.end()) != "little")
        throw Error("checkpoint archive: big-endian checkpoints are not supported");
    }
    const auto program = read_zip_entry(z.get(), pkl, "data.pkl", bytes.size());
    Unpickler u(ckpt, program.data(), program.size());
    ckpt.root_ = u.run();
    for (const auto& [key, info] : u.storages) {
      const std::string name = prefix + "data/" + key;
      const auto it = entries.find(name);
      if (it == entries.end()) throw Error("checkpoint archive: missing storage " + name);
      auto data = read_zip_entry(z.get(), it->second, name, bytes.size());
      if (data.size() < static_cast<std::size_t>(info.second) * dtype_size(info.first))
        throw Error("checkpoint archive: storage " + key + " is shorter than declared");
      ckpt.storages_[key] = std::move(data);
    }
    return ckpt;
  }

  // Legacy stream: magic, protocol, system info, the object, storage keys, then raw storages.
  const uint8_t* base = bytes.data();
  std::size_t pos = 0;
  auto next = [&](Unpickler& u) {
    PyRef v = u.run();
    pos += u.consumed(base + pos);
    return v;
  };
  {
    Unpickler u(ckpt, base, bytes.size());
    PyRef magic = next(u);
    if (magic->kind != Kind::BigInt || magic->s.size() != sizeof kLegacyMagic ||
        std::memcmp(magic->s.data(), kLegacyMagic, sizeof kLegacyMagic) != 0)
      throw Error("not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save file)");
  }
  {
    Unpickler u(ckpt, base + pos, bytes.size() - pos);
    PyRef proto = next(u);
    if (proto->kind != Kind::Int || proto->i != kLegacyProtocol)
      throw Error("legacy checkpoint: unsupported protocol version");
  }
  {
    Unpickler u(ckpt, base + pos, bytes.size() - pos);
    PyRef info = next(u);
    PyRef little = info->get("little_endian");
    if (!little || little->kind != Kind::Bool || !little->b)
      throw Error("legacy checkpoint: only little-endian files are supported");
  }
  Unpickler main(ckpt, base + pos, bytes.size() - pos);
  ckpt.root_ = next(main);
  Unpickler keys_u(ckpt, base + pos, bytes.size() - pos);
  PyRef keys = next(keys_u);
  if (keys->kind != Kind::List) throw Error("legacy checkpoint: storage key list missing");
  for (PyRef key : keys->items) {
    if (key->kind != Kind::Str) throw Error("legacy checkpoint: storage key is not a string");
    const auto info = main.storages.find(key->s);
    if (info == main.storages.end())
      throw Error("legacy checkpoint: storage " + key->s + " is not referenced");
    if (bytes.size() - pos < 8) throw Error("legacy checkpoint: truncated storage " + key->s);
    uint64_t numel = 0;
    for (int i = 7; i >= 0; --i) numel = (numel << 8) | base[pos + i];
    pos += 8;
    const std::size_t elem = dtype_size(info->second.first);
    if (numel != static_cast<uint64_t>(info->second.second) || numel > (bytes.size() - pos) / elem)
      throw Error("legacy checkpoint: storage " + key->s + " is truncated or mis-sized");
    ckpt.storages_[key->s].assign(base + pos, base + pos + numel * elem);
    pos += numel * elem;
  }
  for (const auto& kv : main.storages)
    if (!ckpt.storages_.count(kv.first))
      throw Error("legacy checkpoint: storage " + kv.first + " has no data");
  return ckpt;
}

HostTensor TorchCheckpoint::materialize(const TensorView& view) const {
  const auto it = storages_.find(view.storage_key);
  if (it == storages_.end()) throw Error("checkpoint: tensor refers to a missing storage");
  const std::size_t elem = dtype_size(view.dtype);
  const uint64_t avail = it->second.size() / elem;
  if (view.offset < 0) throw Error("checkpoint: negative tensor offset");
  uint64_t last = static_cast<uint64_t>(view.offset);
  uint64_t numel = 1;
  for (std::size_t d = 0; d < view.size.size(); ++d) {
    if (view.size[d] < 0 || view.stride[d] < 0) throw Error("checkpoint: negative tensor size or stride");
    if (view.size[d] == 0) numel = 0;
  }
  if (numel != 0) {
    for (std::size_t d = 0; d < view.size.size(); ++d) {
      const uint64_t s = static_cast<uint64_t>(view.size[d]);
      const uint64_t st = static_cast<uint64_t>(view.stride[d]);
      if (s > (1ull << 40) || (st != 0 && (s - 1) > (1ull << 40) / st))
        throw Error("checkpoint: tensor is too large");
      last += (s - 1) * st;
      numel *= s;
      if (numel > kMaxTensorBytes / elem) throw Error("checkpoint: tensor is too large");
    }
    // Only stride-0 (expanded) views can be larger than their storage; cap them too.
    if (numel > 64 * std::max<uint64_t>(avail, 1024)) throw Error("checkpoint: tensor is too large");
    if (last >= avail) throw Error("checkpoint: tensor view exceeds its storage");
  }
  return gather_strided(view.dtype, it->second.data(), view.offset, view.size, view.stride);
}

}  // namespace qbasicvsr
