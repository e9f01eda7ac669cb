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

#endif  // PIANOLA_TRAINER_KERNEL_CLONES_H_
