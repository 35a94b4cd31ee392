// The chunker: frames out == frames in, order and tags, frames held back, the forward branch
// carried exactly across chunks, exactness against a single pass when the lookahead covers the
// clip, resuming, flush; output ranges and spatial tiling of the Upscaler.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "qbasicvsr/chunker.h"
#include "qbasicvsr/error.h"
#include "test_util.h"

using namespace qbasicvsr;

namespace {

std::vector<Image> random_clip(int n, int w, int h, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<Image> clip(n);
  for (auto& f : clip) {
    f.width = w;
    f.height = h;
    f.rgb.resize(static_cast<std::size_t>(w) * h * 3);
    for (auto& b : f.rgb) b = static_cast<uint8_t>(byte(rng));
  }
  return clip;
}

Architecture small_arch() {
  Architecture a;
  a.channels = 8;
  a.blocks = 1;
  a.hr_channels = 8;
  return a;
}

std::vector<Image> single_pass(Upscaler& u, const std::vector<Image>& clip) {
  std::vector<Image> out;
  u.upscale(clip, [&](std::size_t, Image&& f) { out.push_back(std::move(f)); });
  return out;
}

double psnr(const Image& a, const Image& b) {
  double se = 0;
  for (std::size_t i = 0; i < a.rgb.size(); ++i) se += std::pow(double(a.rgb[i]) - double(b.rgb[i]), 2);
  return se == 0 ? 1e9 : 10 * std::log10(255.0 * 255.0 * a.rgb.size() / se);
}

class ChunkerTest : public ::testing::Test {
 protected:
  // Scale 1: weights large enough that every frame of the window changes the output.
  Model model = random_model(small_arch(), 11, 1.0f);
  UpscalerOptions options() {
    UpscalerOptions o;
    o.threads = 2;
    return o;
  }
};

std::vector<Image> chunked(Upscaler& u, const std::vector<Image>& clip, const ChunkerOptions& o,
                           std::vector<ChunkReport>* reports = nullptr) {
  Chunker ch(u, o);
  if (reports) ch.on_report([&](const ChunkReport& r) { reports->push_back(r); });
  std::vector<Image> out;
  for (std::size_t i = 0; i < clip.size(); ++i)
    ch.push(clip[i], i, [&](uint64_t tag, Image&& f) {
      EXPECT_EQ(tag, out.size());
      out.push_back(std::move(f));
    });
  ch.drain([&](uint64_t, Image&& f) { out.push_back(std::move(f)); });
  return out;
}

// The model with its backward trunk zeroed: the backward features are zero whatever the frames,
// so every output depends on the forward branch alone.
Model forward_only(Model m) {
  for (auto& [name, t] : m.weights)
    if (name.rfind("backward_trunk.", 0) == 0)
      t = HostTensor::from_f32(t.shape, std::vector<float>(static_cast<std::size_t>(t.numel()), 0.0f));
  return m;
}

}  // namespace

TEST_F(ChunkerTest, FramesOutEqualFramesInInOrder) {
  Upscaler up(model, options());
  const int c = 4, k = 2;
  for (int n : {1, c - 1, c, c + 1, c + k, 3 * c + 2}) {
    Chunker ch(up, {c, k});
    std::vector<uint64_t> tags;
    const auto clip = random_clip(n, 6, 5, n);
    auto out = [&](uint64_t tag, Image&& f) {
      EXPECT_EQ(f.width, 24);
      EXPECT_EQ(f.height, 20);
      tags.push_back(tag);
    };
    for (int i = 0; i < n; ++i) {
      ch.push(clip[i], 100 + i, out);
      // A chunk runs as soon as its lookahead is there, and not before.
      const std::size_t expected = i + 1 < c + k ? 0 : static_cast<std::size_t>((i + 1 - k) / c * c);
      EXPECT_EQ(tags.size(), expected) << n << " " << i;
      EXPECT_LE(ch.pending(), static_cast<std::size_t>(ch.latency_frames()));
    }
    ch.drain(out);
    ASSERT_EQ(tags.size(), static_cast<std::size_t>(n)) << n;
    for (int i = 0; i < n; ++i) EXPECT_EQ(tags[i], static_cast<uint64_t>(100 + i));
    EXPECT_EQ(ch.pending(), 0u);
  }
}

