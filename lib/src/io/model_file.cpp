#include "qbasicvsr/model_file.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "qbasicvsr/error.h"

namespace qbasicvsr {

namespace {

using nlohmann::json;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Multiplies with an overflow check so that absurd shapes are reported, not wrapped.
bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  if (a != 0 && b > UINT64_MAX / a) return false;
  *out = a * b;
  return true;
}

std::string quoted(const std::string& s) {
  std::string shown = s.size() > 80 ? s.substr(0, 80) + "..." : s;
  return "\"" + shown + "\"";
}

}  // namespace

SafetensorsFile parse_safetensors(const uint8_t* data, std::size_t size) {
  if (size < 8) throw Error("model file is truncated: " + std::to_string(size) + " bytes");
  const uint64_t header_len = read_u64_le(data);
  if (header_len > kMaxHeaderBytes)
    throw Error("model file header is too large (" + std::to_string(header_len) + " bytes)");
  if (header_len > size - 8)
    throw Error("model file is truncated: header needs " + std::to_string(header_len) + " bytes, file has " +
                std::to_string(size - 8));
  if (header_len < 2 || data[8] != '{') throw Error("model file header is not a JSON object");
  const char* hbegin = reinterpret_cast<const char*>(data + 8);
  const auto header = json::parse(hbegin, hbegin + header_len, nullptr, false);
  if (header.is_discarded() || !header.is_object()) throw Error("model file header is not valid JSON");

  const uint8_t* buffer = data + 8 + header_len;
  const uint64_t buffer_size = size - 8 - header_len;

  SafetensorsFile out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error("model file: __metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw Error("model file: metadata " + quoted(k) + " is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + quoted(name);
    if (!entry.is_object()) throw Error(where + ": entry is not an object");
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) throw Error(where + ": missing dtype");
    HostTensor t;
    if (!parse_dtype(entry["dtype"].get<std::string>(), &t.dtype))
      throw Error(where + ": unsupported dtype " + quoted(entry["dtype"].get<std::string>()));
    if (!entry.contains("shape") || !entry["shape"].is_array()) throw Error(where + ": missing shape");
    if (entry["shape"].size() > 8) throw Error(where + ": too many dimensions");
    uint64_t numel = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) throw Error(where + ": shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (!checked_mul(numel, dim, &numel) || numel > (1ull << 40))
        throw Error(where + ": shape is too large");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2 || !entry["data_offsets"][0].is_number_unsigned() ||
        !entry["data_offsets"][1].is_number_unsigned())
      throw Error(where + ": data_offsets must be two non-negative integers");
    const uint64_t begin = entry["data_offsets"][0].get<uint64_t>();
    const uint64_t end = entry["data_offsets"][1].get<uint64_t>();
    if (begin > end) throw Error(where + ": data_offsets are reversed");
    if (end > buffer_size)
      throw Error("model file is truncated: " + where + " ends at byte " + std::to_string(end) + " of a " +
                  std::to_string(buffer_size) + "-byte data section");
    uint64_t nbytes = 0;
    if (!checked_mul(numel, dtype_size(t.dtype), &nbytes) || nbytes != end - begin)
      throw Error(where + ": " + std::to_string(end - begin) + " bytes of data for shape " +
                  shape_string(t.shape) + " " + dtype_name(t.dtype));
    ranges.emplace_back(begin, end);
    t.bytes.assign(buffer + begin, buffer + end);
    out.tensors.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  for (const auto& [b, e] : ranges) {
    if (b != covered) throw Error("model file: tensor data overlaps or leaves gaps");
    covered = e;
  }
  if (covered != buffer_size)
    throw Error("model file: " + std::to_string(buffer_size - covered) +
                " trailing bytes after the last tensor");
  return out;
}

std::vector<uint8_t> read_file_bytes(const std::string& path, std::size_t max_bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error("cannot open " + path + ": " + std::strerror(errno));
  std::vector<uint8_t> data;
  uint8_t chunk[1 << 16];
  std::size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (data.size() + n > max_bytes) {
      std::fclose(f);
      throw Error(path + " is too large");
    }
    data.insert(data.end(), chunk, chunk + n);
  }
  const bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) throw Error("cannot read " + path);
  return data;
}

