#include "qbasicvsr/chunker.h"

#include <algorithm>

#include "qbasicvsr/error.h"

namespace qbasicvsr {

Chunker::Chunker(Upscaler& upscaler, const ChunkerOptions& options) : upscaler_(upscaler), options_(options) {
  if (options.chunk_size < 1) throw Error("chunk size must be at least 1");
  if (options.overlap < 0) throw Error("overlap must not be negative");
}

void Chunker::push(Image frame, uint64_t tag, const Output& out) {
  if (lookahead_started_) throw Error("frames to output must come before the lookahead frames");
  queue({std::move(frame), tag, Kind::Output}, out);
}

void Chunker::prime(Image frame) {
  if (lookahead_started_ ||
      std::any_of(pending_.begin(), pending_.end(), [](const Entry& e) { return e.kind == Kind::Output; }))
    throw Error("frames to prime must come before the frames to output");
  queue({std::move(frame), 0, Kind::Primed}, {});
}

void Chunker::lookahead(Image frame) {
  lookahead_started_ = true;
  // Lookahead frames never start a chunk of their own: drain() runs the chunks with outputs.
  pending_.push_back({std::move(frame), 0, Kind::Lookahead});
}

void Chunker::queue(Entry entry, const Output& out) {
  pending_.push_back(std::move(entry));
  const auto c = static_cast<std::size_t>(options_.chunk_size),
             k = static_cast<std::size_t>(options_.overlap);
  if (pending_.size() >= c + k) run(c, k, out);
}

void Chunker::drain(const Output& out) {
  const auto c = static_cast<std::size_t>(options_.chunk_size),
             k = static_cast<std::size_t>(options_.overlap);
  // Primed or lookahead frames with no output frame after them would run for nothing.
  auto has_output = [&] {
    return std::any_of(pending_.begin(), pending_.end(),
                       [](const Entry& e) { return e.kind == Kind::Output; });
  };
  while (has_output()) {
    const std::size_t n = std::min(c, pending_.size());
    run(n, std::min(k, pending_.size() - n), out);
  }
  flush();
}

void Chunker::flush() {
  pending_.clear();
  state_.reset();
  lookahead_started_ = false;
}

void Chunker::run(std::size_t n_out, std::size_t n_lookahead, const Output& out) {
  std::vector<Image> window;
  window.reserve(n_out + n_lookahead);
  for (std::size_t i = 0; i < n_out + n_lookahead; ++i) window.push_back(pending_[i].frame);
  const auto outputs = static_cast<std::size_t>(
      std::count_if(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n_out),
                    [](const Entry& e) { return e.kind == Kind::Output; }));
  const bool output = outputs > 0;
  ChunkReport report;
  report.frames = outputs;
  report.context = n_lookahead;
  report.carried = !state_.empty();
  // A chunk of primed frames only advances the forward branch.
  std::function<void(std::size_t, Image &&)> sink;
  if (output)
    sink = [&](std::size_t i, Image&& frame) {
      if (pending_[i].kind == Kind::Output) out(pending_[i].tag, std::move(frame));
    };
  report.clip = upscaler_.upscale_chunk(window, n_out, state_, sink);
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(n_out));
  if (output && report_) report_(report);
}

Segment plan_segment(std::size_t frames, int index, int count, const ChunkerOptions& options,
                     std::size_t warmup) {
  if (count < 1 || index < 1 || index > count)
    throw Error("segment " + std::to_string(index) + "/" + std::to_string(count) + ": K/N needs 1 <= K <= N");
  const auto c = static_cast<std::size_t>(options.chunk_size);
  const std::size_t chunks = (frames + c - 1) / c;
  Segment s;
  s.begin =
      std::min(frames, chunks * static_cast<std::size_t>(index - 1) / static_cast<std::size_t>(count) * c);
  s.end = std::min(frames, chunks * static_cast<std::size_t>(index) / static_cast<std::size_t>(count) * c);
  s.warmup_begin = s.begin - std::min(s.begin, warmup);
  s.lookahead_end = std::min(frames, s.end + static_cast<std::size_t>(options.overlap));
  return s;
}

}  // namespace qbasicvsr
