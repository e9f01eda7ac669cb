#include "dataserver/maestro_import.h"

#include <sndfile.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "dataserver/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Fixture(const std::string& name) {
  const char* root = std::getenv("PIANOLA_SOURCE_DIR");
  return absl::StrCat(root ? root : ".", "/tests/data/midi/", name);
}

// A stereo recording as MAESTRO ships them: 44.1 kHz, two channels.
void WriteStereo(const fs::path& path, int format, double seconds) {
  SF_INFO info{};
  info.samplerate = 44100;
  info.channels = 2;
  info.format = format;
  const int frames = static_cast<int>(seconds * 44100);
  std::vector<float> data;
  for (int i = 0; i < frames; ++i) {
    float s = 0.3f * std::sin(2 * M_PI * 440 * i / 44100.0);
    data.push_back(s);
    data.push_back(0.5f * s);
  }
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  ASSERT_NE(f, nullptr) << sf_strerror(nullptr);
  sf_writef_float(f, data.data(), frames);
  sf_close(f);
}

class MaestroImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            absl::StrCat("maestro_test_", ::getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "maestro" / "2017");
    fs::create_directories(root_ / "maestro" / "2018");
    const fs::path m = root_ / "maestro";
    fs::copy_file(Fixture("pythonmidi__mary.mid"), m / "2018" / "a.midi");
    fs::copy_file(Fixture("jazzsoft__test-c-major-scale.mid"), m / "2017" / "b.midi");
    fs::copy_file(Fixture("noteseq__melody.mid"), m / "2018" / "c.midi");
    fs::copy_file(Fixture("noteseq__melody.mid"), m / "2018" / "d.midi");
    fs::copy_file(Fixture("bad/jazzsoft__test-not-a-midi-file.mid"), m / "2018" / "e.midi");
    WriteStereo(m / "2018" / "a.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1.5);
    WriteStereo(m / "2017" / "b.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 1.0);
    WriteStereo(m / "2018" / "c.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 0.5);
    ASSERT_TRUE(WriteFileAtomic((m / "2018" / "d.wav").string(), "RIFF but not really").ok());
    WriteStereo(m / "2018" / "e.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 0.5);
  }
  void TearDown() override { fs::remove_all(root_); }

  ImportOptions Options(const std::string& out) {
    ImportOptions o;
    o.maestro_root = (root_ / "maestro").string();
    o.out_dir = (root_ / out).string();
    o.threads = 2;
    o.progress = false;
    return o;
  }

  void CheckImported(const BuildReport& report, const std::string& out, const std::string& index) {
    EXPECT_EQ(report.inputs, 7);
    EXPECT_EQ(report.recordings, 3);
    EXPECT_EQ(report.pieces, 3);
    ASSERT_EQ(report.skipped.size(), 4u);
    EXPECT_THAT(report.skipped[0], HasSubstr(index + ":4: field split: unknown split 'dev'"));
    EXPECT_THAT(report.skipped[1], HasSubstr(index + ":5: field audio_filename:"));
    EXPECT_THAT(report.skipped[1], HasSubstr("missing.wav"));
    EXPECT_THAT(report.skipped[2], HasSubstr(index + ":6: field audio_filename:"));
    EXPECT_THAT(report.skipped[2], HasSubstr("d.wav"));
    EXPECT_THAT(report.skipped[3], HasSubstr(index + ":7: field midi_filename:"));
    auto ds = Dataset::Open((root_ / out).string());
    ASSERT_TRUE(ds.ok()) << ds.status();
    const Dataset& d = **ds;
    EXPECT_EQ(d.sample_rate(), 16000);
    ASSERT_EQ(d.num_recordings(), 3);
    EXPECT_EQ(d.entry(0).timbre(), "maestro-2018");
    EXPECT_EQ(d.entry(0).piece(), "Traditional: Mary Had a Little Lamb");
    EXPECT_EQ(d.entry(0).split(), TRAIN);
    EXPECT_NEAR(d.entry(0).num_samples(), 24000, 2);
    EXPECT_EQ(d.entry(1).timbre(), "maestro-2017");
    EXPECT_EQ(d.entry(1).piece(), "Bach, Johann Sebastian: Prelude \"No. 1\", in C");
    EXPECT_EQ(d.entry(1).split(), VALIDATION);
    EXPECT_NEAR(d.entry(1).num_samples(), 16000, 2);
    EXPECT_EQ(d.entry(2).split(), TEST);
    EXPECT_NEAR(d.entry(2).num_samples(), 8000, 2);
    // Downmixed: (0.3 + 0.15) / 2 of full scale.
    int peak = 0;
    for (int16_t s : d.audio(0).subspan(1000, 20000)) peak = std::max(peak, std::abs(int{s}));
    EXPECT_NEAR(peak, 0.225 * 32768, 0.225 * 32768 * 0.03);
    EXPECT_GT(d.recording_index(0).note_start_size(), 0);
    auto text = ReadFile((root_ / out / kBuildReportFile).string());
    ASSERT_TRUE(text.ok());
    EXPECT_THAT(*text, HasSubstr("field split"));
  }

  fs::path root_;
};

constexpr char kCsv[] =
    "canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration\r\n"
    "Traditional,Mary Had a Little Lamb,train,2018,2018/a.midi,2018/a.wav,1.5\r\n"
    "\"Bach, Johann Sebastian\",\"Prelude \"\"No. 1\"\", in C\",validation,2017,2017/b.midi,2017/b.wav,1.0\r\n"
    "Anon,Melody,test,2018,2018/c.midi,2018/c.flac,0.5\r\n"
    "Anon,Melody dev,dev,2018,2018/c.midi,2018/c.flac,0.5\r\n"
    "Anon,Missing,train,2018,2018/c.midi,2018/missing.wav,0.5\r\n"
    "Anon,Unreadable,train,2018,2018/d.midi,2018/d.wav,0.5\r\n"
    "Anon,Bad MIDI,train,2018,2018/e.midi,2018/e.wav,0.5\r\n";

TEST_F(MaestroImportTest, ImportsTheCsvIndex) {
  const std::string index = (root_ / "maestro" / "maestro-v3.0.0.csv").string();
  ASSERT_TRUE(WriteFileAtomic(index, kCsv).ok());
  auto report = ImportDataset(Options("csv"));
  ASSERT_TRUE(report.ok()) << report.status();
  CheckImported(*report, "csv", index);
}

TEST_F(MaestroImportTest, ImportsTheJsonIndexIdentically) {
  const std::string csv_index = (root_ / "maestro" / "maestro-v3.0.0.csv").string();
  ASSERT_TRUE(WriteFileAtomic(csv_index, kCsv).ok());
  auto from_csv = ImportDataset(Options("csv"));
  ASSERT_TRUE(from_csv.ok()) << from_csv.status();
  fs::remove(csv_index);
  const std::string index = (root_ / "maestro" / "maestro-v2.0.0.json").string();
  ASSERT_TRUE(WriteFileAtomic(index, R"({
    "canonical_composer": {"0": "Traditional", "1": "Bach, Johann Sebastian", "2": "Anon",
                           "3": "Anon", "4": "Anon", "5": "Anon", "6": "Anon"},
    "canonical_title": {"0": "Mary Had a Little Lamb", "1": "Prelude \"No. 1\", in C",
                        "2": "Melody", "3": "Melody dev", "4": "Missing", "5": "Unreadable",
                        "6": "Bad MIDI"},
    "split": {"0": "train", "1": "validation", "2": "test", "3": "dev", "4": "train",
              "5": "train", "6": "train"},
    "year": {"0": 2018, "1": 2017, "2": 2018, "3": 2018, "4": 2018, "5": 2018, "6": 2018},
    "midi_filename": {"0": "2018/a.midi", "1": "2017/b.midi", "2": "2018/c.midi",
                      "3": "2018/c.midi", "4": "2018/c.midi", "5": "2018/d.midi", "6": "2018/e.midi"},
    "audio_filename": {"0": "2018/a.wav", "1": "2017/b.wav", "2": "2018/c.flac",
                       "3": "2018/c.flac", "4": "2018/missing.wav", "5": "2018/d.wav",
                       "6": "2018/e.wav"},
    "duration": {"0": 1.5, "1": 1.0, "2": 0.5, "3": 0.5, "4": 0.5, "5": 0.5, "6": 0.5}
  })").ok());
  auto report = ImportDataset(Options("json"));
  ASSERT_TRUE(report.ok()) << report.status();
  CheckImported(*report, "json", index);
  auto a = Dataset::Open((root_ / "csv").string());
  auto b = Dataset::Open((root_ / "json").string());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->fingerprint(), (*b)->fingerprint());
}

TEST_F(MaestroImportTest, ImportsAGenericCsvManifest) {
  fs::create_directories(root_ / "corpus" / "takes");
  fs::copy_file(root_ / "maestro" / "2018" / "a.wav", root_ / "corpus" / "takes" / "one.wav");
  fs::copy_file(root_ / "maestro" / "2018" / "c.flac", root_ / "corpus" / "takes" / "two.flac");
  fs::copy_file(Fixture("pythonmidi__mary.mid"), root_ / "corpus" / "mary.mid");
  const std::string csv = (root_ / "corpus" / "list.csv").string();
  ASSERT_TRUE(WriteFileAtomic(csv,
                              "midi,audio,timbre,split\n"
                              "mary.mid,takes/one.wav,steinway-hall,train\n"
                              "mary.mid,takes/two.flac,upright-home,test\n"
                              "mary.mid,takes/two.flac,upright-home,holdout\n"
                              "mary.mid,takes/two.flac,,train\n")
                  .ok());
  ImportOptions o;
  o.manifest_csv = csv;
  o.out_dir = (root_ / "generic").string();
  o.progress = false;
  auto report = ImportDataset(o);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->recordings, 2);
  EXPECT_EQ(report->pieces, 1);
  ASSERT_EQ(report->skipped.size(), 2u);
  EXPECT_THAT(report->skipped[0], HasSubstr(csv + ":3: field split"));
  EXPECT_THAT(report->skipped[1], HasSubstr(csv + ":4: field timbre: empty"));
  auto ds = Dataset::Open(o.out_dir);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->entry(0).timbre(), "steinway-hall");
  EXPECT_EQ((*ds)->entry(0).piece(), "mary");
  EXPECT_EQ((*ds)->entry(1).split(), TEST);
}

