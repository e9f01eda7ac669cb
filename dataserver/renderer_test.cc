#include "dataserver/renderer.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "dataserver/dataset.h"
#include "dataserver/timbres.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

constexpr int kRate = 16000;
constexpr char kTimGm[] = "/usr/share/sounds/sf2/TimGM6mb.sf2";
constexpr char kFluid[] = "/usr/share/sounds/sf2/FluidR3_GM.sf2";

Timbre MakeTimbre(const std::string& name, const std::string& sf, int preset) {
  Timbre t;
  t.set_name(name);
  t.set_soundfont(sf);
  t.set_preset(preset);
  t.set_gain(0.6);
  return t;
}

midi::Note N(int pitch, double start, double end, int velocity = 100, int channel = 0) {
  midi::Note n;
  n.pitch = pitch;
  n.velocity = velocity;
  n.start = start;
  n.end = end;
  n.channel = channel;
  return n;
}

midi::Performance Perf(std::vector<midi::Note> notes, std::vector<midi::PedalEvent> pedal = {}) {
  midi::Performance p;
  p.format = 0;
  p.num_tracks = 1;
  p.ticks_per_quarter = 480;
  std::stable_sort(notes.begin(), notes.end(), [](const midi::Note& a, const midi::Note& b) {
    return std::tie(a.start, a.pitch, a.channel) < std::tie(b.start, b.pitch, b.channel);
  });
  for (const auto& n : notes) p.end_seconds = std::max(p.end_seconds, n.end);
  for (const auto& e : pedal) p.end_seconds = std::max(p.end_seconds, e.time);
  p.notes = std::move(notes);
  p.pedal = std::move(pedal);
  return p;
}

midi::PedalEvent Pedal(double time, int value) {
  midi::PedalEvent e;
  e.time = time;
  e.value = value;
  return e;
}

double Rms(const std::vector<int16_t>& x, int64_t from, int64_t to) {
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = std::max<int64_t>(0, from); i < to && i < static_cast<int64_t>(x.size()); ++i, ++n) {
    sum += static_cast<double>(x[i]) * x[i];
  }
  return n ? std::sqrt(sum / n) : 0;
}

int64_t FirstAbove(const std::vector<int16_t>& x, int threshold) {
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::abs(int{x[i]}) > threshold) return static_cast<int64_t>(i);
  }
  return -1;
}

// Energy of the first harmonics of `f0` over [from, to), normalised to sum 1.
std::vector<double> HarmonicProfile(const std::vector<int16_t>& x, double f0, int64_t from,
                                    int64_t to) {
  std::vector<double> profile;
  double total = 0;
  for (int h = 1; h <= 8; ++h) {
    double w = 2 * M_PI * f0 * h / kRate, re = 0, im = 0;
    for (int64_t i = from; i < to; ++i) {
      re += x[i] * std::cos(w * i);
      im += x[i] * std::sin(w * i);
    }
    profile.push_back(re * re + im * im);
    total += profile.back();
  }
  for (double& p : profile) p /= total;
  return profile;
}

class RendererTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    RenderOptions options;
    options.sample_rate = kRate;
    options.release_tail_seconds = 0.5;
    auto r = Renderer::Create(options);
    ASSERT_TRUE(r.ok()) << r.status();
    renderer_ = r->release();
  }
  static void TearDownTestSuite() {
    delete renderer_;
    renderer_ = nullptr;
  }
  static Renderer* renderer_;
};
Renderer* RendererTest::renderer_ = nullptr;

