// Quantizers on tensors (DESIGN.md section 1). Internal: includes ATen.
//
// Two flavours: the plain ones compute the quantized values (inference, the fake path), the
// `ste_` ones are differentiable for calibration. Rounding is half to even, as the integer path.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "qbasicvsr/quantization.h"

namespace qbasicvsr {

// Activations on an asymmetric grid, per tensor.
at::Tensor fake_quant_act(const at::Tensor& x, const ActGrid& grid);

// The same values as `type` (the input type of the convolution that follows): on a GPU in one
// fused kernel (CUDA builds, src/quant/cuda/fake_quant.cu), elsewhere through ATen.
at::Tensor fake_quant_act(const at::Tensor& x, const ActGrid& grid, at::ScalarType type);

// The b-bit grid of a dynamic range for x (one frame): ActGrid::spanning of its smallest and
// largest value.
ActGrid dynamic_grid(const at::Tensor& x, int bits);
// f applied to each sample of x [N,...] (as [1,...]) and the results concatenated: dynamic ranges
// are per frame, whatever else shares the batch.
at::Tensor per_sample(const at::Tensor& x, const std::function<at::Tensor(const at::Tensor&)>& f);

// Per-output-channel clip values of w [O,I,kh,kw]: `clip` when given, else max |w| per channel.
at::Tensor weight_clip_values(const at::Tensor& w, const std::vector<float>& clip);
// Per-output-channel steps S_c = clip_c / (2^(b-1) - 1) as a float tensor [O].
at::Tensor weight_scales(const at::Tensor& clip, int bits);
// Integer weights in [-(2^(b-1)-1), 2^(b-1)-1] (float tensor holding integers).
at::Tensor weight_codes(const at::Tensor& w, const at::Tensor& scales, int bits);
// Weights on the restricted symmetric grid: codes * S_c.
at::Tensor fake_quant_weight(const at::Tensor& w, const at::Tensor& clip, int bits);

// Weight rounding for a known input (GPTQ, Frantar et al., ICLR 2023): w [O,I,kh,kw] on the same
// per-channel b-bit grid as fake_quant_weight, but rounded so that the layer's output error
// tr((W - Q) H (W - Q)^T) is small, where H [K,K] (K = I kh kw, im2col order) is the second moment
// of the layer's input patches. Each channel's clip is first chosen among fractions of max |w|
// (kClipFractions) by that error under plain rounding; then the columns are rounded one at a time,
// in order of decreasing H diagonal, each column's rounding error carried onto the columns still to
// be rounded through the Cholesky factor of H^-1 (H damped by `damp` times its mean diagonal: with
// damp 0, H must be positive definite); a channel whose error came out above its nearest
// rounding's keeps the nearest rounding.
// Returns the rounded weights (exact multiples of the steps, so fake_quant_weight with `clip_out`
// gives them back unchanged) and writes the clips to clip_out [O].
at::Tensor hessian_round_weight(const at::Tensor& w, const at::Tensor& h, int bits, at::Tensor* clip_out,
                                double damp = 0.01);
// h [K,K] += rows^T rows for rows [N,K]: the input moments hessian_round_weight takes. On the CPU
// through oneDNN's sgemm (Debian's LibTorch multiplies matrices with the reference BLAS: 30x
// slower here), elsewhere through ATen.
void add_gram(at::Tensor& h, const at::Tensor& rows);
// The output error tr((W - Q) H (W - Q)^T) per output channel [O] (w and q [O,I,kh,kw]).
at::Tensor weighted_weight_error(const at::Tensor& w, const at::Tensor& q, const at::Tensor& h);

// Differentiable activation quantizer with learnable range tensors l, u (0-dim). Forward equals
// fake_quant_act with the nudged grid of [l, u]. Backward (LSQ-style straight-through): inside
// the range d/dx = 1 and l, u get the rounding residual's derivative through the step S; outside,
// the clamped side's bound gets the gradient. See docs/QUANTIZATION.md.
at::Tensor ste_quant_act(const at::Tensor& x, const at::Tensor& l, const at::Tensor& u, int bits);
// Differentiable weight quantizer with learnable per-channel clip [O]: straight-through for the
// weights inside the clip, the clip gets the LSQ gradient.
at::Tensor ste_quant_weight(const at::Tensor& w, const at::Tensor& clip, int bits);

}  // namespace qbasicvsr
