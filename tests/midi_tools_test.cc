// `pianola-dataserver midi-dump` and `pianoroll` run as child processes, as
// users and scripts run them: exact stdout against tests/data/midi/expected
// (written independently by scripts/gen_midi_expected.py), .npy bytes against
// files numpy.save wrote, and exit status 2 with one stderr line for bad files.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "dataserver/npy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace pianola {
namespace {

#ifdef PIANOLA_SOURCE_DIR_DEFAULT
constexpr char kSourceDirDefault[] = PIANOLA_SOURCE_DIR_DEFAULT;
#else
constexpr char kSourceDirDefault[] = ".";
#endif

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class MidiToolsTest : public ::testing::Test {
 protected:
  static std::string Data() {
    const char* src = std::getenv("PIANOLA_SOURCE_DIR");
    return std::string(src ? src : kSourceDirDefault) + "/tests/data/midi";
  }

  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("midi_tools_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs pianola-dataserver with `args`; stdout and stderr go to files.
  Result Run(const std::vector<std::string>& args) {
    const std::string out_path = (dir_ / "stdout").string();
    const std::string err_path = (dir_ / "stderr").string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> argv_s = {PIANOLA_DATASERVER_BIN};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid;
    Result r;
    int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    EXPECT_EQ(rc, 0) << "spawning " << argv[0];
    if (rc != 0) return r;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = ReadFile(out_path).value_or("");
    r.err = ReadFile(err_path).value_or("");
    return r;
  }

  // Stems with expected output, mapped to their MIDI file.
  static std::map<std::string, std::string> ExpectedFixtures() {
    std::map<std::string, std::string> out;
    for (const auto& dir : {Data(), Data() + "/bad"}) {
      for (const auto& e : fs::directory_iterator(dir)) {
        const std::string stem = e.path().stem().string();
        if (fs::exists(Data() + "/expected/" + stem + ".notes.tsv")) out[stem] = e.path().string();
      }
    }
    return out;
  }

  static std::map<std::string, std::string> Info(const std::string& stem) {
    std::map<std::string, std::string> kv;
    std::string text = ReadFile(Data() + "/expected/" + stem + ".info.tsv").value_or("");
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      std::pair<std::string, std::string> f = absl::StrSplit(line, '\t');
      kv[f.first] = f.second;
    }
    return kv;
  }

  fs::path dir_;
};

int CountLines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

TEST_F(MidiToolsTest, MidiDumpMatchesIndependentExpectedOutput) {
  const auto fixtures = ExpectedFixtures();
  ASSERT_GE(fixtures.size(), 25u);
  for (const auto& [stem, path] : fixtures) {
    SCOPED_TRACE(path);
    std::map<std::string, std::string> info = Info(stem);
    int repaired = 0;
    for (const char* k : {"unclosed_notes", "orphan_note_offs", "zero_length_notes", "trailing_bytes",
                          "unknown_chunks", "missing_end_of_track", "header_mismatches"}) {
      ASSERT_TRUE(info.count(k)) << k;
      repaired += std::atoi(info[k].c_str());
    }
    Result notes = Run({"midi-dump", path});
    EXPECT_EQ(notes.exit_code, 0) << notes.err;
    EXPECT_EQ(notes.out, ReadFile(Data() + "/expected/" + stem + ".notes.tsv").value_or("?"));
    if (repaired == 0) {
      EXPECT_EQ(notes.err, "");
    } else {
      EXPECT_EQ(CountLines(notes.err), 1) << notes.err;
      EXPECT_THAT(notes.err, HasSubstr("midi-dump: warning: " + path + ": "));
    }
    Result pedal = Run({"midi-dump", path, "--pedal"});
    EXPECT_EQ(pedal.exit_code, 0) << pedal.err;
    EXPECT_EQ(pedal.out, ReadFile(Data() + "/expected/" + stem + ".pedal.tsv").value_or("?"));
  }
}

TEST_F(MidiToolsTest, RefusedFilesExitTwoWithOneErrorLine) {
  const std::map<std::string, std::string> refused = {
      {"jazzsoft__test-empty-file.mid", "byte offset 0: empty file"},
      {"jazzsoft__test-not-a-midi-file.mid", "byte offset 0: not a Standard MIDI File"},
      {"jazzsoft__test-illegal-message-f1-xx.mid", "byte offset 216: status byte 0xF1"},
      {"midiasm__reference_truncated.mid", "byte offset 63: track 1 chunk declares 241 bytes"},
      {"midly__PiDamaged.mid", "byte offset 67: track 2 chunk declares 1194067 bytes"},
  };
  for (const auto& [file, reason] : refused) {
    const std::string path = Data() + "/bad/" + file;
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"midi-dump", path}, {"midi-dump", path, "--pedal"},
          {"pianoroll", path, "--out", (dir_ / "r.npy").string()}}) {
      SCOPED_TRACE(args[0] + " " + file);
      Result r = Run(args);
      EXPECT_EQ(r.exit_code, 2);
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(CountLines(r.err), 1) << r.err;
      EXPECT_THAT(r.err, HasSubstr(args[0] + ": " + path + ": " + reason));
      EXPECT_FALSE(fs::exists(dir_ / "r.npy"));
    }
  }
}

