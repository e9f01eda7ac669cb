// `pianola-dataserver midi-dump` and `pianola-dataserver pianoroll`: inspect
// what the MIDI reader makes of a file. Their stdout is a stable interface
// (tests and users diff it), see docs/midi.md:
//
//   midi-dump FILE.mid          header "pitch\tvelocity\tstart\tend", then one
//                               line per non-drum note, seconds with 6
//                               decimals, sorted by start then pitch.
//   midi-dump FILE.mid --pedal  header "time\tvalue", then one line per
//                               sustain (CC64) event of a non-drum channel,
//                               sorted by time (file order at equal times).
//   pianoroll FILE.mid --out ROLL.npy [--fps 250] [--frames]
//                               writes a [88, F] float32 .npy onset roll (or
//                               the note-active roll with --frames).
//
// Repaired defects print one "warning:" line on stderr. A file that cannot
// be read prints one error line on stderr and exits with status 2.

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/args.h"
#include "common/status_macros.h"
#include "common/subcommand.h"
#include "dataserver/midi.h"
#include "dataserver/npy.h"
#include "dataserver/pianoroll.h"

namespace pianola {
namespace {

constexpr char kDumpUsage[] = "pianola-dataserver midi-dump FILE.mid [--pedal]";
constexpr char kRollUsage[] =
    "pianola-dataserver pianoroll FILE.mid --out ROLL.npy [--fps 250] [--frames]";

int Fail(absl::string_view command, const absl::Status& s) {
  std::string line(s.message());
  for (char& c : line) {
    if (c == '\n') c = ' ';
  }
  std::fprintf(stderr, "%s: %s\n", std::string(command).c_str(), line.c_str());
  return ExitStatusFor(s);
}

// A usage error, with the usage line.
absl::Status UsageError(const absl::Status& s, const char* usage) {
  return absl::InvalidArgumentError(absl::StrCat(s.message(), "; usage: ", usage));
}

absl::StatusOr<midi::Performance> Read(absl::string_view command, const std::string& path) {
  ASSIGN_OR_RETURN(midi::Performance perf, midi::ReadMidiFile(path));
  const std::string warnings = perf.warnings.Summary();
  if (!warnings.empty()) {
    std::fprintf(stderr, "%s: warning: %s: %s\n", std::string(command).c_str(), path.c_str(),
                 warnings.c_str());
  }
  return perf;
}

absl::Status WriteStdout(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
    return absl::UnavailableError("writing to stdout failed");
  }
  return absl::OkStatus();
}

absl::Status Dump(const Args& args) {
  const std::string& path = args.positional()[0];
  ASSIGN_OR_RETURN(midi::Performance perf, Read("midi-dump", path));
  std::string out;
  if (args.GetBool("pedal")) {
    out.reserve(32 + perf.pedal.size() * 16);
    out.append("time\tvalue\n");
    for (const midi::PedalEvent& e : perf.pedal) {
      if (e.channel == midi::kDrumChannel) continue;
      absl::StrAppendFormat(&out, "%.6f\t%d\n", e.time, e.value);
    }
  } else {
    out.reserve(32 + perf.notes.size() * 32);
    out.append("pitch\tvelocity\tstart\tend\n");
    for (const midi::Note& n : perf.notes) {  // sorted by (start, pitch, ...)
      if (n.channel == midi::kDrumChannel) continue;
      absl::StrAppendFormat(&out, "%d\t%d\t%.6f\t%.6f\n", n.pitch, n.velocity, n.start, n.end);
    }
  }
  return WriteStdout(out);
}

absl::Status Roll(const Args& args) {
  const std::string& path = args.positional()[0];
  PianoRollOptions options;
  ASSIGN_OR_RETURN(options.fps, args.GetDouble("fps", options.fps));
  options.kind = args.GetBool("frames") ? RollKind::kFrames : RollKind::kOnsets;
  ASSIGN_OR_RETURN(midi::Performance perf, Read("pianoroll", path));
  absl::StatusOr<PianoRoll> roll = MakePianoRoll(perf, options);
  if (!roll.ok()) return Annotate(roll.status(), path);
  const std::string out = args.Get("out");
  const int64_t shape[] = {kPianoKeys, roll->frames};
  RETURN_IF_ERROR(WriteNpyFloat32(out, roll->values, shape));
  return WriteStdout(absl::StrFormat("wrote %s: [%d, %d] float32 %s roll at %g fps\n", out,
                                     kPianoKeys, roll->frames,
                                     options.kind == RollKind::kOnsets ? "onset" : "frame",
                                     options.fps));
}

int RunMidiDump(int argc, char** argv) {
  ArgParser parser(kDumpUsage);
  parser.AddBool("pedal").AddPositional("FILE.mid");
  absl::StatusOr<Args> args = parser.Parse(argc, argv);
  if (!args.ok()) return Fail("midi-dump", UsageError(args.status(), kDumpUsage));
  absl::Status s = Dump(*args);
  return s.ok() ? 0 : Fail("midi-dump", s);
}

int RunPianoRoll(int argc, char** argv) {
  ArgParser parser(kRollUsage);
  parser.AddFlag("out", /*required=*/true).AddFlag("fps").AddBool("frames");
  parser.AddPositional("FILE.mid");
  absl::StatusOr<Args> args = parser.Parse(argc, argv);
  if (!args.ok()) return Fail("pianoroll", UsageError(args.status(), kRollUsage));
  absl::Status s = Roll(*args);
  return s.ok() ? 0 : Fail("pianoroll", s);
}

}  // namespace
}  // namespace pianola

PIANOLA_SUBCOMMAND(midi_dump, "midi-dump",
                   "FILE.mid [--pedal]: print the piano notes (or sustain events) as TSV",
                   pianola::RunMidiDump);
PIANOLA_SUBCOMMAND(pianoroll, "pianoroll",
                   "FILE.mid --out ROLL.npy [--fps 250] [--frames]: write a [88, F] piano roll",
                   pianola::RunPianoRoll);
