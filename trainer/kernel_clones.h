#ifndef PIANOLA_TRAINER_KERNEL_CLONES_H_
#define PIANOLA_TRAINER_KERNEL_CLONES_H_

// Attributes for the torch-free CPU loops (trainer/gate_kernel.cc,
// trainer/wavenet_step_kernel.cc), which are compiled with -O3 for the
// baseline x86-64 and rely on the compiler to vectorize them.
//
// PIANOLA_KERNEL_CLONES: with GCC on x86-64, also an AVX2 + FMA clone
// (x86-64-v3), chosen at load time by the CPU's features. Not
// "arch=haswell": that clone is chosen by CPU model, so never on AMD (where
// it left the kernels on SSE2, 3-4x slower).
// PIANOLA_INLINE: for helpers called from such a function, which must be
// inlined into each clone (an out-of-line call keeps the loop scalar).

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PIANOLA_KERNEL_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PIANOLA_KERNEL_CLONES
#endif

#define PIANOLA_INLINE inline __attribute__((always_inline))

// PIANOLA_WIDE_TARGET: the 512-bit variant of a kernel (AVX-512 F/CD/BW/DQ/VL,
// x86-64-v4), for the products that gain from twice the vector width: where
// the CPU has it, torch's own GEMMs (oneDNN, MKL) run at that width too.
// Such a function is only called when WideKernels() is true.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PIANOLA_HAVE_WIDE_KERNELS 1
#define PIANOLA_WIDE_TARGET __attribute__((target("arch=x86-64-v4")))
#else
#define PIANOLA_HAVE_WIDE_KERNELS 0
#define PIANOLA_WIDE_TARGET
#endif

namespace pianola {

// True when the CPU kernels run their 512-bit variants: by default where the
// CPU (and the OS) support AVX-512 F/CD/BW/DQ/VL.
bool WideKernels();

// Forces the choice for the whole process, for tests and benchmarks that
// compare the two variants: false takes the AVX2 / baseline ones; true only
// takes effect where the CPU supports the wide ones. Returns the previous
// setting. Not for use while kernels run on other threads.
bool SetWideKernels(bool wide);

// Whether this CPU supports the wide variants at all.
bool WideKernelsSupported();

}  // namespace pianola

#endif  // PIANOLA_TRAINER_KERNEL_CLONES_H_
