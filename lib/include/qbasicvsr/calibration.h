// QBasicVSR calibration (DESIGN.md section 1): from a full-precision model and unlabeled LR clips
// to a quantized model — TS-LBA bit table, FG-VBA thresholds, activation ranges, then
// distillation fine-tuning of weights and ranges. No LibTorch types here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qbasicvsr/image.h"
#include "qbasicvsr/model_file.h"
#include "qbasicvsr/runtime.h"

namespace qbasicvsr {

struct CalibrationOptions {
  int bits = 6;
  Scope scope = Scope::Partial;
  int iters = 150;
  int batch = 2;             // sequences per iteration
  int crop = 64;             // LR crop side for statistics and fine-tuning
  double lr_weights = 1e-5;  // Adam, weights and biases of quantized layers
  double lr_ranges = 1e-3;   // Adam, activation ranges and weight clips
  // Distillation learns the quantized layers' biases and activation ranges, and unless this is
  // set their weights and weight clips too (see keep_weights_for).
  bool keep_weights = false;
  double lambda_skt = 1.0;                // L = L_pix + lambda_skt * L_skt
  double gamma = 1.0;                     // FG-VBA: weight of T_cons
  std::optional<double> lambda;           // FG-VBA: weight of the motion term; default balances the terms
  double tau_percentile = 33.3;           // FG-VBA: tau_lo, tau_hi at this percentile of C_V and 100 - it
  double ts_lba_lo = 30, ts_lba_hi = 70;  // TS-LBA percentiles over layers
  bool ts_lba = true;                     // false: b_L = 0 everywhere
  bool fg_vba = true;                     // false: no thresholds (b_V = 0)
  // Initial ranges: [P(100 - p), P(p)] of each layer's inputs; 0 picks per layer the clip that its
  // b-bit grid reproduces with the least squared error (measured worse in PSNR, docs/CALIBRATION.md).
  double range_percentile = 99.99;
  // Then scale all initial ranges by the factor (0.8 .. 2) whose fake-quantized network best
  // reproduces the fp32 frames on the statistics crops.
  bool range_search = true;
  // Cross-layer equalisation of the residual streams before everything else (0: off): the
  // stream's channels rescaled by (m_c / max m)^-equalize from their largest magnitudes m_c on
  // the statistics crops, folded into the weights (the same network in float; docs/QUANTIZATION.md).
  double equalize = 0;
  // A mean bit-width instead of TS-LBA's percentiles: every quantized layer's output error is
  // measured alone at bits and bits + 2 on the centre crops of `sensitivity_sequences` sequences,
  // and b_L is chosen so that the modelled sum of errors is least with a mean bit-width at
  // b_V = 0 of at most target_bits (allocate_bits, each layer in [bits - 1, 8]).
  std::optional<double> target_bits;
  int sensitivity_sequences = 4;
  // Weight rounding: false rounds every weight to its nearest grid value (clip max |w| per
  // channel); true chooses each channel's clip and rounds the weights for the layer's measured
  // input (hessian_round_weight: the second moment of its input patches on the statistics crops),
  // after the bits are allocated and before the range search. Layers with more than
  // kMaxHessianColumns inputs per output (SPyNet's wide 7x7 convs) keep the nearest rounding.
  bool hessian_rounding = false;
  // What `--weight-rounding auto` picks for a base bit-width: hessian at 4 bits or fewer, where it
  // raised held-out PSNR of the official network with and without FG-VBA; nearest above, where it
  // gained 0.015 dB at b_V = 0 but lost 0.05 dB under FG-VBA (weights on the b_V = 0 grid rounded
  // again to the coarser one: docs/CALIBRATION.md).
  static bool hessian_rounding_pays(int bits) { return bits <= 4; }
  // What `--equalize auto` picks: 0.5 where the weights are rounded for their inputs, which absorbs
  // the wider conv1 columns the equalisation makes (official W4A4 PTQ: +0.125 dB held out, +0.235
  // under FG-VBA); off with nearest rounding, where it gained 0.03 dB (docs/CALIBRATION.md).
  static double equalize_for(bool hessian_rounding) { return hessian_rounding ? 0.5 : 0.0; }
  // What `--keep-weights auto` picks: keep the weights rounded for their inputs above 4 bits, where
  // distillation's straight-through updates only undo the rounding (a learnt clip moves the grid
  // under every weight; at 7-8 bits a weight can drift half a step within tens of iterations): the
  // official W6A6 lost 0.043 dB at b_V = 0 learning them and gained 0.001 keeping them. At 4 bits
  // the learnt weights gain (+0.073 dB over the rounding alone) and nearest rounding has nothing
  // to keep (docs/CALIBRATION.md).
  static bool keep_weights_for(bool hessian_rounding, int bits) { return hessian_rounding && bits > 4; }
  // The layers of dynamic_range_layers() get dynamic ranges (LayerQuant::dynamic): each frame's
  // input grid from its own smallest and largest value, which follows the propagated features from
  // frame to frame. Off by default: on the official network it gained 0.01-0.04 dB held out at
  // b_V = 0 and nothing under FG-VBA, and the int8 path runs 1.4x slower (docs/CALIBRATION.md).
  bool dynamic_ranges = false;
  uint64_t seed = 1;
  int threads = 0;
  Compute compute = Compute::Auto;  // the student's convolutions (the teacher runs in fp32)
  int checkpoint_every = 25;        // iterations between checkpoints (0: none)
  std::string checkpoint;           // checkpoint file ("" : none); the optimizer state goes beside it
  int stop_at = 0;                  // stop after this iteration with a checkpoint (0: run to the end)

