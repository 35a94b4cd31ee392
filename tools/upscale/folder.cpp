// Frame folders through the library's chunker: frames stream from disk (bounded memory whatever
// their number), are read as stored (8/16 bits, grey, alpha) and written back the same way, each
// file complete or absent; --resume keeps the complete frames and redoes the rest exactly.
#include <algorithm>
#include <filesystem>
#include <map>

#include "common/clip.h"
#include "common/safe_output.h"
#include "qbasicvsr/image.h"
#include "upscale/job.h"

namespace qbasicvsr::upscale {

namespace {

namespace fs = std::filesystem;

constexpr int kScale = 4;

// What a frame keeps outside the network: how it is stored and its alpha plane.
struct Extra {
  bool grey = false;
  std::vector<uint16_t> alpha;
};

// Alpha enlarged by pixel repetition, as the element does it.
std::vector<uint16_t> enlarge(const std::vector<uint16_t>& alpha, int w, int h) {
  std::vector<uint16_t> out(static_cast<std::size_t>(w) * h * kScale * kScale);
  const int W = w * kScale;
  for (int y = 0; y < h * kScale; ++y)
    for (int x = 0; x < W; ++x)
      out[static_cast<std::size_t>(y) * W + x] = alpha[static_cast<std::size_t>(y / kScale) * w + x / kScale];
  return out;
}

// A grey frame's output made grey again: BT.601 luma of the network's RGB (equal channels stay).
template <typename T>
void make_grey(std::vector<T>& rgb, double max) {
  for (std::size_t i = 0; i + 2 < rgb.size(); i += 3) {
    const double y = 0.299 * rgb[i] + 0.587 * rgb[i + 1] + 0.114 * rgb[i + 2];
    rgb[i] = rgb[i + 1] = rgb[i + 2] = static_cast<T>(std::clamp(std::round(y), 0.0, max));
  }
}

// An output frame that a resumed job can keep: it decodes, at 4x the input size and its depth.
bool complete(const std::string& path, const Image& first) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  try {
    const Picture p = read_picture(path);
    return p.color.width == kScale * first.width && p.color.height == kScale * first.height &&
           p.color.depth == first.depth;
  } catch (const Error&) {
    return false;
  }
}

std::string size_of(const Image& f) {
  return std::to_string(f.width) + "x" + std::to_string(f.height) + " (" + std::to_string(f.depth) + "-bit)";
}

}  // namespace

