#include "dataserver/window_sampler.h"

#include <map>
#include <set>

#include "dataserver/synthetic_dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

std::unique_ptr<Dataset> MakeDataset(const SyntheticDatasetOptions& options = {}) {
  auto ds = MakeSyntheticDataset(options);
  EXPECT_TRUE(ds.ok()) << ds.status();
  return std::move(ds).value();
}

std::unique_ptr<WindowSampler> MakeSampler(const Dataset& ds, WindowGeometry g = {4000, 1000, 4000},
                                           Split split = TRAIN) {
  auto s = WindowSampler::Create(ds, split, g);
  EXPECT_TRUE(s.ok()) << s.status();
  return std::move(s).value();
}

TEST(FeistelPermutationTest, IsABijectionForManySizes) {
  for (uint64_t n : {1ull, 2ull, 3ull, 4ull, 5ull, 7ull, 16ull, 17ull, 100ull, 1000ull, 4097ull}) {
    FeistelPermutation p(n, 0x1234 + n);
    std::vector<int> seen(n, 0);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t j = p.Apply(i);
      ASSERT_LT(j, n);
      ++seen[j];
    }
    for (uint64_t j = 0; j < n; ++j) EXPECT_EQ(seen[j], 1) << "n=" << n << " j=" << j;
  }
}

TEST(FeistelPermutationTest, ShufflesAndDependsOnKey) {
  const uint64_t n = 1000;
  FeistelPermutation a(n, 1), b(n, 2);
  int fixed = 0, same = 0, ascending = 0;
  for (uint64_t i = 0; i < n; ++i) {
    fixed += a.Apply(i) == i;
    same += a.Apply(i) == b.Apply(i);
    if (i > 0) ascending += a.Apply(i) > a.Apply(i - 1);
  }
  EXPECT_LT(fixed, 20);
  EXPECT_LT(same, 20);
  EXPECT_GT(ascending, 400);  // about half for a random order
  EXPECT_LT(ascending, 600);
}

TEST(WindowSamplerTest, EpochSizeSumsWholeChunksOfTheSplit) {
  SyntheticDatasetOptions o;
  o.piece_seconds = {1.0, 0.2, 2.6};  // 16000, 3200 (shorter than L), 41600 samples
  o.pieces = 3;
  o.piece_splits = {TRAIN, TRAIN, VALIDATION};
  auto ds = MakeDataset(o);
  // Two timbres: train = 2 * (4 + 0) chunks of 4000; validation = 2 * 10.
  EXPECT_EQ(WindowSampler::EpochSize(*ds, TRAIN, 4000), 8u);
  EXPECT_EQ(WindowSampler::EpochSize(*ds, SPLIT_UNSPECIFIED, 4000), 8u);
  EXPECT_EQ(WindowSampler::EpochSize(*ds, VALIDATION, 4000), 20u);
  EXPECT_EQ(WindowSampler::EpochSize(*ds, TEST, 4000), 0u);
  auto s = MakeSampler(*ds, {4000, 0, 4000}, VALIDATION);
  EXPECT_EQ(s->epoch_size(), 20u);
  EXPECT_EQ(s->recordings(), (std::vector<int>{4, 5}));
}

