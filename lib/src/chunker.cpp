#include "qbasicvsr/chunker.h"

#include <algorithm>

#include "qbasicvsr/error.h"

namespace qbasicvsr {

Chunker::Chunker(Upscaler& upscaler, const ChunkerOptions& options) : upscaler_(upscaler), options_(options) {
  if (options.chunk_size < 1) throw Error("chunk size must be at least 1");
  if (options.overlap < 0) throw Error("overlap must not be negative");
}

void Chunker::push(Image frame, uint64_t tag, const Output& out) {
  pending_.push_back({std::move(frame), tag});
  const auto c = static_cast<std::size_t>(options_.chunk_size),
             k = static_cast<std::size_t>(options_.overlap);
  if (pending_.size() >= c + k) run(c, k, out);
}

void Chunker::drain(const Output& out) {
  const auto c = static_cast<std::size_t>(options_.chunk_size),
             k = static_cast<std::size_t>(options_.overlap);
  while (!pending_.empty()) {
    const std::size_t n = std::min(c, pending_.size());
    run(n, std::min(k, pending_.size() - n), out);
  }
  context_.clear();
}

void Chunker::flush() {
  pending_.clear();
  context_.clear();
}

void Chunker::prime(Image frame) {
  if (!pending_.empty()) throw Error("context frames must come before the frames to output");
  context_.push_back(std::move(frame));
  while (context_.size() > static_cast<std::size_t>(options_.overlap)) context_.pop_front();
}

void Chunker::run(std::size_t n_out, std::size_t n_right, const Output& out) {
  std::vector<Image> window(context_.begin(), context_.end());
  for (std::size_t i = 0; i < n_out + n_right; ++i) window.push_back(pending_[i].frame);
  const std::size_t first = context_.size();
  ChunkReport report;
  report.frames = n_out;
  report.context = first + n_right;
  report.clip = upscaler_.upscale(
      window, [&](std::size_t i, Image&& frame) { out(pending_[i - first].tag, std::move(frame)); }, first,
      n_out);
  for (std::size_t i = 0; i < n_out; ++i) {
    context_.push_back(std::move(pending_.front().frame));
    pending_.pop_front();
  }
  while (context_.size() > static_cast<std::size_t>(options_.overlap)) context_.pop_front();
  if (report_) report_(report);
}

}  // namespace qbasicvsr
