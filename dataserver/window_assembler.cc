#include "dataserver/window_assembler.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace pianola {
namespace {

// Copies int16 samples into `dst` as little-endian bytes.
void StoreLE(const int16_t* src, size_t n, char* dst) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(dst, src, n * sizeof(int16_t));
  } else {
    for (size_t i = 0; i < n; ++i) {
      const uint16_t v = static_cast<uint16_t>(src[i]);
      dst[2 * i] = static_cast<char>(v & 0xff);
      dst[2 * i + 1] = static_cast<char>(v >> 8);
    }
  }
}

// Writes `count` samples of recording audio `audio` starting at `first`
// (which may be negative or run past the end: zeros there) into `out`.
void CopySpan(absl::Span<const int16_t> audio, int64_t first, int64_t count, std::string* out) {
  out->resize(static_cast<size_t>(count) * 2);
  char* dst = out->data();
  const int64_t n = static_cast<int64_t>(audio.size());
  const int64_t lead = std::clamp<int64_t>(-first, 0, count);             // zeros before 0
  const int64_t avail = std::clamp<int64_t>(n - (first + lead), 0, count - lead);
  if (lead > 0) std::memset(dst, 0, static_cast<size_t>(lead) * 2);
  if (avail > 0) StoreLE(audio.data() + first + lead, static_cast<size_t>(avail), dst + lead * 2);
  const int64_t tail = count - lead - avail;                               // zeros after the end
  if (tail > 0) std::memset(dst + (lead + avail) * 2, 0, static_cast<size_t>(tail) * 2);
}

struct NoteRef {
  int64_t when;  // sample (absolute) used for ordering
  uint32_t key;
  int index;
};

struct Scratch {
  std::vector<NoteRef> held;
  std::vector<NoteRef> offsets;
  std::vector<int> active;  // notes sounding somewhere in the span (dense)
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

}  // namespace

WindowAssembler::WindowAssembler(const Dataset& dataset) : dataset_(dataset) {
  long_threshold_ = std::max<int64_t>(1, int64_t{2} * dataset.sample_rate());
  accel_.resize(dataset.num_recordings());
  for (int r = 0; r < dataset.num_recordings(); ++r) {
    const RecordingIndex& ri = dataset.recording_index(r);
    RecordingAccel& a = accel_[r];
    for (int i = 0; i < ri.note_start_size(); ++i) {
      const int64_t d = ri.note_end(i) - ri.note_start(i);
      if (d > long_threshold_) {
        a.long_notes.push_back(i);
      } else {
        a.short_max_duration = std::max(a.short_max_duration, d);
      }
    }
  }
}

absl::Status WindowAssembler::Assemble(const WindowSpec& spec, const WindowGeometry& geometry,
                                       ConditioningEncoding encoding, Window* out) const {
  const int64_t L = geometry.window_samples, R = geometry.context_samples,
                Lr = geometry.reference_samples;
  if (spec.recording < 0 || spec.recording >= dataset_.num_recordings() ||
      spec.reference_recording < 0 || spec.reference_recording >= dataset_.num_recordings()) {
    return absl::InternalError(absl::StrCat("window ", spec.index, ": recording ", spec.recording,
                                            " or reference ", spec.reference_recording,
                                            " outside the dataset"));
  }
  const absl::Span<const int16_t> audio = dataset_.audio(spec.recording);
  if (spec.offset < 0 || spec.offset + L > static_cast<int64_t>(audio.size()) ||
      spec.reference_offset < 0 || L <= 0 || R < 0 || Lr <= 0) {
    return absl::InternalError(absl::StrCat("window ", spec.index, ": offset ", spec.offset,
                                            " / reference offset ", spec.reference_offset,
                                            " outside recording ", spec.recording));
  }
  out->Clear();
  out->set_index(spec.index);
  out->set_recording(static_cast<uint32_t>(spec.recording));
  out->set_offset(spec.offset);
  out->set_reference_recording(static_cast<uint32_t>(spec.reference_recording));
  out->set_reference_offset(spec.reference_offset);
  out->set_timbre(dataset_.entry(spec.recording).timbre());
  const int64_t s0 = spec.offset - R;
  CopySpan(audio, s0, R + L, out->mutable_audio());
  CopySpan(dataset_.audio(spec.reference_recording), spec.reference_offset, Lr,
           out->mutable_reference());
  FillConditioning(spec.recording, s0, spec.offset + L, encoding, out);
  return absl::OkStatus();
}