TEST_F(ChunkerTest, LookaheadCoveringTheClipGivesTheSinglePassExactly) {
  Upscaler up(model, options());
  const auto clip = random_clip(7, 9, 6, 3);
  const auto reference = single_pass(up, clip);
  std::vector<ChunkReport> reports;
  const auto out = chunked(up, clip, {3, 7}, &reports);
  ASSERT_EQ(out.size(), reference.size());
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].rgb, reference[i].rgb) << i;
  ASSERT_EQ(reports.size(), 3u);  // 3 + 3 + 1 frames
  EXPECT_EQ(reports[0].frames, 3u);
  EXPECT_EQ(reports[2].frames, 1u);
  EXPECT_EQ(reports[0].context, 4u);  // every frame after the chunk
  EXPECT_EQ(reports[1].context, 1u);
  EXPECT_EQ(reports[2].context, 0u);
  EXPECT_FALSE(reports[0].carried);
  EXPECT_TRUE(reports[1].carried);
  EXPECT_TRUE(reports[2].carried);
}

TEST_F(ChunkerTest, TheForwardBranchIsCarriedExactlyAcrossChunks) {
  // Without lookahead the backward branch of a chunk sees none of the frames after it; with the
  // backward trunk zeroed that does not matter, and what is left, the forward branch, must be the
  // single pass's at every frame: a chunker that restarted it (or ran it on a few context frames)
  // would differ from the second chunk on.
  Upscaler up(forward_only(model), options());
  const auto clip = random_clip(11, 8, 6, 12);
  const auto reference = single_pass(up, clip);
  for (const ChunkerOptions o : {ChunkerOptions{1, 0}, ChunkerOptions{3, 0}, ChunkerOptions{4, 2}}) {
    const auto out = chunked(up, clip, o);
    ASSERT_EQ(out.size(), reference.size());
    for (std::size_t i = 0; i < out.size(); ++i)
      EXPECT_EQ(out[i].rgb, reference[i].rgb) << "frame " << i << ", chunk " << o.chunk_size;
  }
  // The same model through the old scheme, a fresh forward branch per chunk, is not the single pass.
  std::vector<Image> restarted;
  for (std::size_t c0 = 0; c0 < clip.size(); c0 += 3) {
    const std::vector<Image> part(clip.begin() + c0, clip.begin() + std::min(clip.size(), c0 + 3));
    up.upscale(part, [&](std::size_t, Image&& f) { restarted.push_back(std::move(f)); });
  }
  EXPECT_NE(restarted[3].rgb, reference[3].rgb);
}

TEST_F(ChunkerTest, ShortLookaheadChangesTheResult) {
  // The tests above would pass with a chunker that ignored its lookahead; this one would not.
  Upscaler up(model, options());
  const auto clip = random_clip(8, 9, 6, 4);
  const auto reference = single_pass(up, clip);
  const auto out = chunked(up, clip, {2, 0});
  int differing = 0;
  for (std::size_t i = 0; i < out.size(); ++i) differing += out[i].rgb != reference[i].rgb;
  EXPECT_GT(differing, 0);
}

TEST_F(ChunkerTest, AStreamKeepsItsFrameSizeUntilDrained) {
  Upscaler up(model, options());
  Chunker ch(up, {2, 0});
  auto out = [](uint64_t, Image&&) {};
  for (const auto& f : random_clip(2, 4, 4, 1)) ch.push(f, 0, out);
  const auto other = random_clip(2, 5, 4, 2);
  ch.push(other[0], 0, out);
  EXPECT_NE(test::error_of([&] { ch.push(other[1], 0, out); }).find("within a stream"), std::string::npos);
  ch.flush();
  for (const auto& f : other) ch.push(f, 0, out);
  ch.drain(out);
}

