// The training loop against real DataServers (in this process, loopback) over
// a learnable in-memory dataset: end-to-end training, metrics and checkpoints,
// bit-exact resume on the CPU, non-finite steps, and errors before work.

#include "trainer/trainer.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/checkpoint_file.h"
#include "trainer/experiment_config.h"
#include "trainer/test_data_servers.h"

namespace pianola {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<TestDataServers>> s =
        TestDataServers::Start(LearnableTestDataset());
    ASSERT_TRUE(s.ok()) << s.status();
    servers_ = s->release();
  }
  static void TearDownTestSuite() {
    delete servers_;
    servers_ = nullptr;
  }

  static std::string TempDir(const std::string& name) {
    const fs::path dir =
        fs::path(::testing::TempDir()) / absl::StrCat("trainer_", name, "_", ::getpid());
    (void)RemoveTree(dir);
    return dir.string();
  }

  // The tiny model on 1024-sample windows, CPU, 2 threads.
  static TrainOptions Options(const std::string& extra, int64_t steps,
                              const std::string& decoder = "autoregressive") {
    const std::string text = absl::StrCat(R"pb(
      model { preset: "tiny" decoder_kind: ")pb", decoder, R"pb(" }
      data { window_samples: 1024 reference_samples: 2048 batch_size: 4 }
      device: "cpu"
      cpu_threads: 2
      seed: 3
    )pb", extra);
    ConfigOverrides o;
    o.data_servers = servers_->addresses();
    o.dataset = servers_->dataset_name();
    o.steps = steps;
    absl::StatusOr<TrainOptions> options = ParseExperimentConfig(text, "test.textproto", o);
    EXPECT_TRUE(options.ok()) << options.status();
    return *options;
  }

  static TestDataServers* servers_;
};

TestDataServers* TrainerTest::servers_ = nullptr;

double Mean(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / static_cast<double>(to - from);
}

TEST_F(TrainerTest, TrainsTinyWithFallingLossMetricsAndCheckpoints) {
  const std::string out = TempDir("e2e");
  TrainOptions o = Options(R"pb(
    optimizer { lr: 0.003 }
    schedule { warmup_steps: 5 }
    checkpoint { every_steps: 20 keep_last: 2 }
    validation { every_steps: 30 batches: 2 }
    ema { enabled: true decay: 0.9 }
  )pb", 60);
  std::vector<double> losses;
  std::vector<ValidationRecord> validations;
  RunOptions run;
  run.out_dir = out;
  run.progress = false;
  run.on_step = [&](const StepRecord& r) {
    EXPECT_EQ(r.step, static_cast<int64_t>(losses.size()) + 1);
    EXPECT_FALSE(r.skipped);
    EXPECT_GT(r.grad_norm, 0);
    EXPECT_GT(r.samples_per_second, 0);
    EXPECT_GE(r.data_wait_share, 0);
    EXPECT_LE(r.data_wait_share, 1);
    losses.push_back(r.loss);
  };
  run.on_validation = [&](const ValidationRecord& v) { validations.push_back(v); };
  absl::StatusOr<TrainSummary> summary = Train(o, run);
  ASSERT_TRUE(summary.ok()) << summary.status();
  ASSERT_EQ(losses.size(), 60u);
  EXPECT_EQ(summary->start_step, 0);
  EXPECT_EQ(summary->end_step, 60);
  EXPECT_EQ(summary->device, "cpu");
  EXPECT_FALSE(summary->stopped_early);
  // µ-law cross-entropy starts near ln(256) = 5.5 and must fall clearly.
  const double first = Mean(losses, 0, 5), last = Mean(losses, 55, 60);
  EXPECT_LT(last, 0.75 * first) << "first " << first << " last " << last;

  // Validation at 30 and 60 on the same windows; EMA evaluated too.
  ASSERT_EQ(validations.size(), 2u);
  EXPECT_EQ(validations[0].step, 30);
  EXPECT_EQ(validations[1].step, 60);
  EXPECT_EQ(validations[0].windows, 8);
  EXPECT_LT(validations[1].loss, validations[0].loss);
  EXPECT_TRUE(std::isfinite(validations[1].ema_loss));

  // Checkpoints 40 and 60 kept (keep_last 2), `latest` names 60.
  absl::StatusOr<std::vector<CheckpointEntry>> ckpts = ListCheckpoints(out);
  ASSERT_TRUE(ckpts.ok());
  ASSERT_EQ(ckpts->size(), 2u);
  EXPECT_EQ((*ckpts)[0].step, 40);
  EXPECT_EQ((*ckpts)[1].step, 60);
  EXPECT_EQ(*ResolveCheckpoint(out), CheckpointPath(out, 60));
  EXPECT_EQ(summary->last_checkpoint, CheckpointPath(out, 60));
  absl::StatusOr<CheckpointContents> c = ReadCheckpointFile(CheckpointPath(out, 60));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->step, 60);
  EXPECT_EQ(c->config_bytes, o.config_bytes);
  EXPECT_GT(c->data_cursor + c->data_epoch, 0u);

  // metrics.jsonl: one well-formed object per line, every step's train metrics.
  absl::StatusOr<std::string> metrics = ReadFile(out + "/metrics.jsonl");
  ASSERT_TRUE(metrics.ok());
  const std::regex line_re(
      R"re(\{"step":(\d+),"name":"([a-z_/]+)","value":(-?[0-9.e+-]+|null),"time":([0-9.]+)\})re");
  std::map<std::string, std::set<int64_t>> steps_by_name;
  for (absl::string_view line : absl::StrSplit(*metrics, '\n', absl::SkipEmpty())) {
    std::smatch m;
    const std::string l(line);
    ASSERT_TRUE(std::regex_match(l, m, line_re)) << l;
    steps_by_name[m[2]].insert(std::stoll(m[1]));
    EXPECT_GT(std::stod(m[4]), 1.7e9);
  }
  // Each step's own values (written out every log_every_steps = 10 steps).
  std::set<int64_t> every_step, every_tenth;
  for (int64_t s = 1; s <= 60; ++s) every_step.insert(s);
  for (int64_t s = 10; s <= 60; s += 10) every_tenth.insert(s);
  for (const char* name : {"train/loss", "train/grad_norm", "train/lr",
                           "train/samples_per_second", "train/data_wait_share"}) {
    EXPECT_EQ(steps_by_name[name], every_step) << name;
  }
  EXPECT_EQ(steps_by_name["train/nonfinite_steps"], every_tenth);
  EXPECT_THAT(*metrics, HasSubstr(absl::StrCat(R"({"step":60,"name":"train/loss","value":)",
                                               absl::StrFormat("%.10g", losses[59]), ",")));
  EXPECT_EQ(steps_by_name["validation/loss"], (std::set<int64_t>{30, 60}));
  EXPECT_EQ(steps_by_name["validation/ema_loss"], (std::set<int64_t>{30, 60}));
}

