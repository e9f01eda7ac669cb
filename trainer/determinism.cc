#include "trainer/determinism.h"

#include <ATen/Context.h>

namespace pianola {

void UseDeterministicCpuAlgorithms() {
  at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/false);
  at::globalContext().setDeterministicFillUninitializedMemory(false);
}

}  // namespace pianola
