#include "trainer/midi_conditioning.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataserver/dataset_builder.h"

namespace pianola {

absl::StatusOr<MidiConditioning> ConditioningFromPerformance(const midi::Performance& performance,
                                                             int sample_rate, int64_t num_samples) {
  if (sample_rate <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("sample rate: ", sample_rate, " Hz"));
  }
  if (num_samples < 1 || num_samples > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("conditioning span: ", num_samples, " samples; expected 1 .. 2^32 - 1"));
  }
  const RecordingIndex index = IndexRecording(performance, sample_rate, num_samples);
  MidiConditioning out;
  out.num_samples = num_samples;
  SparseEvents& e = out.events;
  const int n = index.note_start_size();
  out.notes = n;
  // Onsets: the index is sorted by (start, key), the assembler's onset order.
  e.onset_sample.reserve(n);
  e.onset_key.reserve(n);
  e.onset_velocity.reserve(n);
  std::vector<int> ending;
  for (int i = 0; i < n; ++i) {
    e.onset_sample.push_back(static_cast<uint32_t>(index.note_start(i)));
    e.onset_key.push_back(index.note_key(i));
    e.onset_velocity.push_back(index.note_velocity(i));
    if (index.note_end(i) < num_samples) {
      ending.push_back(i);
    } else {
      ++out.notes_cut;
    }
  }
  // Offsets by (sample, key, note index), as the assembler orders them.
  std::sort(ending.begin(), ending.end(), [&](int a, int b) {
    return std::make_tuple(index.note_end(a), index.note_key(a), a) <
           std::make_tuple(index.note_end(b), index.note_key(b), b);
  });
  for (int i : ending) {
    e.offset_sample.push_back(static_cast<uint32_t>(index.note_end(i)));
    e.offset_key.push_back(index.note_key(i));
    e.offset_velocity.push_back(index.note_velocity(i));
  }
  for (int i = 0; i < index.pedal_start_size(); ++i) {
    e.pedal_start.push_back(static_cast<uint32_t>(index.pedal_start(i)));
    e.pedal_end.push_back(static_cast<uint32_t>(index.pedal_end(i)));
  }
  return out;
}

}  // namespace pianola
