#ifndef PIANOLA_TRAINER_TIMBRE_ENCODER_H_
#define PIANOLA_TRAINER_TIMBRE_ENCODER_H_

// The timbre encoder: a reference recording -> a timbre vector z.
//
// mel kind:         audio [B, Lr] -> log-mel [B, M, F] -> `layers` non-causal
//                   Conv1d(kernel_size, "same") + ReLU -> mean and standard
//                   deviation over frames [B, 2C] -> Linear -> z [B, z_dim].
// raw_dilated kind: audio [B, 1, Lr] -> Conv1d(1, C, kernel) -> `raw_cycles`
//                   cycles of residual blocks (ReLU, dilated non-causal conv,
//                   ReLU, 1x1) with dilations 1..2^(layers-1) (NSynth's
//                   encoder, smaller) -> 1x1 -> average pooling by raw_pool ->
//                   mean/std over time -> Linear -> z.
// Pooling over time makes z a summary of the whole reference, not of its
// notes: the data pipeline feeds references with different notes than the
// target, so only timbre is worth encoding.
//
// Module (owns its parameters); not thread-safe for concurrent training.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "trainer/mel.h"
#include "trainer/model_config.h"

namespace pianola {

class TimbreEncoderImpl : public torch::nn::Module {
 public:
  TimbreEncoderImpl(const EncoderConfig& config, int sample_rate);

  // reference [B, Lr] float audio in [-1, 1] -> z [B, z_dim].
  torch::Tensor forward(const torch::Tensor& reference);

  const EncoderConfig& config() const { return config_; }

 private:
  torch::Tensor PoolAndProject(const torch::Tensor& features);  // [B, C, T] -> z

  EncoderConfig config_;
  LogMelSpectrogram mel_{nullptr};
  torch::nn::ModuleList convs_;      // mel: the stack; raw: dilated convs
  torch::nn::ModuleList pointwise_;  // raw: 1x1 after each dilated conv
  torch::nn::Conv1d raw_in_{nullptr}, raw_out_{nullptr};
  torch::nn::Linear project_{nullptr};
};
TORCH_MODULE(TimbreEncoder);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_TIMBRE_ENCODER_H_
