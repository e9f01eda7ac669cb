#include "trainer/batch_tensors.h"

#include <torch/cuda.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

using ::testing::HasSubstr;

// A note in absolute sample time, active on [start, end).
struct TestNote {
  int64_t start;
  int64_t end;
  uint32_t key;
  uint32_t velocity;
};
struct TestPedal {
  int64_t start;
  int64_t end;
};

// The sparse events of the span [a, a + span), written from the proto's
// definitions: onsets inside the span; ends inside the span (end <= a + span)
// of notes that start in it or are held; notes sounding at span sample 0 that
// started before it, oldest first within a key; pedal clipped to the span.
SparseEvents EventsOf(const std::vector<TestNote>& notes, const std::vector<TestPedal>& pedal,
                      int64_t a, int64_t span, bool offset_velocities = true) {
  std::vector<TestNote> sorted = notes;
  std::sort(sorted.begin(), sorted.end(), [](const TestNote& x, const TestNote& y) {
    return x.start != y.start ? x.start < y.start : x.key < y.key;
  });
  SparseEvents e;
  std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> offsets;  // (sample, key, velocity)
  std::vector<const TestNote*> held;
  for (const TestNote& n : sorted) {
    const bool starts_inside = n.start >= a && n.start < a + span;
    const bool is_held = n.start < a && n.end > a;
    if (starts_inside) {
      e.onset_sample.push_back(static_cast<uint32_t>(n.start - a));
      e.onset_key.push_back(n.key);
      e.onset_velocity.push_back(n.velocity);
    }
    if (is_held) held.push_back(&n);
    if ((starts_inside || is_held) && n.end <= a + span) {
      offsets.emplace_back(static_cast<uint32_t>(n.end - a), n.key, n.velocity);
    }
  }
  // By (sample, key); the order among one key's offsets at one sample is not
  // promised, so shuffle it deterministically.
  std::stable_sort(offsets.begin(), offsets.end(), [](const auto& x, const auto& y) {
    return std::get<0>(x) != std::get<0>(y) ? std::get<0>(x) < std::get<0>(y)
                                            : std::get<1>(x) < std::get<1>(y);
  });
  for (auto [s, k, v] : offsets) {
    e.offset_sample.push_back(s);
    e.offset_key.push_back(k);
    if (offset_velocities) e.offset_velocity.push_back(v);
  }
  std::stable_sort(held.begin(), held.end(),
                   [](const TestNote* x, const TestNote* y) { return x->key < y->key; });
  for (const TestNote* n : held) {
    e.held_key.push_back(n->key);
    e.held_velocity.push_back(n->velocity);
  }
  for (const TestPedal& p : pedal) {
    const int64_t s = std::max(p.start, a), t = std::min(p.end, a + span);
    if (s < t) {
      e.pedal_start.push_back(static_cast<uint32_t>(s - a));
      e.pedal_end.push_back(static_cast<uint32_t>(t - a));
    }
  }
  return e;
}

// The features by definition, one sample at a time, from the notes themselves.
std::vector<float> NaiveFeatures(const std::vector<TestNote>& notes,
                                 const std::vector<TestPedal>& pedal, int64_t a, int64_t span) {
  std::vector<float> out(static_cast<size_t>(177 * span), 0.0f);
  for (int64_t t = 0; t < span; ++t) {
    const int64_t x = a + t;
    for (const TestNote& n : notes) {
      const int k = static_cast<int>(n.key) - 21;
      const float v = static_cast<float>(n.velocity) / 127.0f;
      if (n.start == x) out[k * span + t] = std::max(out[k * span + t], v);
      if (n.start <= x && x < n.end) out[(88 + k) * span + t] = std::max(out[(88 + k) * span + t], v);
    }
    for (const TestPedal& p : pedal) {
      if (p.start <= x && x < p.end) out[176 * span + t] = 1.0f;
    }
  }
  return out;
}

