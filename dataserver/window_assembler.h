#ifndef PIANOLA_DATASERVER_WINDOW_ASSEMBLER_H_
#define PIANOLA_DATASERVER_WINDOW_ASSEMBLER_H_

// Window assembly: turns a WindowSpec (from the pure window function) into a
// pianola::Window message: target audio with its context, the reference clip,
// and the conditioning of the span, exact to the audio sample.
//
// The span of a window is [s0, s1) = [offset - context, offset + window) in
// recording samples; s0 may be negative (zeros before the recording). Times
// in the conditioning are relative to s0. With a note active on [start, end):
//   onsets   notes with s0 <= start < s1, sorted by (sample, key)
//   held     notes with start < s0 < end (sounding at span sample 0), by key
//   offsets  ends of the onset and held notes with end < s1, by (sample, key)
//            (a note lasting past the span has no offset in it)
//   pedal    sustain intervals intersected with the span, empty ones dropped
// Dense (DENSE_UINT8): [177, span] row-major, rows 0..87 onset velocity at the
// onset sample, 88..175 velocity while sounding (max over overlapping notes
// of one key), 176 = 127 while the pedal is down.
//
// Finding held notes needs more than the start-sorted note list: the
// constructor builds, per recording, the longest duration among "short" notes
// (<= 2 s) and a start-sorted list of the long ones, so a window scans only
// notes starting within one short duration before the span plus the few long
// notes, never the whole recording.
//
// Output goes straight into the message's string buffers (resize + memcpy);
// reusing one Window (or WindowBatch) across calls reuses their capacity.
//
// Immutable after construction; Assemble() is thread-safe (per-thread scratch).
// Holds a reference to the Dataset, which must outlive it.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "dataserver/dataset.h"
#include "dataserver/window_sampler.h"
#include "proto/data_service.pb.h"

namespace pianola {

inline constexpr int kPianoKeys = 88;
inline constexpr int kLowestKey = 21;
inline constexpr int kConditioningChannels = 2 * kPianoKeys + 1;  // 177

class WindowAssembler {
 public:
  explicit WindowAssembler(const Dataset& dataset);

  // Fills `out` (cleared first) for `spec` under `geometry`. InternalError if
  // the spec does not fit the dataset (a caller bug; specs from a
  // WindowSampler over the same dataset always fit).
  absl::Status Assemble(const WindowSpec& spec, const WindowGeometry& geometry,
                        ConditioningEncoding encoding, Window* out) const;

 private:
  struct RecordingAccel {
    int64_t short_max_duration = 0;  // longest note of duration <= long threshold
    std::vector<int> long_notes;     // indices of longer notes, by start
  };

  void FillConditioning(int recording, int64_t s0, int64_t s1, ConditioningEncoding encoding,
                        Window* out) const;

  const Dataset& dataset_;
  int64_t long_threshold_ = 0;
  std::vector<RecordingAccel> accel_;
};

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_WINDOW_ASSEMBLER_H_
