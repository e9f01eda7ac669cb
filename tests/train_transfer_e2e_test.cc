// Train and transfer end to end, as a user would run them: a fixture dataset
// rendered by `pianola-dataserver build` (three short public MIDI files, two
// pianos), a real `pianola-dataserver serve` on port 0, `pianola-trainer
// train` of the tiny preset for a bounded number of steps (the loss in
// OUT/metrics.jsonl must fall), then `pianola-trainer transfer` from the run
// directory, producing audio of exactly the requested length plus the two
// spectrogram PNGs, for both decoder kinds. Bad input to transfer exits 2
// with the file named on stderr.

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "dataserver/audio_io.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace pianola {
namespace {

namespace fs = std::filesystem;

constexpr char kFixtures[][40] = {"noteseq__melody", "pythonmidi__mary",
                                  "jazzsoft__test-c-major-scale"};
// CPU training is deterministic for a fixed seed and thread count, so these
// losses are the same on every run: the AR loss goes 5.51 -> ~4.62 nats and
// the parallel STFT loss 3.53 -> ~2.87 over these steps.
constexpr int kSteps = 100;
constexpr char kDatasetName[] = "e2e_pianos";

std::string SourceDir() {
  const char* src = std::getenv("PIANOLA_SOURCE_DIR");
  return src != nullptr ? src : PIANOLA_SOURCE_DIR_DEFAULT;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// train/loss values of a metrics.jsonl as written, in file order.
std::vector<std::string> TrainLossTexts(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"name\":\"train/loss\"") == std::string::npos) continue;
    const size_t at = line.find("\"value\":");
    if (at == std::string::npos) continue;
    const size_t start = at + strlen("\"value\":");
    out.push_back(line.substr(start, line.find(',', start) - start));
  }
  return out;
}

std::vector<double> TrainLosses(const std::string& path) {
  std::vector<double> out;
  for (const std::string& text : TrainLossTexts(path)) {
    double v = 0;
    if (absl::SimpleAtod(text, &v)) out.push_back(v);
  }
  return out;
}

