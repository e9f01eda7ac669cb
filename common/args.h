#ifndef PIANOLA_COMMON_ARGS_H_
#define PIANOLA_COMMON_ARGS_H_

// Command-line arguments for subcommand tools (`pianola-dataserver build --out D`).
//
// absl flags are process-global and a repeated flag overwrites; subcommands
// need per-command flag sets and repeatable flags (`--dataset A --dataset B`),
// so each subcommand declares what it accepts and parses its own argv:
//
//   ArgParser p("pianola-dataserver pianoroll FILE.mid --out ROLL.npy [--fps N] [--frames]");
//   p.AddFlag("out", /*required=*/true);
//   p.AddFlag("fps").AddBool("frames");
//   absl::StatusOr<Args> args = p.Parse(argc, argv);  // argv after the subcommand
//
// Accepted forms: --name value, --name=value, and --bool (false unless given).
// "--" ends flag parsing. Positional arguments are kept in order.
// Unknown flags and missing values are InvalidArgument errors naming the flag;
// so are positional arguments beyond those declared with AddPositional (none
// by default: a stray word or a one-dash `-seconds` must not pass silently),
// and missing declared ones.
// --help or -h (before "--") prints "usage: " and the usage line to standard
// output and exits the process with status 0, whatever else argv holds (as
// absl's ParseCommandLine and Python's argparse do).

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pianola {

class Args {
 public:
  // The last value of a flag, or `fallback` when absent.
  std::string Get(const std::string& name, const std::string& fallback = "") const;
  // Every value of a repeatable flag, in order (comma-separated values are split too).
  std::vector<std::string> GetAll(const std::string& name) const;
  bool Has(const std::string& name) const;
  bool GetBool(const std::string& name) const { return Has(name); }
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& name, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  friend class ArgParser;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

class ArgParser {
 public:
  explicit ArgParser(std::string usage) : usage_(std::move(usage)) {}
  ArgParser& AddFlag(const std::string& name, bool required = false);
  ArgParser& AddBool(const std::string& name);
  // The next required positional argument, named as the usage line names it.
  ArgParser& AddPositional(const std::string& name);
  // Parses argv[0..argc) (the arguments after the subcommand name).
  absl::StatusOr<Args> Parse(int argc, char** argv) const;
  const std::string& usage() const { return usage_; }

 private:
  std::string usage_;
  std::map<std::string, bool> flags_;  // name -> required
  std::map<std::string, bool> bools_;
  std::vector<std::string> positionals_;
};

}  // namespace pianola

#endif  // PIANOLA_COMMON_ARGS_H_
