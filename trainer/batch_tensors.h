#ifndef PIANOLA_TRAINER_BATCH_TENSORS_H_
#define PIANOLA_TRAINER_BATCH_TENSORS_H_

// Turns a batch from the DataClient into model inputs:
//   audio      [B, span]      float32, int16 / 32768, in [-1, 1)
//   reference  [B, Lr]        float32, likewise
//   features   [B, 177, span] float32 conditioning, per audio sample:
//     rows   0..87  onset impulses: velocity/127 at a note's onset sample, else 0
//     rows  88..175 note-active frames: velocity/127 while the note sounds
//                   ([onset, offset), held notes from sample 0, notes without
//                   an offset in the span to its end)
//     row   176     sustain pedal: 1 while down
//   index      [B]            int64 window indices (on the CPU)
// Row k of a group is MIDI key 21 + k. Where notes of one key overlap, the
// frame holds the largest velocity among them; an onset row holds the largest
// velocity among onsets of its key at that sample.
//
// Which note an offset ends: the one of its key with its offset_velocity
// (exact: the frame value depends only on the velocities sounding). Events
// without offset_velocity (older servers) pair like MIDI note-offs: at one
// sample, offsets end notes sounding from earlier samples first
// (first-in-first-out per key), further ones end notes struck at that sample
// (zero-length notes); exact when notes of a key end in the order they start.
//
// Two ways to build `features`, with identical results (exact, not
// approximately: both divide integer velocities by 127 in float32):
//  - kDirect: fills a host buffer segment by segment (the fastest on a CPU);
//  - kScatter: sends only the events to the target device (kilobytes instead of
//    177 floats per sample) and expands them there: velocity deltas at segment
//    boundaries, a cumulative sum over time, onset impulses put on top.
// kAuto picks kDirect for CPU tensors and kScatter for any other device.
//
// No generated protobuf headers here (see trainer/CMakeLists.txt).
// Thread-safety: free functions; concurrent calls on different batches are safe.

#include <array>
#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/data_client.h"

namespace pianola {

inline constexpr int kFeatureChannels = 177;
inline constexpr int kOnsetRow = 0;    // rows 0..87
inline constexpr int kFrameRow = 88;   // rows 88..175
inline constexpr int kPedalRow = 176;
inline constexpr int kFeatureLowestKey = 21;  // row offset 0 within a group
inline constexpr int kFeatureKeys = 88;

enum class FeatureMethod { kAuto, kDirect, kScatter };

struct BatchTensorOptions {
  // Where the tensors live. A CUDA device needs a GPU at run time (the code
  // compiles everywhere); ToTensors() returns FailedPrecondition without one.
  torch::Device device = torch::kCPU;
  // Stage host-side buffers in page-locked memory, so that copies to a CUDA
  // device can be asynchronous. Ignored when CUDA is unavailable or the
  // device is the CPU.
  bool pin_memory = true;
  // Host-to-device copies without waiting (from pinned memory). The tensors
  // are ordered on the device's current stream, so kernels queued after
  // them see the data.
  bool non_blocking = true;
  FeatureMethod features = FeatureMethod::kAuto;
  // Take `features` from the dense uint8 encoding the server sent
  // (DataClientOptions::dense_conditioning) instead of the sparse events.
  bool from_dense = false;
};

struct BatchTensors {
  torch::Tensor audio;      // [B, span] float32
  torch::Tensor reference;  // [B, Lr] float32
  torch::Tensor features;   // [B, 177, span] float32
  torch::Tensor index;      // [B] int64, CPU
};

// Converts a batch. InvalidArgument naming the window and field when windows
// disagree in length or events fall outside the span or the key/velocity
// ranges; FailedPrecondition for an unusable device; Internal for a LibTorch
// error (with its message).
absl::StatusOr<BatchTensors> ToTensors(const BatchData& batch,
                                       const BatchTensorOptions& options = {});

// Checks one window's events against the contract above (InvalidArgument
// naming the field and position).
absl::Status CheckSparseEvents(const SparseEvents& events, int64_t span);

// Fills `out` ([177, span] row-major float32, which must be zero on entry)
// from checked events (see CheckSparseEvents).
void FillFeatures(const SparseEvents& events, int64_t span, float* out);

// The features of one long span, filled a piece at a time: Fill(start, n)
// writes what FillFeatures writes for samples [start, start + n), from each
// row's constant stretches (memory in proportion to the events, where the
// dense features take 708 bytes per sample: 41 GB for an hour at 16 kHz).
// Built once in O(events log events); Fill costs O(177 log(events) + 177 n).
// Thread-safety: immutable after construction; Fill may run concurrently.
class FeatureSpans {
 public:
  // `events` must have passed CheckSparseEvents(events, span).
  FeatureSpans(const SparseEvents& events, int64_t span);

  int64_t span() const { return span_; }
  // Writes samples [start, start + n) into `out` ([177, n] row-major float32,
  // zero on entry); requires 0 <= start and start + n <= span.
  void Fill(int64_t start, int64_t n, float* out) const;

 private:
  // A stretch [start, end) of one row at `value` (an onset impulse is one
  // sample long). Within a row, stretches are disjoint and sorted.
  struct Stretch {
    uint32_t start;
    uint32_t end;
    float value;
  };
  int64_t span_;
  std::array<std::vector<Stretch>, kFeatureChannels> rows_;
};

}  // namespace pianola

#endif  // PIANOLA_TRAINER_BATCH_TENSORS_H_
