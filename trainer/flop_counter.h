#ifndef PIANOLA_TRAINER_FLOP_COUNTER_H_
#define PIANOLA_TRAINER_FLOP_COUNTER_H_

// Counts the floating-point operations of the matrix-shaped ATen ops that the
// current thread runs while a FlopCounter is alive: convolutions
// (aten::convolution, any dimensionality, groups, transposed), mm, addmm,
// bmm and baddbmm, the training layer's pianola::DilatedConv
// (trainer/dilated_conv.h) and pianola::LayerOutputs
// (trainer/layer_outputs.h) and the MIDI filter bank's
// pianola::FoldedFeatures (trainer/folded_features.h), at 2 FLOPs per
// multiply-add (the convention of
// torch.utils.flop_counter and of "model FLOPs utilization"). Composite ops
// (conv1d, linear, matmul) are counted through the ops they call, once.
// Elementwise ops, reductions and FFTs are not counted: for a WaveNet they are
// a few percent of the arithmetic and none of the matrix units' work.
//
// Uses a thread-local RecordFunction callback, so only the constructing
// thread's ops count (an autograd backward runs on other threads: count a
// forward pass and scale, as train_bench does: model FLOPs per step =
// 3 x forward). One counter per thread at a time. Not copyable.
//
// flop_counter.cc is compiled with NDEBUG whatever the build type: inline
// RecordFunction accessors differ between debug and release headers, and the
// wheel's LibTorch is a release build. Hence no ATen header here.

#include <cstdint>

namespace pianola {

class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;

  // FLOPs counted so far.
  double flops() const { return flops_; }

 private:
  double flops_ = 0;
  uint64_t handle_ = 0;  // at::CallbackHandle
};

}  // namespace pianola

#endif  // PIANOLA_TRAINER_FLOP_COUNTER_H_