TEST_F(RendererTest, OnsetsAlignWithTheirSampleAndSilencePrecedesTheFirstNote) {
  const Timbre grand = MakeTimbre("timgm-grand", kTimGm, 0);
  // Onsets at different positions within FluidSynth's 64-sample blocks.
  for (double start : {0.25, 0.2503, 0.31234, 0.5 + 37.0 / kRate, 0.77777}) {
    SCOPED_TRACE(start);
    auto audio = renderer_->Render(Perf({N(60, start, start + 0.3)}), grand);
    ASSERT_TRUE(audio.ok()) << audio.status();
    const int64_t onset = SecondsToSample(start, kRate);
    EXPECT_EQ(Rms(*audio, 0, onset), 0.0) << "sound before the first note";
    const int64_t heard = FirstAbove(*audio, 30);
    ASSERT_GE(heard, onset);
    // Block quantisation (< 64 samples) plus the attack's first few samples.
    EXPECT_LE(heard - onset, 64 + 48) << "onset heard " << heard - onset << " samples late";
    EXPECT_GT(Rms(*audio, onset, onset + kRate / 50), 300.0);  // loud within 20 ms
  }
}

TEST_F(RendererTest, LengthIsContentPlusTailAndHonoursTheCap) {
  const Timbre grand = MakeTimbre("timgm-grand", kTimGm, 0);
  auto audio = renderer_->Render(Perf({N(60, 0.1, 0.6), N(64, 0.2, 1.25)}), grand);
  ASSERT_TRUE(audio.ok()) << audio.status();
  EXPECT_EQ(static_cast<int64_t>(audio->size()), SecondsToSample(1.25, kRate) + kRate / 2);

  RenderOptions capped = renderer_->options();
  capped.max_seconds = 0.4;
  auto r = Renderer::Create(capped);
  ASSERT_TRUE(r.ok());
  audio = (*r)->Render(Perf({N(60, 0.1, 0.6), N(64, 0.2, 1.25)}), grand);
  ASSERT_TRUE(audio.ok()) << audio.status();
  EXPECT_EQ(static_cast<int64_t>(audio->size()), SecondsToSample(0.4, kRate));
}

TEST_F(RendererTest, DifferentTimbresSoundDifferent) {
  const auto perf = Perf({N(60, 0.05, 0.8)});
  auto grand = renderer_->Render(perf, MakeTimbre("fluidr3-grand", kFluid, 0));
  auto epiano = renderer_->Render(perf, MakeTimbre("timgm-epiano", kTimGm, 4));
  auto grand2 = renderer_->Render(perf, MakeTimbre("fluidr3-grand", kFluid, 0));
  ASSERT_TRUE(grand.ok()) << grand.status();
  ASSERT_TRUE(epiano.ok()) << epiano.status();
  ASSERT_TRUE(grand2.ok()) << grand2.status();
  const int64_t from = SecondsToSample(0.1, kRate), to = SecondsToSample(0.6, kRate);
  auto a = HarmonicProfile(*grand, 261.63, from, to);
  auto b = HarmonicProfile(*epiano, 261.63, from, to);
  double distance = 0;
  for (size_t i = 0; i < a.size(); ++i) distance += std::abs(a[i] - b[i]);
  EXPECT_GT(distance, 0.2) << "grand and electric piano have the same harmonic profile";
  EXPECT_EQ(*grand, *grand2);
}

TEST_F(RendererTest, RendersAreDeterministicAndDoNotBleed) {
  Timbre hall = MakeTimbre("hall", kTimGm, 0);
  hall.mutable_reverb()->set_enabled(true);
  hall.mutable_reverb()->set_room_size(0.9);
  hall.mutable_reverb()->set_level(1.0);
  hall.mutable_reverb()->set_width(50);
  Timbre chorus = MakeTimbre("chorus", kTimGm, 4);
  auto* c = chorus.mutable_chorus();
  c->set_enabled(true);
  c->set_voices(3);
  c->set_level(2);
  c->set_speed(0.5);
  c->set_depth(8);
  const auto loud = Perf({N(48, 0.0, 0.9, 127), N(55, 0.0, 0.9, 127), N(60, 0.0, 0.9, 127)});
  const auto quiet = Perf({N(72, 0.5, 0.7, 40)});
  auto first = renderer_->Render(quiet, chorus);
  ASSERT_TRUE(renderer_->Render(loud, hall).ok());
  auto second = renderer_->Render(quiet, chorus);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second) << "a previous render's voices or reverb leaked into this one";
  EXPECT_EQ(Rms(*second, 0, SecondsToSample(0.5, kRate)), 0.0);
  auto fresh = Renderer::Create(renderer_->options());
  ASSERT_TRUE(fresh.ok());
  auto third = (*fresh)->Render(quiet, chorus);
  ASSERT_TRUE(third.ok());
  ASSERT_EQ(first->size(), third->size());
  for (size_t i = 0; i < first->size(); ++i) {
    ASSERT_EQ((*first)[i], (*third)[i]) << "first difference at sample " << i;
  }
  // The effects do change the sound.
  auto dry = renderer_->Render(quiet, MakeTimbre("dry", kTimGm, 4));
  ASSERT_TRUE(dry.ok());
  EXPECT_NE(*dry, *first);
}

