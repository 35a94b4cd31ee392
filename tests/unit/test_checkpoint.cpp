// torch.save readers (zip and legacy), the Torch7 reader and the importer's rejections.
#include <gtest/gtest.h>

#include <numeric>

#include "qbasicvsr/error.h"
#include "qbasicvsr/importer.h"
#include "qbasicvsr/model_file.h"
#include "qbasicvsr/torch7.h"
#include "qbasicvsr/torch_checkpoint.h"
#include "test_util.h"

using namespace qbasicvsr;
using test::error_of;
using Kind = PyValue::Kind;

namespace {

const std::string kFixtures = QBASICVSR_FIXTURES;

std::vector<float> values(const TorchCheckpoint& c, PyRef sd, const std::string& key) {
  PyRef t = sd->get(key);
  EXPECT_TRUE(t && t->kind == Kind::Tensor) << key;
  return c.materialize(t->tensor).to_f32();
}

void expect_fixture_state(const TorchCheckpoint& c, PyRef sd, const std::string& prefix) {
  ASSERT_TRUE(sd && sd->kind == Kind::Dict);
  std::vector<float> a(24);
  std::iota(a.begin(), a.end(), 0.0f);
  EXPECT_EQ(values(c, sd, prefix + "a.weight"), a);
  EXPECT_EQ(values(c, sd, prefix + "a.bias"), (std::vector<float>{0, 1, 2, 3, 4}));
  // arange(6).view(2,3).t(): a strided view, materialised in C order.
  EXPECT_EQ(values(c, sd, prefix + "t.weight"), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(values(c, sd, prefix + "v.weight"), (std::vector<float>{4, 5, 6}));  // fp16, offset 4
  PyRef count = sd->get(prefix + "count");
  ASSERT_TRUE(count && count->kind == Kind::Tensor);
  EXPECT_EQ(c.materialize(count->tensor).dtype, DType::I64);
  EXPECT_TRUE(c.materialize(count->tensor).shape.empty());
  EXPECT_EQ(sd->dict[0].first->s, prefix + "a.weight") << "insertion order is kept";
}

}  // namespace

TEST(TorchCheckpoint, ReadsZipArchives) {
  const auto c = TorchCheckpoint::read(kFixtures + "/basicsr_zip.pth");
  expect_fixture_state(c, c.root()->get("params"), "");
}

TEST(TorchCheckpoint, ReadsLegacyStreams) {
  const auto c = TorchCheckpoint::read(kFixtures + "/basicsr_legacy.pth");
  expect_fixture_state(c, c.root()->get("params"), "");
  expect_fixture_state(c, c.root()->get("params_ema"), "");
}

TEST(TorchCheckpoint, KeepsUnknownGlobalsOpaque) {
  const auto c = TorchCheckpoint::read(kFixtures + "/mmagic_zip.pth");
  expect_fixture_state(c, c.root()->get("state_dict"), "generator.");
  PyRef meta = c.root()->get("meta");
  ASSERT_TRUE(meta && meta->kind == Kind::Dict);
  PyRef epoch = meta->get("epoch");
  ASSERT_TRUE(epoch);
  EXPECT_EQ(epoch->kind, Kind::Opaque);
  EXPECT_EQ(epoch->s, "numpy.core.multiarray.scalar");
  PyRef hist = meta->get("hist");
  ASSERT_TRUE(hist && hist->kind == Kind::List);
  ASSERT_EQ(hist->items.size(), 5u);
  EXPECT_EQ(hist->items[0]->i, 1);
  EXPECT_DOUBLE_EQ(hist->items[1]->f, 2.5);
  EXPECT_EQ(hist->items[2]->s, "x");
  EXPECT_EQ(hist->items[3]->kind, Kind::None);
  EXPECT_TRUE(hist->items[4]->b);
}

TEST(TorchCheckpoint, RejectsDamagedFiles) {
  auto bytes = read_file_bytes(kFixtures + "/basicsr_zip.pth");
  // Truncation anywhere must give an Error, never a crash.
  for (std::size_t n :
       {std::size_t{0}, std::size_t{3}, std::size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(error_of([&] { TorchCheckpoint::parse(cut); }).empty()) << n;
  }
  auto legacy = read_file_bytes(kFixtures + "/basicsr_legacy.pth");
  for (std::size_t n = 0; n < legacy.size(); n += 37) {
    std::vector<uint8_t> cut(legacy.begin(), legacy.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(error_of([&] { TorchCheckpoint::parse(cut); }).empty()) << n;
  }
  std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o'};
  EXPECT_NE(error_of([&] { TorchCheckpoint::parse(text); }).find("pickle"), std::string::npos);
  // A pickle program with an opcode outside the subset torch.save uses (INST).
  std::vector<uint8_t> inst = {0x80, 0x02, 'i', 'o', 's', '\n', 's', 'y', 's', 't', 'e', 'm', '\n', '.'};
  EXPECT_NE(error_of([&] { TorchCheckpoint::parse(inst); }).find("unsupported opcode"), std::string::npos);
}

TEST(Torch7, ReadsConvolutionsOfASequential) {
  const auto convs = read_t7_convolutions(kFixtures + "/small_sequential.t7");
  ASSERT_EQ(convs.size(), 2u);
  EXPECT_EQ(convs[0].weight.shape, (std::vector<int64_t>{2, 1, 3, 3}));
  std::vector<float> w1(18);
  std::iota(w1.begin(), w1.end(), 0.0f);
  EXPECT_EQ(convs[0].weight.to_f32(), w1);
  EXPECT_EQ(convs[0].bias.to_f32(), (std::vector<float>{0.5f, -0.5f}));
  EXPECT_EQ(convs[1].weight.shape, (std::vector<int64_t>{1, 1, 2, 2})) << "flat MM weight reshaped";
  EXPECT_EQ(convs[1].weight.to_f32(), (std::vector<float>{0, 0.25f, 0.5f, 0.75f}));
}

TEST(Torch7, RejectsDamagedFiles) {
  const auto bytes = read_file_bytes(kFixtures + "/small_sequential.t7");
  for (std::size_t n = 0; n < bytes.size(); n += 13) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(error_of([&] { parse_t7_convolutions(cut); }).empty()) << n;
  }
  std::vector<uint8_t> number = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_NE(error_of([&] { parse_t7_convolutions(number); }).find("expected nn.Sequential"),
            std::string::npos);
  std::vector<uint8_t> bad_tag = {9, 0, 0, 0};
  EXPECT_NE(error_of([&] { parse_t7_convolutions(bad_tag); }).find("unsupported object type"),
            std::string::npos);
}

TEST(Importer, RejectsCheckpointsThatAreNotBasicVSR) {
  const auto err =
      error_of([] { import_checkpoint(kFixtures + "/basicsr_zip.pth", {}, CheckpointFormat::Auto); });
  EXPECT_NE(err.find("entry \"count\": expected a floating-point tensor"), std::string::npos) << err;
  EXPECT_NE(error_of([] { parse_checkpoint_format("caffe"); }).find("unknown checkpoint format"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { import_checkpoint("/nonexistent.pth", {}, CheckpointFormat::Auto); }).find("cannot open"),
      std::string::npos);
}
