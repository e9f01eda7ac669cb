// MIDI parsing throughput: Pianola's reader (midi::ParseMidi) against
// pretty_midi on the same files, measured in the same run.
//
//   midi_bench [--data DIR] [--python PY] [--seconds 2]
//
// Parses every fixture in DIR (default tests/data/midi: the good files plus
// bad/'s readable RIFF RMID file, 10k notes) from memory, repeatedly for at
// least --seconds, then runs bench/midi_bench_pretty_midi.py on the same
// files with the same budget, and prints MB/s, notes/s and the ratio
// (target >= 100x). File reading is excluded on both sides. Results go in
// docs/perf.md ("MIDI parsing").

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/args.h"
#include "common/file_util.h"
#include "dataserver/midi.h"

namespace {

namespace fs = std::filesystem;

struct Rate {
  double bytes = 0;    // per pass
  double notes = 0;    // per pass
  double seconds = 0;  // total
  int64_t passes = 0;
  double MBps() const { return bytes * passes / seconds / 1e6; }
  double NotesPerSecond() const { return notes * passes / seconds; }
};

int Main(int argc, char** argv) {
  pianola::ArgParser parser("midi_bench [--data DIR] [--python PY] [--seconds 2]");
  parser.AddFlag("data").AddFlag("python").AddFlag("seconds");
  absl::StatusOr<pianola::Args> args = parser.Parse(argc - 1, argv + 1);
  if (!args.ok()) {
    std::fprintf(stderr, "%s\nusage: %s\n", args.status().ToString().c_str(), parser.usage().c_str());
    return 2;
  }
  const std::string source = PIANOLA_SOURCE_DIR_DEFAULT;
  const std::string data = args->Get("data", source + "/tests/data/midi");
  const std::string python = args->Get("python", PIANOLA_PYTHON_DEFAULT);
  absl::StatusOr<double> budget = args->GetDouble("seconds", 2.0);
  if (!budget.ok()) {
    std::fprintf(stderr, "%s\n", budget.status().ToString().c_str());
    return 2;
  }

  std::vector<std::string> paths;
  for (const auto& e : fs::directory_iterator(data)) {
    if (e.path().extension() == ".mid") paths.push_back(e.path().string());
  }
  if (fs::exists(data + "/bad/midly__Beethoven.rmi")) paths.push_back(data + "/bad/midly__Beethoven.rmi");
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> blobs;
  Rate cpp;
  for (const std::string& p : paths) {
    absl::StatusOr<std::string> b = pianola::ReadFile(p);
    if (!b.ok()) {
      std::fprintf(stderr, "%s\n", b.status().ToString().c_str());
      return 1;
    }
    cpp.bytes += b->size();
    blobs.push_back(*std::move(b));
  }
  std::printf("MIDI parsing: %zu files, %.1f KB per pass\n", blobs.size(), cpp.bytes / 1e3);

  const absl::Time start = absl::Now();
  const absl::Duration min = absl::Seconds(*budget);
  do {
    int64_t notes = 0;
    for (size_t i = 0; i < blobs.size(); ++i) {
      absl::StatusOr<pianola::midi::Performance> perf = pianola::midi::ParseMidi(blobs[i], paths[i]);
      if (!perf.ok()) {
        std::fprintf(stderr, "%s\n", perf.status().ToString().c_str());
        return 1;
      }
      notes += static_cast<int64_t>(perf->notes.size());
    }
    cpp.notes = static_cast<double>(notes);
    ++cpp.passes;
  } while (absl::Now() - start < min);
  cpp.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("pianola   %8.1f MB/s %12.0f notes/s  (%lld passes, %.0f notes/pass, %.2f s)\n",
              cpp.MBps(), cpp.NotesPerSecond(), static_cast<long long>(cpp.passes), cpp.notes,
              cpp.seconds);
  std::fflush(stdout);

  std::string cmd = absl::StrCat("'", python, "' '", source, "/bench/midi_bench_pretty_midi.py' --min-seconds ",
                                 *budget);
  for (const std::string& p : paths) absl::StrAppend(&cmd, " '", p, "'");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) {
    std::fprintf(stderr, "cannot run %s\n", cmd.c_str());
    return 1;
  }
  char line[512] = {0};
  std::string out;
  while (std::fgets(line, sizeof line, pipe)) out += line;
  if (pclose(pipe) != 0) {
    std::fprintf(stderr, "baseline failed: %s\n%s", cmd.c_str(), out.c_str());
    return 1;
  }
  Rate py;
  long long passes = 0;
  if (std::sscanf(out.c_str(), "pretty_midi bytes=%lf notes=%lf seconds=%lf passes=%lld", &py.bytes,
                  &py.notes, &py.seconds, &passes) != 4 ||
      py.seconds <= 0) {
    std::fprintf(stderr, "unexpected baseline output: %s\n", out.c_str());
    return 1;
  }
  py.passes = passes;
  std::printf("pretty_midi %6.2f MB/s %12.0f notes/s  (%lld passes, %.0f notes/pass, %.2f s)\n",
              py.MBps(), py.NotesPerSecond(), static_cast<long long>(py.passes), py.notes, py.seconds);
  const double ratio = cpp.MBps() / py.MBps();
  std::printf("ratio: %.0fx pretty_midi in MB/s, %.0fx in notes/s (target >= 100x): %s\n", ratio,
              cpp.NotesPerSecond() / py.NotesPerSecond(), ratio >= 100 ? "PASS" : "BELOW TARGET");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