// The dense uint8 encoding of proto Window.dense_conditioning, by definition.
std::vector<uint8_t> NaiveDense(const std::vector<TestNote>& notes,
                                const std::vector<TestPedal>& pedal, int64_t a, int64_t span) {
  std::vector<uint8_t> out(static_cast<size_t>(177 * span), 0);
  for (int64_t t = 0; t < span; ++t) {
    const int64_t x = a + t;
    for (const TestNote& n : notes) {
      const int k = static_cast<int>(n.key) - 21;
      const uint8_t v = static_cast<uint8_t>(n.velocity);
      if (n.start == x) out[k * span + t] = std::max(out[k * span + t], v);
      if (n.start <= x && x < n.end) out[(88 + k) * span + t] = std::max(out[(88 + k) * span + t], v);
    }
    for (const TestPedal& p : pedal) {
      if (p.start <= x && x < p.end) out[176 * span + t] = 127;
    }
  }
  return out;
}

// Random notes around a span, dense on a few keys so that notes of one key
// overlap, touch, and have zero length. With `fifo`, notes of one key end in
// the order they start (as the MIDI reader pairs one channel's note-offs);
// otherwise in any order (several channels, synthetic data).
void RandomNotes(std::mt19937_64& rng, int64_t a, int64_t span, std::vector<TestNote>* notes,
                 std::vector<TestPedal>* pedal, bool fifo = true) {
  auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  const uint32_t low = static_cast<uint32_t>(uniform(21, 100));
  for (uint32_t key = low; key < low + 5 && key <= 108; ++key) {
    std::vector<int64_t> starts;
    const int count = static_cast<int>(uniform(0, 8));
    for (int i = 0; i < count; ++i) starts.push_back(uniform(a - span / 2, a + span + 5));
    std::sort(starts.begin(), starts.end());
    starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
    int64_t last_end = INT64_MIN;
    for (int64_t s : starts) {
      int64_t end = s + (uniform(0, 3) == 0 ? 0 : uniform(1, span / 2));
      if (uniform(0, 4) == 0 && last_end >= s) end = last_end;  // ends with the previous one
      if (fifo) end = std::max(end, last_end);
      last_end = end;
      notes->push_back({s, end, key, static_cast<uint32_t>(uniform(1, 127))});
    }
  }
  int64_t t = a - span / 4;
  while (t < a + span) {
    const int64_t s = t + uniform(0, span / 3);
    const int64_t e = s + uniform(1, span / 3);
    pedal->push_back({s, e});
    t = e + uniform(1, 5);
  }
}

TEST(BatchTensorsTest, HandWrittenExample) {
  const int64_t span = 10;
  SparseEvents e;
  // Key 60 held at velocity 64 until sample 3; struck again at 5 (127) and
  // sounding to the end; key 21 struck at 0 (velocity 127) and at 9 with no
  // offset; pedal down on [2, 4).
  e.held_key = {60};
  e.held_velocity = {64};
  e.offset_sample = {3};
  e.offset_key = {60};
  e.onset_sample = {0, 5, 9};
  e.onset_key = {21, 60, 21};
  e.onset_velocity = {127, 127, 127};
  e.pedal_start = {2};
  e.pedal_end = {4};
  ASSERT_TRUE(CheckSparseEvents(e, span).ok());
  std::vector<float> f(177 * span, 0.0f);
  FillFeatures(e, span, f.data());
  auto at = [&](int row, int t) { return f[row * span + t]; };
  const float v64 = 64.0f / 127.0f;
  // Onset rows.
  EXPECT_EQ(at(0, 0), 1.0f);
  EXPECT_EQ(at(0, 9), 1.0f);
  EXPECT_EQ(at(0, 1), 0.0f);
  EXPECT_EQ(at(60 - 21, 5), 1.0f);
  EXPECT_EQ(at(60 - 21, 0), 0.0f);  // held, not struck here
  // Frame rows: key 60 on [0, 3) at 64, off on [3, 5), on at 127 from 5.
  for (int t = 0; t < 3; ++t) EXPECT_EQ(at(88 + 39, t), v64) << t;
  for (int t = 3; t < 5; ++t) EXPECT_EQ(at(88 + 39, t), 0.0f) << t;
  for (int t = 5; t < 10; ++t) EXPECT_EQ(at(88 + 39, t), 1.0f) << t;
  // Key 21 sounds from 0 to the end (never released).
  for (int t = 0; t < 10; ++t) EXPECT_EQ(at(88, t), 1.0f) << t;
  // Pedal.
  for (int t = 0; t < 10; ++t) EXPECT_EQ(at(176, t), t >= 2 && t < 4 ? 1.0f : 0.0f) << t;
  // Nothing else.
  float total = 0;
  for (float x : f) total += x;
  EXPECT_FLOAT_EQ(total, 2.0f + 1.0f + 3 * v64 + 5.0f + 10.0f + 2.0f);
}

