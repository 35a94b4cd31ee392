// qbasicvsr-upscale's parts: what a job is, what it reports, and the two modes (frame folders
// through the library's chunker, video files through the GStreamer element).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "qbasicvsr/chunker.h"
#include "qbasicvsr/model_file.h"
#include "qbasicvsr/upscaler.h"

namespace qbasicvsr::upscale {

struct Job {
  std::string model_path;              // resolved (resolve_model)
  std::shared_ptr<const Model> model;  // loaded from model_path
  UpscalerOptions options;
  ChunkerOptions chunking;
  bool resume = false;
  bool json = false;
  bool keep_going = false;  // a damaged or truncated input ends with a warning, not an error
  bool lossless = false;    // video: H.264 at quantizer 0 (4:4:4), for archives and exact merges
  // --segment K/N: only segment K (1-based) of N, with up to `warmup` frames of forward warm-up
  // before it (SIZE_MAX: every earlier frame, which gives exactly the one-process frames).
  int segment = 1, segments = 1;
  std::size_t warmup = SIZE_MAX;
  int merge = 0;  // --merge N: join the N segment pieces of a video into OUTPUT
};

// The piece of OUTPUT that segment K of N writes: OUTPUT.partKofN.mkv.
std::string segment_piece(const std::string& output, int index, int count);

// Progress on a terminal: frames, rate, ETA.
struct Progress {
  bool tty = isatty(STDERR_FILENO);
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(), last;
  void update(std::size_t done, std::size_t total, bool force = false);
  double seconds() const;
};

// What the chunks did, for --json and the closing line.
struct Summary {
  std::size_t frames = 0;
  nlohmann::json chunks = nlohmann::json::array();
  nlohmann::json notes = nlohmann::json::array();  // streams dropped or re-encoded, warnings

  void add(std::size_t n, std::size_t context, bool carried, double C_V, int b_V, double mean_bits, double ms,
           int tiles);
  // A chunk the library's chunker reports (folder mode, video segments).
  void add(const ChunkReport& r) {
    add(r.frames, r.context, r.carried, r.clip.complexity.C_V, r.clip.b_V, r.clip.mean_bits, r.clip.ms,
        r.clip.tiles);
  }
  double mean_bits() const;
  void print(const std::string& input, const std::string& output) const;
};

// The memory budget cannot always be met (the smallest bands still need more): say so, with
// the estimate, before the work starts.
void warn_memory(const Upscaler& upscaler, const Job& job, int width, int height);

int upscale_folder(const Job& job, const std::string& input, const std::string& output);
int upscale_video(const Job& job, const std::string& input, const std::string& output);
// A segment of a video: decoded frames through the chunker (warm-up, outputs, lookahead), encoded
// into its piece with the frames' own timestamps.
int upscale_video_segment(const Job& job, const std::string& input, const std::string& output);
// Joins the pieces without re-encoding and copies the audio from INPUT.
int merge_segments(const Job& job, const std::string& input, const std::string& output);

}  // namespace qbasicvsr::upscale
