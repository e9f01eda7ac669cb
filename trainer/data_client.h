#ifndef PIANOLA_TRAINER_DATA_CLIENT_H_
#define PIANOLA_TRAINER_DATA_CLIENT_H_

// The trainer's side of the DataService (proto/data_service.proto): streams
// this rank's shard of an epoch from a list of interchangeable data servers,
// prefetching batches on a background thread into a bounded queue.
//
// Failover: windows are a pure function of (dataset, seed, epoch, index), so
// any server can continue any stream. On a transient stream error
// (UNAVAILABLE, a killed server, no batch within `rpc_timeout`, ...) the
// client reconnects to the next server in the list and asks for the shard
// from the cursor of the last batch it received: no window is lost or
// delivered twice (every batch is checked to hold exactly the window indices
// that follow the previous one). Permanent errors (INVALID_ARGUMENT,
// NOT_FOUND, a malformed batch, ...) and running out of failovers are
// returned by Next().
//
// cursor() is the position a checkpoint saves: the windows the *caller* has
// taken from Next(), not those merely prefetched. A client created with that
// epoch and start_cursor continues exactly where the saved one stopped.
//
// This header exposes plain C++ types only (no generated protobuf headers), so
// that LibTorch code, whose include path carries an older protobuf, can use it.
//
// Thread-safety: Next() and StartEpoch() are meant for one consumer thread
// (they are internally synchronized, so concurrent calls are safe but
// interleave batches arbitrarily); cursor(), epoch() and stats() may be called
// from any thread at any time. The destructor cancels the active stream and
// joins the background threads.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace pianola {

// The dataset splits, numbered as proto/dataset.proto's Split.
enum class DataSplit { kTrain = 1, kValidation = 2, kTest = 3 };

// "train", "validation", "test" (as on command lines and in manifests).
absl::StatusOr<DataSplit> ParseDataSplit(const std::string& name);
std::string DataSplitName(DataSplit split);

// Conditioning of one window's span, exact to the audio sample (see
// SparseConditioning in proto/data_service.proto for the ordering promises).
// Times are sample offsets from the span's first sample; keys are MIDI pitches
// 21..108; velocities 1..127. The note of an onset is active on
// [onset, offset); held notes are active from sample 0.
struct SparseEvents {
  std::vector<uint32_t> onset_sample, onset_key, onset_velocity;
  std::vector<uint32_t> offset_sample, offset_key;
  // The velocity of the note each offset ends; empty from servers that
  // predate the field (see batch_tensors.h for what that costs).
  std::vector<uint32_t> offset_velocity;
  std::vector<uint32_t> held_key, held_velocity;
  std::vector<uint32_t> pedal_start, pedal_end;  // sustain down on [start, end)
};

// One training window: `span = context_samples + window_samples` samples of
// target audio with its conditioning, and a reference clip of the same timbre.
struct WindowData {
  uint64_t index = 0;                // window index within the epoch
  uint32_t recording = 0;            // manifest index of the target recording
  int64_t offset = 0;                // first target sample; the span starts at offset - context
  uint32_t reference_recording = 0;
  int64_t reference_offset = 0;
  std::string timbre;
  std::vector<int16_t> audio;        // span samples
  std::vector<int16_t> reference;    // reference_samples samples
  SparseEvents conditioning;
  // With DataClientOptions::dense_conditioning: [177, span] row-major uint8
  // (rows 0..87 onset velocity, 88..175 note-active velocity, 176 pedal 127).
  std::vector<uint8_t> dense;
};

struct BatchData {
  uint64_t epoch = 0;
  uint64_t cursor = 0;      // shard position after this batch
  uint64_t shard_size = 0;  // windows in this rank's shard of the epoch
  uint64_t epoch_size = 0;  // windows in the epoch across all ranks
  std::vector<WindowData> windows;
};