TEST(BatchTensorsTest, RetouchAndZeroLengthNotesPairFirstInFirstOut) {
  const int64_t span = 12;
  // Key 40, consistent with first-in-first-out note-off pairing: A [-5, 6) v10
  // held; B [2, 9) v100 overlapping it; C [6, 9) v50 struck where A ends; D
  // [9, 9) v70 of zero length where B and C end; E [10, 12) v30 ending at the
  // span's end.
  std::vector<TestNote> notes = {{-5, 6, 40, 10}, {2, 9, 40, 100}, {6, 9, 40, 50},
                                 {9, 9, 40, 70},  {10, 12, 40, 30}};
  const SparseEvents e = EventsOf(notes, {}, 0, span);
  ASSERT_TRUE(CheckSparseEvents(e, span).ok());
  std::vector<float> f(177 * span, 0.0f);
  FillFeatures(e, span, f.data());
  EXPECT_EQ(f, NaiveFeatures(notes, {}, 0, span));
}

// Random windows, both feature methods, against the definition. Notes that
// end out of order need offset_velocity; first-in-first-out ones decode
// exactly either way.
TEST(BatchTensorsTest, RandomEventsMatchNaiveLoopBothMethods) {
  std::mt19937_64 rng(12345);
  const int64_t span = 96;
  struct Mode {
    bool fifo;
    bool offset_velocities;
  };
  for (Mode mode : {Mode{true, true}, Mode{true, false}, Mode{false, true}}) {
    for (int round = 0; round < 30; ++round) {
      BatchData batch;
      std::vector<std::vector<float>> expected;
      for (int w = 0; w < 3; ++w) {
        std::vector<TestNote> notes;
        std::vector<TestPedal> pedal;
        const int64_t a = 1000 + 37 * w;
        RandomNotes(rng, a, span, &notes, &pedal, mode.fifo);
        WindowData d;
        d.index = static_cast<uint64_t>(round * 3 + w);
        d.audio.assign(span, 0);
        d.reference.assign(7, 0);
        d.conditioning = EventsOf(notes, pedal, a, span, mode.offset_velocities);
        batch.windows.push_back(std::move(d));
        expected.push_back(NaiveFeatures(notes, pedal, a, span));
      }
      for (FeatureMethod method : {FeatureMethod::kDirect, FeatureMethod::kScatter}) {
        BatchTensorOptions o;
        o.features = method;
        absl::StatusOr<BatchTensors> t = ToTensors(batch, o);
        ASSERT_TRUE(t.ok()) << t.status();
        ASSERT_EQ(t->features.sizes(), (std::vector<int64_t>{3, 177, span}));
        ASSERT_EQ(t->features.dtype(), torch::kFloat32);
        for (int w = 0; w < 3; ++w) {
          torch::Tensor want = torch::from_blob(expected[w].data(), {177, span}, torch::kFloat32);
          ASSERT_TRUE(torch::equal(t->features[w], want))
              << "fifo " << mode.fifo << " offset velocities " << mode.offset_velocities
              << " round " << round << " window " << w << " method " << static_cast<int>(method)
              << " max diff " << (t->features[w] - want).abs().max().item<float>();
        }
      }
    }
  }
}