class ResumeTest : public TrainerTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(ResumeTest, ResumedRunMatchesTheUninterruptedOneBitForBit) {
  const std::string extra = R"pb(
    optimizer { kind: "adamw" lr: 0.003 }
    schedule { warmup_steps: 3 decay: "cosine" min_lr: 0.0003 }
    ema { enabled: true decay: 0.8 }
    checkpoint { every_steps: 100 }
    validation { every_steps: 4 batches: 1 }
  )pb";
  constexpr int64_t kSteps = 12;
  const TrainOptions o = Options(extra, kSteps, GetParam());

  std::vector<double> straight;
  RunOptions a;
  a.out_dir = TempDir(absl::StrCat("straight_", GetParam()));
  a.progress = false;
  a.on_step = [&](const StepRecord& r) { straight.push_back(r.loss); };
  absl::StatusOr<TrainSummary> sa = Train(o, a);
  ASSERT_TRUE(sa.ok()) << sa.status();
  ASSERT_EQ(straight.size(), static_cast<size_t>(kSteps));

  std::vector<double> resumed;
  std::vector<double> val_straight, val_resumed;
  for (const ValidationRecord& v : sa->validations) val_straight.push_back(v.loss);
  RunOptions b;
  b.out_dir = TempDir(absl::StrCat("resumed_", GetParam()));
  b.progress = false;
  b.stop_at_step = kSteps / 2;  // as if preempted after step 6
  b.on_step = [&](const StepRecord& r) { resumed.push_back(r.loss); };
  b.on_validation = [&](const ValidationRecord& v) { val_resumed.push_back(v.loss); };
  absl::StatusOr<TrainSummary> first = Train(o, b);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->stopped_early);
  EXPECT_EQ(first->end_step, kSteps / 2);

  b.stop_at_step = 0;
  b.resume = true;
  absl::StatusOr<TrainSummary> second = Train(o, b);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->start_step, kSteps / 2);
  EXPECT_EQ(second->resumed_from, CheckpointPath(b.out_dir, kSteps / 2));
  ASSERT_EQ(resumed.size(), static_cast<size_t>(kSteps));
  for (int64_t i = 0; i < kSteps; ++i) {
    EXPECT_EQ(straight[i], resumed[i]) << "step " << i + 1;  // exact, not approximate
  }
  EXPECT_EQ(val_straight, val_resumed);

  // The resumed run's metrics.jsonl reads like one run: each step once.
  absl::StatusOr<std::string> metrics = ReadFile(b.out_dir + "/metrics.jsonl");
  ASSERT_TRUE(metrics.ok());
  int loss_lines = 0;
  for (absl::string_view line : absl::StrSplit(*metrics, '\n', absl::SkipEmpty())) {
    loss_lines += absl::StrContains(line, "\"train/loss\"");
  }
  EXPECT_EQ(loss_lines, kSteps);

  // Running again at the end does nothing and keeps the state.
  absl::StatusOr<TrainSummary> third = Train(o, b);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->end_step, kSteps);
  EXPECT_EQ(resumed.size(), static_cast<size_t>(kSteps));
}

