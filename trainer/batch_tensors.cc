#include "trainer/batch_tensors.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <exception>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace pianola {
namespace {

constexpr float kVelocityScale = 127.0f;
constexpr float kAudioScale = 32768.0f;
constexpr int kHighestKey = kFeatureLowestKey + kFeatureKeys - 1;

// A constant stretch [start, end) of one feature row, in velocity units
// (pedal: 127).
struct Segment {
  int row;
  uint32_t start;
  uint32_t end;
  int value;
};

// An onset impulse: the largest velocity of its key at that sample.
struct Impulse {
  int row;
  uint32_t sample;
  int value;
};

struct NoteEvent {
  uint32_t key;
  uint32_t sample;
  int kind;  // 0: offset, 1: onset (offsets first at one sample)
  int velocity;
  bool operator<(const NoteEvent& o) const {
    if (key != o.key) return key < o.key;
    if (sample != o.sample) return sample < o.sample;
    return kind < o.kind;
  }
};

// The velocities of one key's sounding notes as a count per velocity, with a
// bit per velocity that has any: the frame value needs only the largest, and
// this keeps adding, removing and finding the largest at O(1) however many
// notes of a key are stacked (a MIDI file may hold hundreds of thousands,
// where a list of the notes took a scan of all of them per sample).
class VelocityCounts {
 public:
  // Back to no notes: O(velocities present).
  void Clear() {
    for (int word = 0; word < 2; ++word) {
      for (uint64_t bits = present_[word]; bits != 0; bits &= bits - 1) {
        counts_[64 * word + std::countr_zero(bits)] = 0;
      }
      present_[word] = 0;
    }
  }
  void Add(int v) {
    if (counts_[v]++ == 0) present_[v / 64] |= uint64_t{1} << (v % 64);
  }
  // Removes one note of velocity `v`; false (and no change) when none sounds.
  bool Remove(int v) {
    if (counts_[v] == 0) return false;
    if (--counts_[v] == 0) present_[v / 64] &= ~(uint64_t{1} << (v % 64));
    return true;
  }
  // The largest sounding velocity, 0 when none sounds.
  int Max() const {
    if (present_[1] != 0) return 127 - std::countl_zero(present_[1]);
    if (present_[0] != 0) return 63 - std::countl_zero(present_[0]);
    return 0;
  }

