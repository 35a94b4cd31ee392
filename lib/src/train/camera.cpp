// Training video from still photographs: a camera window moving over the picture.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "net/tensor_image.h"
#include "qbasicvsr/error.h"
#include "train/training_internal.h"

namespace qbasicvsr {

namespace {

constexpr int kBicubic = 2;        // at::grid_sampler interpolation mode
constexpr int kBorderPadding = 1;  // padding mode

int window_side(int side, const CameraMotion& m) {
  const int w = std::max(m.min_window, static_cast<int>(side * m.window)) / 4 * 4;
  return std::min(w, (side - 8) / 4 * 4);
}

// Moves x by v inside [lo, hi], reflecting at the ends (v flips sign there).
void bounce(double& x, double& v, double lo, double hi) {
  x += v;
  for (int k = 0; k < 4 && (x < lo || x > hi); ++k) {
    x = x < lo ? 2 * lo - x : 2 * hi - x;
    v = -v;
  }
  x = std::clamp(x, lo, hi);
}

}  // namespace

Image render_view(const at::Tensor& still, const CameraPose& pose, int width, int height) {
  const int64_t H = still.size(2), W = still.size(3);
  const auto opts = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor i =
      at::arange(width, opts).sub((width - 1) / 2.0).view({1, width}).expand({height, width});
  const at::Tensor j =
      at::arange(height, opts).sub((height - 1) / 2.0).view({height, 1}).expand({height, width});
  const double c = std::cos(pose.angle) * pose.step, s = std::sin(pose.angle) * pose.step;
  const at::Tensor x = i * c - j * s + pose.cx, y = i * s + j * c + pose.cy;
  // align_corners: -1 and 1 are the centres of the first and last pixels.
  const at::Tensor grid =
      at::stack({x * (2.0 / (W - 1)) - 1.0, y * (2.0 / (H - 1)) - 1.0}, 2).unsqueeze(0).to(at::kFloat);
  const at::Tensor out = at::grid_sampler(still, grid, kBicubic, kBorderPadding, true)[0];
  return tensor_to_image(out.div(255.0));
}

GtClip camera_clip(const Image& still, const CameraMotion& m, uint64_t seed, const std::string& name) {
  still.check();
  if (still.depth != 8) throw Error(name + ": photographs for training must be 8-bit");
  if (m.frames < 2 || m.max_speed < 0 || m.max_zoom < 0 || m.max_rotate < 0 || m.window <= 0 || m.window > 1)
    throw Error("camera motion: frames >= 2, speeds, zoom and rotation >= 0, window in (0, 1]");
  const int ww = window_side(still.width, m), wh = window_side(still.height, m);
  if (ww < m.min_window || wh < m.min_window)
    throw Error(name + ": " + std::to_string(still.width) + "x" + std::to_string(still.height) +
                " is too small for a moving " + std::to_string(m.min_window) + "-pixel window (at least " +
                std::to_string(m.min_window + 8) + " per side)");
  std::mt19937_64 rng(seed);
  const bool pan = uniform(rng, 0, 1) < m.pan_share;
  const double max_v = 4 * m.max_speed;  // HR pixels per frame
  double vx = uniform(rng, -max_v, max_v), vy = uniform(rng, -max_v, max_v);
  const double zoom = pan ? 0 : uniform(rng, 0, m.max_zoom);
  const double turn = pan ? 0 : uniform(rng, -m.max_rotate, m.max_rotate) * M_PI / 180.0;
  const bool zoom_in = uniform(rng, 0, 1) < 0.5;  // the path from wide to close, or back
  if (pan) vx = std::round(vx), vy = std::round(vy);
  // The centre stays where the whole (zoomed, rotated) window is inside the photograph.
  const double step_max = 1 + zoom, a = std::abs(turn);
  const double ex = step_max * (std::cos(a) * (ww - 1) + std::sin(a) * (wh - 1)) / 2;
  const double ey = step_max * (std::sin(a) * (ww - 1) + std::cos(a) * (wh - 1)) / 2;
  // Even windows panning by whole pixels have their centre half-way between pixel centres.
  const double half_x = pan && ww % 2 == 0 ? 0.5 : 0, half_y = pan && wh % 2 == 0 ? 0.5 : 0;
  const double lo_x = std::ceil(ex) + half_x, hi_x = std::floor(still.width - 1 - ex) - half_x;
  const double lo_y = std::ceil(ey) + half_y, hi_y = std::floor(still.height - 1 - ey) - half_y;
  if (hi_x < lo_x || hi_y < lo_y) throw Error(name + ": no room for the camera window");
  double x = std::round(uniform(rng, lo_x, hi_x) - half_x) + half_x;
  double y = std::round(uniform(rng, lo_y, hi_y) - half_y) + half_y;
  x = std::clamp(x, lo_x, hi_x), y = std::clamp(y, lo_y, hi_y);
  const at::Tensor picture =
      at::from_blob(const_cast<uint8_t*>(still.rgb.data()), {still.height, still.width, 3}, at::kByte)
          .permute({2, 0, 1})
          .unsqueeze(0)
          .to(at::kFloat);
  GtClip clip;
  clip.name = name;
  for (int t = 0; t < m.frames; ++t) {
    const double f = static_cast<double>(t) / (m.frames - 1);
    CameraPose pose;
    pose.cx = x;
    pose.cy = y;
    pose.step = 1 + zoom * (zoom_in ? 1 - f : f);
    pose.angle = turn * f;
    if (pan) {
      // Whole-pixel crops, no resampling.
      const int x0 = static_cast<int>(std::lround(x - (ww - 1) / 2.0));
      const int y0 = static_cast<int>(std::lround(y - (wh - 1) / 2.0));
      Image crop;
      crop.width = ww;
      crop.height = wh;
      crop.rgb.resize(static_cast<std::size_t>(ww) * wh * 3);
      for (int r = 0; r < wh; ++r)
        std::copy_n(still.rgb.begin() + (static_cast<std::ptrdiff_t>(y0 + r) * still.width + x0) * 3, ww * 3,
                    crop.rgb.begin() + static_cast<std::ptrdiff_t>(r) * ww * 3);
      clip.frames.push_back(std::move(crop));
    } else {
      clip.frames.push_back(render_view(picture, pose, ww, wh));
    }
    // Speeds drift a little from frame to frame, as a hand-held camera's do.
    if (!pan) {
      vx = std::clamp(vx + uniform(rng, -0.1, 0.1) * max_v, -max_v, max_v);
      vy = std::clamp(vy + uniform(rng, -0.1, 0.1) * max_v, -max_v, max_v);
    }
    bounce(x, vx, lo_x, hi_x);
    bounce(y, vy, lo_y, hi_y);
  }
  return clip;
}

}  // namespace qbasicvsr