  // Throws Error naming the first option out of its range.
  void validate() const;
  // The fewest bits a layer gets from the target_bits allocation: bits - 1, at least 2.
  int min_allocated_bits() const;
};

struct LayerCalibration {
  std::string name;
  bool quantized = false;
  double s_space = 0, s_temp = 0;
  int b_L = 0;
  float l = 0, u = 0;  // final range
  // With hessian_rounding: the layer's output error tr((W - Q) H (W - Q)^T) / tr(W H W^T) at b_V = 0
  // with nearest rounding and with the rounding chosen (0, 0: not rounded for its input).
  double weight_error_nearest = 0, weight_error_rounded = 0;
};

struct LayerSensitivity {
  std::string name;
  LayerError error;  // output MSE against fp32 with this layer alone quantized
  int bits = 0;      // allocated
};

struct CalibrationReport {
  bool bf16 = false;  // the arithmetic of the student's convolutions (run_arithmetic)
  std::vector<LayerCalibration> layers;
  std::vector<LayerSensitivity> sensitivity;  // with target_bits
  // PSNR (dB, peak 1) of the quantized network against fp32 per frame index of the probe crops
  // (the sensitivity crops, or the range-search ones), at b_V = 0: after the initial ranges and
  // after distillation. How the error grows along the propagation.
  std::vector<double> step_psnr_initial, step_psnr_final;
  std::vector<double> sequence_C_V;  // per calibration sequence
  std::vector<int> sequence_b_V;
  double lambda = 0, gamma = 0, tau_lo = 0, tau_hi = 0;
  TsLbaThresholds ts_lba;
  double mean_bits = 0;                                 // over quantized layers and sequences
  double range_scale = 1;                               // the factor range_search chose
  double stream_scale_min = 1, stream_scale_max = 1;    // of the equalisation (1, 1: none)
  std::vector<std::pair<double, double>> range_search;  // (factor, mean squared error of the frames)
  struct Step {
    int iteration;
    double loss, l_pix, l_skt;
  };
  std::vector<Step> losses;
  double stats_seconds = 0, train_seconds = 0;
  int start_iteration = 0;  // > 0 when resumed
  bool stopped = false;     // stopped at options.stop_at: the checkpoint holds the state
};

struct CalibrationProgress {
  int iteration, iters;
  double loss, l_pix, l_skt, it_per_s, eta_s;
};

// The options a calibration's result depends on, as a JSON object (bits, scope, iterations, batch,
// crop, lr, lr_ranges, keep_weights, lambda_skt, gamma, lambda, ts_lba, fg_vba, range_percentile,
// range_search, equalize, target_bits, sensitivity_sequences, hessian_rounding, dynamic_ranges,
// seed): its
// checkpoints record them, and qbasicvsr-calibrate's provenance.
std::string calibration_options_json(const CalibrationOptions& options);

// Throws Error naming the first option that `options` set otherwise than the run that wrote the
// calibration checkpoint `checkpoint` (loaded; `name` names it): bits, scope, iterations, batch,
// crop, learning rates, kept weights, loss and FG-VBA weights, TS-LBA, FG-VBA, ranges, equalisation,
// target bits, rounding, seed. A resumed run gives the uninterrupted one's result only with the
// same (kept weights: Adam's state is for the parameters the run started with); threads,
// checkpointing and --stop-at may differ, the arithmetic is run_arithmetic's. With `sequences`,
// also when they are not those the run started on (their count, sizes and samples). Checkpoints
// written before the record pass.
void check_resumable(const CalibrationOptions& options, const Model& checkpoint, const std::string& name,
                     const std::vector<std::vector<Image>>* sequences = nullptr);

// Runs calibration. `sequences` are LR clips (each at least 2 frames, all frames of a sequence
// the same size). `resume` is a checkpoint written by an earlier run with the same options and
// sequences: statistics are recomputed (they are deterministic), weights, ranges and the optimizer
// state are restored, and training continues where it stopped, with the result an uninterrupted
// run would give.
// Throws Error for a quantized input model, bits out of range, empty or too short sequences.
Model calibrate(const Model& fp, const std::vector<std::vector<Image>>& sequences,
                const CalibrationOptions& options, CalibrationReport* report,
                const std::function<void(const CalibrationProgress&)>& progress = {},
                const std::string& resume = "");

}  // namespace qbasicvsr
