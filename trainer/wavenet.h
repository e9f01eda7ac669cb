#ifndef PIANOLA_TRAINER_WAVENET_H_
#define PIANOLA_TRAINER_WAVENET_H_

// The decoder: a WaveNet conditioned on dense MIDI features and a timbre
// vector.
//
// Layer i (of cycles * layers_per_cycle) has dilation d = 2^(i mod
// layers_per_cycle) and computes, on its input x_i [B, R, T]:
//   a   = DilatedConv_i(x_i) + CondConv_i(h) + ZProj_i(z)     [B, 2G, T]
//   g   = tanh(a[:G]) * sigmoid(a[G:])                         [B, G, T]
//   skip += SkipConv_i(g)                                      [B, S, T]
//   x_{i+1} = (x_i + ResConv_i(g)) * sqrt(1/2)   (not on the last layer)
// where h = CondHidden(midi) [B, H, T] is one shared 1x1 conv of the MIDI
// features (skipped when cond_hidden_channels == 0), CondConv_i a 1x1 conv,
// and ZProj_i(z) a per-layer bias broadcast over time. Output:
// relu(skip) -> 1x1 -> relu -> 1x1 -> logits [B, Q, T] (autoregressive) or a
// waveform [B, T] (parallel).
//
// Autoregressive: the dilated convs are causal (left zero padding of
// (k-1)d), the input at position t is the µ-law class of the sample *before*
// the output's sample (embedded, or its companded value through a 1x1
// conv), so logits[t] depend on inputs[<= t] and conditioning[<= t] only.
// Parallel: "same" padding of (k-1)/2 * d on both sides, input is noise.
// Zero padding is applied to every layer's input, so a computation on a
// window sees exactly what the full-sequence forward sees once the window
// covers the receptive field; the generators rely on that.
//
// Parallel with fold F > 1 (space-to-depth): the whole stack runs at T' =
// ceil(T / F) folded steps. The noise [B, T] is zero-padded to T' * F and
// reshaped so that block j's F samples are the F input channels of step j;
// the MIDI features, zero-padded alike, go through a strided conv with
// kernel F and stride F factored as
//   m   = CondFold(midi)   per channel, block j's F samples -> M values
//                          (M = cond_fold_filters learned length-F filters,
//                          shared by all channels): [B, C * M, T']
//   h   = CondHidden(m)    1x1 conv to H channels:  [B, H, T']
// dilations count folded steps, and the head's F output channels at step j
// are samples jF .. jF+F-1 (cropped back to T). Output sample t thus depends
// on whole blocks: block floor(t / F) and (k-1)/2 * sum of dilations blocks
// on each side. F = 1 is exactly the unfolded decoder (same modules).
//
// Module (owns its parameters); the accessors below expose the layers to
// trainer/generator.h. Not thread-safe for concurrent training.

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "trainer/model_config.h"

namespace pianola {

class WaveNetImpl : public torch::nn::Module {
 public:
  // Without autograd, forward() computes sequences of at least this many
  // (folded) steps in place (ForwardNoGrad). Shorter ones, such as the naive
  // generator's per-sample windows, take the plain path: there per-op
  // overhead, not memory traffic, dominates and the in-place path's per-item
  // products are no faster (measured up to 2x slower at 31 steps).
  static constexpr int64_t kInPlaceMinSteps = 256;

  // `z_dim` 0: no global conditioning.
  WaveNetImpl(const DecoderConfig& config, int z_dim);

  // input: autoregressive: int64 classes [B, T] (the previous sample's class
  // at each position); parallel: float noise [B, T].
  // cond: [B, cond_channels, T] (undefined when cond_channels == 0).
  // z: [B, z_dim] (undefined when z_dim == 0).
  // Returns logits [B, Q, T] (autoregressive) or waveform [B, T] (parallel).
  //
  // `first_output` > 0: only the outputs from that sample on, [B, Q, T - f]
  // or [B, T - f]: the same values as forward(...).narrow(-1, f, T - f), but
  // each layer computes only the steps the later layers and those outputs
  // read (a "valid" convolution where the window holds the context, zero
  // padding where the full sequence has it). Training asks for the loss
  // positions only, which skips a third of a small window's work.
  torch::Tensor forward(const torch::Tensor& input, const torch::Tensor& cond,
                        const torch::Tensor& z, int64_t first_output = 0);

