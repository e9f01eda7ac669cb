#ifndef PIANOLA_TRAINER_WAVENET_STEP_KERNEL_H_
#define PIANOLA_TRAINER_WAVENET_STEP_KERNEL_H_

// One autoregressive WaveNet time step on the CPU, for a batch of sequences,
// with cached per-layer queues (Fast WaveNet, Paine et al. 2016): each layer
// keeps a ring buffer of its last (kernel_size - 1) * dilation + 1 inputs, so
// a step costs O(layers) small matrix-vector products and never recomputes
// the receptive field.
//
// Torch-free plain loops (compiled with -O3 and, on x86-64, cloned for AVX2
// and FMA), because at batch sizes of 1..16 the per-call overhead of tensor
// operations would dominate the arithmetic. trainer/generator.h fills
// StepWeights from a WaveNet module and checks it against the module's own
// forward pass; see trainer/wavenet.h for the math this mirrors.
//
// Owns its weights and state. Not thread-safe; one instance per generation.

#include <cstdint>
#include <vector>

namespace pianola {

// Matrices are stored [in][out] (each input channel's output column
// contiguous) so that y += Wᵀx is a sequence of axpy over `out`.
struct StepLayerWeights {
  int dilation = 1;
  std::vector<float> dilated;        // [kernel][R][2G]; tap kernel-1 is the current input
  std::vector<float> residual;       // [G][R]; empty on the last layer
  std::vector<float> residual_bias;  // [R]
  std::vector<float> skip;           // [G][S]
};

struct StepWeights {
  int residual_channels = 0;  // R
  int gate_channels = 0;      // G
  int skip_channels = 0;      // S
  int classes = 0;            // Q
  int kernel_size = 2;
  // Input: exactly one of the two is set.
  std::vector<float> embedding;      // [Q][R]
  std::vector<float> scalar_weight;  // [R]: x0 = w * (2c/(Q-1) - 1) + b
  std::vector<float> scalar_bias;    // [R]
  std::vector<StepLayerWeights> layers;
  std::vector<float> skip_bias;         // [S], summed over layers
  std::vector<float> head_hidden;       // [S][S]
  std::vector<float> head_hidden_bias;  // [S]
  std::vector<float> head_out;          // [S][Q]
  std::vector<float> head_out_bias;     // [Q]
};

class WaveNetStepKernel {
 public:
  WaveNetStepKernel(StepWeights weights, int batch);

  // Advances every sequence by one sample. `prev_classes[b]` is the class of
  // the previous sample of sequence b; `layer_bias[l] + b * bias_batch_stride`
  // points at layer l's 2G conditioning bias (MIDI + z + conv bias) for this
  // step. Writes logits[b * Q + q].
  void Step(const int64_t* prev_classes, const float* const* layer_bias,
            int64_t bias_batch_stride, float* logits);

  int64_t steps_done() const { return t_; }
  int batch() const { return batch_; }

 private:
  StepWeights w_;
  int batch_;
  int64_t t_ = 0;
  std::vector<int64_t> ring_size_;         // per layer: (k - 1) * d + 1
  std::vector<std::vector<float>> rings_;  // per layer: [ring_size][B][R]
  std::vector<float> x_, a_, g_, r_, skip_, hidden_;
};

}  // namespace pianola

#endif  // PIANOLA_TRAINER_WAVENET_STEP_KERNEL_H_