TEST(WindowSamplerTest, RejectsBadGeometry) {
  auto ds = MakeDataset();
  EXPECT_EQ(WindowSampler::Create(*ds, TRAIN, {0, 0, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(WindowSampler::Create(*ds, TRAIN, {1, -1, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto s = WindowSampler::Create(*ds, TRAIN, {1, 0, 0}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), testing::HasSubstr("reference_samples"));
}

TEST(WindowSamplerTest, EveryChunkOnceWithOffsetsInsideTheChunk) {
  auto ds = MakeDataset();
  const WindowGeometry g{4000, 1000, 4000};
  auto s = MakeSampler(*ds, g);
  ASSERT_GT(s->epoch_size(), 10u);
  std::set<uint64_t> slots;
  std::map<int, int> per_recording;
  for (uint64_t i = 0; i < s->epoch_size(); ++i) {
    WindowSpec w = s->Window(7, 3, i);
    EXPECT_EQ(w.index, i);
    EXPECT_TRUE(slots.insert(w.slot).second) << "slot " << w.slot << " twice";
    const int64_t n = ds->recording_index(w.recording).num_samples();
    EXPECT_GE(w.offset, 0);
    EXPECT_LE(w.offset + g.window_samples, n);
    ++per_recording[w.recording];
  }
  EXPECT_EQ(*slots.rbegin(), s->epoch_size() - 1);
  for (int r = 0; r < ds->num_recordings(); ++r) {
    EXPECT_EQ(per_recording[r], ds->recording_index(r).num_samples() / g.window_samples) << r;
  }
}

TEST(WindowSamplerTest, ShardsAreDisjointAndComplete) {
  auto ds = MakeDataset();
  auto s = MakeSampler(*ds);
  for (uint64_t world : {1u, 2u, 3u, 7u}) {
    std::set<uint64_t> slots;
    uint64_t total = 0;
    for (uint64_t rank = 0; rank < world; ++rank) {
      for (uint64_t k = 0; k < s->shard_size(rank, world); ++k) {
        WindowSpec w = s->ShardWindow(1, 0, rank, world, k);
        EXPECT_EQ(w.index % world, rank);
        slots.insert(w.slot);
        ++total;
      }
    }
    EXPECT_EQ(total, s->epoch_size());
    EXPECT_EQ(slots.size(), s->epoch_size());
  }
  EXPECT_EQ(ShardSize(10, 0, 3), 4u);
  EXPECT_EQ(ShardSize(10, 2, 3), 3u);
  EXPECT_EQ(ShardSize(2, 5, 8), 0u);
}

bool SameSpec(const WindowSpec& a, const WindowSpec& b) {
  return a.slot == b.slot && a.recording == b.recording && a.offset == b.offset &&
         a.reference_recording == b.reference_recording &&
         a.reference_offset == b.reference_offset;
}

TEST(WindowSamplerTest, DeterministicAcrossInstancesAndDatasetCopies) {
  auto ds1 = MakeDataset();
  auto ds2 = MakeDataset();
  ASSERT_EQ(ds1->fingerprint(), ds2->fingerprint());
  auto a = MakeSampler(*ds1);
  auto b = MakeSampler(*ds2);
  for (uint64_t i = 0; i < a->epoch_size(); ++i) {
    EXPECT_TRUE(SameSpec(a->Window(42, 5, i), b->Window(42, 5, i))) << i;
  }
}

// Fraction of indices whose window differs between two orders.
double Differing(const WindowSampler& a, uint64_t seed_a, uint64_t epoch_a, const WindowSampler& b,
                 uint64_t seed_b, uint64_t epoch_b) {
  int diff = 0;
  for (uint64_t i = 0; i < a.epoch_size(); ++i) {
    diff += !SameSpec(a.Window(seed_a, epoch_a, i), b.Window(seed_b, epoch_b, i));
  }
  return static_cast<double>(diff) / a.epoch_size();
}

TEST(WindowSamplerTest, SeedEpochAndFingerprintChangeTheOrder) {
  SyntheticDatasetOptions o;
  o.piece_seconds = {6.0, 5.0, 7.0, 4.0};
  auto ds = MakeDataset(o);
  auto s = MakeSampler(*ds, {2000, 0, 2000});
  ASSERT_GT(s->epoch_size(), 100u);
  EXPECT_GT(Differing(*s, 1, 0, *s, 2, 0), 0.9);
  EXPECT_GT(Differing(*s, 1, 0, *s, 1, 1), 0.9);
  EXPECT_EQ(Differing(*s, 1, 0, *s, 1, 0), 0.0);

  // One changed audio sample: a different fingerprint, a different order.
  SyntheticDatasetParts parts = MakeSyntheticDatasetParts(o);
  parts.audio[123] ^= 1;
  auto changed = Dataset::FromMemory(parts.manifest, parts.index, parts.audio);
  ASSERT_TRUE(changed.ok());
  ASSERT_NE((*changed)->fingerprint(), ds->fingerprint());
  auto t = MakeSampler(**changed, {2000, 0, 2000});
  ASSERT_EQ(t->epoch_size(), s->epoch_size());
  EXPECT_GT(Differing(*s, 1, 0, *t, 1, 0), 0.9);

  // Splits have independent orders (keys differ even at equal sizes).
  EXPECT_NE(s->EpochKey(1, 0), MakeSampler(*ds, {2000, 0, 2000}, VALIDATION)->EpochKey(1, 0));
}

TEST(WindowSamplerTest, ReferenceSharesTimbreNotPieceAndIsUniform) {
  SyntheticDatasetOptions o;
  o.pieces = 4;
  o.piece_seconds = {3.0};
  auto ds = MakeDataset(o);
  const WindowGeometry g{1000, 500, 2000};
  auto s = MakeSampler(*ds, g);
  std::map<int, int> chosen;
  for (uint64_t i = 0; i < s->epoch_size(); ++i) {
    WindowSpec w = s->Window(3, 0, i);
    const RecordingEntry& target = ds->entry(w.recording);
    const RecordingEntry& ref = ds->entry(w.reference_recording);
    EXPECT_EQ(w.reference_kind, ReferenceKind::kOtherPiece);
    EXPECT_EQ(ref.timbre(), target.timbre());
    EXPECT_NE(ref.piece(), target.piece());
    EXPECT_GE(w.reference_offset, 0);
    EXPECT_LE(w.reference_offset + g.reference_samples, ref.num_samples());
    if (w.recording == 0) ++chosen[w.reference_recording];
  }
  // Recording 0 (piece0, grand) draws among piece1..3 grand: 2, 4, 6 (48 windows).
  EXPECT_EQ(chosen.size(), 3u);
  for (int r : {2, 4, 6}) {
    EXPECT_GE(chosen[r], 8) << r;
    EXPECT_LE(chosen[r], 28) << r;
  }
}

TEST(WindowSamplerTest, ShortReferenceCandidateStartsAtZero) {
  SyntheticDatasetOptions o;
  o.pieces = 2;
  o.timbres = {"grand"};
  o.piece_seconds = {2.0, 0.1};  // piece1 (1600 samples) is shorter than Lr
  auto ds = MakeDataset(o);
  auto s = MakeSampler(*ds, {4000, 0, 8000});
  ASSERT_EQ(s->epoch_size(), 8u);
  for (uint64_t i = 0; i < s->epoch_size(); ++i) {
    WindowSpec w = s->Window(0, 0, i);
    EXPECT_EQ(w.recording, 0);
    EXPECT_EQ(w.reference_recording, 1);
    EXPECT_EQ(w.reference_offset, 0);
    EXPECT_EQ(w.reference_kind, ReferenceKind::kOtherPiece);
  }
}

TEST(WindowSamplerTest, FallbackUsesFarPartOfTheSameRecording) {
  // One piece per timbre: no other piece shares a timbre.
  SyntheticDatasetOptions o;
  o.pieces = 1;
  o.piece_seconds = {5.0};
  auto ds = MakeDataset(o);
  const WindowGeometry g{4000, 2000, 8000};
  auto s = MakeSampler(*ds, g);
  ASSERT_EQ(s->epoch_size(), 40u);
  int non_overlapping = 0;
  for (uint64_t i = 0; i < s->epoch_size(); ++i) {
    WindowSpec w = s->Window(9, 0, i);
    EXPECT_EQ(w.reference_recording, w.recording);
    const int64_t s0 = std::max<int64_t>(0, w.offset - g.context_samples);
    const int64_t s1 = w.offset + g.window_samples;
    const int64_t r0 = w.reference_offset, r1 = r0 + g.reference_samples;
    EXPECT_GE(r0, 0);
    EXPECT_LE(r1, 80000);
    if (w.reference_kind == ReferenceKind::kSameRecording) {
      EXPECT_TRUE(r1 <= s0 || r0 >= s1) << "reference [" << r0 << "," << r1 << ") overlaps ["
                                        << s0 << "," << s1 << ")";
      ++non_overlapping;
    } else {
      EXPECT_EQ(w.reference_kind, ReferenceKind::kSameRecordingOverlapping);
    }
  }
  // 80000 samples always leave room for 8000 outside a 6000-sample span.
  EXPECT_EQ(non_overlapping, 40);
}

TEST(WindowSamplerTest, FallbackTooShortTakesFarthestOffset) {
  SyntheticDatasetOptions o;
  o.pieces = 1;
  o.timbres = {"grand"};
  o.piece_seconds = {1.0};  // 16000 samples
  auto ds = MakeDataset(o);
  const WindowGeometry g{4000, 0, 10000};
  auto s = MakeSampler(*ds, g);
  ASSERT_EQ(s->epoch_size(), 4u);
  int overlapping = 0;
  for (uint64_t i = 0; i < 4; ++i) {
    WindowSpec w = s->Window(0, 0, i);
    if (w.reference_kind != ReferenceKind::kSameRecordingOverlapping) continue;
    ++overlapping;
    // The end farther from the target's centre.
    const int64_t centre = w.offset + 2000;
    EXPECT_EQ(w.reference_offset, centre < 8000 ? 6000 : 0) << "target at " << w.offset;
  }
  EXPECT_GT(overlapping, 0);
  // Shorter than the reference itself: offset 0, zero padded.
  auto t = MakeSampler(*ds, {4000, 0, 20000});
  WindowSpec w = t->Window(0, 0, 0);
  EXPECT_EQ(w.reference_offset, 0);
  EXPECT_EQ(w.reference_kind, ReferenceKind::kSameRecordingOverlapping);
}

}  // namespace
}  // namespace pianola
