#include "dataserver/window_sampler.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"

namespace pianola {
namespace {

// Domain-separation constants of the pure function (part of the contract).
constexpr uint64_t kSamplerSalt = 0x70696e6f6c612d77ULL;  // "pinola-w"
constexpr uint64_t kJitterTag = 1;
constexpr uint64_t kReferenceTag = 2;
constexpr uint64_t kReferenceOffsetTag = 3;
constexpr int kFeistelRounds = 6;

// Uniform-enough value in [0, n) from a 64-bit hash (n > 0). The modulo bias
// is below n / 2^64, irrelevant for sample counts.
uint64_t Below(uint64_t hash, uint64_t n) { return hash % n; }

}  // namespace

Split NormalizeSplit(Split split) { return split == SPLIT_UNSPECIFIED ? TRAIN : split; }

uint64_t ShardSize(uint64_t epoch_size, uint64_t rank, uint64_t world) {
  if (world == 0) world = 1;
  if (rank >= epoch_size) return 0;
  return (epoch_size - rank + world - 1) / world;
}

FeistelPermutation::FeistelPermutation(uint64_t n, uint64_t key) : n_(n), key_(key) {
  // The smallest even bit width 2h >= 2 whose domain 4^h holds n, so cycle
  // walking needs fewer than 4 steps on average.
  half_bits_ = 1;
  while (half_bits_ < 32 && (uint64_t{1} << (2 * half_bits_)) < n) ++half_bits_;
  half_mask_ = (uint64_t{1} << half_bits_) - 1;
}

uint64_t FeistelPermutation::Round(uint64_t x) const {
  uint64_t left = x >> half_bits_;
  uint64_t right = x & half_mask_;
  for (int round = 0; round < kFeistelRounds; ++round) {
    const uint64_t f = HashCombine(HashCombine(key_, static_cast<uint64_t>(round)), right);
    const uint64_t next_right = (left ^ f) & half_mask_;
    left = right;
    right = next_right;
  }
  return (left << half_bits_) | right;
}

uint64_t FeistelPermutation::Apply(uint64_t x) const {
  // Cycle walking: the Feistel network permutes [0, 4^h); following its
  // cycle from x until it re-enters [0, n) is a permutation of [0, n).
  if (n_ <= 1) return x;
  uint64_t y = Round(x);
  while (y >= n_) y = Round(y);
  return y;
}

absl::StatusOr<std::unique_ptr<WindowSampler>> WindowSampler::Create(const Dataset& dataset,
                                                                      Split split,
                                                                      WindowGeometry geometry) {
  if (geometry.window_samples <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("window_samples must be > 0, got ", geometry.window_samples));
  }
  if (geometry.context_samples < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("context_samples must be >= 0, got ", geometry.context_samples));
  }
  if (geometry.reference_samples <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference_samples must be > 0, got ", geometry.reference_samples));
  }
  std::unique_ptr<WindowSampler> sampler(
      new WindowSampler(dataset, NormalizeSplit(split), geometry));
  sampler->Build();
  return sampler;
}

uint64_t WindowSampler::EpochSize(const Dataset& dataset, Split split, int64_t window_samples) {
  if (window_samples <= 0) return 0;
  split = NormalizeSplit(split);
  uint64_t n = 0;
  for (int r = 0; r < dataset.num_recordings(); ++r) {
    if (NormalizeSplit(dataset.entry(r).split()) != split) continue;
    n += static_cast<uint64_t>(dataset.recording_index(r).num_samples() / window_samples);
  }
  return n;
}

void WindowSampler::Build() {
  const int64_t L = geometry_.window_samples;
  for (int r = 0; r < dataset_.num_recordings(); ++r) {
    if (NormalizeSplit(dataset_.entry(r).split()) == split_) recordings_.push_back(r);
  }
  members_.resize(recordings_.size());
  chunk_prefix_.assign(recordings_.size() + 1, 0);
  std::map<std::string, int> group_of_timbre;
  for (size_t t = 0; t < recordings_.size(); ++t) {
    const int r = recordings_[t];
    Member& m = members_[t];
    m.num_samples = dataset_.recording_index(r).num_samples();
    chunk_prefix_[t + 1] = chunk_prefix_[t] + static_cast<uint64_t>(m.num_samples / L);
    auto [it, inserted] =
        group_of_timbre.emplace(dataset_.entry(r).timbre(), static_cast<int>(groups_.size()));
    if (inserted) groups_.emplace_back();
    m.group = it->second;
    groups_[m.group].push_back(static_cast<int>(t));
  }
  epoch_size_ = chunk_prefix_.back();
  // Sort each timbre group by (piece, position) so that one piece's
  // recordings form a contiguous run, and note each member's run.
  for (std::vector<int>& group : groups_) {
    auto piece = [&](int t) -> const std::string& {
      return dataset_.entry(recordings_[t]).piece();
    };
    std::sort(group.begin(), group.end(), [&](int a, int b) {
      const int c = piece(a).compare(piece(b));
      return c != 0 ? c < 0 : a < b;
    });
    size_t begin = 0;
    while (begin < group.size()) {
      size_t end = begin + 1;
      while (end < group.size() && piece(group[end]) == piece(group[begin])) ++end;
      for (size_t g = begin; g < end; ++g) {
        members_[group[g]].same_piece_begin = static_cast<int>(begin);
        members_[group[g]].same_piece_end = static_cast<int>(end);
      }
      begin = end;
    }
  }
}