SafetensorsFile read_safetensors(const std::string& path) {
  const auto data = read_file_bytes(path);
  try {
    return parse_safetensors(data.data(), data.size());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

std::vector<uint8_t> serialize_safetensors(const SafetensorsFile& file) {
  json header = json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : file.tensors) {
    header[name] = {{"dtype", dtype_name(t.dtype)},
                    {"shape", t.shape},
                    {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  // Pad with spaces so that the data section starts 8-byte aligned, as safetensors does.
  while ((text.size() % 8) != 0) text.push_back(' ');
  std::vector<uint8_t> out(8);
  const uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(len >> (8 * i));
  out.insert(out.end(), text.begin(), text.end());
  out.reserve(out.size() + offset);
  for (const auto& kv : file.tensors) out.insert(out.end(), kv.second.bytes.begin(), kv.second.bytes.end());
  return out;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  const auto bytes = serialize_safetensors(file);
  // Write beside the target and rename, so that an interrupted write never leaves a torn file.
  const std::string tmp = path + ".partial";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("cannot create " + tmp + ": " + std::strerror(errno));
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    throw Error("cannot write " + path);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  }
}

void Model::validate() const {
  arch.validate();
  const auto specs = expected_tensors(arch);
  std::set<std::string> expected;
  for (const auto& s : specs) {
    expected.insert(s.name);
    const auto it = weights.find(s.name);
    if (it == weights.end()) throw Error("model: missing tensor \"" + s.name + "\"");
    if (it->second.dtype != DType::F32)
      throw Error("model: tensor \"" + s.name + "\" has dtype " + dtype_name(it->second.dtype) +
                  ", expected F32");
    if (it->second.shape != s.shape)
      throw Error("model: tensor \"" + s.name + "\" has shape " + shape_string(it->second.shape) +
                  ", expected " + shape_string(s.shape) + " for " + arch.summary());
    if (it->second.bytes.size() != static_cast<std::size_t>(it->second.numel()) * 4)
      throw Error("model: tensor \"" + s.name + "\" has the wrong data size");
  }
  for (const auto& kv : weights)
    if (!expected.count(kv.first)) throw Error("model: unexpected tensor \"" + kv.first + "\"");
  if (quantization) quantization->validate(arch);
}

Model model_from_safetensors(SafetensorsFile file) {
  const auto fmt = file.metadata.find(kFormatKey);
  if (fmt == file.metadata.end())
    throw Error(
        "not a qbasicvsr model file (no \"format\" metadata; import checkpoints with "
        "qbasicvsr-import)");
  if (fmt->second != kFormatValue)
    throw Error("unsupported model file format \"" + fmt->second + "\" (expected " + kFormatValue + ")");
  const auto arch = file.metadata.find("architecture");
  if (arch == file.metadata.end()) throw Error("model file has no \"architecture\" metadata");
  Model m;
  m.arch = Architecture::from_json(arch->second);
  if (file.metadata.count("provenance")) {
    m.provenance_json = file.metadata["provenance"];
    const auto p = nlohmann::json::parse(m.provenance_json, nullptr, false);
    if (p.is_discarded() || !p.is_object()) throw Error("model file: provenance is not a JSON object");
  }
  if (file.metadata.count(kQuantizationKey))
    m.quantization = QuantSettings::from_json(file.metadata[kQuantizationKey]);
  for (auto& kv : file.metadata)
    if (kv.first != kFormatKey && kv.first != "architecture" && kv.first != "provenance" &&
        kv.first != kQuantizationKey)
      m.extra_metadata.insert(kv);
  m.weights = std::move(file.tensors);
  m.validate();
  return m;
}

SafetensorsFile model_to_safetensors(const Model& model) {
  model.validate();
  SafetensorsFile f;
  f.metadata = model.extra_metadata;
  f.metadata[kFormatKey] = kFormatValue;
  f.metadata["architecture"] = model.arch.to_json();
  f.metadata["provenance"] = model.provenance_json;
  if (model.quantization) f.metadata[kQuantizationKey] = model.quantization->to_json();
  f.tensors = model.weights;
  return f;
}

Model load_model(const std::string& path) {
  auto file = read_safetensors(path);
  try {
    return model_from_safetensors(std::move(file));
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
}

void save_model(const std::string& path, const Model& model) {
  write_safetensors(path, model_to_safetensors(model));
}

std::string file_sha256(const std::string& path) {
  const auto data = read_file_bytes(path);
  return sha256_hex(data.data(), data.size());
}

}  // namespace qbasicvsr
