// 8-bit RGB frames and PNG files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qbasicvsr {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // packed RGB, row-major, 3 * width * height bytes
};

// Reads any PNG (gray, palette, 16-bit and alpha are converted to 8-bit RGB).
Image read_png(const std::string& path);
void write_png(const std::string& path, const Image& image);

// The files of a folder whose names end in .png (case-insensitive), in natural name order
// ("im2" before "im10"); throws
// Error if the folder cannot be read or holds none.
std::vector<std::string> list_png_files(const std::string& dir);

}  // namespace qbasicvsr
