#ifndef PIANOLA_COMMON_SUBCOMMAND_H_
#define PIANOLA_COMMON_SUBCOMMAND_H_

// Subcommands of a multi-command tool (`pianola-dataserver build|serve|...`).
//
// Each command lives in its own .cc file compiled directly into the tool's
// executable (not a static library, whose unreferenced objects the linker
// would drop) and registers itself:
//
//   PIANOLA_SUBCOMMAND(midi_dump, "midi-dump", "FILE.mid [--pedal]: print notes", RunMidiDump);
//
// where RunMidiDump(int argc, char** argv) gets the arguments after the
// command name and returns the process exit status. Exit statuses: 0 ok,
// 1 runtime failure, 2 bad input or usage.

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"

namespace pianola {

struct Subcommand {
  std::string summary;
  std::function<int(int, char**)> run;
};

// The registry, ordered by name. Registration happens during static init.
std::map<std::string, Subcommand>& Subcommands();

struct SubcommandRegistrar {
  SubcommandRegistrar(const char* name, const char* summary, int (*run)(int, char**)) {
    Subcommands()[name] = Subcommand{summary, run};
  }
};

// Runs argv[1] as a subcommand; prints usage listing every command when it is
// missing or unknown (to stderr, exit 2) or asked for with --help, -h or help
// (to stdout, exit 0). `TOOL help COMMAND` runs `TOOL COMMAND --help`.
int RunSubcommandMain(const char* tool, int argc, char** argv);

// The exit status of a command that ended with `status`, by the contract
// above: 0 for OK; 2 when the code says the input was at fault
// (InvalidArgument, NotFound, DataLoss: a corrupt or truncated file,
// OutOfRange, ResourceExhausted: absurdly large input); 1 for anything else
// (Unavailable servers, Internal, FailedPrecondition, ...).
int ExitStatusFor(const absl::Status& status);

}  // namespace pianola

#define PIANOLA_SUBCOMMAND(id, name, summary, fn) \
  static ::pianola::SubcommandRegistrar pianola_subcommand_##id(name, summary, fn)

#endif  // PIANOLA_COMMON_SUBCOMMAND_H_
