#include "trainer/kernel_clones.h"

#include <atomic>

namespace pianola {
namespace {

bool Detect() {
#if PIANOLA_HAVE_WIDE_KERNELS
  // libgcc's CPU model also checks that the OS saves the AVX-512 state.
  __builtin_cpu_init();
  // Everything x86-64-v4 (PIANOLA_WIDE_TARGET) lets the compiler use.
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

std::atomic<bool>& Wide() {
  static std::atomic<bool> wide{WideKernelsSupported()};
  return wide;
}

}  // namespace

bool WideKernelsSupported() {
  static const bool supported = Detect();
  return supported;
}

bool WideKernels() { return Wide().load(std::memory_order_relaxed); }

bool SetWideKernels(bool wide) {
  return Wide().exchange(wide && WideKernelsSupported(), std::memory_order_relaxed);
}

}  // namespace pianola