 private:
  std::array<size_t, 128> counts_{};
  std::array<uint64_t, 2> present_{};  // bit v % 64 of word v / 64: counts_[v] > 0
};

// Expands checked events into per-row constant segments (frames and pedal,
// disjoint within a row) and onset impulses (unique per row and sample).
//
// A key's frame value at sample t is the largest velocity among its notes
// sounding at t: held ones and those with onset <= t < offset. With
// offset_velocity, each offset removes a note of that velocity from the
// sounding set; since the value depends only on the set of velocities, this
// is exact whichever of several equal-velocity notes really ended. Without it,
// offsets end the oldest sounding notes first (first-in-first-out, as MIDI
// note-offs pair), and any further ones end notes struck at that sample.
//
// O(events log events) for the sorts, then O(events) for the sweep, however
// many notes of one key overlap.
void BuildSegments(const SparseEvents& e, int64_t span, std::vector<Segment>* segments,
                   std::vector<Impulse>* impulses) {
  const bool offset_velocities = !e.offset_velocity.empty();
  std::vector<NoteEvent> events;
  events.reserve(e.onset_sample.size() + e.offset_sample.size());
  for (size_t i = 0; i < e.offset_sample.size(); ++i) {
    events.push_back({e.offset_key[i], e.offset_sample[i], 0,
                      offset_velocities ? static_cast<int>(e.offset_velocity[i]) : 0});
  }
  for (size_t i = 0; i < e.onset_sample.size(); ++i) {
    events.push_back({e.onset_key[i], e.onset_sample[i], 1, static_cast<int>(e.onset_velocity[i])});
  }
  // Stable: onsets of one key and sample keep their order (FIFO).
  std::stable_sort(events.begin(), events.end());
  std::vector<std::pair<uint32_t, int>> held;  // (key, velocity), oldest first per key
  for (size_t i = 0; i < e.held_key.size(); ++i) {
    held.emplace_back(e.held_key[i], static_cast<int>(e.held_velocity[i]));
  }
  std::stable_sort(held.begin(), held.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  VelocityCounts sounding;  // of the current key
  // Without offset velocities: the velocities of the current key's notes in
  // the order they started (held ones first); [oldest, end) still sound.
  std::vector<int> fifo;
  size_t ei = 0, hi = 0;
  while (ei < events.size() || hi < held.size()) {
    const bool held_next =
        hi < held.size() && (ei >= events.size() || held[hi].first <= events[ei].key);
    const uint32_t key = held_next ? held[hi].first : events[ei].key;
    const int row = kFrameRow + static_cast<int>(key) - kFeatureLowestKey;
    sounding.Clear();
    fifo.clear();
    size_t oldest = 0;
    for (; hi < held.size() && held[hi].first == key; ++hi) {
      sounding.Add(held[hi].second);
      if (!offset_velocities) fifo.push_back(held[hi].second);
    }
    int value = sounding.Max();
    uint32_t segment_start = 0;
    while (ei < events.size() && events[ei].key == key) {
      const uint32_t t = events[ei].sample;
      // Offsets sort before onsets at one sample; all of them apply after the
      // onsets, so that notes struck at t can end at t (zero length).
      auto at_t = [&](size_t i) {
        return i < events.size() && events[i].key == key && events[i].sample == t;
      };
      const size_t offsets_begin = ei;
      while (at_t(ei) && events[ei].kind == 0) ++ei;
      const size_t offsets_end = ei;
      int onset_value = 0;
      for (; at_t(ei); ++ei) {
        sounding.Add(events[ei].velocity);
        if (!offset_velocities) fifo.push_back(events[ei].velocity);
        onset_value = std::max(onset_value, events[ei].velocity);
      }
      if (onset_value > 0) {
        impulses->push_back(
            {kOnsetRow + static_cast<int>(key) - kFeatureLowestKey, t, onset_value});
      }
      if (offset_velocities) {
        for (size_t i = offsets_begin; i < offsets_end; ++i) {
          sounding.Remove(events[i].velocity);  // false: no such note sounds; ignored
        }
      } else {
        // The oldest notes end first: those sounding from earlier samples,
        // then those struck at t in their order (zero-length notes).
        const size_t ending = std::min(offsets_end - offsets_begin, fifo.size() - oldest);
        for (size_t i = 0; i < ending; ++i) sounding.Remove(fifo[oldest++]);
      }
      const int next = sounding.Max();
      if (next != value) {
        if (value > 0 && t > segment_start) segments->push_back({row, segment_start, t, value});
        segment_start = t;
        value = next;
      }
    }
    if (value > 0 && static_cast<int64_t>(segment_start) < span) {
      segments->push_back({row, segment_start, static_cast<uint32_t>(span), value});
    }
  }
  for (size_t i = 0; i < e.pedal_start.size(); ++i) {
    segments->push_back({kPedalRow, e.pedal_start[i], e.pedal_end[i], 127});
  }
}

bool CudaAvailable() {
  static const bool available = torch::cuda::is_available();
  return available;
}

// Host-side options for staging buffers bound for `device`.
torch::TensorOptions Staging(torch::ScalarType dtype, const BatchTensorOptions& o) {
  torch::TensorOptions t = torch::TensorOptions().dtype(dtype).device(torch::kCPU);
  if (o.pin_memory && !o.device.is_cpu() && o.device.is_cuda() && CudaAvailable()) {
    t = t.pinned_memory(true);
  }
  return t;
}

// int16 windows -> [B, n] float32 on the target device.
torch::Tensor AudioTensor(const BatchData& batch, bool reference, int64_t n,
                          const BatchTensorOptions& o) {
  const int64_t b = static_cast<int64_t>(batch.windows.size());
  if (o.device.is_cpu()) {
    torch::Tensor out = torch::empty({b, n}, torch::kFloat32);
    float* p = out.data_ptr<float>();
    at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const std::vector<int16_t>& s =
            reference ? batch.windows[i].reference : batch.windows[i].audio;
        float* row = p + i * n;
        for (int64_t j = 0; j < n; ++j) row[j] = static_cast<float>(s[j]) / kAudioScale;
      }
    });
    return out;
  }
  // Copy the int16 samples (half the bytes) and convert on the device.
  torch::Tensor staging = torch::empty({b, n}, Staging(torch::kInt16, o));
  int16_t* p = staging.data_ptr<int16_t>();
  for (int64_t i = 0; i < b; ++i) {
    const std::vector<int16_t>& s = reference ? batch.windows[i].reference : batch.windows[i].audio;
    std::memcpy(p + i * n, s.data(), n * sizeof(int16_t));
  }
  return staging.to(o.device, /*non_blocking=*/o.non_blocking).to(torch::kFloat32).div_(kAudioScale);
}

