// Reading a clip (a folder of PNG frames) and the precision options shared by the programs.
#pragma once

#include <string>
#include <vector>

#include "common/cli.h"
#include "qbasicvsr/chunker.h"
#include "qbasicvsr/image.h"
#include "qbasicvsr/upscaler.h"

namespace qbasicvsr::cli {

// The frames of a folder in natural name order; every frame must have the first one's size.
inline std::vector<Image> read_clip(const std::string& dir, std::vector<std::string>* names = nullptr) {
  const auto files = list_png_files(dir);
  std::vector<Image> frames;
  frames.reserve(files.size());
  for (const auto& f : files) {
    frames.push_back(read_png(f));
    if (frames.back().width != frames[0].width || frames.back().height != frames[0].height)
      throw Error(f + " is " + std::to_string(frames.back().width) + "x" +
                  std::to_string(frames.back().height) + ", the clip's frames are " +
                  std::to_string(frames[0].width) + "x" + std::to_string(frames[0].height));
  }
  if (names) *names = files;
  return frames;
}

// A usage text with {chunk}, {overlap}, {tile-overlap} and {max-memory} replaced by the library's
// defaults (ChunkerOptions, UpscalerOptions), so that --help says what the programs do.
inline std::string with_library_defaults(std::string text) {
  const ChunkerOptions chunking;
  const UpscalerOptions upscaling;
  const std::pair<const char*, int> values[] = {{"{chunk}", chunking.chunk_size},
                                                {"{overlap}", chunking.overlap},
                                                {"{tile-overlap}", upscaling.tile_overlap},
                                                {"{max-memory}", upscaling.max_memory_mb}};
  for (const auto& [key, value] : values)
    for (auto at = text.find(key); at != std::string::npos; at = text.find(key))
      text.replace(at, std::string(key).size(), std::to_string(value));
  return text;
}

// Declares -p, --bits, --scope, --no-adapt, --float-layers, --threads and --device.
inline void precision_options(Args& args) {
  args.value("-p", "--precision");
  args.value("", "--float-layers");
  args.value("", "--bits");
  args.value("", "--scope");
  args.flag("--no-adapt");
  args.value("", "--threads");
  args.value("", "--device");
}

// Options from the command line; the precision defaults to `fallback`.
inline UpscalerOptions upscaler_options(const Args& args, Precision fallback) {
  UpscalerOptions o;
  o.precision = args.has("--precision") ? parse_precision(args.get("--precision")) : fallback;
  o.bits = static_cast<int>(args.get_int("--bits", 0, 2, 8));
  if (args.has("--scope")) o.scope = parse_scope(args.get("--scope"));
  o.adaptive = !args.has("--no-adapt");
  if (args.has("--float-layers")) {
    try {
      o.float_layers = parse_compute(args.get("--float-layers"));  // the library's names
    } catch (const Error&) {
      args.die("--float-layers must be fp32, bf16, fp16 (device cuda) or auto");
    }
  }
  o.threads = static_cast<int>(args.get_int("--threads", 0, 0, 1024));
  o.device = args.get("--device", "cpu");
  return o;
}

// "int8 W6 partial, ranges observed" or "... ranges calibrated, 6 per frame" for logs.
inline std::string describe(const Upscaler& u) {
  const auto& o = u.options();
  std::string s = precision_name(o.precision);
  if (const auto q = u.quantization()) {
    int dynamic = 0;
    for (const auto& entry : q->layers) dynamic += entry.second.dynamic;
    s += " W" + std::to_string(q->b_base) + " " + scope_name(q->scope) + ", ranges " +
         (u.observed_ranges() ? "observed on the input" : "calibrated") +
         (dynamic ? ", " + std::to_string(dynamic) + " per frame" : std::string()) +
         (o.adaptive && q->fg_vba.tau_lo ? ", FG-VBA on" : ", FG-VBA off");
    if (o.precision == Precision::Int8) s += std::string(", float layers ") + u.float_arithmetic();
  }
  if (o.device == "cuda") s += std::string(", on cuda, convolutions ") + u.float_arithmetic();
  return s;
}

}  // namespace qbasicvsr::cli