TEST_F(MidiToolsTest, HelpGoesToStdoutWithExitZero) {
  Result r = Run({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: pianola-dataserver COMMAND"));
  EXPECT_THAT(r.out, HasSubstr("midi-dump"));
  EXPECT_EQ(r.err, "");
  // A command's --help wins over its missing required flags and arguments.
  r = Run({"pianoroll", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: pianola-dataserver pianoroll FILE.mid --out"));
  EXPECT_EQ(r.err, "");
  r = Run({"help", "midi-dump"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("usage: pianola-dataserver midi-dump FILE.mid"));
  // Not asked for, the usage explains an error: stderr, exit 2.
  r = Run({"no-such-command"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("unknown command 'no-such-command'"));
  EXPECT_THAT(r.err, HasSubstr("usage: pianola-dataserver COMMAND"));
}

TEST_F(MidiToolsTest, UsageAndMissingFileErrors) {
  Result r = Run({"midi-dump"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("usage: pianola-dataserver midi-dump"));
  r = Run({"midi-dump", (dir_ / "missing.mid").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(CountLines(r.err), 1);
  EXPECT_THAT(r.err, HasSubstr("missing.mid"));
  r = Run({"pianoroll", Data() + "/noteseq__example.mid"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("out"));
  r = Run({"pianoroll", Data() + "/noteseq__example.mid", "--fps", "0", "--out",
           (dir_ / "r.npy").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("fps must be > 0"));
}

// Files numpy.save wrote from the generator's own roll: byte-identical output.
TEST_F(MidiToolsTest, PianorollBytesEqualNumpy) {
  int checked = 0;
  for (const auto& e : fs::directory_iterator(Data() + "/expected")) {
    if (e.path().extension() != ".npy") continue;
    // STEM.onsets250.npy / STEM.frames25.npy
    const std::string name = e.path().stem().string();
    const std::string stem = name.substr(0, name.rfind('.'));
    const std::string spec = name.substr(name.rfind('.') + 1);
    const bool frames = absl::StartsWith(spec, "frames");
    const std::string fps = spec.substr(6);  // after "onsets" or "frames"
    SCOPED_TRACE(name);
    const std::string out = (dir_ / "roll.npy").string();
    std::vector<std::string> args = {"pianoroll", Data() + "/" + stem + ".mid", "--fps", fps, "--out", out};
    if (frames) args.push_back("--frames");
    Result r = Run(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr(frames ? "frame roll" : "onset roll"));
    EXPECT_TRUE(ReadFile(out).value_or("") == ReadFile(e.path().string()).value_or("?"));
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

// Every fixture's 250 fps onset roll against the generator's, cell by cell.
TEST_F(MidiToolsTest, OnsetRollEqualsExpectedRoll) {
  for (const auto& [stem, path] : ExpectedFixtures()) {
    SCOPED_TRACE(path);
    const std::string out = (dir_ / "roll.npy").string();
    Result r = Run({"pianoroll", path, "--out", out});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    absl::StatusOr<NpyFloat32Array> roll = ParseNpyFloat32(ReadFile(out).value_or(""), out);
    ASSERT_TRUE(roll.ok()) << roll.status();
    // "shape\t88\tF", then "key\tframe\tvelocity" for every nonzero cell.
    std::string text = ReadFile(Data() + "/expected/" + stem + ".onsets250.tsv").value_or("");
    std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
    ASSERT_FALSE(lines.empty());
    std::vector<std::string> shape = absl::StrSplit(lines[0], '\t');
    ASSERT_EQ(shape.size(), 3u);
    ASSERT_EQ(roll->shape, (std::vector<int64_t>{std::stoll(shape[1]), std::stoll(shape[2])}));
    const int64_t frames = roll->shape[1];
    std::vector<float> expected(roll->data.size(), 0.0f);
    for (size_t i = 1; i < lines.size(); ++i) {
      std::vector<std::string> f = absl::StrSplit(lines[i], '\t');
      ASSERT_EQ(f.size(), 3u);
      expected[std::stoll(f[0]) * frames + std::stoll(f[1])] =
          static_cast<float>(std::stoi(f[2]) / 127.0);
    }
    int mismatches = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      if (roll->data[i] != expected[i] && ++mismatches <= 5) {
        ADD_FAILURE() << "key " << i / frames << " frame " << i % frames << ": " << roll->data[i]
                      << " != " << expected[i];
      }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

}  // namespace
}  // namespace pianola