class TrainTransferE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(
        (fs::path(testing::TempDir()) / absl::StrCat("train_transfer_e2e_", getpid())).string());
    (void)RemoveTree(*dir_);
    fs::create_directories(*dir_ + "/midi");
    for (const char* f : kFixtures) {
      fs::copy_file(SourceDir() + "/tests/data/midi/" + f + ".mid",
                    *dir_ + "/midi/" + f + ".mid");
    }
    const int rc = RunProgram({PIANOLA_DATASERVER_BIN, "build", "--midi", *dir_ + "/midi", "--out",
                               *dir_ + "/dataset", "--name", kDatasetName, "--timbres",
                               SourceDir() + "/configs/two_pianos.textproto", "--threads", "2"},
                              *dir_ + "/build.log");
    if (rc != 0) std::cerr << Slurp(*dir_ + "/build.log");
    ASSERT_EQ(rc, 0);
    server_ = new ChildProcess();
    ASSERT_TRUE(server_->Start({PIANOLA_DATASERVER_BIN, "serve", "--dataset", *dir_ + "/dataset",
                                "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"},
                               *dir_ + "/serve.log"));
    const std::string line = server_->ReadLine();
    ASSERT_TRUE(absl::StartsWith(line, "listening on 127.0.0.1:")) << line;
    address_ = new std::string(line.substr(strlen("listening on ")));
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      server_->Signal(SIGTERM);
      EXPECT_EQ(server_->Wait(absl::Seconds(30)), 0);
      delete server_;
    }
    delete address_;
    (void)RemoveTree(*dir_);
    delete dir_;
  }

  void SetUp() override { ASSERT_NE(address_, nullptr) << "the fixture server did not start"; }

  // A rendered recording of the dataset, as a user's reference recording.
  static std::string AnyRenderedWav() {
    for (const auto& e : fs::recursive_directory_iterator(*dir_ + "/dataset")) {
      if (e.path().extension() == ".wav") return e.path().string();
    }
    return "";
  }

  // Trains the tiny preset with `decoder` for kSteps; returns the run directory.
  std::string Train(const std::string& decoder) {
    const std::string run = absl::StrCat(*dir_, "/run_", decoder);
    const std::string config = absl::StrCat(*dir_, "/", decoder, ".textproto");
    std::ofstream(config) << "name: \"e2e_" << decoder << "\"\n"
                          << "model { preset: \"tiny\" decoder_kind: \"" << decoder << "\" }\n"
                          << R"(data {
  servers: "localhost:1"
  window_samples: 1024
  reference_samples: 4096
  batch_size: 4
}
optimizer { kind: "adam" lr: 1e-2 }
schedule { warmup_steps: 5 decay: "cosine" min_lr: 1e-3 }
grad_clip_norm: 1.0
seed: 1
device: "cpu"
checkpoint { every_steps: 0 keep_last: 1 }
validation { every_steps: 0 }
log_every_steps: 10
cpu_threads: 2
)";
    const int rc = RunProgram({PIANOLA_TRAINER_BIN, "train", "--config", config, "--out", run,
                               "--data-servers", *address_, "--steps", std::to_string(kSteps),
                               "--no-progress"},
                              run + ".log", absl::Minutes(10));  // a hang guard, not a speed check
    if (rc != 0) std::cerr << Slurp(run + ".log");
    EXPECT_EQ(rc, 0);
    const std::vector<double> losses = TrainLosses(run + "/metrics.jsonl");
    EXPECT_EQ(losses.size(), static_cast<size_t>(kSteps)) << Slurp(run + "/metrics.jsonl");
    if (losses.size() >= 30) {
      // Falling: the last 20 steps' mean loss at least 10% under the first 10 steps'.
      const double first = std::accumulate(losses.begin(), losses.begin() + 10, 0.0) / 10;
      const double last = std::accumulate(losses.end() - 20, losses.end(), 0.0) / 20;
      EXPECT_LT(last, 0.9 * first) << decoder << ": first " << first << ", last " << last;
    }
    return run;
  }

  // Runs transfer; returns its exit status (stdout and stderr in `log`).
  int Transfer(const std::vector<std::string>& args, const std::string& log) {
    std::vector<std::string> argv = {PIANOLA_TRAINER_BIN, "transfer"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, log, absl::Minutes(10));
  }

  void TrainAndTransfer(const std::string& decoder, double seconds) {
    const std::string run = Train(decoder);
    const std::string reference = AnyRenderedWav();
    ASSERT_FALSE(reference.empty());
    const std::string out = absl::StrCat(*dir_, "/", decoder, "_out.wav");
    const std::string log = out + ".log";
    const int rc = Transfer({"--checkpoint", run, "--reference", reference, "--midi",
                             SourceDir() + "/tests/data/midi/noteseq__example.mid", "--out", out,
                             "--seconds", absl::StrCat(seconds), "--seed", "3", "--threads", "2",
                             "--device", "cpu"},
                            log);
    const std::string text = Slurp(log);
    ASSERT_EQ(rc, 0) << text;
    // The progress line (its last draw), then the summary.
    const int64_t samples = std::llround(seconds * 16000);
    EXPECT_THAT(text, testing::ContainsRegex(absl::StrCat(
                          "transfer: ", samples, "/", samples,
                          " samples \\(100.0%\\) [0-9.]+ samples/s ETA 0:00 ",
                          "[0-9.e+]+x real time")));
    EXPECT_THAT(text, testing::ContainsRegex("rendered 1 x [0-9]+ samples .* real time"));
    EXPECT_THAT(text, testing::HasSubstr(decoder + " decoder"));
    absl::StatusOr<DecodedAudio> audio = ReadAudioFile(out, {.target_rate = 0});
    ASSERT_TRUE(audio.ok()) << audio.status();
    EXPECT_EQ(audio->sample_rate, 16000);
    EXPECT_EQ(static_cast<int64_t>(audio->samples.size()), samples);
    for (const std::string& png : {absl::StrCat(*dir_, "/", decoder, "_out.png"),
                                  absl::StrCat(*dir_, "/", decoder, "_out.reference.png")}) {
      const std::string bytes = Slurp(png);
      ASSERT_GT(bytes.size(), 33u) << png;
      EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << png;
    }
  }

  static std::string* dir_;
  static std::string* address_;
  static ChildProcess* server_;
};
std::string* TrainTransferE2eTest::dir_ = nullptr;
std::string* TrainTransferE2eTest::address_ = nullptr;
ChildProcess* TrainTransferE2eTest::server_ = nullptr;

