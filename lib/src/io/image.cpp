#include "qbasicvsr/image.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <type_traits>

#include "qbasicvsr/error.h"
#include "qbasicvsr/model_file.h"

namespace qbasicvsr {

namespace {

// Largest frame side accepted from a file; larger ones are more likely corrupt than real.
constexpr uint32_t kMaxSide = 1 << 15;
// Largest decoded picture accepted (a 16384x16384 RGBA frame).
constexpr uint64_t kMaxDecodedBytes = uint64_t{1} << 30;
// Largest picture file read.
constexpr std::size_t kMaxFileBytes = std::size_t{1} << 31;

// "im2" before "im10": digit runs compare by value, so unpadded frame numbers keep their order.
bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      std::size_t iz = i, jz = j;  // skip leading zeros, then longer means larger
      while (iz + 1 < ie && a[iz] == '0') ++iz;
      while (jz + 1 < je && b[jz] == '0') ++jz;
      if (ie - iz != je - jz) return ie - iz < je - jz;
      const int c = a.compare(iz, ie - iz, b, jz, je - jz);
      if (c != 0) return c < 0;
      if (ie - i != je - j) return ie - i > je - j;  // "007" before "7"
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

}  // namespace

void Image::check() const {
  const auto n = static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3;
  const bool ok =
      width > 0 && height > 0 &&
      (depth == 8 ? rgb.size() == n && rgb16.empty() : depth == 16 && rgb16.size() == n && rgb.empty());
  if (!ok) throw Error("image buffer does not match its size and depth");
}

// Whether every chunk lies inside the file with its CRC and an IEND ends it: a truncated or damaged
// file is told here, before the decoder (whose library would print its own complaint on stderr).
bool png_chunks_intact(const std::vector<uint8_t>& bytes, uint64_t* image_data) {
  std::size_t at = 8;
  *image_data = 0;
  while (at + 12 <= bytes.size()) {
    const uint32_t n = uint32_t{bytes[at]} << 24 | uint32_t{bytes[at + 1]} << 16 |
                       uint32_t{bytes[at + 2]} << 8 | bytes[at + 3];
    if (n > bytes.size() - at - 12) return false;
    const uint8_t* type = &bytes[at + 4];
    const uint8_t* c = type + 4 + n;
    const uint32_t stored = uint32_t{c[0]} << 24 | uint32_t{c[1]} << 16 | uint32_t{c[2]} << 8 | c[3];
    if (crc32(crc32(0L, Z_NULL, 0), type, n + 4) != stored) return false;
    if (std::memcmp(type, "IEND", 4) == 0) return true;
    if (std::memcmp(type, "IDAT", 4) == 0) *image_data += n;
    at += 12 + n;
  }
  return false;
}

Picture read_picture(const std::string& path) {
  return decode_picture(read_file_bytes(path, kMaxFileBytes), path);
}

Picture decode_picture(const std::vector<uint8_t>& bytes, const std::string& path) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 33 || std::memcmp(bytes.data(), kSignature, 8) != 0 ||
      std::memcmp(&bytes[12], "IHDR", 4) != 0)
    throw Error(path + ": not a PNG file");
  const auto be32 = [&](std::size_t o) {
    return uint32_t{bytes[o]} << 24 | uint32_t{bytes[o + 1]} << 16 | uint32_t{bytes[o + 2]} << 8 |
           bytes[o + 3];
  };
  uint64_t image_data = 0;
  if (!png_chunks_intact(bytes, &image_data)) throw Error(path + ": damaged or truncated PNG");
  const uint32_t w = be32(16), h = be32(20);
  const int depth = bytes[24], color_type = bytes[25];
  if (w == 0 || h == 0 || w > kMaxSide || h > kMaxSide)
    throw Error(path + ": unsupported PNG size " + std::to_string(w) + "x" + std::to_string(h));
  // Deflate expands at most 1032:1: a header that claims more pixels than its data can hold is
  // damaged (and would make the decoder allocate gigabytes for a few bytes).
  static const int kChannels[7] = {1, 0, 3, 1, 2, 0, 4};
  const uint64_t row_bytes =
      (uint64_t{w} * static_cast<uint64_t>(color_type <= 6 ? kChannels[color_type] : 4) *
           static_cast<uint64_t>(depth) +
       7) /
          8 +
      1;
  if (uint64_t{h} * row_bytes > 1032 * image_data + (1 << 16) || uint64_t{h} * row_bytes > kMaxDecodedBytes)
    throw Error(path + ": damaged PNG (" + std::to_string(w) + "x" + std::to_string(h) + " from " +
                std::to_string(image_data) + " bytes of image data)");
  const cv::Mat m =
      cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data())),
                   cv::IMREAD_UNCHANGED);
  if (m.empty() || m.cols != static_cast<int>(w) || m.rows != static_cast<int>(h))
    throw Error(path + ": damaged or unsupported PNG");
  if (m.depth() != CV_8U && m.depth() != CV_16U) throw Error(path + ": unsupported PNG sample type");
  Picture p;
  p.grey = color_type == 0 || color_type == 4;
  Image& c = p.color;
  c.width = m.cols;
  c.height = m.rows;
  c.depth = m.depth() == CV_16U ? 16 : 8;
  const int channels = m.channels();
  if (channels < 1 || channels > 4) throw Error(path + ": unsupported PNG channel count");
  // OpenCV's order: grey, grey + alpha, BGR, BGRA.
  const bool alpha = channels == 2 || channels == 4;
  const int colours = channels - (alpha ? 1 : 0);
  const std::size_t n = static_cast<std::size_t>(c.width) * static_cast<std::size_t>(c.height);
  auto unpack = [&](auto* rgb, auto sample) {
    for (int y = 0; y < c.height; ++y)
      for (int x = 0; x < c.width; ++x) {
        const std::size_t i = static_cast<std::size_t>(y) * static_cast<std::size_t>(c.width) + x;
        for (int k = 0; k < 3; ++k) rgb[3 * i + k] = sample(y, x, colours == 1 ? 0 : 2 - k);
        if (alpha) p.alpha[i] = sample(y, x, channels - 1);
      }
  };
  if (alpha) p.alpha.resize(n);
  if (c.depth == 8) {
    c.rgb.resize(3 * n);
    unpack(c.rgb.data(), [&](int y, int x, int k) { return m.ptr<uint8_t>(y)[x * channels + k]; });
  } else {
    c.rgb16.resize(3 * n);
    unpack(c.rgb16.data(), [&](int y, int x, int k) { return m.ptr<uint16_t>(y)[x * channels + k]; });
  }
  return p;
}