// The features by the straightforward algorithm FillFeatures first used: a
// list of one key's sounding velocities, oldest first, scanned for its
// largest after every sample's events (O(notes^2) for notes stacked on one
// key, hence replaced). Kept as the reference the faster code must match.
std::vector<float> ListFeatures(const SparseEvents& e, int64_t span) {
  struct Event {
    uint32_t key;
    uint32_t sample;
    int kind;  // 0: offset, 1: onset
    int velocity;
  };
  const bool offset_velocities = !e.offset_velocity.empty();
  std::vector<Event> events;
  for (size_t i = 0; i < e.offset_sample.size(); ++i) {
    events.push_back({e.offset_key[i], e.offset_sample[i], 0,
                      offset_velocities ? static_cast<int>(e.offset_velocity[i]) : 0});
  }
  for (size_t i = 0; i < e.onset_sample.size(); ++i) {
    events.push_back({e.onset_key[i], e.onset_sample[i], 1, static_cast<int>(e.onset_velocity[i])});
  }
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return std::tie(a.key, a.sample, a.kind) < std::tie(b.key, b.sample, b.kind);
  });
  std::vector<float> out(static_cast<size_t>(177 * span), 0.0f);
  auto fill = [&](uint32_t key, int64_t from, int64_t to, int v) {
    float* row = out.data() + (88 + key - 21) * span;
    std::fill(row + from, row + to, static_cast<float>(v) / 127.0f);
  };
  for (uint32_t key = 21; key <= 108; ++key) {
    std::vector<int> active;  // oldest first
    for (size_t i = 0; i < e.held_key.size(); ++i) {
      if (e.held_key[i] == key) active.push_back(static_cast<int>(e.held_velocity[i]));
    }
    auto max_active = [&active] {
      int m = 0;
      for (int v : active) m = std::max(m, v);
      return m;
    };
    int value = max_active();
    int64_t start = 0;
    for (size_t ei = 0; ei < events.size();) {
      if (events[ei].key != key) {
        ++ei;
        continue;
      }
      const uint32_t t = events[ei].sample;
      std::vector<int> ended;
      for (; ei < events.size() && events[ei].key == key && events[ei].sample == t &&
             events[ei].kind == 0;
           ++ei) {
        ended.push_back(events[ei].velocity);
      }
      const size_t first_new = active.size();
      int onset = 0;
      for (; ei < events.size() && events[ei].key == key && events[ei].sample == t; ++ei) {
        active.push_back(events[ei].velocity);
        onset = std::max(onset, events[ei].velocity);
      }
      if (onset > 0) out[(key - 21) * span + t] = static_cast<float>(onset) / 127.0f;
      if (offset_velocities) {
        for (int v : ended) {
          auto it = std::find(active.begin(), active.end(), v);
          if (it != active.end()) active.erase(it);
        }
      } else {
        const size_t old_ended = std::min(ended.size(), first_new);
        active.erase(active.begin(), active.begin() + static_cast<ptrdiff_t>(old_ended));
        const size_t now_first_new = first_new - old_ended;
        const size_t zero_length =
            std::min(ended.size() - old_ended, active.size() - now_first_new);
        active.erase(active.begin() + static_cast<ptrdiff_t>(now_first_new),
                     active.begin() + static_cast<ptrdiff_t>(now_first_new + zero_length));
      }
      const int next = max_active();
      if (next != value) {
        if (value > 0) fill(key, start, t, value);
        start = t;
        value = next;
      }
    }
    if (value > 0) fill(key, start, span, value);
  }
  for (size_t i = 0; i < e.pedal_start.size(); ++i) {
    std::fill(out.data() + 176 * span + e.pedal_start[i], out.data() + 176 * span + e.pedal_end[i],
              1.0f);
  }
  return out;
}