struct DataClientOptions {
  // HOST:PORT of interchangeable data servers; the client starts with the
  // first and moves along the list (wrapping) on transient errors. Required.
  std::vector<std::string> servers;
  // Dataset name as served; empty means the only dataset the server serves.
  std::string dataset;
  DataSplit split = DataSplit::kTrain;
  uint64_t seed = 0;
  // The epoch to start with and the position in this rank's shard to start
  // from (a checkpoint's epoch() and cursor()).
  uint64_t epoch = 0;
  uint64_t start_cursor = 0;
  uint32_t rank = 0;
  uint32_t world_size = 1;          // >= 1, > rank
  uint32_t batch_size = 16;         // windows per batch, 1..1024
  uint32_t window_samples = 16000;  // target length L, > 0
  uint32_t context_samples = 0;     // receptive field R before the target
  uint32_t reference_samples = 16000;  // reference length Lr, > 0
  // Also receive the dense uint8 conditioning (177 bytes per sample: large).
  bool dense_conditioning = false;
  // Stop each epoch after this many windows of the shard (0: the whole shard).
  uint64_t max_windows = 0;
  // false: Next() returns nullopt at the end of the epoch's shard; call
  //   StartEpoch() to go on. true: the client moves on to epoch + 1 from
  //   cursor 0 by itself and Next() never returns nullopt.
  bool continuous = false;
  // Batches received ahead of the consumer, at most (>= 1). Memory bound:
  // about (prefetch_batches + 1) batches.
  int prefetch_batches = 4;
  // A stream that delivers no batch for this long (while the client is
  // waiting for one) is abandoned as dead and resumed on the next server.
  // Also the deadline of GetDatasetInfo.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Consecutive failed attempts (without a batch in between) before Next()
  // returns UNAVAILABLE. Each attempt moves to the next server.
  int max_failovers = 8;
  // Pause after every round of the server list that failed without progress;
  // doubles each round up to `max_retry_backoff`.
  absl::Duration retry_backoff = absl::Milliseconds(100);
  absl::Duration max_retry_backoff = absl::Seconds(5);
  // Largest message accepted from a server.
  int64_t max_message_bytes = int64_t{64} << 20;
};

// Counters since Create(). Consistent snapshot.
struct DataClientStats {
  uint64_t batches_received = 0;    // from servers, by the background thread
  uint64_t batches_delivered = 0;   // returned by Next()
  uint64_t windows_delivered = 0;
  uint64_t bytes_received = 0;      // audio + reference + dense payload bytes
  uint64_t sparse_bytes_received = 0;  // serialized sparse conditioning
  uint64_t streams_started = 0;
  uint64_t failovers = 0;           // streams abandoned after a transient error
  uint64_t stream_timeouts = 0;     // of which: no batch within rpc_timeout
  uint64_t epochs_completed = 0;    // epochs whose shard was fully received
  int max_queued = 0;               // high-water mark of the prefetch queue
  absl::Duration wait_time;         // time Next() spent blocked waiting for data
  std::string server;               // the server of the current/last stream
};

class DataClient {
 public:
  // Checks the options (InvalidArgument naming the field) and starts
  // prefetching. Does not wait for a server: connection problems surface
  // from Next().
  static absl::StatusOr<std::unique_ptr<DataClient>> Create(DataClientOptions options);
  ~DataClient();
  DataClient(const DataClient&) = delete;
  DataClient& operator=(const DataClient&) = delete;

  // The next batch of this rank's shard, waiting for it if needed; nullopt at
  // the end of the epoch (never with `continuous`). After an error, every
  // later call returns the same error (until StartEpoch()).
  absl::StatusOr<std::optional<BatchData>> Next();

  // Abandons the current stream and prefetched batches and starts streaming
  // `epoch` from `start_cursor`.
  void StartEpoch(uint64_t epoch, uint64_t start_cursor = 0);

  // The epoch and shard position of the windows taken from Next() so far. In
  // continuous mode a finished epoch reads as (epoch + 1, 0).
  uint64_t epoch() const;
  uint64_t cursor() const;

  DataClientStats stats() const;
  const DataClientOptions& options() const { return options_; }

 private:
  class Impl;
  explicit DataClient(DataClientOptions options);
  DataClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

// What a server says about a dataset (DatasetInfo in the proto).
struct DatasetSplitInfo {
  DataSplit split = DataSplit::kTrain;
  uint32_t recordings = 0;
  uint32_t pieces = 0;
  int64_t samples = 0;
  uint64_t windows_per_epoch = 0;  // for the window_samples asked about
};
struct DatasetInfoData {
  std::string name;
  uint64_t fingerprint = 0;
  int sample_rate = 0;
  std::vector<std::string> timbres;
  std::vector<DatasetSplitInfo> splits;
  uint32_t conditioning_channels = 0;
  std::string server;  // the server that answered
  // The split's entry, or nullptr.
  const DatasetSplitInfo* Find(DataSplit split) const;
};

// Asks the servers in order (moving on after a transient error) about
// `dataset` (empty: the only one served) with windows of `window_samples`
// (0: one second). Permanent errors (NOT_FOUND, INVALID_ARGUMENT) are
// returned at once, annotated with the server.
absl::StatusOr<DatasetInfoData> GetDatasetInfo(const std::vector<std::string>& servers,
                                               const std::string& dataset,
                                               uint32_t window_samples,
                                               absl::Duration timeout = absl::Seconds(30));

// Windows in rank `rank`'s shard of an epoch of `epoch_size` windows split
// over `world_size` ranks (i = rank, rank + W, ... < epoch_size).
inline uint64_t ShardSize(uint64_t epoch_size, uint32_t rank, uint32_t world_size) {
  if (world_size == 0 || rank >= epoch_size) return 0;
  return (epoch_size - rank + world_size - 1) / world_size;
}

}  // namespace pianola

#endif  // PIANOLA_TRAINER_DATA_CLIENT_H_
