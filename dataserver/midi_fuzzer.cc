// libFuzzer target: midi::ParseMidi on arbitrary bytes, then everything
// derived from a parsed performance (piano notes, sustain intervals, rolls).
// Checks the reader's promises: no crash, no unbounded allocation, and on
// success a performance whose invariants hold.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "dataserver/midi.h"
#include "dataserver/pianoroll.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<pianola::midi::Performance> perf = pianola::midi::ParseMidi(bytes, "fuzz.mid");
  if (!perf.ok()) {
    Check(!perf.status().message().empty());
    return 0;
  }
  Check(perf->notes.size() <= size / 3);
  for (size_t i = 0; i < perf->notes.size(); ++i) {
    const pianola::midi::Note& n = perf->notes[i];
    Check(n.pitch >= 0 && n.pitch < 128 && n.velocity >= 1 && n.velocity < 128);
    Check(n.channel >= 0 && n.channel < 16 && n.start_tick <= n.end_tick);
    Check(std::isfinite(n.start) && n.start >= 0 && n.end >= n.start);
    Check(n.end <= perf->end_seconds);
    if (i > 0) Check(perf->notes[i - 1].start <= n.start);
  }
  for (size_t i = 1; i < perf->pedal.size(); ++i) Check(perf->pedal[i - 1].time <= perf->pedal[i].time);
  double last_end = 0;
  for (const pianola::midi::Interval& in : pianola::midi::SustainIntervals(*perf)) {
    Check(in.start >= last_end && in.end > in.start);
    last_end = in.end;
  }
  pianola::PianoRollOptions options;
  options.fps = 31.25;
  options.max_frames = 1 << 16;
  absl::StatusOr<pianola::PianoRoll> roll = pianola::MakePianoRoll(*perf, options);
  if (roll.ok()) Check(roll->values.size() == static_cast<size_t>(88 * roll->frames));
  return 0;
}