TEST_F(ChunkerTest, FlushDropsEverything) {
  Upscaler up(model, options());
  Chunker ch(up, {4, 2});
  int outputs = 0;
  auto out = [&](uint64_t, Image&&) { ++outputs; };
  for (const auto& f : random_clip(5, 4, 4, 1)) ch.push(f, 0, out);
  EXPECT_EQ(outputs, 0);
  ch.flush();
  ch.drain(out);
  EXPECT_EQ(outputs, 0);
  // After a flush the next frames may have another size.
  for (const auto& f : random_clip(2, 3, 2, 2)) ch.push(f, 0, out);
  ch.drain(out);
  EXPECT_EQ(outputs, 2);
  EXPECT_NE(test::error_of([&] { Chunker(up, {0, 1}); }), "");
  EXPECT_NE(test::error_of([&] { Chunker(up, {1, -1}); }), "");
}

TEST_F(ChunkerTest, OutputRangeSkipsContextFramesOnly) {
  Upscaler up(model, options());
  const auto clip = random_clip(6, 7, 5, 5);
  const auto reference = single_pass(up, clip);
  std::vector<std::size_t> indices;
  up.upscale(
      clip,
      [&](std::size_t i, Image&& f) {
        indices.push_back(i);
        EXPECT_EQ(f.rgb, reference[i].rgb) << i;
      },
      2, 3);
  EXPECT_EQ(indices, (std::vector<std::size_t>{2, 3, 4}));
}

TEST_F(ChunkerTest, TilesBlendIntoTheUntiledResult) {
  // BasicSR's initialisation scale: the scale-1 network of the other tests is chaotic enough that
  // any change of context anywhere changes every pixel.
  const Model calm = random_model(small_arch(), 11);
  Upscaler whole(calm, options());
  const auto clip = random_clip(4, 10, 40, 6);
  const auto reference = single_pass(whole, clip);
  UpscalerOptions o = options();
  o.tile_rows = 12;
  o.tile_overlap = 8;
  Upscaler tiled(calm, o);
  EXPECT_EQ(tiled.tile_rows(40, 10, 4, 4), 12);
  double worst = 1e9;
  std::size_t n = 0;
  const ClipReport r = tiled.upscale(clip, [&](std::size_t i, Image&& f) {
    EXPECT_EQ(i, n++);
    worst = std::min(worst, psnr(f, reference[i]));
  });
  EXPECT_EQ(n, clip.size());
  EXPECT_EQ(r.tiles, 3);  // rows 0-12, 12-24, 24-40 (a remainder under the overlap joins the last)
  EXPECT_GE(worst, 60.0);
}

TEST_F(ChunkerTest, MemoryBudgetPicksTheBandHeight) {
  UpscalerOptions o = options();
  Upscaler unlimited(model, [&] {
    auto u = o;
    u.max_memory_mb = 0;
    return u;
  }());
  EXPECT_EQ(unlimited.tile_rows(720, 1280, 14, 10), 720);
  o.max_memory_mb = 4096;
  Upscaler budget(model, o);
  const int64_t rows = budget.tile_rows(720, 1280, 14, 10);
  EXPECT_LT(rows, 720);
  EXPECT_LE(budget.estimate_bytes(720, 1280, 14, 10, rows), 4096.0 * (1 << 20));
  // The band height tried before it (heights go down by 3/4) did not fit.
  int64_t taller = 720;
  while (taller * 3 / 4 > rows) taller = taller * 3 / 4;
  EXPECT_GT(budget.estimate_bytes(720, 1280, 14, 10, taller), 4096.0 * (1 << 20));
  EXPECT_EQ(budget.tile_rows(180, 320, 14, 10), 180);  // small frames run whole
}