void WindowAssembler::FillConditioning(int recording, int64_t s0, int64_t s1,
                                       ConditioningEncoding encoding, Window* out) const {
  const RecordingIndex& ri = dataset_.recording_index(recording);
  const RecordingAccel& accel = accel_[recording];
  const int64_t* start = ri.note_start().data();
  const int64_t* end = ri.note_end().data();
  const uint32_t* key = ri.note_key().data();
  const uint32_t* velocity = ri.note_velocity().data();
  const int n = ri.note_start_size();
  Scratch& scratch = ThreadScratch();
  scratch.held.clear();
  scratch.offsets.clear();
  scratch.active.clear();
  const bool dense = encoding == DENSE_UINT8;

  // Held notes: short ones start within short_max_duration before s0; long
  // ones are few and scanned directly.
  const int first_onset = static_cast<int>(std::lower_bound(start, start + n, s0) - start);
  const int first_short = static_cast<int>(
      std::lower_bound(start, start + first_onset, s0 - accel.short_max_duration) - start);
  for (int i = first_short; i < first_onset; ++i) {
    if (end[i] > s0 && end[i] - start[i] <= long_threshold_) {
      scratch.held.push_back({start[i], key[i], i});
    }
  }
  for (int i : accel.long_notes) {
    if (start[i] >= s0) break;
    if (end[i] > s0) scratch.held.push_back({start[i], key[i], i});
  }
  std::sort(scratch.held.begin(), scratch.held.end(), [](const NoteRef& a, const NoteRef& b) {
    return a.key != b.key ? a.key < b.key : a.index < b.index;
  });

  SparseConditioning* c = out->mutable_conditioning();
  c->mutable_held_key()->Reserve(static_cast<int>(scratch.held.size()));
  c->mutable_held_velocity()->Reserve(static_cast<int>(scratch.held.size()));
  for (const NoteRef& h : scratch.held) {
    c->add_held_key(h.key);
    c->add_held_velocity(velocity[h.index]);
    if (end[h.index] < s1) scratch.offsets.push_back({end[h.index], h.key, h.index});
    if (dense) scratch.active.push_back(h.index);
  }

  // Onsets, already in (start, key) order.
  int last_onset = first_onset;
  while (last_onset < n && start[last_onset] < s1) ++last_onset;
  const int onsets = last_onset - first_onset;
  c->mutable_onset_sample()->Reserve(onsets);
  c->mutable_onset_key()->Reserve(onsets);
  c->mutable_onset_velocity()->Reserve(onsets);
  for (int i = first_onset; i < last_onset; ++i) {
    c->add_onset_sample(static_cast<uint32_t>(start[i] - s0));
    c->add_onset_key(key[i]);
    c->add_onset_velocity(velocity[i]);
    if (end[i] < s1) scratch.offsets.push_back({end[i], key[i], i});
    if (dense) scratch.active.push_back(i);
  }

  std::sort(scratch.offsets.begin(), scratch.offsets.end(), [](const NoteRef& a, const NoteRef& b) {
    if (a.when != b.when) return a.when < b.when;
    return a.key != b.key ? a.key < b.key : a.index < b.index;
  });
  c->mutable_offset_sample()->Reserve(static_cast<int>(scratch.offsets.size()));
  c->mutable_offset_key()->Reserve(static_cast<int>(scratch.offsets.size()));
  c->mutable_offset_velocity()->Reserve(static_cast<int>(scratch.offsets.size()));
  for (const NoteRef& o : scratch.offsets) {
    c->add_offset_sample(static_cast<uint32_t>(o.when - s0));
    c->add_offset_key(o.key);
    c->add_offset_velocity(velocity[o.index]);
  }

  // Pedal intervals overlapping the span (disjoint and sorted, so their ends
  // are sorted too).
  const int np = ri.pedal_start_size();
  const int64_t* pstart = ri.pedal_start().data();
  const int64_t* pend = ri.pedal_end().data();
  const int first_pedal = static_cast<int>(std::upper_bound(pend, pend + np, s0) - pend);
  for (int i = first_pedal; i < np && pstart[i] < s1; ++i) {
    const int64_t a = std::max(pstart[i], s0), b = std::min(pend[i], s1);
    if (a >= b) continue;
    c->add_pedal_start(static_cast<uint32_t>(a - s0));
    c->add_pedal_end(static_cast<uint32_t>(b - s0));
  }

  if (!dense) return;
  const int64_t span = s1 - s0;
  std::string* d = out->mutable_dense_conditioning();
  d->assign(static_cast<size_t>(kConditioningChannels * span), '\0');
  auto* rows = reinterpret_cast<uint8_t*>(d->data());
  for (int i : scratch.active) {
    const int row = static_cast<int>(key[i]) - kLowestKey;
    const auto v = static_cast<uint8_t>(velocity[i]);
    if (start[i] >= s0) {
      uint8_t& onset = rows[row * span + (start[i] - s0)];
      onset = std::max(onset, v);
    }
    uint8_t* active = rows + (kPianoKeys + row) * span;
    const int64_t a = std::max(start[i], s0) - s0, b = std::min(end[i], s1) - s0;
    for (int64_t t = a; t < b; ++t) active[t] = std::max(active[t], v);
  }
  uint8_t* pedal = rows + 2 * kPianoKeys * span;
  for (int i = 0; i < c->pedal_start_size(); ++i) {
    std::memset(pedal + c->pedal_start(i), 127, c->pedal_end(i) - c->pedal_start(i));
  }
}

}  // namespace pianola