TEST_F(MaestroImportTest, MissingIndexOrColumnsAreErrors) {
  EXPECT_EQ(ImportDataset(Options("x")).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomic((root_ / "maestro" / "maestro-v1.csv").string(),
                              "canonical_composer,split\nA,train\n")
                  .ok());
  auto r = ImportDataset(Options("x"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("midi_filename"));
  ImportOptions both = Options("x");
  both.manifest_csv = "x.csv";
  EXPECT_EQ(ImportDataset(both).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ReadMaestroJson("[1, 2]", "m.json").ok());
  EXPECT_THAT(std::string(ReadMaestroJson("{\"split\": {}}", "m.json").status().message()),
              HasSubstr("m.json"));
}

TEST(FindMaestroIndexTest, PrefersTheNewestCsv) {
  fs::path dir = fs::temp_directory_path() / absl::StrCat("find_maestro_", ::getpid());
  fs::create_directories(dir);
  for (const char* f : {"maestro-v2.0.0.csv", "maestro-v10.0.0.csv", "maestro-v3.0.0.json"}) {
    ASSERT_TRUE(WriteFileAtomic((dir / f).string(), "x").ok());
  }
  auto found = FindMaestroIndex(dir.string());
  ASSERT_TRUE(found.ok());
  EXPECT_THAT(*found, HasSubstr("maestro-v10.0.0.csv"));
  fs::remove_all(dir);
}

TEST(ParseCsvTest, QuotedFieldsCommasQuotesNewlinesAndCrlf) {
  auto rows = ParseCsv("a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\n,,\n\nlast,row,no-newline", "t.csv");
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_THAT((*rows)[0], ElementsAre("a", "b", "c"));
  EXPECT_THAT((*rows)[1], ElementsAre("x, y", "say \"hi\"", "two\nlines"));
  EXPECT_THAT((*rows)[2], ElementsAre("", "", ""));
  EXPECT_THAT((*rows)[3], ElementsAre("last", "row", "no-newline"));
}

TEST(ParseCsvTest, MalformedQuotingIsAnError) {
  auto r = ParseCsv("a,b\n\"open,field\n", "bad.csv");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("bad.csv:2"));
  EXPECT_FALSE(ParseCsv("a,b\nx\"y,z\n", "bad.csv").ok());
  EXPECT_FALSE(ParseCsv("\"a\"b,c\n", "bad.csv").ok());
}

}  // namespace
}  // namespace pianola
