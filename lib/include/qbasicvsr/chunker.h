// Streams frames through the network in chunks (DESIGN.md section 5): each chunk runs both
// propagation directions over itself plus `overlap` context frames on each side, so chunk
// borders get the context a single pass would give them. The object behind the GStreamer
// element, testable without GStreamer: push / drain / flush, outputs in input order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>

#include "qbasicvsr/upscaler.h"

namespace qbasicvsr {

struct ChunkerOptions {
  int chunk_size = 10;  // frames output per chunk
  int overlap = 4;      // context frames on each side
};

struct ChunkReport {
  ClipReport clip;          // of the chunk's pass (complexity over the whole window)
  std::size_t frames = 0;   // frames output by the chunk
  std::size_t context = 0;  // context frames it ran with
};

class Chunker {
 public:
  // Receives every output frame with the tag its input was pushed with.
  using Output = std::function<void(uint64_t tag, Image&& frame)>;
  using Report = std::function<void(const ChunkReport&)>;

  // Throws Error for chunk_size < 1 or overlap < 0.
  Chunker(Upscaler& upscaler, const ChunkerOptions& options);

  // Queues a frame; runs a chunk (and calls `out` for its frames) once chunk_size + overlap
  // frames wait. Frames must all have the size of the first one since the last drain().
  void push(Image frame, uint64_t tag, const Output& out);
  // Runs everything still queued, then forgets the context: the end of a stream or a
  // discontinuity.
  void drain(const Output& out);
  // Drops everything queued and the context, without output.
  void flush();
  // Adds a frame as left context only (it is not output): resuming a clip at a chunk border
  // with the frames before it gives the chunks an uninterrupted run would have.
  void prime(Image frame);

  // Frames pushed and not yet output.
  std::size_t pending() const { return pending_.size(); }
  // Frames the element holds back at most: chunk_size + overlap.
  int latency_frames() const { return options_.chunk_size + options_.overlap; }
  const ChunkerOptions& options() const { return options_; }
  void on_report(Report report) { report_ = std::move(report); }

 private:
  struct Entry {
    Image frame;
    uint64_t tag;
  };
  void run(std::size_t n_out, std::size_t n_right, const Output& out);

  Upscaler& upscaler_;
  ChunkerOptions options_;
  std::deque<Entry> pending_;  // not yet output
  std::deque<Image> context_;  // the last frames output, left context of the next chunk
  Report report_;
};

}  // namespace qbasicvsr
