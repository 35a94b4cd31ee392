// Full-precision training of BasicVSR from ground-truth clips: our own SPyNet,
// pretrained on synthetic motion with known flow, then the whole network on LR/HR pairs made by
// the BI or BD degradation. No LibTorch types here.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qbasicvsr/degrade.h"
#include "qbasicvsr/image.h"
#include "qbasicvsr/model_file.h"
#include "qbasicvsr/runtime.h"

namespace qbasicvsr {

// A fresh model for training: PyTorch's default initialisation (uniform, bound 1/sqrt(fan_in))
// for every convolution, the residual blocks scaled by 0.1 (as BasicSR does) and conv_last zero,
// so that the untrained network is exactly its base upsampling. The seed fixes every value.
Model initial_model(const Architecture& arch, uint64_t seed);

// --- SPyNet on synthetic motion -------------------------------------------------------------

struct FlowPretrainOptions {
  int iters = 1000;
  int batch = 8;
  int size = 64;          // side of the square training pairs (LR pixels)
  double lr = 5e-4;       // Adam, cosine decay to zero
  double max_shift = 6;   // translation per axis, pixels
  double max_rotate = 5;  // degrees
  double max_zoom = 0.05;
  double elastic = 1.5;  // amplitude of the smooth elastic displacement, pixels
  int occluders = 2;     // pasted patches with their own motion, at most
  uint64_t seed = 1;
  int threads = 0;
  Compute compute = Compute::Auto;
};

struct FlowReport {
  // Held-out synthetic pairs (from the validation frames): mean end-point error of the network
  // and of zero flow.
  double synthetic_epe = 0, synthetic_epe_zero = 0;
  // Consecutive real frames of the validation clips: mean |ref - warp(supp, flow)| on RGB in
  // 0..255, with the network's flow and with zero flow.
  double real_warp_error = 0, real_warp_error_zero = 0;
  int pairs_synthetic = 0, pairs_real = 0;
  std::vector<std::pair<int, double>> losses;  // (iteration, training EPE)
  double seconds = 0;
};

struct FlowProgress {
  int iteration, iters;
  double epe, it_per_s, eta_s;
};

// Pretrains the SPyNet weights of `model` in place. Training pairs are made from random crops of
// `frames` (LR frames: the scale SPyNet sees in BasicVSR); `validation` clips give the held-out
// synthetic set and the real pairs of the report.
void pretrain_flow(Model& model, const std::vector<std::vector<Image>>& frames,
                   const std::vector<std::vector<Image>>& validation, const FlowPretrainOptions& options,
                   FlowReport* report, const std::function<void(const FlowProgress&)>& progress = {});

// Measures the flow network of `model` as FlowReport does (no training).
FlowReport evaluate_flow(const Model& model, const std::vector<std::vector<Image>>& validation,
                         const FlowPretrainOptions& options);

// --- super-resolution training ----------------------------------------------------------------

struct TrainOptions {
  int iters = 1000;
  int batch = 4;
  int crop = 48;                 // LR crop side; the HR crop is 4x
  int frames = 8;                // frames per training sequence
  double lr = 2e-4;              // Adam (betas 0.9 / 0.99), cosine decay to zero
  double flow_lr_scale = 0.125;  // SPyNet's learning rate once it trains, relative to lr
  int flow_freeze = -1;          // iterations with SPyNet frozen; -1: the first 20 %
  Degradation degradation = Degradation::BI;
  uint64_t seed = 1;
  int threads = 0;
  Compute compute = Compute::Auto;
  int val_every = 100;  // iterations between validations (0: only at the end)
  int checkpoint_every = 100;
  std::string checkpoint;  // "" : none; the optimizer state goes beside it (.adam)
  int stop_at = 0;         // stop after this iteration with a checkpoint (0: run to the end)
};

// A ground-truth clip for training or validation.
struct GtClip {
  std::string name;
  std::vector<Image> frames;  // HR, all the same size (cropped to multiples of 4 on loading)
};

// Training video made from a still photograph: a camera window moving over it. Half the clips
// (`pan_share`) pan by whole HR pixels per frame, which is a quarter-pixel LR motion with an
// exact, unblurred ground truth; the others glide smoothly (sub-pixel centre, a zoom-out and a
// small rotation growing along the clip), sampled bicubically (a = -0.75) and never magnified
// (the sampling step stays >= 1): no invented detail, though sampling between pixel centres
// softens the finest detail a little, which the exact pans make up for.
struct CameraMotion {
  int frames = 30;          // frames per clip
  double max_speed = 2.0;   // LR pixels per frame, per axis
  double max_zoom = 0.1;    // zoom-out over the clip: sampling step from 1 up to 1 + max_zoom
  double max_rotate = 3.0;  // degrees over the clip
  double pan_share = 0.5;   // fraction of clips that pan by whole HR pixels
  double window = 0.6;      // the window's side as a fraction of the photograph's
  int min_window = 192;     // HR pixels: at least one 48x48 LR crop
};

// One synthetic clip of `still` (HR, 8-bit); `seed` picks the path (the same seed, the same clip).
// Frames are `motion.frames` windows of the same size, multiples of 4. Throws Error naming
// `name` when the photograph is too small for a window of min_window plus room to move.
GtClip camera_clip(const Image& still, const CameraMotion& motion, uint64_t seed, const std::string& name);

struct Validation {
  int iteration;
  double psnr;     // mean over clips of the mean Y PSNR of their frames
  double bicubic;  // the same for the bicubic baseline
};

struct TrainReport {
  bool bf16 = false;                           // the arithmetic of the convolutions (run_arithmetic)
  std::vector<std::pair<int, double>> losses;  // (iteration, Charbonnier loss)
  std::vector<Validation> validations;
  double bicubic_psnr = 0;  // the same validation for the bicubic baseline
  double seconds = 0;
  int start_iteration = 0;
  bool stopped = false;
};

struct TrainProgress {
  int iteration, iters;
  double loss, it_per_s, eta_s;
  bool flow_frozen;
};

// Trains `init` (a full-precision model, e.g. initial_model() after pretrain_flow(), or an
// earlier result to continue from) on random crops and flips of sequences of `clips`, the LR
// input made from the GT by `options.degradation`. With `resume` (a checkpoint of an earlier run
// with the same options and data), continues exactly where that run stopped.
Model train(const Model& init, const std::vector<GtClip>& clips, const std::vector<GtClip>& validation,
            const TrainOptions& options, TrainReport* report,
            const std::function<void(const TrainProgress&)>& progress = {},
            const std::function<void(const Validation&)>& on_validation = {}, const std::string& resume = "");

// The options a training run's weights depend on, as a JSON object (iterations, batch, crop,
// frames, lr, flow_lr_scale, flow_freeze, degradation, seed): its checkpoints record them.
std::string training_options_json(const TrainOptions& options);

// Throws Error naming the first option that `options` set otherwise than the run that wrote the
// training checkpoint `checkpoint` (loaded; `name` names it), and with `clips` when they are not
// those it started on (their frames' sizes and samples): a resumed run gives the uninterrupted
// one's weights only with the same. Threads, validation, checkpointing and --stop-at may differ;
// the arithmetic is run_arithmetic's. Checkpoints written before the record pass.
void check_resumable(const TrainOptions& options, const Model& checkpoint, const std::string& name,
                     const std::vector<GtClip>* clips = nullptr);

// The arithmetic of a training or calibration run's convolutions: Compute::Fp32 or Compute::Bf16.
// A fresh run (`checkpoint` empty) resolves `requested` on this machine (Auto: bf16 where
// bf16_faster()); a resumed run keeps the arithmetic its checkpoint records, so that
// stopping and resuming gives the uninterrupted run's weights on any machine, and asking it
// for the other arithmetic is an Error. Checkpoints written before the record resolve like a
// fresh run. The second form takes a checkpoint already loaded (`name` names it in the error).
Compute run_arithmetic(Compute requested, const std::string& checkpoint);
Compute run_arithmetic(Compute requested, const Model& checkpoint, const std::string& name);

// Throws Error when `clips` cannot give training sequences for `options` (too few frames, frames
// too small for the crop, bad numbers); train() checks the same first.
void check_training_data(const std::vector<GtClip>& clips, const TrainOptions& options);

// Mean Y PSNR of `model` (fp32) or, for an empty model, of bicubic on the validation clips.
double validate(const Model* model, const std::vector<GtClip>& validation, Degradation degradation);

}  // namespace qbasicvsr
