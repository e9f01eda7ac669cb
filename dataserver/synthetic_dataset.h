#ifndef PIANOLA_DATASERVER_SYNTHETIC_DATASET_H_
#define PIANOLA_DATASERVER_SYNTHETIC_DATASET_H_

// Synthetic datasets for tests, fuzzing and benchmarks of window serving: a
// real Dataset (manifest, index, audio) whose notes and samples come from a
// seeded generator instead of MIDI files and a synthesizer, so tests can
// build one in memory in microseconds and know every note exactly.
//
// Every piece is "rendered" with every timbre (same notes, different audio),
// as the dataset builder does. Notes are sorted by (start, key), keys 21..108,
// velocities 1..127, some notes overlap, and there are sustain intervals.
// Audio samples are a stable hash of (recording, sample index), so any slice
// can be recomputed independently. Pure functions; thread-safe.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dataserver/dataset.h"

namespace pianola {

struct SyntheticDatasetOptions {
  std::string name = "synthetic";
  int sample_rate = 16000;
  std::vector<std::string> timbres = {"grand", "bright"};
  // Piece p lasts piece_seconds[p % size] seconds and belongs to
  // piece_splits[p % size].
  int pieces = 4;
  std::vector<double> piece_seconds = {3.0, 2.5, 4.0, 1.5};
  std::vector<Split> piece_splits = {TRAIN};
  double notes_per_second = 8;
  uint64_t seed = 1;
};

// The manifest, index and audio of a synthetic dataset (recordings ordered
// piece-major: piece 0 with every timbre, then piece 1, ...).
struct SyntheticDatasetParts {
  DatasetManifest manifest;
  DatasetIndex index;
  std::vector<int16_t> audio;
};
SyntheticDatasetParts MakeSyntheticDatasetParts(const SyntheticDatasetOptions& options);

// The dataset in memory (Dataset::FromMemory).
absl::StatusOr<std::unique_ptr<Dataset>> MakeSyntheticDataset(
    const SyntheticDatasetOptions& options);

// Writes the dataset as a directory Dataset::Open reads (audio.i16,
// index.binpb, manifest.textproto; no audio/ or midi/ sources).
absl::Status WriteSyntheticDataset(const SyntheticDatasetOptions& options, const std::string& dir);

// The synthetic sample value of recording `r` at sample `i`.
int16_t SyntheticSample(uint64_t seed, int r, int64_t i);

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_SYNTHETIC_DATASET_H_