void write_picture(const std::string& path, const Picture& picture) {
  const Image& c = picture.color;
  try {
    c.check();
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  const std::size_t n = static_cast<std::size_t>(c.width) * static_cast<std::size_t>(c.height);
  if (picture.has_alpha() && picture.alpha.size() != n)
    throw Error(path + ": alpha plane does not match the size");
  if (c.depth == 8 && picture.has_alpha() &&
      std::any_of(picture.alpha.begin(), picture.alpha.end(), [](uint16_t a) { return a > 255; }))
    throw Error(path + ": 8-bit alpha out of range");
  const int channels = picture.has_alpha() ? 4 : picture.grey ? 1 : 3;
  cv::Mat m(c.height, c.width, CV_MAKETYPE(c.depth == 8 ? CV_8U : CV_16U, channels));
  auto pack = [&](auto* out, const auto* rgb) {
    for (std::size_t i = 0; i < n; ++i) {
      auto* px = out + channels * i;
      if (channels == 1) {
        px[0] = rgb[3 * i];  // grey frames come back with three channels made equal by the caller
        continue;
      }
      px[0] = rgb[3 * i + 2];
      px[1] = rgb[3 * i + 1];
      px[2] = rgb[3 * i];
      if (channels == 4) px[3] = static_cast<std::remove_reference_t<decltype(px[3])>>(picture.alpha[i]);
    }
  };
  if (c.depth == 8)
    pack(m.ptr<uint8_t>(), c.rgb.data());
  else
    pack(m.ptr<uint16_t>(), c.rgb16.data());
  std::vector<uint8_t> encoded;
  if (!cv::imencode(".png", m, encoded)) throw Error(path + ": cannot encode PNG");
  write_file_atomically(path, encoded);
}

Image read_png(const std::string& path) {
  Picture p = read_picture(path);
  if (p.has_alpha())
    throw Error(path + ": the frame has an alpha channel; only opaque frames can be scored or trained on");
  Image& c = p.color;
  if (c.depth == 16) {
    c.rgb.resize(c.rgb16.size());
    for (std::size_t i = 0; i < c.rgb16.size(); ++i)
      c.rgb[i] = static_cast<uint8_t>((uint32_t{c.rgb16[i]} * 255 + 32767) / 65535);
    c.rgb16.clear();
    c.depth = 8;
  }
  return c;
}

void write_png(const std::string& path, const Image& image) {
  Picture p;
  p.color = image;
  write_picture(path, p);
}

void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path tmp = target.parent_path() / ("." + target.filename().string() + ".partial");
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(path + ": cannot write (" + std::strerror(errno) + ")");
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  const int err = errno;
  if (std::fclose(f) != 0 || !written) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write (" + std::strerror(written ? errno : err) + ")");
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write (" + ec.message() + ")");
  }
}

std::vector<std::string> list_png_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir + ": not a directory");
  std::vector<std::string> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (ext == ".png" && it->path().filename().string()[0] != '.') files.push_back(it->path().string());
  }
  if (ec) throw Error(dir + ": cannot list (" + ec.message() + ")");
  if (files.empty()) throw Error(dir + ": no PNG frames");
  std::sort(files.begin(), files.end(), natural_less);
  return files;
}

}  // namespace qbasicvsr