TEST_F(ChunkerTest, TiledChunksMatchTheTiledSinglePass) {
  // Each band carries its own forward feature; with the lookahead covering the clip the chunks
  // give the tiled single pass exactly.
  const Model calm = random_model(small_arch(), 11);
  UpscalerOptions o = options();
  o.tile_rows = 12;
  o.tile_overlap = 8;
  Upscaler tiled(calm, o);
  const auto clip = random_clip(6, 10, 40, 6);
  const auto reference = single_pass(tiled, clip);
  std::vector<ChunkReport> reports;
  const auto out = chunked(tiled, clip, {2, 5}, &reports);
  ASSERT_EQ(out.size(), reference.size());
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].rgb, reference[i].rgb) << i;
  EXPECT_EQ(reports[1].clip.tiles, 3);
}

TEST_F(ChunkerTest, ResumingAtAChunkBorderWithPrimedFramesMatchesTheUninterruptedRun) {
  Upscaler up(model, options());
  const auto clip = random_clip(11, 6, 5, 9);
  const ChunkerOptions o{3, 2};
  const auto whole = chunked(up, clip, o);
  // Resume at chunk 2 (frame 6): the frames before it only advance the forward branch.
  Chunker b(up, o);
  std::vector<ChunkReport> reports;
  b.on_report([&](const ChunkReport& r) { reports.push_back(r); });
  for (std::size_t i = 0; i < 6; ++i) b.prime(clip[i]);
  std::vector<std::pair<uint64_t, Image>> resumed;
  auto out = [&](uint64_t tag, Image&& f) { resumed.emplace_back(tag, f); };
  for (std::size_t i = 6; i < clip.size(); ++i) b.push(clip[i], i, out);
  b.drain(out);
  ASSERT_EQ(resumed.size(), 5u);
  for (const auto& [tag, f] : resumed) EXPECT_EQ(f.rgb, whole[tag].rgb) << tag;
  ASSERT_EQ(reports.size(), 2u);  // the primed chunks report nothing
  EXPECT_TRUE(reports[0].carried);
  // Priming only the last chunk's frames is not enough: the forward branch reaches back further.
  Chunker c(up, o);
  for (std::size_t i = 3; i < 6; ++i) c.prime(clip[i]);
  std::vector<Image> partial;
  for (std::size_t i = 6; i < clip.size(); ++i)
    c.push(clip[i], i, [&](uint64_t, Image&& f) { partial.push_back(f); });
  c.drain([&](uint64_t, Image&& f) { partial.push_back(f); });
  EXPECT_NE(partial[0].rgb, whole[6].rgb);
  EXPECT_NE(test::error_of([&] { b.push(clip[0], 0, out), b.prime(clip[0]); }), "");
}