// Random events written directly (not from notes, so not necessarily
// consistent): few keys, few samples and few velocities, so that onsets
// repeat on one key at one sample, zero-length notes stack, held notes share
// velocities, and offsets find no sounding note (of their velocity, or at all).
SparseEvents RandomEvents(std::mt19937_64& rng, int64_t span, bool offset_velocities) {
  auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  std::vector<uint32_t> keys;
  for (int64_t i = uniform(1, 3); i > 0; --i) {
    const int64_t pick = uniform(0, 5);
    keys.push_back(pick == 0 ? 21 : pick == 1 ? 108 : static_cast<uint32_t>(uniform(22, 107)));
  }
  const std::vector<uint32_t> few = {1, 64, 100, 127};
  auto key = [&] { return keys[uniform(0, keys.size() - 1)]; };
  auto velocity = [&]() -> uint32_t {
    return uniform(0, 3) == 0 ? static_cast<uint32_t>(uniform(1, 127)) : few[uniform(0, 3)];
  };
  // Onset samples from a handful, so that several fall on one sample.
  std::vector<uint32_t> samples;
  for (int64_t i = uniform(1, 6); i > 0; --i) samples.push_back(uniform(0, span - 1));
  auto sample = [&] { return samples[uniform(0, samples.size() - 1)]; };
  SparseEvents e;
  auto offset = [&](uint32_t s, uint32_t k, uint32_t v) {
    e.offset_sample.push_back(s);
    e.offset_key.push_back(k);
    if (offset_velocities) e.offset_velocity.push_back(v);
  };
  for (int64_t i = uniform(0, 5); i > 0; --i) {
    e.held_key.push_back(key());
    e.held_velocity.push_back(velocity());
  }
  for (int64_t i = uniform(0, 20); i > 0; --i) {
    const uint32_t s = sample(), k = key(), v = velocity();
    e.onset_sample.push_back(s);
    e.onset_key.push_back(k);
    e.onset_velocity.push_back(v);
    if (uniform(0, 2) == 0) offset(s, k, v);  // zero length
  }
  for (int64_t i = uniform(0, 20); i > 0; --i) {
    const uint32_t s = uniform(0, 1) == 0 ? sample() : static_cast<uint32_t>(uniform(0, span));
    offset(s, key(), velocity());
  }
  // A stack of zero-length notes now and then.
  if (uniform(0, 4) == 0) {
    const uint32_t s = sample(), k = key();
    for (int64_t i = uniform(2, 40); i > 0; --i) {
      const uint32_t v = velocity();
      e.onset_sample.push_back(s);
      e.onset_key.push_back(k);
      e.onset_velocity.push_back(v);
      offset(s, k, v);
    }
  }
  // Any input order: shuffle onsets and offsets (their order within one key
  // and sample is what FIFO pairing follows).
  auto shuffle = [&rng](size_t n, auto&... columns) {
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    auto apply = [&order](auto& column) {
      if (column.empty()) return;
      auto copy = column;
      for (size_t i = 0; i < order.size(); ++i) column[i] = copy[order[i]];
    };
    (apply(columns), ...);
  };
  shuffle(e.onset_sample.size(), e.onset_sample, e.onset_key, e.onset_velocity);
  shuffle(e.offset_sample.size(), e.offset_sample, e.offset_key, e.offset_velocity);
  shuffle(e.held_key.size(), e.held_key, e.held_velocity);
  return e;
}

TEST(BatchTensorsTest, FillFeaturesMatchesTheNoteListReference) {
  std::mt19937_64 rng(2024);
  for (bool offset_velocities : {true, false}) {
    for (int round = 0; round < 3000; ++round) {
      const int64_t span = std::uniform_int_distribution<int64_t>(1, 48)(rng);
      const SparseEvents e = RandomEvents(rng, span, offset_velocities);
      ASSERT_TRUE(CheckSparseEvents(e, span).ok()) << CheckSparseEvents(e, span);
      std::vector<float> f(static_cast<size_t>(177 * span), 0.0f);
      FillFeatures(e, span, f.data());
      ASSERT_EQ(f, ListFeatures(e, span))
          << "offset velocities " << offset_velocities << " round " << round;
    }
  }
}

// Thousands of notes stacked on one key (one sample, or one at each sample)
// give the same features as the reference.
TEST(BatchTensorsTest, StackedNotesMatchTheNoteListReference) {
  const int n = 3000;
  for (bool offset_velocities : {true, false}) {
    SparseEvents zero_length, unclosed, held;
    for (int i = 0; i < n; ++i) {
      const uint32_t v = 1 + (i * 37) % 127;
      zero_length.onset_sample.push_back(5);
      zero_length.onset_key.push_back(60);
      zero_length.onset_velocity.push_back(v);
      zero_length.offset_sample.push_back(5);
      zero_length.offset_key.push_back(60);
      unclosed.onset_sample.push_back(static_cast<uint32_t>(i));
      unclosed.onset_key.push_back(60);
      unclosed.onset_velocity.push_back(v);
      held.held_key.push_back(60);
      held.held_velocity.push_back(v);
      held.offset_sample.push_back(static_cast<uint32_t>(i % 50));
      held.offset_key.push_back(60);
      if (offset_velocities) {
        zero_length.offset_velocity.push_back(v);
        held.offset_velocity.push_back(1 + (i * 53) % 127);
      }
    }
    for (auto [e, span] : {std::pair{&zero_length, int64_t{50}}, std::pair{&unclosed, int64_t{n}},
                           std::pair{&held, int64_t{50}}}) {
      ASSERT_TRUE(CheckSparseEvents(*e, span).ok());
      std::vector<float> f(static_cast<size_t>(177 * span), 0.0f);
      FillFeatures(*e, span, f.data());
      EXPECT_EQ(f, ListFeatures(*e, span)) << "offset velocities " << offset_velocities
                                           << " span " << span;
    }
  }
}