int upscale_folder(const Job& job, const std::string& input, const std::string& output) {
  const Model& model = *job.model;
  const std::vector<std::string> files = list_png_files(input);
  std::error_code ec;
  fs::create_directories(output, ec);
  if (!fs::is_directory(output, ec)) throw Error(output + ": cannot create output folder");
  cli::check_writable_folder(output);
  // Segments of one job write into one folder side by side: each locks its own part of it.
  const bool whole = job.segments == 1;
  const std::string lock_path =
      whole ? output
            : (fs::path(output) / (".qbasicvsr-segment-" + std::to_string(job.segment) + "-of-" +
                                   std::to_string(job.segments) + ".lock"))
                  .string();
  const cli::OutputLock lock(
      lock_path, output + (whole ? "" : " (segment " + std::to_string(job.segment) + ")"), !whole);
  auto out_path = [&](std::size_t i) { return (fs::path(output) / fs::path(files[i]).filename()).string(); };

  // Every frame must match the first one's size and depth.
  const Image first = read_picture(files[0]).color;
  auto read = [&](std::size_t i) {
    Picture p = read_picture(files[i]);
    if (p.color.width != first.width || p.color.height != first.height || p.color.depth != first.depth)
      throw Error(files[i] + " is " + size_of(p.color) + ", the clip's frames are " + size_of(first));
    return p;
  };

  Upscaler upscaler(model, job.options);
  warn_memory(upscaler, job, first.width, first.height);
  const Segment seg = plan_segment(files.size(), job.segment, job.segments, job.chunking, job.warmup);
  // Resume at the chunk that holds the first frame OUTPUT lacks (or has incomplete).
  std::size_t start = seg.begin;
  if (job.resume) {
    std::size_t missing = seg.begin;
    while (missing < seg.end && complete(out_path(missing), first)) ++missing;
    const auto c = static_cast<std::size_t>(job.chunking.chunk_size);
    start = seg.begin + (missing - seg.begin) / c * c;
  }
  Progress progress;
  // The settings on a terminal; a script's log gets the one line that matters (resumed, error).
  if (progress.tty)
    std::fprintf(stderr, "qbasicvsr-upscale: %zu frames %s, model %s (%s), %s\n", files.size(),
                 size_of(first).c_str(), job.model_path.c_str(), model.arch.summary().c_str(),
                 precision_name(upscaler.options().precision));
  if (!whole)
    std::fprintf(stderr,
                 "qbasicvsr-upscale: segment %d/%d: frames %zu..%zu (warm-up from %zu, lookahead to %zu)\n",
                 job.segment, job.segments, seg.begin, seg.end, seg.warmup_begin, seg.lookahead_end);
  if (start > seg.begin) std::fprintf(stderr, "qbasicvsr-upscale: resuming at frame %zu\n", start);
  if (start >= seg.end) {
    std::fprintf(stderr, "qbasicvsr-upscale: %s already holds every frame%s\n", output.c_str(),
                 whole ? "" : " of the segment");
    return 0;
  }
  Chunker chunker(upscaler, job.chunking);
  // The forward branch reaches back to the first frame (or the segment's warm-up): it runs again
  // over the frames before `start` (no reconstruction), so that the rest comes out exactly as in
  // an uninterrupted run.
  for (std::size_t i = seg.warmup_begin; i < start; ++i) chunker.prime(read(i).color);
  std::size_t done = 0;
  ChunkReport last;
  Summary summary;
  chunker.on_report([&](const ChunkReport& r) {
    last = r;
    summary.add(r);
  });
  std::map<uint64_t, Extra> extras;
  auto write = [&](uint64_t i, Image&& img) {
    Picture p;
    p.color = std::move(img);
    Extra& e = extras[i];
    p.grey = e.grey;
    if (e.grey) {
      if (p.color.depth == 8)
        make_grey(p.color.rgb, 255.0);
      else
        make_grey(p.color.rgb16, 65535.0);
    }
    if (!e.alpha.empty()) p.alpha = enlarge(e.alpha, first.width, first.height);
    extras.erase(i);
    write_picture(out_path(i), p);
    progress.update(++done, seg.end - start);
  };
  for (std::size_t i = start; i < seg.end; ++i) {
    if (cli::Interrupts::count() > 0) {
      // Stopped between chunks: every frame written is complete, and --resume redoes the rest.
      std::fprintf(stderr, "\nqbasicvsr-upscale: stopped by %s after %zu frames; --resume continues\n",
                   cli::Interrupts::name(), start + done);
      return cli::Interrupts::exit_code();
    }
    Picture p = read(i);
    extras[i] = {p.grey, std::move(p.alpha)};
    chunker.push(std::move(p.color), i, write);
  }
  for (std::size_t i = seg.end; i < seg.lookahead_end; ++i) chunker.lookahead(read(i).color);
  chunker.drain(write);
  progress.update(done, seg.end - start, true);
  const double s = progress.seconds();
  std::fprintf(stderr, "%s%zu frames in %.1f s (%.2f s/frame) -> %s\n", progress.tty ? "\n" : "", done, s,
               s / static_cast<double>(std::max<std::size_t>(done, 1)), output.c_str());
  if (upscaler.quantization())
    std::fprintf(stderr, "qbasicvsr-upscale: %s; last chunk C_V %.2f, b_V %+d, mean %.2f bits\n",
                 cli::describe(upscaler).c_str(), last.clip.complexity.C_V, last.clip.b_V,
                 last.clip.mean_bits);
  summary.frames = done;
  if (job.json) summary.print(input, output);
  return 0;
}

}  // namespace qbasicvsr::upscale
