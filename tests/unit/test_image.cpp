// Picture files read as stored (no gamma or colour conversion) and written back the same way:
// PNGs built byte by byte here, with the chunks the tools in the wild add (gAMA), 16-bit samples,
// grey, alpha, palette; damaged files are errors naming the file; writes are atomic.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "qbasicvsr/image.h"
#include "test_util.h"

using namespace qbasicvsr;
namespace fs = std::filesystem;

namespace {

void put32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

void chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  put32(out, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  out.insert(out.end(), body.begin(), body.end());
  put32(out, static_cast<uint32_t>(crc32(0, body.data(), static_cast<uInt>(body.size()))));
}

// A PNG of `rows` (each already in the file's sample layout, big-endian for 16 bits), with optional
// extra chunks before the image data.
std::vector<uint8_t> png(int w, int h, int depth, int color, const std::vector<std::vector<uint8_t>>& rows,
                         const std::vector<std::pair<const char*, std::vector<uint8_t>>>& extra = {}) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put32(ihdr, static_cast<uint32_t>(w));
  put32(ihdr, static_cast<uint32_t>(h));
  ihdr.insert(ihdr.end(), {static_cast<uint8_t>(depth), static_cast<uint8_t>(color), 0, 0, 0});
  chunk(out, "IHDR", ihdr);
  for (const auto& [type, data] : extra) chunk(out, type, data);
  std::vector<uint8_t> raw;
  for (const auto& r : rows) {
    raw.push_back(0);  // filter: none
    raw.insert(raw.end(), r.begin(), r.end());
  }
  uLongf n = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> z(n);
  compress(z.data(), &n, raw.data(), static_cast<uLong>(raw.size()));
  z.resize(n);
  chunk(out, "IDAT", z);
  chunk(out, "IEND", {});
  return out;
}

class ImageFiles : public ::testing::Test {
 protected:
  std::string dir = [] {
    char t[] = "/tmp/qbasicvsr-image-XXXXXX";
    return std::string(mkdtemp(t));
  }();
  ~ImageFiles() override { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string p = dir + "/" + name;
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return p;
  }
};

}  // namespace

TEST_F(ImageFiles, EightBitRgbWithAGammaChunkReadsTheStoredSamples) {
  // gAMA 1/2.2 (45455): a reader that converts to sRGB would change every mid-grey value.
  const std::vector<std::vector<uint8_t>> rows = {{10, 128, 250, 0, 64, 200}};
  const std::vector<uint8_t> gama = {0, 0, 0xb1, 0x8f};
  const Picture plain = read_picture(write("plain.png", png(2, 1, 8, 2, rows)));
  const Picture gamma = read_picture(write("gamma.png", png(2, 1, 8, 2, rows, {{"gAMA", gama}})));
  EXPECT_EQ(plain.color.rgb, (std::vector<uint8_t>{10, 128, 250, 0, 64, 200}));
  EXPECT_EQ(gamma.color.rgb, plain.color.rgb);
  EXPECT_EQ(gamma.color.depth, 8);
  EXPECT_FALSE(gamma.grey);
  EXPECT_FALSE(gamma.has_alpha());
  EXPECT_EQ(read_png(dir + "/gamma.png").rgb, plain.color.rgb);
}

TEST_F(ImageFiles, SixteenBitSamplesKeepTheirDepth) {
  // 0x1234 and 0xfedc big-endian in the file; read_png rounds them to 8 bits: 18 and 254.
  const Picture p = read_picture(write("deep.png", png(1, 1, 16, 2, {{0x12, 0x34, 0xfe, 0xdc, 0x00, 0x80}})));
  EXPECT_EQ(p.color.depth, 16);
  EXPECT_EQ(p.color.rgb16, (std::vector<uint16_t>{0x1234, 0xfedc, 0x0080}));
  EXPECT_TRUE(p.color.rgb.empty());
  EXPECT_EQ(read_png(dir + "/deep.png").rgb, (std::vector<uint8_t>{18, 254, 0}));
  // Written back at 16 bits and read again: the same samples.
  write_picture(dir + "/deep-out.png", p);
  EXPECT_EQ(read_picture(dir + "/deep-out.png").color.rgb16, p.color.rgb16);
}