// Any piece [start, start + n) that FeatureSpans fills equals the same
// samples of FillFeatures' whole span: pieces inside and across stretches,
// one sample, the whole span, and ends at the span's edges.
TEST(BatchTensorsTest, FeatureSpansFillEqualsTheWholeSpanNarrowed) {
  std::mt19937_64 rng(99);
  auto check = [](const SparseEvents& e, int64_t span, int64_t start, int64_t n) {
    std::vector<float> whole(static_cast<size_t>(177 * span), 0.0f);
    FillFeatures(e, span, whole.data());
    std::vector<float> piece(static_cast<size_t>(177 * n), 0.0f);
    FeatureSpans(e, span).Fill(start, n, piece.data());
    for (int64_t r = 0; r < 177; ++r) {
      for (int64_t i = 0; i < n; ++i) {
        if (piece[r * n + i] != whole[r * span + start + i]) {
          return ::testing::AssertionFailure() << "row " << r << " sample " << start + i;
        }
      }
    }
    return ::testing::AssertionSuccess();
  };
  for (bool offset_velocities : {true, false}) {
    for (int round = 0; round < 2000; ++round) {
      const int64_t span = std::uniform_int_distribution<int64_t>(1, 48)(rng);
      const SparseEvents e = RandomEvents(rng, span, offset_velocities);
      const int64_t start = std::uniform_int_distribution<int64_t>(0, span - 1)(rng);
      const int64_t n = std::uniform_int_distribution<int64_t>(1, span - start)(rng);
      for (auto [s, k] : {std::pair{start, n}, std::pair{int64_t{0}, span},
                          std::pair{start, int64_t{1}}, std::pair{span - 1, int64_t{1}}}) {
        ASSERT_TRUE(check(e, span, s, k)) << "offset velocities " << offset_velocities
                                          << " round " << round << " [" << s << ", +" << k << ")";
      }
    }
  }
  // One sustained note and pedal over a long span, read in pieces that
  // start and end inside them.
  SparseEvents e;
  e.held_key = {60};
  e.held_velocity = {90};
  e.onset_sample = {1000, 70000};
  e.onset_key = {60, 61};
  e.onset_velocity = {100, 5};
  e.offset_sample = {200000, 200000};
  e.offset_key = {60, 61};
  e.offset_velocity = {90, 5};
  e.pedal_start = {10};
  e.pedal_end = {150000};
  const int64_t span = 200001;
  ASSERT_TRUE(CheckSparseEvents(e, span).ok());
  for (int64_t start : {int64_t{0}, int64_t{999}, int64_t{65536}, int64_t{149990}}) {
    EXPECT_TRUE(check(e, span, start, 4096)) << start;
  }
}

// Without offset velocities, notes of one key that end out of order are
// decoded as if they ended in order: the one limit of the old encoding.
TEST(BatchTensorsTest, OutOfOrderEndsNeedOffsetVelocities) {
  const int64_t span = 20;
  // Key 50: A [0, 15) v100 and B [5, 10) v20 (B ends first).
  const std::vector<TestNote> notes = {{0, 15, 50, 100}, {5, 10, 50, 20}};
  for (bool with : {true, false}) {
    std::vector<float> f(177 * span, 0.0f);
    FillFeatures(EventsOf(notes, {}, 0, span, with), span, f.data());
    EXPECT_EQ(f == NaiveFeatures(notes, {}, 0, span), with);
    EXPECT_EQ(f[(88 + 29) * span + 12], with ? 100.0f / 127.0f : 20.0f / 127.0f);
  }
}

TEST(BatchTensorsTest, DenseEncodingGivesTheSameFeatures) {
  std::mt19937_64 rng(7);
  const int64_t span = 64;
  BatchData batch;
  for (int w = 0; w < 4; ++w) {
    std::vector<TestNote> notes;
    std::vector<TestPedal> pedal;
    RandomNotes(rng, 500, span, &notes, &pedal);
    WindowData d;
    d.audio.assign(span, 0);
    d.reference.assign(5, 0);
    d.conditioning = EventsOf(notes, pedal, 500, span);
    d.dense = NaiveDense(notes, pedal, 500, span);
    batch.windows.push_back(std::move(d));
  }
  BatchTensorOptions sparse, dense;
  dense.from_dense = true;
  absl::StatusOr<BatchTensors> a = ToTensors(batch, sparse);
  absl::StatusOr<BatchTensors> b = ToTensors(batch, dense);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(torch::equal(a->features, b->features));
}

