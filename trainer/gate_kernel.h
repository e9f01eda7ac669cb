#ifndef PIANOLA_TRAINER_GATE_KERNEL_H_
#define PIANOLA_TRAINER_GATE_KERNEL_H_

// The WaveNet gate's elementwise arithmetic on the CPU, fused: one pass over
// memory forward and one backward, where tensor operations take six and
// eight (plus the zero-filled gradient of the two halves' views).
//
//   forward:  t = tanh(f), s = sigmoid(g), out = t * s
//   backward: df = dout * s * (1 - t²),  dg = dout * t * s * (1 - s)
//
// Torch-free plain loops over contiguous rows (compiled with -O3 and, on
// x86-64, cloned for AVX2 and FMA so the compiler vectorizes them), with
// polynomial exp and tanh (Cephes' single-precision approximations: a few
// ulp from libm's). trainer/gated_activation.h wraps them as an autograd
// function over [B, 2G, T] tensors; the generation step kernel uses
// GateKernel. Thread-safe (no state).

#include <cstdint>

namespace pianola {

// out = tanh(f) * sigmoid(g) over n values (inference: nothing kept). `out`
// may alias neither input.
void GateKernel(const float* f, const float* g, int64_t n, float* out);

// The same, also writing tanh(f) to `t` and sigmoid(g) to `s` for the
// backward pass. No aliasing between inputs and outputs.
void GateForwardKernel(const float* f, const float* g, int64_t n, float* out, float* t, float* s);

// Elementwise over n values, from forward's t and s.
void GateBackwardKernel(const float* grad_out, const float* t, const float* s, int64_t n,
                        float* grad_f, float* grad_g);

// The approximations on their own, for tests: exp over [-87.3, 88.7] to a
// few ulp (saturating outside), tanh to a few ulp everywhere, sigmoid from
// the same exp.
float GateExp(float x);
float GateTanh(float x);
float GateSigmoid(float x);

}  // namespace pianola

#endif  // PIANOLA_TRAINER_GATE_KERNEL_H_
