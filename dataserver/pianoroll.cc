#include "dataserver/pianoroll.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace pianola {

absl::StatusOr<PianoRoll> MakePianoRoll(const midi::Performance& performance,
                                        const PianoRollOptions& options) {
  const double fps = options.fps;
  if (!(fps > 0) || !std::isfinite(fps)) {
    return absl::InvalidArgumentError(absl::StrCat("piano roll fps must be > 0, got ", fps));
  }
  const double end = midi::PianoEndSeconds(performance);
  const double last = std::floor(end * fps);
  if (!(last + 1 <= static_cast<double>(options.max_frames))) {
    return absl::ResourceExhaustedError(
        absl::StrCat("piano roll of ", end, " s at ", fps, " fps needs ", last + 1,
                     " frames, more than the limit of ", options.max_frames));
  }
  PianoRoll roll;
  roll.frames = static_cast<int64_t>(last) + 1;
  roll.values.assign(static_cast<size_t>(kPianoKeys * roll.frames), 0.0f);
  for (const midi::Note& n : performance.notes) {
    if (n.channel == midi::kDrumChannel) continue;
    const int key = n.pitch - kLowestPianoPitch;
    if (key < 0 || key >= kPianoKeys) continue;
    float* row = roll.values.data() + key * roll.frames;
    const int64_t first = std::min(static_cast<int64_t>(std::floor(n.start * fps)), roll.frames - 1);
    if (options.kind == RollKind::kOnsets) {
      row[first] = std::max(row[first], static_cast<float>(n.velocity / 127.0));
    } else {
      const int64_t stop = std::clamp(static_cast<int64_t>(std::ceil(n.end * fps)), first + 1,
                                      roll.frames);
      std::fill(row + first, row + stop, 1.0f);
    }
  }
  return roll;
}

}  // namespace pianola