TEST_F(ImageFiles, GreyAndAlphaAreKept) {
  const Picture grey = read_picture(write("grey.png", png(3, 1, 8, 0, {{0, 77, 255}})));
  EXPECT_TRUE(grey.grey);
  EXPECT_EQ(grey.color.rgb, (std::vector<uint8_t>{0, 0, 0, 77, 77, 77, 255, 255, 255}));
  write_picture(dir + "/grey-out.png", grey);
  const Picture again = read_picture(dir + "/grey-out.png");
  EXPECT_TRUE(again.grey);
  EXPECT_EQ(again.color.rgb, grey.color.rgb);

  const Picture rgba = read_picture(write("rgba.png", png(2, 1, 8, 6, {{1, 2, 3, 128, 4, 5, 6, 255}})));
  EXPECT_EQ(rgba.color.rgb, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(rgba.alpha, (std::vector<uint16_t>{128, 255}));
  write_picture(dir + "/rgba-out.png", rgba);
  EXPECT_EQ(read_picture(dir + "/rgba-out.png").alpha, rgba.alpha);

  const Picture ga = read_picture(write("ga.png", png(1, 1, 8, 4, {{90, 30}})));
  EXPECT_TRUE(ga.grey);
  EXPECT_EQ(ga.color.rgb, (std::vector<uint8_t>{90, 90, 90}));
  EXPECT_EQ(ga.alpha, (std::vector<uint16_t>{30}));
  // Frames with alpha cannot be scored or trained on: what they sit on is unknown.
  EXPECT_NE(test::error_of([&] { read_png(dir + "/rgba.png"); }).find("alpha"), std::string::npos);
}

TEST_F(ImageFiles, PaletteFramesAreExpanded) {
  const std::vector<uint8_t> plte = {255, 0, 0, 0, 0, 255};
  const Picture p = read_picture(write("pal.png", png(2, 1, 8, 3, {{1, 0}}, {{"PLTE", plte}})));
  EXPECT_EQ(p.color.rgb, (std::vector<uint8_t>{0, 0, 255, 255, 0, 0}));
  EXPECT_FALSE(p.grey);
}

TEST_F(ImageFiles, DamagedFilesAreErrorsNamingTheFile) {
  const auto good = png(4, 2, 8, 2, {std::vector<uint8_t>(12, 7), std::vector<uint8_t>(12, 9)});
  // Cut short anywhere after the header, a flipped byte in the data, not a PNG at all.
  auto bad_crc = good;
  bad_crc[bad_crc.size() - 20] ^= 0x40;
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::vector<uint8_t>>>{
           {"cut.png", {good.begin(), good.begin() + 40}},
           {"cut-end.png", {good.begin(), good.end() - 5}},
           {"crc.png", bad_crc},
           {"text.png", {'h', 'e', 'l', 'l', 'o'}},
           {"empty.png", {}}}) {
    const std::string path = write(name, bytes);
    EXPECT_NE(test::error_of([&] { read_picture(path); }).find(name), std::string::npos) << name;
  }
  EXPECT_NE(test::error_of([&] { read_picture(dir + "/missing.png"); }), "");
  // A header that claims 20000x20000 16-bit RGB over a few bytes of data (found by the fuzzer: the
  // decoder allocated 2.4 GB first): refused from the sizes alone.
  const std::string bomb = write("bomb.png", png(20000, 20000, 16, 2, {std::vector<uint8_t>(6, 0)}));
  EXPECT_NE(test::error_of([&] { read_picture(bomb); }).find("bytes of image data"), std::string::npos);
}

TEST_F(ImageFiles, WritesAppearCompleteOrNotAtAll) {
  Image img{2, 1, {1, 2, 3, 4, 5, 6}, 8, {}};
  write_png(dir + "/a.png", img);
  EXPECT_EQ(read_png(dir + "/a.png").rgb, img.rgb);
  EXPECT_FALSE(fs::exists(dir + "/.a.png.partial"));
  // A writer that fails (no such folder) leaves nothing behind; a bad buffer is refused.
  EXPECT_NE(test::error_of([&] { write_png(dir + "/nope/b.png", img); }), "");
  img.rgb.pop_back();
  EXPECT_NE(test::error_of([&] { write_png(dir + "/c.png", img); }), "");
  EXPECT_FALSE(fs::exists(dir + "/c.png"));
  // Temporary files of an interrupted writer are not frames.
  write("f1.png", png(1, 1, 8, 2, {{1, 2, 3}}));
  write(".f2.png.partial", {1, 2});
  write(".f3.png", {1, 2});
  const auto files = list_png_files(dir);
  for (const auto& f : files) EXPECT_NE(fs::path(f).filename().string()[0], '.');
}
