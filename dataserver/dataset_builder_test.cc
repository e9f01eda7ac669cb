#include "dataserver/dataset_builder.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "dataserver/audio_io.h"
#include "dataserver/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Fixture(const std::string& name) {
  const char* root = std::getenv("PIANOLA_SOURCE_DIR");
  return absl::StrCat(root ? root : ".", "/tests/data/midi/", name);
}

Timbre TimGm(const std::string& name, int preset) {
  Timbre t;
  t.set_name(name);
  t.set_soundfont("/usr/share/sounds/sf2/TimGM6mb.sf2");
  t.set_preset(preset);
  t.set_gain(0.6);
  return t;
}

class DatasetBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            absl::StrCat("builder_test_", ::getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "midi" / "nested");
    fs::copy_file(Fixture("jazzsoft__test-c-major-scale.mid"), root_ / "midi" / "scale.mid");
    fs::copy_file(Fixture("pythonmidi__mary.mid"), root_ / "midi" / "nested" / "mary.MID");
    fs::copy_file(Fixture("noteseq__melody.mid"), root_ / "midi" / "nested" / "melody.midi");
    fs::copy_file(Fixture("bad/jazzsoft__test-not-a-midi-file.mid"), root_ / "midi" / "broken.mid");
    ASSERT_TRUE(WriteFileAtomic((root_ / "midi" / "README.txt").string(), "not a MIDI file").ok());
  }
  void TearDown() override { fs::remove_all(root_); }

  BuildOptions Options(const std::string& out, int threads = 2) {
    BuildOptions o;
    o.midi_dir = (root_ / "midi").string();
    o.out_dir = (root_ / out).string();
    *o.timbres.add_timbre() = TimGm("timgm-grand", 0);
    *o.timbres.add_timbre() = TimGm("timgm-epiano", 4);
    o.threads = threads;
    o.seconds_limit = 3;
    o.release_tail_seconds = 0.5;
    o.progress = false;
    return o;
  }

  fs::path root_;
};

TEST_F(DatasetBuilderTest, BuildsARenderedDatasetWhoseIndexMatchesTheMidi) {
  auto report = BuildRenderedDataset(Options("ds"));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->inputs, 4);
  EXPECT_EQ(report->pieces, 3);
  EXPECT_EQ(report->recordings, 6);
  ASSERT_EQ(report->skipped.size(), 1u);
  EXPECT_THAT(report->skipped[0], HasSubstr("broken.mid"));
  auto text = ReadFile((root_ / "ds" / kBuildReportFile).string());
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, HasSubstr("broken.mid"));

  auto ds = Dataset::Open((root_ / "ds").string());
  ASSERT_TRUE(ds.ok()) << ds.status();
  const Dataset& d = **ds;
  EXPECT_EQ(d.name(), "ds");
  EXPECT_EQ(d.sample_rate(), 16000);
  EXPECT_THAT(d.manifest().created_by(), HasSubstr("1 skipped"));
  ASSERT_EQ(d.num_recordings(), 6);
  std::map<std::string, Split> split_of_piece;
  std::set<Split> splits;
  for (int r = 0; r < d.num_recordings(); ++r) {
    const RecordingEntry& e = d.entry(r);
    SCOPED_TRACE(e.id());
    EXPECT_EQ(e.id(), absl::StrCat(e.piece(), "__", e.timbre()));
    EXPECT_EQ(e.audio(), absl::StrCat("audio/", e.id(), ".wav"));
    EXPECT_LE(e.num_samples(), 3 * 16000);
    // Pieces keep one split across timbres.
    auto [it, inserted] = split_of_piece.emplace(e.piece(), e.split());
    EXPECT_EQ(it->second, e.split());
    splits.insert(e.split());
    // The index is exactly our reader's notes in samples.
    auto perf = midi::ReadMidiFile((root_ / "ds" / e.midi()).string());
    ASSERT_TRUE(perf.ok());
    RecordingIndex expected = IndexRecording(*perf, 16000, e.num_samples());
    expected.set_audio_offset(d.recording_index(r).audio_offset());
    EXPECT_EQ(d.recording_index(r).SerializeAsString(), expected.SerializeAsString());
    ASSERT_GT(d.recording_index(r).note_start_size(), 0);
    // The cache holds the WAV's samples.
    auto wav = ReadAudioFile((root_ / "ds" / e.audio()).string());
    ASSERT_TRUE(wav.ok());
    auto cached = d.audio(r);
    EXPECT_TRUE(std::equal(cached.begin(), cached.end(), wav->samples.begin(), wav->samples.end()));
    // Silence before the first onset, sound right after it.
    const int64_t onset = d.recording_index(r).note_start(0);
    int before = 0, after = 0;
    for (int64_t i = 0; i < onset; ++i) before = std::max(before, std::abs(int{cached[i]}));
    for (int64_t i = onset; i < std::min<int64_t>(onset + 800, cached.size()); ++i) {
      after = std::max(after, std::abs(int{cached[i]}));
    }
    EXPECT_LE(before, 1);
    EXPECT_GT(after, 500);
  }
  EXPECT_EQ(split_of_piece.size(), 3u);
  EXPECT_TRUE(splits.count(VALIDATION));
  EXPECT_TRUE(splits.count(TEST));
  EXPECT_TRUE(splits.count(TRAIN));

  // Re-indexing reproduces the fingerprint.
  const uint64_t fingerprint = d.fingerprint();
  ASSERT_TRUE(BuildIndex((root_ / "ds").string(), /*progress=*/false).ok());
  auto again = Dataset::Open((root_ / "ds").string());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->fingerprint(), fingerprint);
}

