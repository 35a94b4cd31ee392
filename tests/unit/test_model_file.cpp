// Model file container and model validation: every malformed input gets a named error.
#include <gtest/gtest.h>

#include <cstring>

#include "qbasicvsr/error.h"
#include "qbasicvsr/model_file.h"
#include "test_util.h"

using namespace qbasicvsr;
using test::error_of;

namespace {

std::vector<uint8_t> raw_file(const std::string& header, const std::vector<uint8_t>& data = {}) {
  std::vector<uint8_t> out(8);
  const uint64_t len = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(len >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  return error_of([&] { parse_safetensors(bytes.data(), bytes.size()); });
}

}  // namespace

TEST(Safetensors, RoundTripKeepsTensorsAndMetadata) {
  SafetensorsFile f;
  f.metadata["k"] = "v";
  f.tensors["x"] = HostTensor::from_f32({2, 2}, {1, 2, 3, 4});
  HostTensor b;
  b.dtype = DType::U8;
  b.shape = {3};
  b.bytes = {7, 8, 9};
  f.tensors["b"] = b;
  const auto bytes = serialize_safetensors(f);
  const auto g = parse_safetensors(bytes.data(), bytes.size());
  EXPECT_EQ(g.metadata.at("k"), "v");
  EXPECT_EQ(g.tensors.at("x").to_f32(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(g.tensors.at("b").bytes, (std::vector<uint8_t>{7, 8, 9}));
  uint64_t hlen;
  std::memcpy(&hlen, bytes.data(), 8);
  EXPECT_EQ(hlen % 8, 0u) << "data section must start 8-byte aligned";
}

TEST(Safetensors, RejectsTruncatedAndOversizedHeaders) {
  EXPECT_NE(parse_error({1, 2, 3}).find("truncated"), std::string::npos);
  auto f = raw_file("{}");
  f[0] = 0xff;
  f[1] = 0xff;
  EXPECT_NE(parse_error(f).find("truncated"), std::string::npos);
  auto huge = raw_file("{}");
  huge[4] = 0x01;  // 2^32 + 2 bytes of header
  EXPECT_NE(parse_error(huge).find("too large"), std::string::npos);
}

TEST(Safetensors, RejectsBadJsonAndEntries) {
  EXPECT_NE(parse_error(raw_file("{\"a\": ")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error(raw_file("[1, 2]")).find("not a JSON object"), std::string::npos);
  EXPECT_NE(
      parse_error(raw_file(R"({"t": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}})", {0, 0, 0, 0}))
          .find("unsupported dtype"),
      std::string::npos);
  EXPECT_NE(
      parse_error(raw_file(R"({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", {0, 0, 0, 0}))
          .find("non-negative"),
      std::string::npos);
  EXPECT_NE(
      parse_error(raw_file(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})", {0, 0, 0, 0}))
          .find("bytes of data for shape [2]"),
      std::string::npos);
  EXPECT_NE(
      parse_error(raw_file(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}})", {0, 0, 0, 0}))
          .find("truncated"),
      std::string::npos);
  EXPECT_NE(parse_error(
                raw_file(R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", {0, 0, 0, 0, 9}))
                .find("trailing"),
            std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                                 {0, 0, 0, 0}))
                .find("overlaps"),
            std::string::npos);
  EXPECT_NE(
      parse_error(
          raw_file(
              R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 4]}})",
              {0, 0, 0, 0}))
          .find("too large"),
      std::string::npos);
  EXPECT_NE(parse_error(raw_file(R"({"__metadata__": {"k": 3}})")).find("not a string"), std::string::npos);
}

TEST(Model, SaveLoadRoundTrip) {
  const Model m = random_model(test::tiny_arch(), 3);
  const auto file = model_to_safetensors(m);
  const auto bytes = serialize_safetensors(file);
  const Model back = model_from_safetensors(parse_safetensors(bytes.data(), bytes.size()));
  EXPECT_EQ(back.arch, m.arch);
  EXPECT_EQ(back.weights.size(), m.weights.size());
  EXPECT_EQ(back.weights.at("conv_last.weight").bytes, m.weights.at("conv_last.weight").bytes);
  EXPECT_EQ(back.provenance_json, m.provenance_json);
}

