#ifndef PIANOLA_TRAINER_DETERMINISM_H_
#define PIANOLA_TRAINER_DETERMINISM_H_

// Torch's global settings for CPU training that is bit-exact for a fixed seed
// (the property checkpoint resume relies on): deterministic algorithms on
// (an op without a deterministic CPU kernel is an error, not a silent
// difference), but new tensors are not filled with NaN first. That filling
// is a debugging aid that comes with deterministic mode; it costs a write
// of every allocation (measured 7 % of a small training step, docs/perf.md)
// and changes no result: every kernel writes its whole output.
//
// Used by the trainer (CPU runs) and by bench/train_bench, which must time
// the same configuration. Process-wide; call before training.

namespace pianola {

void UseDeterministicCpuAlgorithms();

}  // namespace pianola

#endif  // PIANOLA_TRAINER_DETERMINISM_H_