TEST_F(DatasetBuilderTest, ThreadCountDoesNotChangeTheDataset) {
  auto one = BuildRenderedDataset(Options("one", 1));
  auto two = BuildRenderedDataset(Options("two", 2));
  ASSERT_TRUE(one.ok() && two.ok());
  auto a = Dataset::Open((root_ / "one").string());
  auto b = Dataset::Open((root_ / "two").string());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->fingerprint(), (*b)->fingerprint());
}

TEST_F(DatasetBuilderTest, BadInputsAreClearErrors) {
  BuildOptions o = Options("x");
  o.midi_dir = (root_ / "nope").string();
  EXPECT_EQ(BuildRenderedDataset(o).status().code(), absl::StatusCode::kNotFound);

  o = Options("x");
  o.timbres.mutable_timbre(1)->set_bank(99);  // no such bank in TimGM6mb
  auto r = BuildRenderedDataset(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("timgm-epiano"));
  EXPECT_FALSE(fs::exists(root_ / "x" / kManifestFile));

  fs::create_directories(root_ / "only_bad");
  fs::copy_file(Fixture("bad/jazzsoft__test-empty-file.mid"), root_ / "only_bad" / "empty.mid");
  o = Options("y");
  o.midi_dir = (root_ / "only_bad").string();
  r = BuildRenderedDataset(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("empty.mid"));
}

TEST_F(DatasetBuilderTest, IndexCommandRefusesAMissingRecording) {
  ASSERT_TRUE(BuildRenderedDataset(Options("ds")).ok());
  auto ds = Dataset::Open((root_ / "ds").string());
  ASSERT_TRUE(ds.ok());
  fs::remove(root_ / "ds" / (*ds)->entry(2).audio());
  absl::Status s = BuildIndex((root_ / "ds").string(), false);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr((*ds)->entry(2).id()));
  EXPECT_THAT(std::string(s.message()), HasSubstr("field audio"));
}

TEST(SplitPiecesTest, DeterministicRoughly801010AndCoversEverySplit) {
  std::vector<std::string> names;
  for (int i = 0; i < 2000; ++i) names.push_back(absl::StrCat("piece-", i));
  auto splits = SplitPieces(names);
  std::map<Split, int> counts;
  for (const auto& [name, split] : splits) ++counts[split];
  EXPECT_NEAR(counts[TRAIN], 1600, 80);
  EXPECT_NEAR(counts[VALIDATION], 200, 50);
  EXPECT_NEAR(counts[TEST], 200, 50);
  std::vector<std::string> reversed(names.rbegin(), names.rend());
  EXPECT_EQ(SplitPieces(reversed), splits);
  for (int n = 1; n <= 12; ++n) {
    std::vector<std::string> few(names.begin(), names.begin() + n);
    auto s = SplitPieces(few);
    std::set<Split> seen;
    for (const auto& [name, split] : s) seen.insert(split);
    EXPECT_TRUE(seen.count(TRAIN)) << n;
    if (n >= 3) {
      EXPECT_TRUE(seen.count(VALIDATION)) << n;
      EXPECT_TRUE(seen.count(TEST)) << n;
    }
  }
}

TEST(IndexRecordingTest, KeepsPianoNotesInSamplesClippedAndSorted) {
  midi::Performance p;
  auto note = [](int pitch, double start, double end, int channel = 0, int velocity = 90) {
    midi::Note n;
    n.pitch = pitch;
    n.start = start;
    n.end = end;
    n.channel = channel;
    n.velocity = velocity;
    return n;
  };
  p.notes = {note(64, 0.1, 0.3), note(60, 0.1, 0.2), note(36, 0.2, 0.4, midi::kDrumChannel),
             note(10, 0.2, 0.3), note(120, 0.2, 0.3), note(67, 0.90, 2.0), note(72, 1.5, 1.6)};
  midi::PedalEvent down, up;
  down.time = 0.05;
  down.value = 100;
  up.time = 0.5;
  up.value = 0;
  p.pedal = {down, up};
  p.end_seconds = 2.0;
  RecordingIndex ri = IndexRecording(p, 1000, /*num_samples=*/1000);
  EXPECT_THAT(ri.note_key(), ::testing::ElementsAre(60, 64, 67));
  EXPECT_THAT(ri.note_start(), ::testing::ElementsAre(100, 100, 900));
  EXPECT_THAT(ri.note_end(), ::testing::ElementsAre(200, 300, 1000));
  EXPECT_THAT(ri.pedal_start(), ::testing::ElementsAre(50));
  EXPECT_THAT(ri.pedal_end(), ::testing::ElementsAre(500));
  EXPECT_EQ(ri.num_samples(), 1000);
}

TEST(FindMidiFilesTest, RecursiveCaseInsensitiveSorted) {
  fs::path dir = fs::temp_directory_path() / absl::StrCat("find_midi_", ::getpid());
  fs::create_directories(dir / "a" / "b");
  for (const char* f : {"z.mid", "a/b/x.MIDI", "a/y.Mid", "a/notes.txt"}) {
    ASSERT_TRUE(WriteFileAtomic((dir / f).string(), "x").ok());
  }
  auto files = FindMidiFiles(dir.string());
  ASSERT_TRUE(files.ok());
  EXPECT_THAT(*files, ::testing::ElementsAre("a/b/x.MIDI", "a/y.Mid", "z.mid"));
  EXPECT_EQ(PieceNameFromPath("a/b/x y.MIDI"), "a_b_x_y");
  EXPECT_EQ(PieceNameFromPath("Chopin, Op.9.mid"), "Chopin__Op.9");
  fs::remove_all(dir);
  EXPECT_EQ(FindMidiFiles(dir.string()).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pianola