TEST_F(TrainTransferE2eTest, AutoregressiveTrainsAndTransfers) {
  TrainAndTransfer("autoregressive", 0.3);
}

TEST_F(TrainTransferE2eTest, ParallelTrainsAndTransfers) { TrainAndTransfer("parallel", 1.5); }

TEST_F(TrainTransferE2eTest, BadInputExitsTwoNamingTheFile) {
  const std::string reference = AnyRenderedWav();
  const std::string midi = SourceDir() + "/tests/data/midi/noteseq__melody.mid";
  const std::string out = *dir_ + "/bad.wav";
  const std::string log = *dir_ + "/bad.log";
  EXPECT_EQ(Transfer({"--checkpoint", *dir_ + "/no_such_run", "--reference", reference, "--midi",
                      midi, "--out", out},
                     log),
            2);
  EXPECT_THAT(Slurp(log), testing::HasSubstr("no_such_run"));
  const std::string junk = *dir_ + "/junk.pt";
  std::ofstream(junk) << "PNLACKPT but nothing else of a checkpoint";
  EXPECT_EQ(Transfer({"--checkpoint", junk, "--reference", reference, "--midi", midi, "--out",
                      out},
                     log),
            2);
  EXPECT_THAT(Slurp(log), testing::HasSubstr("junk.pt"));
  const std::string bad_midi =
      SourceDir() + "/tests/data/midi/bad/jazzsoft__test-not-a-midi-file.mid";
  EXPECT_EQ(Transfer({"--checkpoint", junk, "--reference", reference, "--midi", bad_midi, "--out",
                      out},
                     log),
            2);
  EXPECT_THAT(Slurp(log), testing::HasSubstr("test-not-a-midi-file.mid"));
  EXPECT_EQ(Transfer({"--checkpoint", junk, "--reference", reference}, log), 2);  // usage
  EXPECT_FALSE(fs::exists(out));
}

