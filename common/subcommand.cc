#include "common/subcommand.h"

#include <cstdio>
#include <cstring>

namespace pianola {
namespace {

bool IsHelp(const char* arg) {
  return std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0 ||
         std::strcmp(arg, "help") == 0;
}

}  // namespace

std::map<std::string, Subcommand>& Subcommands() {
  static auto* registry = new std::map<std::string, Subcommand>();
  return *registry;
}

int RunSubcommandMain(const char* tool, int argc, char** argv) {
  auto& commands = Subcommands();
  if (argc >= 2) {
    auto it = commands.find(argv[1]);
    if (it != commands.end()) return it->second.run(argc - 2, argv + 2);
    if (std::strcmp(argv[1], "help") == 0 && argc >= 3 && commands.count(argv[2])) {
      // `TOOL help COMMAND` is `TOOL COMMAND --help`: the command's own usage.
      char help[] = "--help";
      char* args[] = {help, nullptr};
      return commands.at(argv[2]).run(1, args);
    }
  }
  const bool asked = argc >= 2 && IsHelp(argv[1]);
  if (argc >= 2 && !asked) std::fprintf(stderr, "%s: unknown command '%s'\n", tool, argv[1]);
  // Asked for, the usage is the output (stdout, exit 0); otherwise it
  // explains an error (stderr, exit 2).
  std::FILE* to = asked ? stdout : stderr;
  std::fprintf(to, "usage: %s COMMAND [ARGS...]\n\ncommands:\n", tool);
  for (const auto& [name, cmd] : commands) {
    std::fprintf(to, "  %-12s %s\n", name.c_str(), cmd.summary.c_str());
  }
  std::fprintf(to, "\n`%s help COMMAND` (or `COMMAND --help`) shows a command's flags.\n", tool);
  return asked ? 0 : 2;
}

int ExitStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kResourceExhausted:
      return 2;
    default:
      return 1;
  }
}

}  // namespace pianola
