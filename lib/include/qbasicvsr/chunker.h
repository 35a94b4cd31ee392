// Streams frames through the network in chunks (DESIGN.md section 5). The forward branch is
// causal: its hidden feature is carried from chunk to chunk, so its half of every frame is what
// one pass over the whole stream gives. The backward branch needs the future: each chunk runs it
// over itself plus `overlap` lookahead frames, so chunk borders get almost the context a single
// pass would give them. The object behind the GStreamer element and the frame-folder mode,
// testable without GStreamer: push / drain / flush, outputs in input order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>

#include "qbasicvsr/upscaler.h"

namespace qbasicvsr {

// Defaults chosen by measurement (docs/PERF.md, "Streaming"): with the official REDS4 weights on
// real video, chunks of 10 frames with 8 lookahead frames stay within 55 dB (min) / 73 dB (mean) of
// one pass over the whole clip, for 18 frames of latency and 5 % more time than 4 lookahead frames.
struct ChunkerOptions {
  int chunk_size = 10;  // frames output per chunk
  int overlap = 8;      // lookahead frames of the backward branch
};

struct ChunkReport {
  ClipReport clip;          // of the chunk's pass (complexity over the whole window)
  std::size_t frames = 0;   // frames output by the chunk
  std::size_t context = 0;  // lookahead frames it ran with
  bool carried = false;     // the forward branch continued from the previous chunk
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
  // Runs the chunks that hold frames to output (lookahead frames after them only steer them),
  // then ends the stream: the end of a stream, a segment or a discontinuity.
  void drain(const Output& out);
  // Drops everything queued and ends the stream, without output.
  void flush();
  // Adds a frame that is not output, before the first frame that is: the forward branch runs
  // over it (no reconstruction), so that a job resumed at a chunk border, primed with every
  // frame before it, gives exactly the chunks an uninterrupted run would have.
  void prime(Image frame);
  // Adds a frame after the last one to output: lookahead for the backward branch only. A segment
  // of a longer clip ends with the `overlap` frames after it, so that its last chunk gets the
  // lookahead an uninterrupted run gives it.
  void lookahead(Image frame);

  // Frames pushed and not yet output.
  std::size_t pending() const { return pending_.size(); }
  // Frames the element holds back at most: chunk_size + overlap.
  int latency_frames() const { return options_.chunk_size + options_.overlap; }
  const ChunkerOptions& options() const { return options_; }
  void on_report(Report report) { report_ = std::move(report); }

 private:
  enum class Kind { Primed, Output, Lookahead };
  struct Entry {
    Image frame;
    uint64_t tag;
    Kind kind;
  };
  void queue(Entry entry, const Output& out);
  void run(std::size_t n_out, std::size_t n_lookahead, const Output& out);

  Upscaler& upscaler_;
  ChunkerOptions options_;
  std::deque<Entry> pending_;  // not yet run as part of a chunk
  StreamState state_;          // the forward branch, carried between chunks
  Report report_;
  bool lookahead_started_ = false;  // lookahead frames came: no more output frames
};

// One of N segments of a clip, cut at chunk borders, for running on several machines: frames
// [begin, end) are output; [warmup_begin, begin) are primed (the forward branch's warm-up) and
// [end, lookahead_end) are the last chunk's lookahead. With every earlier frame as warm-up the
// segments give exactly the frames of one uninterrupted run.
struct Segment {
  std::size_t warmup_begin = 0, begin = 0, end = 0, lookahead_end = 0;
};
// Segment `index` (1-based) of `count` over `frames` frames, with up to `warmup` frames of warm-up
// (SIZE_MAX: all). Throws Error for an index outside 1..count. Segments may be empty when there are
// fewer chunks than segments.
Segment plan_segment(std::size_t frames, int index, int count, const ChunkerOptions& options,
                     std::size_t warmup = SIZE_MAX);

}  // namespace qbasicvsr