uint64_t WindowSampler::EpochKey(uint64_t seed, uint64_t epoch) const {
  uint64_t key = HashCombine(kSamplerSalt, dataset_.fingerprint());
  key = HashCombine(key, seed);
  key = HashCombine(key, epoch);
  return HashCombine(key, static_cast<uint64_t>(split_));
}

WindowSpec WindowSampler::Window(uint64_t seed, uint64_t epoch, uint64_t index) const {
  const int64_t L = geometry_.window_samples;
  const uint64_t key = EpochKey(seed, epoch);
  WindowSpec spec;
  spec.index = index;
  spec.slot = FeistelPermutation(epoch_size_, key).Apply(index);
  // The recording whose chunks hold the slot: the last t with prefix[t] <= slot.
  const int t = static_cast<int>(
      std::upper_bound(chunk_prefix_.begin(), chunk_prefix_.end(), spec.slot) -
      chunk_prefix_.begin() - 1);
  const uint64_t chunk = spec.slot - chunk_prefix_[t];
  const int64_t num_samples = members_[t].num_samples;
  const int64_t jitter = static_cast<int64_t>(
      Below(HashCombine(HashCombine(key, kJitterTag), spec.slot), static_cast<uint64_t>(L)));
  spec.recording = recordings_[t];
  spec.offset = std::min(static_cast<int64_t>(chunk) * L + jitter, num_samples - L);
  ChooseReference(key, spec.slot, t, &spec);
  return spec;
}

void WindowSampler::ChooseReference(uint64_t key, uint64_t slot, int t, WindowSpec* spec) const {
  const int64_t Lr = geometry_.reference_samples;
  const Member& m = members_[t];
  const std::vector<int>& group = groups_[m.group];
  const uint64_t run = static_cast<uint64_t>(m.same_piece_end - m.same_piece_begin);
  const uint64_t candidates = group.size() - run;
  const uint64_t h = HashCombine(HashCombine(key, kReferenceTag), slot);
  const uint64_t h_offset = HashCombine(h, kReferenceOffsetTag);
  if (candidates > 0) {
    // The u-th recording of the group outside this piece's run.
    uint64_t u = Below(h, candidates);
    if (u >= static_cast<uint64_t>(m.same_piece_begin)) u += run;
    const int c = group[u];
    const int64_t n = members_[c].num_samples;
    spec->reference_recording = recordings_[c];
    spec->reference_offset =
        n >= Lr ? static_cast<int64_t>(Below(h_offset, static_cast<uint64_t>(n - Lr + 1))) : 0;
    spec->reference_kind = ReferenceKind::kOtherPiece;
    return;
  }
  // Fallback: the same recording, away from the target span [s0, s1).
  spec->reference_recording = spec->recording;
  const int64_t n = m.num_samples;
  const int64_t s0 = std::max<int64_t>(0, spec->offset - geometry_.context_samples);
  const int64_t s1 = spec->offset + geometry_.window_samples;
  if (n < Lr) {
    spec->reference_offset = 0;
    spec->reference_kind = ReferenceKind::kSameRecordingOverlapping;
    return;
  }
  // Offsets o in [0, s0 - Lr] end before the span; o in [s1, n - Lr] start after it.
  const int64_t before = std::max<int64_t>(0, s0 - Lr + 1);
  const int64_t after = std::max<int64_t>(0, n - Lr - s1 + 1);
  if (before + after > 0) {
    const int64_t u =
        static_cast<int64_t>(Below(h_offset, static_cast<uint64_t>(before + after)));
    spec->reference_offset = u < before ? u : s1 + (u - before);
    spec->reference_kind = ReferenceKind::kSameRecording;
    return;
  }
  // Too short for non-overlap: the end of the recording farther from the span
  // (comparing centres; twice the centre keeps integers exact).
  const int64_t span_centre2 = s0 + s1;
  const int64_t last = n - Lr;
  const int64_t d_first = std::abs(Lr - span_centre2);
  const int64_t d_last = std::abs(2 * last + Lr - span_centre2);
  spec->reference_offset = d_last > d_first ? last : 0;
  spec->reference_kind = ReferenceKind::kSameRecordingOverlapping;
}

}  // namespace pianola
