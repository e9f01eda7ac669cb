#include "common/subcommand.h"

#include <cstdio>
#include <cstring>

namespace pianola {

std::map<std::string, Subcommand>& Subcommands() {
  static auto* registry = new std::map<std::string, Subcommand>();
  return *registry;
}

int RunSubcommandMain(const char* tool, int argc, char** argv) {
  auto& commands = Subcommands();
  if (argc >= 2) {
    auto it = commands.find(argv[1]);
    if (it != commands.end()) return it->second.run(argc - 2, argv + 2);
    if (std::strcmp(argv[1], "--help") != 0 && std::strcmp(argv[1], "help") != 0) {
      std::fprintf(stderr, "%s: unknown command '%s'\n", tool, argv[1]);
    }
  }
  std::fprintf(stderr, "usage: %s COMMAND [ARGS...]\n\ncommands:\n", tool);
  for (const auto& [name, cmd] : commands) {
    std::fprintf(stderr, "  %-12s %s\n", name.c_str(), cmd.summary.c_str());
  }
  return 2;
}

}  // namespace pianola