INSTANTIATE_TEST_SUITE_P(Decoders, ResumeTest,
                         ::testing::Values("autoregressive", "parallel"));

TEST_F(TrainerTest, NonFiniteStepsAreSkippedCountedAndStopTheRunWhenRepeated) {
  TrainOptions o = Options("max_consecutive_nonfinite: 2 validation { every_steps: 0 }", 10);
  std::vector<StepRecord> records;
  RunOptions run;
  run.out_dir = TempDir("nonfinite");
  run.progress = false;
  run.on_step = [&](const StepRecord& r) { records.push_back(r); };
  run.inject_nonfinite = [](int64_t step) { return step == 2 || step >= 5; };
  absl::StatusOr<TrainSummary> s = Train(o, run);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("non-finite"));
  // Steps 5, 6, 7 are non-finite; the third in a row exceeds the limit of 2.
  ASSERT_EQ(records.size(), 7u);
  EXPECT_TRUE(records[1].skipped);
  EXPECT_FALSE(records[2].skipped);
  EXPECT_TRUE(records[6].skipped);
  EXPECT_TRUE(std::isnan(records[1].loss));
  // Every step up to the stop is on record (steps 1..7; the interval is 10).
  absl::StatusOr<std::string> diverged = ReadFile(run.out_dir + "/metrics.jsonl");
  ASSERT_TRUE(diverged.ok());
  EXPECT_THAT(*diverged, HasSubstr(R"({"step":7,"name":"train/loss","value":null)"));
  EXPECT_THAT(*diverged, HasSubstr(R"({"step":4,"name":"train/loss","value":)"));

  // One isolated bad step is only skipped and counted.
  run.out_dir = TempDir("nonfinite_once");
  run.inject_nonfinite = [](int64_t step) { return step == 3; };
  records.clear();
  s = Train(Options("validation { every_steps: 0 }", 5), run);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->nonfinite_steps, 1);
  ASSERT_EQ(records.size(), 5u);
  EXPECT_TRUE(records[2].skipped);
  absl::StatusOr<std::string> metrics = ReadFile(run.out_dir + "/metrics.jsonl");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(*metrics, HasSubstr(R"({"step":3,"name":"train/loss","value":null)"));
  EXPECT_THAT(*metrics, HasSubstr(R"({"step":5,"name":"train/nonfinite_steps","value":1,)"));
}

// cuda_graphs with device auto: on a GPU the forward/backward is captured
// after 3 eager steps and replayed, and trains as the eager run does (within
// rounding: TF32); without one the option is ignored and the run is the
// eager run bit for bit.
TEST_F(TrainerTest, CudaGraphsReplayOnCudaAndAreIgnoredOnTheCpu) {
  for (const std::string decoder : {"autoregressive", "parallel"}) {
    std::vector<double> losses[2];
    for (int graphs = 0; graphs < 2; ++graphs) {
      TrainOptions o = Options("validation { every_steps: 0 } precision: \"fp32\"", 7, decoder);
      o.device = TrainDevice::kAuto;
      o.cuda_graphs = graphs == 1;
      RunOptions run;
      run.out_dir = TempDir(absl::StrCat("graphs_", decoder, graphs));
      run.progress = false;
      run.on_step = [&](const StepRecord& r) { losses[graphs].push_back(r.loss); };
      absl::StatusOr<TrainSummary> s = Train(o, run);
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(s->device, torch::cuda::is_available() ? "cuda:0" : "cpu");
    }
    ASSERT_EQ(losses[0].size(), 7u);
    ASSERT_EQ(losses[1].size(), 7u);
    for (size_t i = 0; i < losses[0].size(); ++i) {
      if (torch::cuda::is_available()) {
        EXPECT_NEAR(losses[1][i], losses[0][i], 1e-3 * std::abs(losses[0][i]))
            << decoder << " step " << i + 1;
      } else {
        EXPECT_EQ(losses[1][i], losses[0][i]) << decoder << " step " << i + 1;
      }
    }
  }
}

TEST_F(TrainerTest, ErrorsBeforeAnyWork) {
  RunOptions run;
  run.progress = false;
  // --resume with nothing to resume.
  run.out_dir = TempDir("noresume");
  run.resume = true;
  absl::StatusOr<TrainSummary> s = Train(Options("", 2), run);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("--resume"));
  run.resume = false;

  // A model at another sample rate than the dataset's.
  run.out_dir = TempDir("rate");
  TrainOptions o = Options("", 2);
  o.model.sample_rate = 22050;
  s = Train(o, run);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("sample_rate"));

  // An unknown dataset.
  o = Options("", 2);
  o.data.dataset = "no-such-dataset";
  s = Train(o, run);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound) << s.status();

  // A checkpoint of another model in OUT.
  run.out_dir = TempDir("othermodel");
  ASSERT_TRUE(Train(Options("validation { every_steps: 0 }", 1), run).ok());
  s = Train(Options("validation { every_steps: 0 }", 2, "parallel"), run);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("model differs"));
}

}  // namespace
}  // namespace pianola
