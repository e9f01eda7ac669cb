#ifndef PIANOLA_TRAINER_TONE_DATA_SERVERS_H_
#define PIANOLA_TRAINER_TONE_DATA_SERVERS_H_

// Test support for training: real DataServers (dataserver/data_server.h) in
// this process on loopback port 0, serving an in-memory dataset whose audio
// is *learnable*: every note of a synthetic score (dataserver/
// synthetic_dataset.h) sounds as a decaying tone at its key's pitch, and each
// timbre has its own harmonic recipe. A model that reads the MIDI features and
// the reference can therefore lower its loss, unlike on hash-noise audio.
//
// Pieces alternate splits (train, train, validation), so both a training and
// a validation split exist. The header exposes plain C++ types only, so
// LibTorch tests can use it.
//
// Thread-safety: set up once, then read-only; the destructor stops the servers.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pianola {

struct ToneDatasetOptions {
  std::string name = "tones";
  int sample_rate = 16000;
  // Timbre i adds harmonics 2..i+1 (with amplitude 1/h) to the fundamental.
  std::vector<std::string> timbres = {"pure", "bright"};
  int pieces = 6;
  double piece_seconds = 2.0;
  double notes_per_second = 4;
  uint64_t seed = 1;
  int servers = 1;
};

class ToneDataServers {
 public:
  static absl::StatusOr<std::unique_ptr<ToneDataServers>> Start(
      const ToneDatasetOptions& options = {});
  ~ToneDataServers();

  std::vector<std::string> addresses() const;
  const std::string& dataset_name() const;

 private:
  struct State;
  explicit ToneDataServers(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace pianola

#endif  // PIANOLA_TRAINER_TONE_DATA_SERVERS_H_
