// What training and calibration share around their iterations: Adam's cosine schedule, the time
// per iteration for progress reports, checkpoints (the model and Adam's state beside it) every so
// many iterations and at --stop-at, where the run then stops. Internal.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <string>

#include "qbasicvsr/model_file.h"
#include "train/adam.h"

namespace qbasicvsr {

// Metadata keys of a checkpoint's state (iteration, losses, the arithmetic of the run).
constexpr const char* kTrainingStateKey = "training_state";
constexpr const char* kCalibrationStateKey = "calibration_state";

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class TrainingLoop {
 public:
  // Iterations start .. iters - 1 (start > 0 when resumed); stop_at 0: run to the end;
  // checkpoint_every 0 or an empty checkpoint path: no checkpoints.
  TrainingLoop(int start, int iters, int stop_at, int checkpoint_every, std::string checkpoint)
      : start_(start),
        iters_(iters),
        stop_at_(stop_at),
        every_(checkpoint_every),
        checkpoint_(std::move(checkpoint)),
        t0_(std::chrono::steady_clock::now()) {}

  // Adam's learning-rate factor at iteration it: a cosine decay from 1 to 0 over the run.
  double lr_scale(int it) const { return 0.5 * (1.0 + std::cos(M_PI * it / std::max(1, iters_))); }
  double seconds() const { return seconds_since(t0_); }
  // After iteration it: iterations per second so far, and seconds left at that pace.
  double rate(int it) const { return (it + 1 - start_) / seconds(); }
  double eta(int it) const {
    const double elapsed = seconds(), done = it + 1 - start_;
    return (iters_ - it - 1) * elapsed / done;
  }
  // After iteration it: saves model() (its state at it + 1) and Adam's state when a checkpoint is
  // due; true when the run stops here.
  bool finish(int it, const Adam& adam, const std::function<Model()>& model) const {
    const bool last = it + 1 >= iters_;
    const bool stop = stop_at_ > 0 && it + 1 == stop_at_ && !last;
    if (!checkpoint_.empty() && (stop || (every_ > 0 && (it + 1) % every_ == 0 && !last))) {
      save_model(checkpoint_, model());
      write_safetensors(checkpoint_ + ".adam", adam.state());
    }
    return stop;
  }

 private:
  int start_, iters_, stop_at_, every_;
  std::string checkpoint_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace qbasicvsr