TEST(BatchTensorsTest, AudioScaledToUnitRange) {
  BatchData batch;
  for (int w = 0; w < 2; ++w) {
    WindowData d;
    d.index = 10 + w;
    d.audio = {-32768, -1, 0, 1, 32767};
    d.reference = {static_cast<int16_t>(w), 16384, -16384};
    batch.windows.push_back(std::move(d));
  }
  absl::StatusOr<BatchTensors> t = ToTensors(batch);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->audio.sizes(), (std::vector<int64_t>{2, 5}));
  ASSERT_EQ(t->reference.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t->audio[1][0].item<float>(), -1.0f);
  EXPECT_EQ(t->audio[1][1].item<float>(), -1.0f / 32768);
  EXPECT_EQ(t->audio[0][2].item<float>(), 0.0f);
  EXPECT_EQ(t->audio[0][4].item<float>(), 32767.0f / 32768);
  EXPECT_EQ(t->reference[1][0].item<float>(), 1.0f / 32768);
  EXPECT_EQ(t->reference[0][1].item<float>(), 0.5f);
  EXPECT_EQ(t->reference[0][2].item<float>(), -0.5f);
  EXPECT_EQ(t->index[0].item<int64_t>(), 10);
  EXPECT_EQ(t->index[1].item<int64_t>(), 11);
  EXPECT_EQ(t->features.sizes(), (std::vector<int64_t>{2, 177, 5}));
  EXPECT_EQ(t->features.abs().sum().item<float>(), 0.0f);
}

// Each kind of malformed input is refused with the field named.
TEST(BatchTensorsTest, BadInputNamesTheField) {
  auto base = [] {
    BatchData b;
    WindowData d;
    d.audio.assign(8, 0);
    d.reference.assign(4, 0);
    d.conditioning.onset_sample = {1};
    d.conditioning.onset_key = {60};
    d.conditioning.onset_velocity = {90};
    b.windows.push_back(d);
    b.windows.push_back(d);
    return b;
  };
  ASSERT_TRUE(ToTensors(base()).ok());
  struct Case {
    std::string name;
    std::function<void(BatchData&)> spoil;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"empty batch", [](BatchData& b) { b.windows.clear(); }, "no windows"},
      {"audio length", [](BatchData& b) { b.windows[1].audio.resize(7); }, "window 1"},
      {"reference length", [](BatchData& b) { b.windows[1].reference.resize(3); }, "reference has 3"},
      {"onset outside", [](BatchData& b) { b.windows[0].conditioning.onset_sample = {8}; }, "onset_sample[0]"},
      {"onset key", [](BatchData& b) { b.windows[0].conditioning.onset_key = {20}; }, "onset_key[0]"},
      {"velocity 0", [](BatchData& b) { b.windows[0].conditioning.onset_velocity = {0}; }, "onset_velocity[0]"},
      {"parallel arrays", [](BatchData& b) { b.windows[0].conditioning.onset_key.push_back(61); }, "lengths differ"},
      {"offset outside", [](BatchData& b) {
         b.windows[0].conditioning.offset_sample = {9};
         b.windows[0].conditioning.offset_key = {60};
       }, "offset_sample[0]"},
      {"offset velocity count", [](BatchData& b) {
         b.windows[0].conditioning.offset_sample = {5};
         b.windows[0].conditioning.offset_key = {60};
         b.windows[0].conditioning.offset_velocity = {5, 6};
       }, "offset_velocity has 2 entries"},
      {"offset velocity range", [](BatchData& b) {
         b.windows[0].conditioning.offset_sample = {5};
         b.windows[0].conditioning.offset_key = {60};
         b.windows[0].conditioning.offset_velocity = {128};
       }, "offset_velocity[0]"},
      {"held key", [](BatchData& b) {
         b.windows[0].conditioning.held_key = {109};
         b.windows[0].conditioning.held_velocity = {5};
       }, "held_key[0]"},
      {"pedal empty", [](BatchData& b) {
         b.windows[0].conditioning.pedal_start = {3};
         b.windows[0].conditioning.pedal_end = {3};
       }, "pedal interval 0"},
      {"pedal overlap", [](BatchData& b) {
         b.windows[0].conditioning.pedal_start = {1, 2};
         b.windows[0].conditioning.pedal_end = {4, 5};
       }, "overlaps"},
  };
  for (const Case& c : cases) {
    BatchData b = base();
    c.spoil(b);
    absl::StatusOr<BatchTensors> t = ToTensors(b);
    ASSERT_FALSE(t.ok()) << c.name;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(std::string(t.status().message()), HasSubstr(c.message)) << c.name;
  }
  BatchTensorOptions dense;
  dense.from_dense = true;
  absl::StatusOr<BatchTensors> t = ToTensors(base(), dense);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("dense has 0 bytes"));
}