TEST_F(ChunkerTest, QuantizedStreamsPickTheirBitsPerChunkAndResumeExactly) {
  // Fake quantization, FG-VBA on spatial detail alone: flat frames are "simple" (b_V = -1),
  // noise is not. The bits follow each chunk's window, and a run resumed after the flat chunk
  // (primed through it) reproduces the uninterrupted run, forward state at the lower bits included.
  Model q = model;
  QuantSettings s;
  s.b_base = 6;
  s.fg_vba.lambda = 0;
  s.fg_vba.tau_lo = 1;
  s.fg_vba.tau_hi = 1e9;
  q.quantization = s;
  UpscalerOptions o = options();
  o.precision = Precision::Fake;
  Upscaler up(q, o);
  auto clip = random_clip(9, 6, 5, 21);
  for (std::size_t i = 0; i < 4; ++i) std::fill(clip[i].rgb.begin(), clip[i].rgb.end(), uint8_t{90});
  std::vector<ChunkReport> reports;
  const auto whole = chunked(up, clip, {3, 1}, &reports);
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports[0].clip.b_V, -1);  // frames 0..3
  EXPECT_EQ(reports[1].clip.b_V, 0);   // frames 2..6
  EXPECT_EQ(reports[2].clip.b_V, 0);
  EXPECT_LT(reports[0].clip.mean_bits, reports[1].clip.mean_bits);
  Chunker b(up, {3, 1});
  std::vector<ChunkReport> resumed_reports;
  b.on_report([&](const ChunkReport& r) { resumed_reports.push_back(r); });
  for (std::size_t i = 0; i < 3; ++i) b.prime(clip[i]);
  std::vector<Image> resumed;
  auto out = [&](uint64_t, Image&& f) { resumed.push_back(f); };
  for (std::size_t i = 3; i < clip.size(); ++i) b.push(clip[i], i, out);
  b.drain(out);
  ASSERT_EQ(resumed.size(), 6u);
  for (std::size_t i = 0; i < resumed.size(); ++i) EXPECT_EQ(resumed[i].rgb, whole[i + 3].rgb) << i;
  ASSERT_EQ(resumed_reports.size(), 2u);
  EXPECT_EQ(resumed_reports[0].clip.complexity.C_V, reports[1].clip.complexity.C_V);
}

TEST_F(ChunkerTest, SegmentsWithEveryEarlierFrameAsWarmupGiveTheUninterruptedRun) {
  Upscaler up(model, options());
  const auto clip = random_clip(11, 6, 5, 31);
  const ChunkerOptions o{3, 2};
  const auto whole = chunked(up, clip, o);
  std::vector<std::size_t> done;
  for (int k = 1; k <= 3; ++k) {
    const Segment s = plan_segment(clip.size(), k, 3, o);
    Chunker ch(up, o);
    auto out = [&](uint64_t tag, Image&& f) {
      EXPECT_EQ(f.rgb, whole[tag].rgb) << "segment " << k << ", frame " << tag;
      done.push_back(tag);
    };
    for (std::size_t i = s.warmup_begin; i < s.begin; ++i) ch.prime(clip[i]);
    for (std::size_t i = s.begin; i < s.end; ++i) ch.push(clip[i], i, out);
    for (std::size_t i = s.end; i < s.lookahead_end; ++i) ch.lookahead(clip[i]);
    ch.drain(out);
  }
  // 4 chunks over 3 segments: frames 0-2, 3-5, 6-10; each frame once, in order.
  std::vector<std::size_t> all(clip.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  EXPECT_EQ(done, all);
  EXPECT_EQ(plan_segment(11, 2, 3, o).begin, 3u);
  EXPECT_EQ(plan_segment(11, 2, 3, o).lookahead_end, 8u);
  EXPECT_EQ(plan_segment(11, 3, 3, o, 4).warmup_begin, 2u);
  EXPECT_NE(test::error_of([&] { plan_segment(11, 0, 3, o); }), "");
  EXPECT_NE(test::error_of([&] { plan_segment(11, 4, 3, o); }), "");
  // Outputs after lookahead frames are refused; a short warm-up is not exact (the test can fail).
  Chunker ch(up, o);
  ch.lookahead(clip[0]);
  EXPECT_NE(test::error_of([&] { ch.push(clip[1], 1, [](uint64_t, Image&&) {}); }), "");
  const Segment s = plan_segment(clip.size(), 3, 3, o, 1);
  Chunker short_warmup(up, o);
  std::vector<Image> got;
  for (std::size_t i = s.warmup_begin; i < s.begin; ++i) short_warmup.prime(clip[i]);
  for (std::size_t i = s.begin; i < s.end; ++i)
    short_warmup.push(clip[i], i, [&](uint64_t, Image&& f) { got.push_back(f); });
  short_warmup.drain([&](uint64_t, Image&& f) { got.push_back(f); });
  EXPECT_NE(got[0].rgb, whole[s.begin].rgb);
}