// `pianola-trainer train` and `info` as a job scheduler and a user run them:
// flags override the config, bad input exits 2 naming the problem, SIGTERM
// checkpoints and exits 0, and starting again with the same --out resumes in
// a new process with exactly the losses of an uninterrupted run.
TEST_F(TrainTransferE2eTest, TrainFlagsSignalAndResumeInANewProcess) {
  // Everything the flags override is wrong here: a device that does not
  // exist, a dataset that is not served, a different seed and length.
  const std::string config = *dir_ + "/cli.textproto";
  std::ofstream(config) << R"(model { preset: "tiny" }
data {
  servers: "localhost:1"
  dataset: "no_such_dataset"
  window_samples: 1024
  reference_samples: 4096
  batch_size: 4
}
optimizer { lr: 1e-2 }
seed: 1
steps: 5
device: "cuda:7"
checkpoint { every_steps: 0 keep_last: 0 }
validation { every_steps: 0 }
log_every_steps: 1
cpu_threads: 2
)";
  constexpr int kRunSteps = 60;
  const std::vector<std::string> flags = {
      "--config", config, "--data-servers", *address_, "--dataset", kDatasetName,
      "--device", "cpu", "--seed", "7", "--steps", absl::StrCat(kRunSteps)};
  auto command = [&](const std::string& name, const std::string& out,
                     std::vector<std::string> extra = {}, bool progress = false) {
    std::vector<std::string> argv = {PIANOLA_TRAINER_BIN, name};
    argv.insert(argv.end(), flags.begin(), flags.end());
    if (!out.empty()) argv.insert(argv.end(), {"--out", out});
    if (!out.empty() && !progress) argv.push_back("--no-progress");
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  };

  // info: the data request and device follow the flags.
  const std::string info_log = *dir_ + "/cli_info.log";
  ASSERT_EQ(RunProgram(command("info", ""), info_log), 0) << Slurp(info_log);
  const std::string info = Slurp(info_log);
  EXPECT_THAT(info, testing::HasSubstr("receptive field: 31 samples"));
  EXPECT_THAT(info, testing::HasSubstr(absl::StrCat("dataset: \"", kDatasetName, "\"")));
  EXPECT_THAT(info, testing::HasSubstr("seed: 7,"));
  EXPECT_THAT(info, testing::HasSubstr("device: cpu"));

  // Bad input: exit 2, the problem named, nothing trained.
  const std::string bad_config = *dir_ + "/cli_bad.textproto";
  std::ofstream(bad_config) << "model { preset: \"tiny\" }\nlearning_rate: 3\n";
  const std::string bad_log = *dir_ + "/cli_bad.log";
  const std::string bad_out = *dir_ + "/cli_bad_run";
  struct BadRun {
    std::vector<std::string> argv;
    std::string says;
  };
  const BadRun bad_runs[] = {
      {{PIANOLA_TRAINER_BIN, "train", "--config", bad_config, "--out", bad_out}, "learning_rate"},
      {{PIANOLA_TRAINER_BIN, "train", "--config", bad_config, "--out", bad_out},
       "cli_bad.textproto"},
      {command("train", bad_out, {"--seed", "-1"}), "--seed"},
      {command("train", bad_out, {"--resume"}), "cli_bad_run"},
      {command("train", bad_out, {"--dataset", "no_such_dataset"}), "no_such_dataset"},
      {{PIANOLA_TRAINER_BIN, "train", "--config", config}, "--out"},
  };
  for (const BadRun& bad : bad_runs) {
    EXPECT_EQ(RunProgram(bad.argv, bad_log), 2) << absl::StrJoin(bad.argv, " ");
    EXPECT_THAT(Slurp(bad_log), testing::HasSubstr(bad.says)) << absl::StrJoin(bad.argv, " ");
  }
  EXPECT_TRUE(TrainLossTexts(bad_out + "/metrics.jsonl").empty());

  // Uninterrupted.
  const std::string straight = *dir_ + "/cli_straight";
  const std::string straight_log = straight + ".log";
  ASSERT_EQ(RunProgram(command("train", straight, {}, /*progress=*/true), straight_log,
                       absl::Minutes(10)),
            0)
      << Slurp(straight_log);
  // Its progress line (the last draw): steps, rate, ETA, loss, lr, samples/s.
  EXPECT_THAT(Slurp(straight_log),
              testing::ContainsRegex(absl::StrCat(
                  "train: ", kRunSteps, "/", kRunSteps, " steps \\(100.0%\\) [0-9.]+ steps/s ETA "
                  "0:00 step ", kRunSteps, " loss [0-9.]+ lr [0-9.e-]+ [0-9]+ samples/s")));
  const std::vector<std::string> expected = TrainLossTexts(straight + "/metrics.jsonl");
  ASSERT_EQ(expected.size(), static_cast<size_t>(kRunSteps));

  // SIGTERM a few steps in: a checkpoint, exit 0, part of the run done.
  const std::string stopped = *dir_ + "/cli_stopped";
  ChildProcess trainer;
  ASSERT_TRUE(trainer.Start(command("train", stopped), stopped + ".log"));
  const absl::Time deadline = absl::Now() + ScaledTimeout(absl::Minutes(2));
  while (TrainLossTexts(stopped + "/metrics.jsonl").size() < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  trainer.Signal(SIGTERM);
  EXPECT_EQ(trainer.Wait(ScaledTimeout(absl::Minutes(2))), 0) << Slurp(stopped + ".log");
  const size_t done = TrainLossTexts(stopped + "/metrics.jsonl").size();
  EXPECT_GE(done, 3u);
  EXPECT_LT(done, static_cast<size_t>(kRunSteps)) << "the run ended before the signal";
  EXPECT_THAT(Slurp(stopped + ".log"), testing::HasSubstr("stop requested"));

  // Started again: resumes from that checkpoint, same losses as straight.
  const std::string resumed_log = stopped + ".resumed.log";
  ASSERT_EQ(RunProgram(command("train", stopped), resumed_log, absl::Minutes(10)), 0)
      << Slurp(resumed_log);
  EXPECT_THAT(Slurp(resumed_log), testing::HasSubstr(absl::StrCat("ckpt-", done)));
  EXPECT_EQ(TrainLossTexts(stopped + "/metrics.jsonl"), expected);

  // And once more: nothing left to do.
  ASSERT_EQ(RunProgram(command("train", stopped), resumed_log), 0);
  EXPECT_THAT(Slurp(resumed_log), testing::HasSubstr("nothing to do"));
}

}  // namespace
}  // namespace pianola
