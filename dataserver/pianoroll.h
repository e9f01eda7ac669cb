#ifndef PIANOLA_DATASERVER_PIANOROLL_H_
#define PIANOLA_DATASERVER_PIANOROLL_H_

// Frame-rate piano rolls of a performance's piano notes (the MAESTRO paper's
// conditioning: 88 keys, 4 ms frames at the default 250 fps).
//
// Both rolls are [88, F] float32, row-major by key (row 0 = A0 = MIDI 21),
// F = floor(PianoEndSeconds * fps) + 1. Notes outside MIDI 21..108 and notes
// on the drum channel are skipped.
// - Onset roll: at [pitch - 21, floor(start * fps)] the largest velocity/127
//   among the onsets in that bin, 0 elsewhere.
// - Frame roll: 1 in every frame the note sounds in, i.e. frames
//   floor(start * fps) .. ceil(end * fps) - 1 (at least the onset frame, so a
//   zero-length note marks one frame), 0 elsewhere.
//
// Thread-safe: free functions over immutable inputs.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "dataserver/midi.h"

namespace pianola {

inline constexpr int kPianoKeys = 88;
inline constexpr int kLowestPianoPitch = 21;  // A0

enum class RollKind { kOnsets, kFrames };

struct PianoRollOptions {
  double fps = 250;  // frames per second, > 0
  RollKind kind = RollKind::kOnsets;
  // Refuse rolls longer than this (ResourceExhausted): a hostile file with
  // huge delta times must not make us allocate gigabytes. The default is
  // 2^21 frames, 2.3 hours at 250 fps (738 MB of float32).
  int64_t max_frames = int64_t{1} << 21;
};

struct PianoRoll {
  int64_t frames = 0;
  std::vector<float> values;  // kPianoKeys * frames, index key * frames + frame
  float at(int key, int64_t frame) const { return values[key * frames + frame]; }
};

absl::StatusOr<PianoRoll> MakePianoRoll(const midi::Performance& performance,
                                        const PianoRollOptions& options);

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_PIANOROLL_H_
