#ifndef PIANOLA_TRAINER_KERNEL_VARIANTS_FOR_TEST_H_
#define PIANOLA_TRAINER_KERNEL_VARIANTS_FOR_TEST_H_

// Tests of the CPU kernels run once per variant this machine has
// (trainer/kernel_clones.h): the 512-bit one where the CPU supports it, then
// the AVX2 / baseline one. So an AVX-512 machine tests both.

#include "gtest/gtest.h"
#include "trainer/kernel_clones.h"

namespace pianola {

template <typename Fn>
void ForEachKernelVariant(Fn body) {
  struct Restore {
    bool before = WideKernels();
    ~Restore() { SetWideKernels(before); }
  } restore;
  for (bool wide : {true, false}) {
    if (wide && !WideKernelsSupported()) continue;
    SetWideKernels(wide);
    SCOPED_TRACE(wide ? "512-bit kernels" : "AVX2 / baseline kernels");
    body();
  }
}

}  // namespace pianola

#endif  // PIANOLA_TRAINER_KERNEL_VARIANTS_FOR_TEST_H_
