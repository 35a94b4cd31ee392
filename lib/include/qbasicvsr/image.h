// Frames and picture files. Files are read as their stored sample values, with no colour-space or
// gamma conversion (what OpenCV, PIL, MATLAB and every VSR data set read), through OpenCV.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qbasicvsr {

// A frame of the network: packed RGB, row-major, 8 or 16 bits per sample.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;     // 8-bit: 3 * width * height samples
  int depth = 8;                // 8: the samples are in rgb; 16: in rgb16
  std::vector<uint16_t> rgb16;  // 16-bit: 3 * width * height samples

  // Throws Error when the sample buffer does not match the size and depth.
  void check() const;
};

// A picture file as stored: its colour as RGB (grey replicated into the three channels), and its
// alpha plane when it has one, at the file's depth.
struct Picture {
  Image color;
  bool grey = false;            // stored as grey (or grey and alpha)
  std::vector<uint16_t> alpha;  // width * height samples at color.depth, empty without alpha
  bool has_alpha() const { return !alpha.empty(); }
};

// Reads a PNG, 8 or 16 bits, grey, grey + alpha, RGB, RGBA or palette (expanded), with no colour
// or gamma conversion. Throws Error naming the file for anything else or a damaged file.
Picture read_picture(const std::string& path);
// The same on a file's bytes; `path` names it in errors.
Picture decode_picture(const std::vector<uint8_t>& bytes, const std::string& path);
// Writes a PNG at the picture's depth: grey as grey, RGB as RGB, with alpha as RGBA (grey with
// alpha too, its three channels equal: PNG writers in OpenCV have no grey + alpha). The file
// appears complete or not at all: it is written under a temporary name in the same folder and
// renamed.
void write_picture(const std::string& path, const Picture& picture);

// The colour of a PNG as 8-bit RGB, for programs that score or train on frames: grey is
// replicated, 16-bit samples are rounded to 8 bits; a file with alpha is an Error (what it is
// composited on is unknown).
Image read_png(const std::string& path);
// Writes 8- or 16-bit RGB (write_picture without alpha).
void write_png(const std::string& path, const Image& image);

// Writes a file under a temporary name in its folder (".NAME.partial") and renames it: readers
// and resumed jobs see it complete or not at all.
void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes);

// The files of a folder whose names end in .png (case-insensitive), in natural name order
// ("im2" before "im10"); throws Error if the folder cannot be read or holds none. Names that
// start with a dot (temporary files of an interrupted writer) are not frames.
std::vector<std::string> list_png_files(const std::string& dir);

}  // namespace qbasicvsr
