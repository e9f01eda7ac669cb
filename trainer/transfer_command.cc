// `pianola-trainer transfer`: render a MIDI file in the timbre of a reference
// recording with a trained checkpoint (see trainer/transfer.h and
// docs/transfer.md).
//
//   pianola-trainer transfer --checkpoint C --reference REF.wav --midi SONG.mid --out OUT.wav
//       [--seconds N] [--temperature T] [--batch N] [--device auto|cpu|cuda[:N]] [--seed N]
//       [--reference-crops N] [--chunk-seconds S] [--threads N] [--raw-weights]
//       [--no-spectrograms] [--no-progress]
//
// Prints one summary line per file written. Exit statuses: 0 ok, 1 runtime
// failure, 2 bad input (missing or corrupt checkpoint, unreadable reference,
// bad MIDI, bad flags). Torch-free: the work happens in transfer.cc.

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/args.h"
#include "common/subcommand.h"
#include "trainer/experiment_config.h"
#include "trainer/transfer.h"

namespace pianola {
namespace {

constexpr char kUsage[] =
    "pianola-trainer transfer --checkpoint CKPT|RUN_DIR --reference REF.wav --midi SONG.mid "
    "--out OUT.wav [--seconds N] [--temperature T] [--batch TAKES] [--device auto|cpu|cuda[:N]] "
    "[--seed N] [--reference-crops N] [--chunk-seconds S] [--threads N] [--raw-weights] "
    "[--no-spectrograms] [--no-progress]";

absl::StatusOr<TransferOptions> ReadOptions(const Args& args) {
  TransferOptions o;
  o.checkpoint = args.Get("checkpoint");
  o.reference = args.Get("reference");
  o.midi = args.Get("midi");
  o.out = args.Get("out");
  absl::StatusOr<double> d = args.GetDouble("seconds", o.seconds);
  if (!d.ok()) return d.status();
  if (args.Has("seconds") && !(*d > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("--seconds: ", *d, " must be positive"));
  }
  o.seconds = *d;
  if (!(d = args.GetDouble("temperature", o.temperature)).ok()) return d.status();
  o.temperature = *d;
  if (!(d = args.GetDouble("chunk-seconds", o.chunk_seconds)).ok()) return d.status();
  o.chunk_seconds = *d;
  absl::StatusOr<int64_t> i = args.GetInt("batch", o.batch);
  if (!i.ok()) return i.status();
  if (*i < 1 || *i > 64) return absl::InvalidArgumentError("--batch: expected 1..64 takes");
  o.batch = static_cast<int>(*i);
  if (!(i = args.GetInt("seed", 0)).ok()) return i.status();
  if (*i < 0) return absl::InvalidArgumentError("--seed: must be >= 0");
  o.seed = static_cast<uint64_t>(*i);
  if (!(i = args.GetInt("reference-crops", o.reference_crops)).ok()) return i.status();
  if (*i < 1 || *i > 1024) return absl::InvalidArgumentError("--reference-crops: expected 1..1024");
  o.reference_crops = static_cast<int>(*i);
  if (!(i = args.GetInt("threads", 0)).ok()) return i.status();
  if (*i < 0 || *i > 1024) return absl::InvalidArgumentError("--threads: expected 0..1024");
  o.cpu_threads = static_cast<int>(*i);
  o.device = args.Get("device", "auto");
  o.use_ema = !args.GetBool("raw-weights");
  o.spectrograms = !args.GetBool("no-spectrograms");
  o.progress = !args.GetBool("no-progress");
  return o;
}

int RunTransferCommand(int argc, char** argv) {
  ArgParser p(kUsage);
  p.AddFlag("checkpoint", true)
      .AddFlag("reference", true)
      .AddFlag("midi", true)
      .AddFlag("out", true)
      .AddFlag("seconds")
      .AddFlag("temperature")
      .AddFlag("batch")
      .AddFlag("device")
      .AddFlag("seed")
      .AddFlag("reference-crops")
      .AddFlag("chunk-seconds")
      .AddFlag("threads")
      .AddBool("raw-weights")
      .AddBool("no-spectrograms")
      .AddBool("no-progress");
  absl::StatusOr<Args> args = p.Parse(argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "transfer: %s\nusage: %s\n", std::string(args.status().message()).c_str(),
                 p.usage().c_str());
    return 2;
  }
  absl::StatusOr<TransferOptions> options = ReadOptions(*args);
  if (!options.ok()) {
    std::fprintf(stderr, "transfer: %s\nusage: %s\n",
                 std::string(options.status().message()).c_str(), p.usage().c_str());
    return 2;
  }
  absl::StatusOr<TransferResult> r = RunTransfer(*options);
  if (!r.ok()) {
    std::fprintf(stderr, "transfer: %s\n", r.status().ToString().c_str());
    return ExitStatusFor(r.status());
  }
  std::printf("checkpoint %s (step %lld, %s decoder%s) on %s\n", r->checkpoint_path.c_str(),
              static_cast<long long>(r->checkpoint_step), r->decoder.c_str(),
              r->used_ema ? ", EMA weights" : "", r->device.c_str());
  std::printf("rendered %zu x %lld samples (%.3f s at %d Hz) in %.2f s: %.3gx real time\n",
              r->wav_paths.size(), static_cast<long long>(r->samples),
              static_cast<double>(r->samples) / r->sample_rate, r->sample_rate, r->render_seconds,
              r->real_time_factor);
  for (size_t i = 0; i < r->wav_paths.size(); ++i) std::printf("wav %s\n", r->wav_paths[i].c_str());
  for (size_t i = 0; i < r->png_paths.size(); ++i) std::printf("png %s\n", r->png_paths[i].c_str());
  if (!r->reference_png.empty()) std::printf("png %s\n", r->reference_png.c_str());
  return 0;
}

}  // namespace

PIANOLA_SUBCOMMAND(transfer, "transfer",
                   "--checkpoint C --reference REF.wav --midi SONG.mid --out OUT.wav: render a "
                   "MIDI file in the reference's timbre",
                   RunTransferCommand);

}  // namespace pianola
