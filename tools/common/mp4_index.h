// What an MP4/MOV file's boxes announce: its length and the number of video samples in its index
// (moov/trak/mdia/minf/stbl/stsz of the first track whose handler is 'vide'). GStreamer's qtdemux
// stops quietly at the end of the data when a file is cut short, so this is how a truncated file
// is told from a complete one.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace qbasicvsr::cli {

namespace mp4 {

struct Box {
  uint64_t offset;  // of the payload
  uint64_t size;    // of the payload
  std::string type;
};

// Reads big-endian integers from a file with bounds checks; any failure ends the parse.
class Reader {
 public:
  explicit Reader(const std::string& path) : f_(std::fopen(path.c_str(), "rb")) {
    if (f_ && std::fseek(f_, 0, SEEK_END) == 0) size_ = static_cast<uint64_t>(std::ftell(f_));
  }
  ~Reader() {
    if (f_) std::fclose(f_);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  uint64_t size() const { return size_; }

  bool read(uint64_t at, void* out, std::size_t n) {
    if (!f_ || at + n > size_ || std::fseek(f_, static_cast<long>(at), SEEK_SET) != 0) return false;
    return std::fread(out, 1, n, f_) == n;
  }
  std::optional<uint64_t> be(uint64_t at, int bytes) {
    uint8_t b[8];
    if (!read(at, b, static_cast<std::size_t>(bytes))) return std::nullopt;
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = v << 8 | b[i];
    return v;
  }
  // The boxes inside [begin, end).
  std::vector<Box> children(uint64_t begin, uint64_t end) {
    std::vector<Box> out;
    for (uint64_t at = begin; at + 8 <= end && out.size() < 4096;) {
      const auto size32 = be(at, 4);
      char type[4];
      if (!size32 || !read(at + 4, type, 4)) break;
      uint64_t header = 8, size = *size32;
      if (size == 1) {
        const auto large = be(at + 8, 8);
        if (!large) break;
        size = *large;
        header = 16;
      } else if (size == 0) {
        size = end - at;
      }
      if (size < header || at + size > end) break;
      out.push_back({at + header, size - header, std::string(type, 4)});
      at += size;
    }
    return out;
  }
  std::optional<Box> child(const Box& parent, const std::string& type) {
    for (const Box& b : children(parent.offset, parent.offset + parent.size))
      if (b.type == type) return b;
    return std::nullopt;
  }

 private:
  std::FILE* f_;
  uint64_t size_ = 0;
};

}  // namespace mp4

// The bytes an MP4/MOV file's top-level boxes announce (their sizes added up) when that is more
// than the file holds: a file cut short. Nothing for a complete file or another format.
inline std::optional<uint64_t> mp4_announced_bytes(const std::string& path) {
  mp4::Reader r(path);
  uint64_t at = 0;
  bool moov = false;
  while (at + 8 <= r.size()) {
    const auto size32 = r.be(at, 4);
    char type[4];
    if (!size32 || !r.read(at + 4, type, 4)) return std::nullopt;
    const std::string t(type, 4);
    if (at == 0 && t != "ftyp" && t != "moov" && t != "mdat" && t != "wide" && t != "free")
      return std::nullopt;
    moov |= t == "moov";
    uint64_t size = *size32;
    if (size == 1) {
      const auto large = r.be(at + 8, 8);
      if (!large) return std::nullopt;
      size = *large;
    } else if (size == 0) {
      return std::nullopt;  // runs to the end of the file
    }
    if (size < 8) return std::nullopt;
    if (at + size > r.size()) return moov ? std::optional<uint64_t>(at + size) : std::nullopt;
    at += size;
  }
  return std::nullopt;
}

// Video samples in the index, or nothing (not an MP4/MOV, no index, no video track, fragmented).
inline std::optional<uint64_t> mp4_video_samples(const std::string& path) {
  mp4::Reader r(path);
  for (const mp4::Box& top : r.children(0, r.size())) {
    if (top.type != "moov") continue;
    for (const mp4::Box& trak : r.children(top.offset, top.offset + top.size)) {
      if (trak.type != "trak") continue;
      const auto mdia = r.child(trak, "mdia");
      if (!mdia) continue;
      const auto hdlr = r.child(*mdia, "hdlr");
      char handler[4];
      // hdlr: version/flags (4), pre_defined (4), handler_type (4).
      if (!hdlr || !r.read(hdlr->offset + 8, handler, 4) || std::string(handler, 4) != "vide") continue;
      const auto minf = r.child(*mdia, "minf");
      const auto stbl = minf ? r.child(*minf, "stbl") : std::nullopt;
      if (!stbl) return std::nullopt;
      // stsz: version/flags (4), sample_size (4), sample_count (4); stz2: reserved (3), field_size (1),
      // count.
      auto stsz = r.child(*stbl, "stsz");
      if (!stsz) stsz = r.child(*stbl, "stz2");
      const auto count = stsz ? r.be(stsz->offset + 8, 4) : std::nullopt;
      // Fragmented files index their samples elsewhere (moof): no count here.
      if (!count || *count == 0) return std::nullopt;
      return count;
    }
  }
  return std::nullopt;
}

}  // namespace qbasicvsr::cli