  const DecoderConfig& config() const { return config_; }
  int z_dim() const { return z_dim_; }
  int num_layers() const { return config_.num_layers(); }
  // In folded steps (samples unless parallel with fold > 1).
  int dilation(int layer) const { return 1 << (layer % config_.layers_per_cycle); }
  // Samples per folded step: the parallel decoder's fold, else 1.
  int fold() const { return config_.effective_fold(); }
  // In samples (see DecoderReceptiveField / DecoderContextSamples).
  int64_t receptive_field() const { return DecoderReceptiveField(config_); }
  int64_t context_samples() const { return DecoderContextSamples(config_); }
  bool autoregressive() const { return config_.kind == DecoderKind::kAutoregressive; }

  // --- pieces of forward(), for the generators -----------------------------
  // input [B, T] -> x_0 [B, R, T'] (T' = ceil(T / fold)).
  torch::Tensor EmbedInput(const torch::Tensor& input);
  // MIDI features [B, C, T] -> h [B, H, T'] (identity when H == 0 and fold
  // is 1).
  torch::Tensor ConditioningHidden(const torch::Tensor& cond);
  // All per-layer z biases at once: [B, L * 2G] (undefined without z).
  torch::Tensor GlobalBiases(const torch::Tensor& z);
  // Everything added to layer `layer`'s dilated conv output apart from the
  // conv itself: CondConv(h) + z bias + conv bias, [B, 2G, T].
  // `global_biases` comes from GlobalBiases (may be undefined).
  torch::Tensor LayerBias(int layer, const torch::Tensor& hidden,
                          const torch::Tensor& global_biases);
  // skip sum [B, S, T'] -> logits [B, Q, T'] or waveform [B, T' * fold]
  // (forward crops it to T).
  torch::Tensor Head(const torch::Tensor& skip);

  torch::nn::Conv1d dilated_conv(int layer) const { return dilated_[layer]; }
  // Undefined (nullptr holder) for the last layer, which has no residual.
  torch::nn::Conv1d residual_conv(int layer) const { return residual_[layer]; }
  torch::nn::Conv1d skip_conv(int layer) const { return skip_[layer]; }
  torch::nn::Embedding embedding() const { return embedding_; }   // AR embedding input
  torch::nn::Conv1d input_conv() const { return input_conv_; }    // scalar / noise input
  torch::nn::Conv1d head_hidden() const { return head_hidden_; }
  torch::nn::Conv1d head_out() const { return head_out_; }

 private:
  // forward() without autograd (and without autocast): the same function,
  // as matrix products accumulated in place into reused buffers.
  torch::Tensor ForwardNoGrad(const torch::Tensor& input, const torch::Tensor& cond,
                              const torch::Tensor& z);
  // Its layers: the skip sum [B, S, T'] (with every bias) from x_0, the
  // MIDI hidden features (undefined without them) and GlobalBiases. SkipSum
  // runs on any device as torch products; SkipSumCpu (float on the CPU) runs
  // the fused GatedLayerKernel.
  torch::Tensor SkipSum(const torch::Tensor& x0, const torch::Tensor& hidden,
                        const torch::Tensor& global);
  torch::Tensor SkipSumCpu(const torch::Tensor& x0, const torch::Tensor& hidden,
                           const torch::Tensor& global);

  DecoderConfig config_;
  int z_dim_;
  torch::nn::Embedding embedding_{nullptr};
  torch::nn::Conv1d input_conv_{nullptr};
  torch::nn::Conv1d cond_fold_{nullptr};  // [M, 1, F] filters; fold > 1 only
  torch::nn::Conv1d cond_hidden_{nullptr};
  torch::nn::Linear z_proj_{nullptr};
  std::vector<torch::nn::Conv1d> dilated_, cond_, residual_, skip_;
  torch::nn::Conv1d head_hidden_{nullptr}, head_out_{nullptr};
};
TORCH_MODULE(WaveNet);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_WAVENET_H_