TEST_F(RendererTest, SustainPedalHoldsReleasedNotes) {
  const Timbre grand = MakeTimbre("timgm-grand", kTimGm, 0);
  auto dry = renderer_->Render(Perf({N(60, 0.1, 0.2), N(30, 1.4, 1.5, 1)}), grand);
  auto held = renderer_->Render(
      Perf({N(60, 0.1, 0.2), N(30, 1.4, 1.5, 1)}, {Pedal(0.0, 127), Pedal(1.2, 0)}), grand);
  ASSERT_TRUE(dry.ok() && held.ok());
  const int64_t at = SecondsToSample(0.7, kRate);
  EXPECT_GT(Rms(*held, at, at + 1600), 5 * Rms(*dry, at, at + 1600) + 1);
}

TEST_F(RendererTest, OverlappingNotesOfOneKeyAreNotCutShort) {
  const Timbre grand = MakeTimbre("timgm-grand", kTimGm, 0);
  // B (0.5..1.5) overlaps A (0.1..1.0) on the same key and channel: A's
  // note-off must not silence B.
  auto both = renderer_->Render(Perf({N(60, 0.1, 1.0), N(60, 0.5, 1.5)}), grand);
  auto b_only = renderer_->Render(Perf({N(60, 0.5, 1.5)}), grand);
  ASSERT_TRUE(both.ok() && b_only.ok());
  const int64_t at = SecondsToSample(1.2, kRate);
  EXPECT_GT(Rms(*both, at, at + 1600), 0.5 * Rms(*b_only, at, at + 1600));
}

TEST_F(RendererTest, DrumsAndKeysOutsideThePianoAreNotRendered) {
  const Timbre grand = MakeTimbre("timgm-grand", kTimGm, 0);
  auto piano = renderer_->Render(Perf({N(60, 0.1, 0.5)}), grand);
  auto with_extra = renderer_->Render(
      Perf({N(60, 0.1, 0.5), N(36, 0.2, 0.4, 100, midi::kDrumChannel), N(10, 0.2, 0.3),
            N(120, 0.3, 0.4)}),
      grand);
  ASSERT_TRUE(piano.ok() && with_extra.ok());
  EXPECT_EQ(*piano, *with_extra);
  auto drums_only = renderer_->Render(Perf({N(36, 0.2, 0.4, 100, midi::kDrumChannel)}), grand);
  EXPECT_EQ(drums_only.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RendererTest, BadTimbresAreRefused) {
  Timbre t = MakeTimbre("nobank", kTimGm, 0);
  t.set_bank(77);
  absl::Status s = renderer_->CheckTimbre(t);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("nobank"));
  t = MakeTimbre("missing", "/no/such/font.sf2", 0);
  EXPECT_EQ(renderer_->CheckTimbre(t).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(renderer_->Render(Perf({N(60, 0, 1)}), t).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(renderer_->CheckTimbre(MakeTimbre("ok", kTimGm, 4)).ok());
}

TEST(RendererOptionsTest, BadOptionsAreRefused) {
  RenderOptions o;
  o.sample_rate = 100;
  EXPECT_EQ(Renderer::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = RenderOptions();
  o.release_tail_seconds = -1;
  EXPECT_EQ(Renderer::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pianola
