#include "common/args.h"

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pianola {

std::string Args::Get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second.empty() ? fallback : it->second.back();
}

std::vector<std::string> Args::GetAll(const std::string& name) const {
  std::vector<std::string> out;
  auto it = values_.find(name);
  if (it == values_.end()) return out;
  for (const std::string& v : it->second) {
    for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipEmpty())) {
      out.emplace_back(part);
    }
  }
  return out;
}

bool Args::Has(const std::string& name) const { return values_.count(name) > 0; }

absl::StatusOr<int64_t> Args::GetInt(const std::string& name, int64_t fallback) const {
  if (!Has(name)) return fallback;
  int64_t v;
  if (!absl::SimpleAtoi(Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": not an integer: '", Get(name), "'"));
  }
  return v;
}

absl::StatusOr<double> Args::GetDouble(const std::string& name, double fallback) const {
  if (!Has(name)) return fallback;
  double v;
  if (!absl::SimpleAtod(Get(name), &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, ": not a number: '", Get(name), "'"));
  }
  return v;
}

ArgParser& ArgParser::AddFlag(const std::string& name, bool required) {
  flags_[name] = required;
  return *this;
}

ArgParser& ArgParser::AddBool(const std::string& name) {
  bools_[name] = false;
  return *this;
}

ArgParser& ArgParser::AddPositional(const std::string& name) {
  positionals_.push_back(name);
  return *this;
}

absl::StatusOr<Args> ArgParser::Parse(int argc, char** argv) const {
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") break;
    if (a == "--help" || a == "-h") {
      std::printf("usage: %s\n", usage_.c_str());
      std::fflush(stdout);
      std::exit(0);
    }
  }
  Args args;
  bool flags_done = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (flags_done || a.size() < 3 || a.rfind("--", 0) != 0) {
      if (a == "--") {
        flags_done = true;
        continue;
      }
      args.positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (bools_.count(name)) {
      if (has_value) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      args.values_[name].push_back("true");
      continue;
    }
    if (!flags_.count(name)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = argv[++i];
    }
    args.values_[name].push_back(value);
  }
  for (const auto& [name, required] : flags_) {
    if (required && !args.Has(name)) {
      return absl::InvalidArgumentError(absl::StrCat("missing required flag --", name));
    }
  }
  if (args.positional_.size() > positionals_.size()) {
    const std::string& extra = args.positional_[positionals_.size()];
    const bool one_dash = extra.size() > 1 && extra[0] == '-';
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", extra, "'",
                     one_dash ? absl::StrCat(" (flags take two dashes: -", extra, ")") : ""));
  }
  if (args.positional_.size() < positionals_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("missing argument ", positionals_[args.positional_.size()]));
  }
  return args;
}

}  // namespace pianola
