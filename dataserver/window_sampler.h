#ifndef PIANOLA_DATASERVER_WINDOW_SAMPLER_H_
#define PIANOLA_DATASERVER_WINDOW_SAMPLER_H_

// The pure window function: which recording, offset and reference window `i`
// of epoch `e` is, computed from (dataset fingerprint, seed, epoch, split, i)
// and the window geometry alone. Every data server replica computes the same
// answer, which is what makes servers stateless and interchangeable.
//
// For a split, the split's recordings are listed in manifest order and a
// window length L cuts recording t into C_t = floor(num_samples_t / L) chunks
// (recordings shorter than L give none). The epoch has N = sum C_t windows.
//   key      = HashCombine chain (kSamplerSalt, fingerprint, seed, epoch, split)
//   slot j   = P_key(i), P a keyed bijection of [0, N): a 6-round Feistel
//              network over the smallest 2h-bit domain holding N, walked until
//              the value lands below N (cycle walking); no O(N) tables.
//   (t, k)   = the chunk holding slot j (prefix sums of C_t, binary search)
//   offset   = min(k*L + jitter, num_samples - L), jitter = H(key, "jitter", j) mod L
// The reference (Lr samples): among the split's recordings with the same
// timbre and a different piece, one chosen uniformly by H(key, "ref", j),
// at an offset uniform in [0, num_samples - Lr] (offset 0 when the candidate
// is shorter than Lr; the reference is then zero-padded after its end).
// With no such recording, the same recording is used at an offset whose
// reference does not overlap the target span [offset - R, offset + L),
// uniform among all such offsets; when none exists the offset farthest from
// the target span is taken and the spec says so (reference_kind).
// docs/data_service.md states the contract; changing any of this changes the
// windows every existing (dataset, seed) produces.
//
// Rank r of W is served window indices i = r + k*W, k = 0 .. shard_size - 1.
//
// Immutable after Create(); thread-safe. Holds a reference to the Dataset,
// which must outlive it.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dataserver/dataset.h"

namespace pianola {

// The lengths, in samples, that define a window. Part of the pure function.
struct WindowGeometry {
  int64_t window_samples = 16000;    // L: the target, > 0
  int64_t context_samples = 0;       // R: receptive field before the target, >= 0
  int64_t reference_samples = 16000; // Lr: the reference clip, > 0
};

// How the reference of a window was chosen.
enum class ReferenceKind {
  kOtherPiece,              // same timbre, different piece (the normal case)
  kSameRecording,           // no other piece of this timbre: a far, non-overlapping part
  kSameRecordingOverlapping // recording too short for non-overlap: the farthest offset
};

// One window of an epoch, as the pure function defines it.
struct WindowSpec {
  uint64_t index = 0;            // i, 0..N-1
  uint64_t slot = 0;             // P(i)
  int recording = 0;             // manifest index
  int64_t offset = 0;            // first target sample
  int reference_recording = 0;   // manifest index
  int64_t reference_offset = 0;  // first reference sample (may run past the end: zeros)
  ReferenceKind reference_kind = ReferenceKind::kOtherPiece;
};

// Recordings with SPLIT_UNSPECIFIED count as TRAIN, as requests for
// SPLIT_UNSPECIFIED mean TRAIN.
Split NormalizeSplit(Split split);

// Windows in rank `rank`'s shard of an epoch of `epoch_size` windows
// (i = rank, rank + world, ...). 0 when rank >= epoch_size. world >= 1.
uint64_t ShardSize(uint64_t epoch_size, uint64_t rank, uint64_t world);

// A keyed pseudo-random permutation of [0, n): balanced Feistel network with
// cycle walking. Exposed for tests and docs; O(1) memory, O(1) expected time.
class FeistelPermutation {
 public:
  FeistelPermutation(uint64_t n, uint64_t key);
  uint64_t size() const { return n_; }
  // Requires x < size().
  uint64_t Apply(uint64_t x) const;

 private:
  uint64_t Round(uint64_t x) const;
  uint64_t n_;
  uint64_t key_;
  int half_bits_ = 1;
  uint64_t half_mask_ = 1;
};

class WindowSampler {
 public:
  // InvalidArgument (naming the field) for a non-positive window or reference
  // length or a negative context.
  static absl::StatusOr<std::unique_ptr<WindowSampler>> Create(const Dataset& dataset,
                                                               Split split,
                                                               WindowGeometry geometry);

  // N for a split and window length, without building a sampler.
  static uint64_t EpochSize(const Dataset& dataset, Split split, int64_t window_samples);

  Split split() const { return split_; }
  const WindowGeometry& geometry() const { return geometry_; }
  uint64_t epoch_size() const { return epoch_size_; }
  uint64_t shard_size(uint64_t rank, uint64_t world) const {
    return ShardSize(epoch_size_, rank, world);
  }
  // The split's recordings (manifest indices, manifest order).
  const std::vector<int>& recordings() const { return recordings_; }

  // The permutation key of an epoch.
  uint64_t EpochKey(uint64_t seed, uint64_t epoch) const;

  // Window `index` (< epoch_size()) of epoch `epoch`.
  WindowSpec Window(uint64_t seed, uint64_t epoch, uint64_t index) const;
  // Position `position` (< shard_size(rank, world)) of rank's shard.
  WindowSpec ShardWindow(uint64_t seed, uint64_t epoch, uint64_t rank, uint64_t world,
                         uint64_t position) const {
    return Window(seed, epoch, rank + position * world);
  }

 private:
  // Per split recording (position t in recordings_).
  struct Member {
    int64_t num_samples = 0;
    int group = 0;           // timbre group
    int same_piece_begin = 0;  // [begin, end): this piece's run in the group's sorted list
    int same_piece_end = 0;
  };

  WindowSampler(const Dataset& dataset, Split split, WindowGeometry geometry)
      : dataset_(dataset), split_(split), geometry_(geometry) {}
  void Build();
  void ChooseReference(uint64_t key, uint64_t slot, int t, WindowSpec* spec) const;

  const Dataset& dataset_;
  const Split split_;
  const WindowGeometry geometry_;
  std::vector<int> recordings_;          // manifest indices
  std::vector<Member> members_;          // parallel to recordings_
  std::vector<uint64_t> chunk_prefix_;   // size recordings_+1; chunk_prefix_[t] = chunks before t
  std::vector<std::vector<int>> groups_; // per timbre: positions t, sorted by (piece, t)
  uint64_t epoch_size_ = 0;
};

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_WINDOW_SAMPLER_H_
