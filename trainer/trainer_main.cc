// pianola-trainer: trains Pianola models and renders with them. Subcommands
// register with PIANOLA_SUBCOMMAND; `train` and `info` live here, `transfer`
// in its own transfer_command.cc.
//
//   pianola-trainer train --config EXP.textproto --out DIR [--data-servers H:P[,H:P]]
//       [--dataset NAME] [--steps N] [--device cpu|cuda|auto] [--seed N] [--resume]
//   pianola-trainer info --config EXP.textproto [same overrides]
//
// Exit statuses: 0 ok, 1 runtime failure, 2 bad input or usage
// (ExitStatusFor; for `train` also a run directory that cannot be resumed:
// --resume with no checkpoint, a corrupt checkpoint or `latest`, another
// model's checkpoint). SIGINT and SIGTERM make `train` checkpoint after the
// current step and exit 0, so a preempted job resumes where it stopped. A run
// already at its last step is "nothing to do", exit 0.

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/args.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/subcommand.h"
#include "trainer/checkpoint_file.h"
#include "trainer/experiment_config.h"
#include "trainer/trainer.h"

namespace pianola {
namespace {

constexpr char kOverrideUsage[] =
    "[--data-servers HOST:PORT[,HOST:PORT]] [--dataset NAME] [--steps N] "
    "[--device auto|cpu|cuda[:N]] [--seed N]";

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnStopSignal(int) { g_stop.store(true); }

ArgParser& AddOverrideFlags(ArgParser& p) {
  return p.AddFlag("data-servers").AddFlag("dataset").AddFlag("steps").AddFlag("device")
      .AddFlag("seed");
}

absl::StatusOr<ConfigOverrides> ReadOverrides(const Args& args) {
  ConfigOverrides o;
  if (args.Has("data-servers")) {
    std::string joined;
    for (const std::string& s : args.GetAll("data-servers")) absl::StrAppend(&joined, s, ",");
    absl::StatusOr<std::vector<std::string>> servers = ParseServerList(joined);
    if (!servers.ok()) return servers.status();
    o.data_servers = *servers;
  }
  if (args.Has("dataset")) o.dataset = args.Get("dataset");
  if (args.Has("steps")) {
    absl::StatusOr<int64_t> steps = args.GetInt("steps", 0);
    if (!steps.ok()) return steps.status();
    o.steps = *steps;
  }
  if (args.Has("device")) o.device = args.Get("device");
  if (args.Has("seed")) {
    absl::StatusOr<int64_t> seed = args.GetInt("seed", 0);
    if (!seed.ok()) return seed.status();
    if (*seed < 0) return absl::InvalidArgumentError("--seed: must be >= 0");
    o.seed = static_cast<uint64_t>(*seed);
  }
  return o;
}

absl::StatusOr<TrainOptions> LoadWithFlags(const Args& args) {
  absl::StatusOr<ConfigOverrides> overrides = ReadOverrides(args);
  if (!overrides.ok()) return overrides.status();
  return LoadExperimentConfig(args.Get("config"), *overrides);
}

// The checkpoint a run in OUT resumes from; `path` empty for a fresh run.
struct ResumePoint {
  std::string path;
  int64_t step = 0;
};

// Checks what OUT holds before any work (Train() reads it again when it
// resumes), so that a run directory that does not fit is reported as bad
// input: --resume with nothing to resume, a `latest` or checkpoint that is
// corrupt, truncated or of an unknown version, a checkpoint of another model.
absl::StatusOr<ResumePoint> CheckRunDirectory(const std::string& out, bool resume,
                                              const TrainOptions& options) {
  if (!HasCheckpoints(out)) {
    if (resume) {
      return absl::FailedPreconditionError(
          absl::StrCat("--resume: no checkpoints in ", CheckpointDir(out), " to resume from"));
    }
    return ResumePoint{};
  }
  ASSIGN_OR_RETURN(std::string path, ResolveCheckpoint(out));
  ASSIGN_OR_RETURN(CheckpointContents checkpoint, ReadCheckpointFile(path));
  RETURN_IF_ERROR(Annotate(CheckResumeCompatible(checkpoint.config_bytes, options).status(), path));
  return ResumePoint{path, checkpoint.step};
}

// What `train` prints when the run already reached its last step.
int NothingToDo(const TrainOptions& options, int64_t step, const std::string& checkpoint) {
  std::printf("nothing to do: %s is already at step %lld of %lld (raise --steps to train on)\n",
              options.name.c_str(), static_cast<long long>(step),
              static_cast<long long>(options.steps));
  std::printf("checkpoint %s\n", checkpoint.c_str());
  return 0;
}

int RunTrain(int argc, char** argv) {
  ArgParser p(absl::StrCat("pianola-trainer train --config EXP.textproto --out DIR ",
                           kOverrideUsage, " [--resume] [--no-progress]"));
  AddOverrideFlags(p.AddFlag("config", true).AddFlag("out", true))
      .AddBool("resume")
      .AddBool("no-progress");
  absl::StatusOr<Args> args = p.Parse(argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "train: %s\nusage: %s\n", std::string(args.status().message()).c_str(),
                 p.usage().c_str());
    return 2;
  }
  absl::StatusOr<TrainOptions> options = LoadWithFlags(*args);
  if (!options.ok()) {
    std::fprintf(stderr, "train: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  LogInfo("trainer", "config ", args->Get("config"), "\n", DescribeTrainOptions(*options));
  absl::StatusOr<ResumePoint> from =
      CheckRunDirectory(args->Get("out"), args->GetBool("resume"), *options);
  if (!from.ok()) {
    std::fprintf(stderr, "train: %s\n", from.status().ToString().c_str());
    // FailedPrecondition here means OUT does not fit this config: bad input.
    return from.status().code() == absl::StatusCode::kFailedPrecondition
               ? 2
               : ExitStatusFor(from.status());
  }
  if (!from->path.empty() && from->step >= options->steps) {
    return NothingToDo(*options, from->step, from->path);
  }

  struct sigaction sa = {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  RunOptions run;
  run.out_dir = args->Get("out");
  run.resume = args->GetBool("resume");
  run.progress = !args->GetBool("no-progress");
  run.stop = &g_stop;
  absl::StatusOr<TrainSummary> summary = Train(*options, run);
  if (!summary.ok()) {
    std::fprintf(stderr, "train: %s\n", summary.status().ToString().c_str());
    return ExitStatusFor(summary.status());
  }
  // Train() found the run complete after all (a checkpoint written since the
  // check above): it trained nothing and wrote no checkpoint.
  if (summary->end_step == summary->start_step) {
    return NothingToDo(*options, summary->end_step, summary->resumed_from);
  }
  std::printf("trained %s: steps %lld..%lld of %lld on %s, last loss %.6g%s\n",
              options->name.c_str(), static_cast<long long>(summary->start_step),
              static_cast<long long>(summary->end_step), static_cast<long long>(options->steps),
              summary->device.c_str(), summary->last_loss,
              summary->stopped_early ? " (stopped early; run again to resume)" : "");
  if (!summary->validations.empty()) {
    std::printf("validation loss %.6g at step %lld\n", summary->validations.back().loss,
                static_cast<long long>(summary->validations.back().step));
  }
  std::printf("checkpoint %s\n", summary->last_checkpoint.c_str());
  return 0;
}

int RunInfo(int argc, char** argv) {
  ArgParser p(absl::StrCat("pianola-trainer info --config EXP.textproto ", kOverrideUsage));
  AddOverrideFlags(p.AddFlag("config", true));
  absl::StatusOr<Args> args = p.Parse(argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "info: %s\nusage: %s\n", std::string(args.status().message()).c_str(),
                 p.usage().c_str());
    return 2;
  }
  absl::StatusOr<TrainOptions> options = LoadWithFlags(*args);
  if (!options.ok()) {
    std::fprintf(stderr, "info: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<int64_t> params = CountModelParameters(options->model);
  if (!params.ok()) {
    std::fprintf(stderr, "info: %s\n", params.status().ToString().c_str());
    return 1;
  }
  const TrainOptions& o = *options;
  std::printf("%s", DescribeTrainOptions(o).c_str());
  std::printf("parameters: %lld\n", static_cast<long long>(*params));
  std::printf("receptive field: %lld samples (%.1f ms); context requested: %u samples\n",
              static_cast<long long>(DecoderReceptiveField(o.model.decoder)),
              1000.0 * DecoderReceptiveField(o.model.decoder) / o.model.sample_rate,
              o.data.context_samples);
  std::printf(
      "data request: StreamWindows{dataset: \"%s\", split: %s, seed: %llu, batch_size: %u, "
      "window_samples: %u, context_samples: %u, reference_samples: %u}\n",
      o.data.dataset.c_str(), DataSplitName(o.data.train_split).c_str(),
      static_cast<unsigned long long>(o.seed), o.data.batch_size, o.data.window_samples,
      o.data.context_samples, o.data.reference_samples);
  absl::StatusOr<std::string> device = ResolveTrainDevice(o);
  std::printf("device: %s\n", device.ok() ? device->c_str()
                                          : std::string(device.status().message()).c_str());
  return 0;
}

}  // namespace

PIANOLA_SUBCOMMAND(train, "train",
                   "--config EXP.textproto --out DIR [overrides] [--resume]: train a model",
                   RunTrain);
PIANOLA_SUBCOMMAND(info, "info",
                   "--config EXP.textproto: the model's size, receptive field and data request",
                   RunInfo);

}  // namespace pianola

int main(int argc, char** argv) {
  return pianola::RunSubcommandMain("pianola-trainer", argc, argv);
}
