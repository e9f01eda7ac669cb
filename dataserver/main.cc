// pianola-dataserver: dataset tools and the DataService server. Each
// subcommand is a *_command.cc file in this directory registered with
// PIANOLA_SUBCOMMAND.

#include "common/subcommand.h"

int main(int argc, char** argv) { return pianola::RunSubcommandMain("pianola-dataserver", argc, argv); }
