#ifndef PIANOLA_TRAINER_TEST_DATA_SERVERS_H_
#define PIANOLA_TRAINER_TEST_DATA_SERVERS_H_

// Test support: real DataServers (dataserver/data_server.h), in this process,
// on loopback port 0, all serving one synthetic in-memory dataset
// (dataserver/synthetic_dataset.h). Nothing is mocked: the client under test
// talks gRPC to the production server.
//
// The audio is the synthetic dataset's hash noise (exact sample values for
// data-plane tests, Sample()), or, with `tone_audio`, *learnable*: every note
// sounds as a decaying tone at its key's pitch, and timbre i adds harmonics
// 2..i+1, so a model that reads the MIDI features and the reference can lower
// its loss (training tests; LearnableTestDataset()).
//
// The header exposes plain C++ types only, so LibTorch tests (whose include
// path shadows Debian's protobuf headers) can use it.
//
// Thread-safety: Stop() and BlackHole may be called from any thread; the rest
// is set up once and then read-only.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pianola {

struct TestDataServersOptions {
  int servers = 2;
  std::string name = "synthetic";
  int sample_rate = 16000;
  std::vector<std::string> timbres = {"grand", "bright"};
  int pieces = 4;
  std::vector<double> piece_seconds = {3.0, 2.5, 4.0, 1.5};
  // > 0: every n-th piece (n-1, 2n-1, ...) is in the validation split, the
  // rest in train; 0: all in train.
  int validation_every_nth_piece = 0;
  double notes_per_second = 8;
  bool tone_audio = false;  // notes as decaying harmonic tones (see above)
  uint64_t seed = 1;
  int producer_threads = 1;  // per server
  int queue_batches = 2;     // per stream
  // How long Stop() lets streams finish. Zero: Stop() cancels them at once,
  // as a crashing server would end them.
  absl::Duration drain_timeout = absl::ZeroDuration();
};

// One server with a learnable dataset for training tests: "tones", timbres
// "pure" and "bright", 6 pieces of 2 s at 4 notes/s, every third piece in the
// validation split, tone audio.
TestDataServersOptions LearnableTestDataset();

class TestDataServers {
 public:
  static absl::StatusOr<std::unique_ptr<TestDataServers>> Start(
      const TestDataServersOptions& options);
  ~TestDataServers();  // stops every server still running

  // "127.0.0.1:PORT" of server i, and of all of them in order.
  std::string address(int i) const;
  std::vector<std::string> addresses() const;
  const std::string& dataset_name() const;

  // Stops server i (DataServer::Stop, then Join); its streams end.
  void Stop(int i);
  // Starts a new server i on the address it had (after Stop(i)): a restarted
  // replica behind the same name.
  absl::Status Restart(int i);

  // The synthetic sample of recording r at sample i (i may be outside the
  // recording: 0 there, as windows pad with zeros).
  int16_t Sample(int recording, int64_t i) const;

 private:
  struct State;
  explicit TestDataServers(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// A TCP socket on loopback that accepts connections and never answers: a
// server that hangs (for deadline tests). Closes on destruction.
class BlackHole {
 public:
  static absl::StatusOr<std::unique_ptr<BlackHole>> Start();
  ~BlackHole();
  std::string address() const;

 private:
  BlackHole(int fd, int port);
  int fd_;
  int port_;
};

// An address on loopback where nothing listens (connections are refused).
std::string UnusedAddress();

}  // namespace pianola

#endif  // PIANOLA_TRAINER_TEST_DATA_SERVERS_H_