torch::Tensor DirectFeatures(const BatchData& batch, int64_t span, const BatchTensorOptions& o) {
  const int64_t b = static_cast<int64_t>(batch.windows.size());
  torch::Tensor out = torch::zeros({b, kFeatureChannels, span},
                                   Staging(torch::kFloat32, o));
  float* p = out.data_ptr<float>();
  at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      FillFeatures(batch.windows[i].conditioning, span, p + i * kFeatureChannels * span);
    }
  });
  return o.device.is_cpu() ? out : out.to(o.device, o.non_blocking);
}

torch::Tensor ScatterFeatures(const BatchData& batch, int64_t span, const BatchTensorOptions& o) {
  const int64_t b = static_cast<int64_t>(batch.windows.size());
  std::vector<int64_t> delta_at, impulse_at;
  std::vector<int16_t> delta_value, impulse_value;
  std::vector<Segment> segments;
  std::vector<Impulse> impulses;
  for (int64_t i = 0; i < b; ++i) {
    segments.clear();
    impulses.clear();
    BuildSegments(batch.windows[i].conditioning, span, &segments, &impulses);
    const int64_t base = i * kFeatureChannels * span;
    for (const Segment& s : segments) {
      delta_at.push_back(base + s.row * span + s.start);
      delta_value.push_back(static_cast<int16_t>(s.value));
      if (s.end < span) {
        delta_at.push_back(base + s.row * span + s.end);
        delta_value.push_back(static_cast<int16_t>(-s.value));
      }
    }
    for (const Impulse& m : impulses) {
      impulse_at.push_back(base + m.row * span + m.sample);
      impulse_value.push_back(static_cast<int16_t>(m.value));
    }
  }
  auto upload = [&](auto& v, torch::ScalarType dtype) {
    torch::Tensor t = torch::empty({static_cast<int64_t>(v.size())}, Staging(dtype, o));
    if (!v.empty()) std::memcpy(t.data_ptr(), v.data(), v.size() * sizeof(v[0]));
    return o.device.is_cpu() ? t : t.to(o.device, o.non_blocking);
  };
  const auto on_device = torch::TensorOptions().dtype(torch::kInt16).device(o.device);
  torch::Tensor levels = torch::zeros({b * kFeatureChannels * span}, on_device);
  if (!delta_at.empty()) {
    levels.index_put_({upload(delta_at, torch::kInt64)}, upload(delta_value, torch::kInt16),
                      /*accumulate=*/true);
  }
  levels = levels.view({b, kFeatureChannels, span}).cumsum(2, torch::kInt16).view({-1});
  if (!impulse_at.empty()) {
    levels.index_put_({upload(impulse_at, torch::kInt64)}, upload(impulse_value, torch::kInt16));
  }
  return levels.view({b, kFeatureChannels, span}).to(torch::kFloat32).div_(kVelocityScale);
}

torch::Tensor DenseFeatures(const BatchData& batch, int64_t span, const BatchTensorOptions& o) {
  const int64_t b = static_cast<int64_t>(batch.windows.size());
  const int64_t n = kFeatureChannels * span;
  torch::Tensor staging = torch::empty({b, kFeatureChannels, span}, Staging(torch::kUInt8, o));
  uint8_t* p = staging.data_ptr<uint8_t>();
  for (int64_t i = 0; i < b; ++i) std::memcpy(p + i * n, batch.windows[i].dense.data(), n);
  torch::Tensor t = o.device.is_cpu() ? staging : staging.to(o.device, o.non_blocking);
  return t.to(torch::kFloat32).div_(kVelocityScale);
}