TEST(BatchTensorsTest, CudaWithoutGpuIsFailedPrecondition) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a GPU is present";
  BatchData b;
  b.windows.resize(1);
  b.windows[0].audio.assign(4, 0);
  b.windows[0].reference.assign(4, 0);
  BatchTensorOptions o;
  o.device = torch::Device(torch::kCUDA, 0);
  absl::StatusOr<BatchTensors> t = ToTensors(b, o);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(BatchTensorsTest, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  std::mt19937_64 rng(99);
  const int64_t span = 300;
  BatchData batch;
  for (int w = 0; w < 5; ++w) {
    std::vector<TestNote> notes;
    std::vector<TestPedal> pedal;
    RandomNotes(rng, 2000, span, &notes, &pedal);
    WindowData d;
    d.index = w;
    for (int64_t i = 0; i < span; ++i) d.audio.push_back(static_cast<int16_t>(rng()));
    for (int i = 0; i < 50; ++i) d.reference.push_back(static_cast<int16_t>(rng()));
    d.conditioning = EventsOf(notes, pedal, 2000, span);
    d.dense = NaiveDense(notes, pedal, 2000, span);
    batch.windows.push_back(std::move(d));
  }
  absl::StatusOr<BatchTensors> cpu = ToTensors(batch);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  for (FeatureMethod method : {FeatureMethod::kScatter, FeatureMethod::kDirect}) {
    for (bool from_dense : {false, true}) {
      BatchTensorOptions o;
      o.device = torch::Device(torch::kCUDA, 0);
      o.features = method;
      o.from_dense = from_dense;
      absl::StatusOr<BatchTensors> gpu = ToTensors(batch, o);
      ASSERT_TRUE(gpu.ok()) << gpu.status();
      EXPECT_TRUE(gpu->features.is_cuda());
      EXPECT_TRUE(torch::equal(gpu->audio.cpu(), cpu->audio));
      EXPECT_TRUE(torch::equal(gpu->reference.cpu(), cpu->reference));
      EXPECT_TRUE(torch::equal(gpu->features.cpu(), cpu->features))
          << "method " << static_cast<int>(method) << " dense " << from_dense;
    }
  }
}

// The trainer process holds Debian's gRPC, protobuf and Abseil next to
// LibTorch (which carries a private protobuf for ONNX). This runs both in one
// process: a gRPC call with a serialized request (to an address where nothing
// listens), then tensor work, then the client's teardown.
TEST(BatchTensorsTest, GrpcClientAndLibTorchShareAProcess) {
  DataClientOptions o;
  o.servers = {"127.0.0.1:1"};
  o.max_failovers = 1;
  o.retry_backoff = absl::Milliseconds(1);
  o.max_retry_backoff = absl::Milliseconds(1);
  absl::StatusOr<std::unique_ptr<DataClient>> client = DataClient::Create(o);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<std::optional<BatchData>> b = (*client)->Next();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable) << b.status();
  BatchData batch;
  batch.windows.resize(1);
  batch.windows[0].audio.assign(16, 100);
  batch.windows[0].reference.assign(16, -100);
  absl::StatusOr<BatchTensors> t = ToTensors(batch);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FLOAT_EQ(t->audio.sum().item<float>(), 16 * 100 / 32768.0f);
}

}  // namespace
}  // namespace pianola
