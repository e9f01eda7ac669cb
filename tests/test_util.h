#ifndef PIANOLA_TESTS_TEST_UTIL_H_
#define PIANOLA_TESTS_TEST_UTIL_H_

// Helpers for multi-process integration tests: child processes whose stdout
// is read line by line (servers print "listening on HOST:PORT" first), and
// Prometheus scrapes over plain HTTP. Not thread-safe; one owner each.

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace pianola {

// A program run as a child process (posix_spawn); stdout is piped to the
// test, stderr goes to `log`. The destructor SIGKILLs a child still running.
class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  // args[0] is the program path.
  bool Start(const std::vector<std::string>& args, const std::string& log);
  // The next stdout line, or "" after `timeout` or at end of output.
  std::string ReadLine(absl::Duration timeout = absl::Seconds(30));
  void Signal(int sig);
  bool running() const { return pid_ > 0; }
  // Exit status (128 + signal if killed), or -1 if it did not exit within `timeout`.
  int Wait(absl::Duration timeout);

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
};

// `base` times $PIANOLA_TEST_TIMEOUT_SCALE (default 1): sanitizer builds run
// programs many times slower, and scripts/test.sh sets the scale for them.
absl::Duration ScaledTimeout(absl::Duration base);

// Runs a program to completion (stdout and stderr to `log`); its exit status,
// or -1 if it could not be started or ran past ScaledTimeout(timeout) (then
// it is killed).
int RunProgram(const std::vector<std::string>& args, const std::string& log,
               absl::Duration timeout = absl::Minutes(5));

// GET http://host_port/metrics, body only ("" on failure).
std::string ScrapeMetrics(const std::string& host_port);

// The value of a metric line `series value` in a scrape (-1 if absent).
double MetricValue(const std::string& scrape, const std::string& series);

}  // namespace pianola

#endif  // PIANOLA_TESTS_TEST_UTIL_H_
