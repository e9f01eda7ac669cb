// Dataset subcommands of pianola-dataserver:
//   build   render MIDI files with timbres into a dataset
//   import  a MAESTRO-style corpus or a generic CSV manifest into a dataset
//   index   rebuild a dataset's index and audio cache from its manifest
//   info    print a dataset's name, fingerprint, splits, timbres and hours

#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/args.h"
#include "common/status_macros.h"
#include "common/subcommand.h"
#include "dataserver/dataset.h"
#include "dataserver/dataset_builder.h"
#include "dataserver/maestro_import.h"
#include "dataserver/timbres.h"

namespace pianola {
namespace {

// Exit statuses: 0 ok, 1 runtime failure, 2 bad input or usage.
int Fail(const ArgParser& parser, const absl::Status& status) {
  std::fprintf(stderr, "%s\n", std::string(status.ToString()).c_str());
  // Parse errors (unknown or missing flags and arguments) come with the usage.
  if (status.code() == absl::StatusCode::kInvalidArgument &&
      (absl::StrContains(status.message(), "flag") ||
       absl::StrContains(status.message(), "argument"))) {
    std::fprintf(stderr, "usage: %s\n", parser.usage().c_str());
  }
  return ExitStatusFor(status);
}

int RunBuild(int argc, char** argv) {
  ArgParser parser(
      "pianola-dataserver build --midi DIR --out DATASET [--timbres FILE] [--threads N]\n"
      "    [--sample-rate 16000] [--seconds-limit S] [--tail 1.0] [--name NAME] [--quiet]");
  parser.AddFlag("midi", true).AddFlag("out", true).AddFlag("timbres").AddFlag("threads");
  parser.AddFlag("sample-rate").AddFlag("seconds-limit").AddFlag("tail").AddFlag("name").AddBool("quiet");
  auto run = [&]() -> absl::StatusOr<BuildReport> {
    ASSIGN_OR_RETURN(Args args, parser.Parse(argc, argv));
    BuildOptions options;
    options.midi_dir = args.Get("midi");
    options.out_dir = args.Get("out");
    options.name = args.Get("name");
    options.progress = !args.GetBool("quiet");
    if (args.Has("timbres")) {
      ASSIGN_OR_RETURN(options.timbres, LoadTimbreSet(args.Get("timbres")));
    }
    ASSIGN_OR_RETURN(int64_t threads, args.GetInt("threads", 0));
    ASSIGN_OR_RETURN(int64_t rate, args.GetInt("sample-rate", 16000));
    ASSIGN_OR_RETURN(options.seconds_limit, args.GetDouble("seconds-limit", 0));
    ASSIGN_OR_RETURN(options.release_tail_seconds, args.GetDouble("tail", 1.0));
    if (threads < 0 || threads > 1024) return absl::InvalidArgumentError("--threads outside 0..1024");
    if (options.seconds_limit < 0) return absl::InvalidArgumentError("--seconds-limit must be >= 0");
    options.threads = static_cast<int>(threads);
    options.sample_rate = static_cast<int>(rate);
    return BuildRenderedDataset(options);
  };
  absl::StatusOr<BuildReport> report = run();
  if (!report.ok()) return Fail(parser, report.status());
  std::printf("%s", report->Text().c_str());
  return 0;
}

int RunImport(int argc, char** argv) {
  ArgParser parser(
      "pianola-dataserver import (--maestro ROOT | --manifest FILE.csv) --out DATASET\n"
      "    [--sample-rate 16000] [--threads N] [--name NAME] [--quiet]");
  parser.AddFlag("maestro").AddFlag("manifest").AddFlag("out", true).AddFlag("sample-rate");
  parser.AddFlag("threads").AddFlag("name").AddBool("quiet");
  auto run = [&]() -> absl::StatusOr<BuildReport> {
    ASSIGN_OR_RETURN(Args args, parser.Parse(argc, argv));
    ImportOptions options;
    options.maestro_root = args.Get("maestro");
    options.manifest_csv = args.Get("manifest");
    options.out_dir = args.Get("out");
    options.name = args.Get("name");
    options.progress = !args.GetBool("quiet");
    ASSIGN_OR_RETURN(int64_t rate, args.GetInt("sample-rate", 16000));
    ASSIGN_OR_RETURN(int64_t threads, args.GetInt("threads", 0));
    if (threads < 0 || threads > 1024) return absl::InvalidArgumentError("--threads outside 0..1024");
    options.sample_rate = static_cast<int>(rate);
    options.threads = static_cast<int>(threads);
    return ImportDataset(options);
  };
  absl::StatusOr<BuildReport> report = run();
  if (!report.ok()) return Fail(parser, report.status());
  std::printf("%s", report->Text("rows").c_str());
  return 0;
}

int RunIndex(int argc, char** argv) {
  ArgParser parser("pianola-dataserver index DATASET [--quiet]");
  parser.AddBool("quiet").AddPositional("DATASET");
  absl::StatusOr<Args> args = parser.Parse(argc, argv);
  if (!args.ok()) return Fail(parser, args.status());
  absl::Status s = BuildIndex(args->positional()[0], !args->GetBool("quiet"));
  if (!s.ok()) return Fail(parser, s);
  std::printf("indexed %s\n", args->positional()[0].c_str());
  return 0;
}

int RunInfo(int argc, char** argv) {
  ArgParser parser("pianola-dataserver info DATASET");
  parser.AddPositional("DATASET");
  absl::StatusOr<Args> args = parser.Parse(argc, argv);
  if (!args.ok()) return Fail(parser, args.status());
  absl::StatusOr<std::unique_ptr<Dataset>> ds = Dataset::Open(args->positional()[0]);
  if (!ds.ok()) return Fail(parser, ds.status());
  const Dataset& d = **ds;
  struct Totals {
    int recordings = 0;
    std::set<std::string> pieces;
    int64_t samples = 0;
  };
  std::map<Split, Totals> by_split;
  std::map<std::string, int> by_timbre;
  int64_t notes = 0, samples = 0;
  for (int r = 0; r < d.num_recordings(); ++r) {
    const RecordingEntry& e = d.entry(r);
    Totals& t = by_split[e.split()];
    ++t.recordings;
    t.pieces.insert(e.piece());
    t.samples += e.num_samples();
    samples += e.num_samples();
    ++by_timbre[e.timbre()];
    notes += d.recording_index(r).note_start_size();
  }
  const double rate = d.sample_rate();
  absl::PrintF("name         %s\n", d.name());
  absl::PrintF("fingerprint  %016x\n", d.fingerprint());
  absl::PrintF("sample rate  %d Hz\n", d.sample_rate());
  absl::PrintF("recordings   %d (%d notes, %.3f hours)\n", d.num_recordings(), notes,
               samples / rate / 3600);
  for (const auto& [split, t] : by_split) {
    absl::PrintF("  %-11s%d recordings, %d pieces, %.3f hours\n", SplitName(split), t.recordings,
                 t.pieces.size(), t.samples / rate / 3600);
  }
  absl::PrintF("timbres      %d\n", by_timbre.size());
  for (const auto& [timbre, count] : by_timbre) absl::PrintF("  %-24s%d recordings\n", timbre, count);
  if (!d.manifest().created_by().empty()) absl::PrintF("created by   %s\n", d.manifest().created_by());
  return 0;
}

}  // namespace
}  // namespace pianola

PIANOLA_SUBCOMMAND(build, "build",
                   "--midi DIR --out DATASET [--timbres FILE] [--threads N]: render MIDI into a dataset",
                   pianola::RunBuild);
PIANOLA_SUBCOMMAND(import, "import",
                   "(--maestro ROOT | --manifest CSV) --out DATASET: import recorded audio + MIDI",
                   pianola::RunImport);
PIANOLA_SUBCOMMAND(index, "index", "DATASET: rebuild the index and audio cache", pianola::RunIndex);
PIANOLA_SUBCOMMAND(info, "info", "DATASET: name, fingerprint, splits, timbres, hours", pianola::RunInfo);