absl::Status CheckBatch(const BatchData& batch, const BatchTensorOptions& o, int64_t* span,
                        int64_t* reference) {
  if (batch.windows.empty()) return absl::InvalidArgumentError("ToTensors: batch has no windows");
  *span = static_cast<int64_t>(batch.windows[0].audio.size());
  *reference = static_cast<int64_t>(batch.windows[0].reference.size());
  if (*span == 0) return absl::InvalidArgumentError("ToTensors: window 0: audio is empty");
  for (size_t i = 0; i < batch.windows.size(); ++i) {
    const WindowData& w = batch.windows[i];
    const std::string where = absl::StrCat("ToTensors: window ", i, " (index ", w.index, ")");
    if (static_cast<int64_t>(w.audio.size()) != *span) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": audio has ", w.audio.size(),
                                                     " samples, window 0 has ", *span));
    }
    if (static_cast<int64_t>(w.reference.size()) != *reference) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": reference has ", w.reference.size(),
                                                     " samples, window 0 has ", *reference));
    }
    if (o.from_dense) {
      if (static_cast<int64_t>(w.dense.size()) != kFeatureChannels * *span) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": dense has ", w.dense.size(), " bytes, expected 177 x ", *span,
                         " (was the batch requested with dense_conditioning?)"));
      }
    } else {
      RETURN_IF_ERROR(Annotate(CheckSparseEvents(w.conditioning, *span), where));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSparseEvents(const SparseEvents& e, int64_t span) {
  auto bad = [](auto&&... what) { return absl::InvalidArgumentError(absl::StrCat(what...)); };
  if (e.onset_key.size() != e.onset_sample.size() ||
      e.onset_velocity.size() != e.onset_sample.size()) {
    return bad("onset_sample/onset_key/onset_velocity lengths differ");
  }
  if (e.offset_key.size() != e.offset_sample.size()) {
    return bad("offset_sample/offset_key lengths differ");
  }
  if (!e.offset_velocity.empty() && e.offset_velocity.size() != e.offset_sample.size()) {
    return bad("offset_velocity has ", e.offset_velocity.size(), " entries for ",
               e.offset_sample.size(), " offsets");
  }
  if (e.held_velocity.size() != e.held_key.size()) return bad("held_key/held_velocity lengths differ");
  if (e.pedal_end.size() != e.pedal_start.size()) return bad("pedal_start/pedal_end lengths differ");
  auto key_ok = [](uint32_t k) { return k >= kFeatureLowestKey && k <= kHighestKey; };
  auto velocity_ok = [](uint32_t v) { return v >= 1 && v <= 127; };
  for (size_t i = 0; i < e.onset_sample.size(); ++i) {
    if (e.onset_sample[i] >= span) return bad("onset_sample[", i, "] = ", e.onset_sample[i], " not < span ", span);
    if (!key_ok(e.onset_key[i])) return bad("onset_key[", i, "] = ", e.onset_key[i], " outside 21..108");
    if (!velocity_ok(e.onset_velocity[i])) return bad("onset_velocity[", i, "] = ", e.onset_velocity[i], " outside 1..127");
  }
  for (size_t i = 0; i < e.offset_sample.size(); ++i) {
    if (e.offset_sample[i] > span) return bad("offset_sample[", i, "] = ", e.offset_sample[i], " > span ", span);
    if (!key_ok(e.offset_key[i])) return bad("offset_key[", i, "] = ", e.offset_key[i], " outside 21..108");
    if (!e.offset_velocity.empty() && !velocity_ok(e.offset_velocity[i])) {
      return bad("offset_velocity[", i, "] = ", e.offset_velocity[i], " outside 1..127");
    }
  }
  for (size_t i = 0; i < e.held_key.size(); ++i) {
    if (!key_ok(e.held_key[i])) return bad("held_key[", i, "] = ", e.held_key[i], " outside 21..108");
    if (!velocity_ok(e.held_velocity[i])) return bad("held_velocity[", i, "] = ", e.held_velocity[i], " outside 1..127");
  }
  for (size_t i = 0; i < e.pedal_start.size(); ++i) {
    if (e.pedal_start[i] >= e.pedal_end[i] || e.pedal_end[i] > span) {
      return bad("pedal interval ", i, " [", e.pedal_start[i], ", ", e.pedal_end[i],
                 ") empty or outside the span ", span);
    }
    if (i > 0 && e.pedal_start[i] < e.pedal_end[i - 1]) {
      return bad("pedal interval ", i, " overlaps or precedes interval ", i - 1);
    }
  }
  return absl::OkStatus();
}

void FillFeatures(const SparseEvents& events, int64_t span, float* out) {
  std::vector<Segment> segments;
  std::vector<Impulse> impulses;
  BuildSegments(events, span, &segments, &impulses);
  for (const Segment& s : segments) {
    float* row = out + s.row * span;
    std::fill(row + s.start, row + s.end, static_cast<float>(s.value) / kVelocityScale);
  }
  for (const Impulse& m : impulses) {
    out[m.row * span + m.sample] = static_cast<float>(m.value) / kVelocityScale;
  }
}

FeatureSpans::FeatureSpans(const SparseEvents& events, int64_t span) : span_(span) {
  std::vector<Segment> segments;
  std::vector<Impulse> impulses;
  BuildSegments(events, span, &segments, &impulses);
  for (const Segment& s : segments) {
    rows_[s.row].push_back({s.start, s.end, static_cast<float>(s.value) / kVelocityScale});
  }
  for (const Impulse& m : impulses) {
    rows_[m.row].push_back({m.sample, m.sample + 1, static_cast<float>(m.value) / kVelocityScale});
  }
  for (std::vector<Stretch>& row : rows_) {
    std::sort(row.begin(), row.end(),
              [](const Stretch& a, const Stretch& b) { return a.start < b.start; });
  }
}

void FeatureSpans::Fill(int64_t start, int64_t n, float* out) const {
  const int64_t end = start + n;
  for (int r = 0; r < kFeatureChannels; ++r) {
    const std::vector<Stretch>& row = rows_[r];
    // Disjoint and sorted by start, so sorted by end too: the first stretch
    // that ends after `start`.
    auto it = std::partition_point(row.begin(), row.end(),
                                   [&](const Stretch& s) { return s.end <= start; });
    float* dst = out + r * n;
    for (; it != row.end() && it->start < end; ++it) {
      std::fill(dst + (std::max<int64_t>(it->start, start) - start),
                dst + (std::min<int64_t>(it->end, end) - start), it->value);
    }
  }
}

absl::StatusOr<BatchTensors> ToTensors(const BatchData& batch, const BatchTensorOptions& o) {
  if (o.device.is_cuda() && !CudaAvailable()) {
    return absl::FailedPreconditionError(
        absl::StrCat("ToTensors: device ", o.device.str(), " requested but CUDA is not available"));
  }
  int64_t span = 0, reference = 0;
  RETURN_IF_ERROR(CheckBatch(batch, o, &span, &reference));
  try {
    BatchTensors t;
    t.audio = AudioTensor(batch, /*reference=*/false, span, o);
    t.reference = AudioTensor(batch, /*reference=*/true, reference, o);
    if (o.from_dense) {
      t.features = DenseFeatures(batch, span, o);
    } else {
      FeatureMethod method = o.features;
      if (method == FeatureMethod::kAuto) {
        method = o.device.is_cpu() ? FeatureMethod::kDirect : FeatureMethod::kScatter;
      }
      t.features = method == FeatureMethod::kDirect ? DirectFeatures(batch, span, o)
                                                    : ScatterFeatures(batch, span, o);
    }
    t.index = torch::empty({static_cast<int64_t>(batch.windows.size())}, torch::kInt64);
    int64_t* idx = t.index.data_ptr<int64_t>();
    for (size_t i = 0; i < batch.windows.size(); ++i) {
      idx[i] = static_cast<int64_t>(batch.windows[i].index);
    }
    return t;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("ToTensors: LibTorch: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("ToTensors: ", e.what()));
  }
}

}  // namespace pianola