TEST(Model, NamesTheFirstProblem) {
  Model m = random_model(test::tiny_arch(), 1);
  auto check = [](Model bad, const std::string& expect) {
    const auto err = error_of([&] { bad.validate(); });
    EXPECT_NE(err.find(expect), std::string::npos) << err;
  };
  {
    Model bad = m;
    bad.weights.erase("fusion.bias");
    check(bad, "missing tensor \"fusion.bias\"");
  }
  {
    Model bad = m;
    bad.weights["extra.weight"] = HostTensor::from_f32({1}, {0});
    check(bad, "unexpected tensor \"extra.weight\"");
  }
  {
    Model bad = m;
    bad.weights["conv_hr.weight"] = HostTensor::from_f32({4, 4, 1, 1}, std::vector<float>(16));
    check(bad, "\"conv_hr.weight\" has shape [4, 4, 1, 1], expected [4, 4, 3, 3]");
  }
  {
    Model bad = m;
    auto& t = bad.weights["fusion.bias"];
    t.dtype = DType::I32;
    check(bad, "dtype I32, expected F32");
  }
}

TEST(Model, RejectsFilesThatAreNotModels) {
  SafetensorsFile f;
  f.tensors["x"] = HostTensor::from_f32({1}, {0});
  EXPECT_NE(error_of([&] { model_from_safetensors(f); }).find("not a qbasicvsr model"), std::string::npos);
  f.metadata["format"] = "something-else";
  EXPECT_NE(error_of([&] { model_from_safetensors(f); }).find("unsupported model file format"),
            std::string::npos);
  f.metadata["format"] = kFormatValue;
  EXPECT_NE(error_of([&] { model_from_safetensors(f); }).find("architecture"), std::string::npos);
  f.metadata["architecture"] = R"({"network": "BasicVSR", "channels": 0, "blocks": 1, "hr_channels": 4})";
  EXPECT_NE(error_of([&] { model_from_safetensors(f); }).find("channels must be"), std::string::npos);
  f.metadata["architecture"] = "not json";
  EXPECT_NE(error_of([&] { model_from_safetensors(f); }).find("not a JSON object"), std::string::npos);
}

TEST(Model, MissingFileIsAnError) {
  EXPECT_NE(error_of([] { load_model("/nonexistent/model.safetensors"); }).find("cannot open"),
            std::string::npos);
}

TEST(Architecture, ParameterCountOfOfficialBasicVSR) {
  Architecture a;  // C=64, N=30: the published 6.3 M parameters
  EXPECT_EQ(parameter_count(a), 6291311);
}

TEST(Architecture, ParsesTheCommandLineForm) {
  const Architecture a = Architecture::parse("48,8,32");
  EXPECT_EQ(a.channels, 48);
  EXPECT_EQ(a.blocks, 8);
  EXPECT_EQ(a.hr_channels, 32);
  const Architecture b = Architecture::parse("16,0");  // HR defaults to C; no blocks is a network
  EXPECT_EQ(b.channels, 16);
  EXPECT_EQ(b.blocks, 0);
  EXPECT_EQ(b.hr_channels, 16);
  for (const char* bad : {"", "64", "64,", ",30", "64,30,64,1", "64;30", "64,x", "-1,3", "64,30,", "1e3,2"})
    EXPECT_NE(error_of([&] { Architecture::parse(bad); }).find("--arch must be"), std::string::npos) << bad;
  EXPECT_NE(error_of([] { Architecture::parse("0,3"); }).find("channels must be"), std::string::npos);
}

TEST(Sha256, KnownVectors) {
  const std::string abc = "abc";
  EXPECT_EQ(sha256_hex(reinterpret_cast<const uint8_t*>(abc.data()), abc.size()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(nullptr, 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string two_blocks(100, 'a');
  EXPECT_EQ(sha256_hex(reinterpret_cast<const uint8_t*>(two_blocks.data()), two_blocks.size()),
            "2816597888e4a0d3a36b82b83316ab32680eb8f00f8cd3b904d681246d285a0e");
}
