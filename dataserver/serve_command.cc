// `pianola-dataserver serve`: runs a data server over one or more dataset
// directories until SIGTERM or SIGINT, then drains open streams and exits 0.
//
// stdout gets exactly two lines, for scripts and tests: `listening on
// HOST:PORT` (the bound port, flushed at once) and, with --metrics,
// `metrics on HOST:PORT`. Everything else (events, errors) goes to stderr
// through common/log.h.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/args.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/subcommand.h"
#include "dataserver/data_server.h"
#include "dataserver/dataset.h"

namespace pianola {
namespace {

constexpr char kUsage[] =
    "pianola-dataserver serve --dataset DIR [--dataset DIR2 ...] [--listen HOST:PORT]\n"
    "    [--metrics HOST:PORT] [--threads N] [--queue-batches N] [--max-message-mb N]\n"
    "    [--drain-seconds S]\n"
    "  --listen defaults to 127.0.0.1:0 (port 0 picks a free port; see the first stdout line)";

std::string HostOf(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  return colon == std::string::npos ? host_port : host_port.substr(0, colon);
}

int Usage(const absl::Status& status) {
  std::fprintf(stderr, "serve: %s\nusage: %s\n", std::string(status.message()).c_str(), kUsage);
  return 2;
}

int RunServe(int argc, char** argv) {
  ArgParser parser(kUsage);
  parser.AddFlag("dataset", /*required=*/true)
      .AddFlag("listen")
      .AddFlag("metrics")
      .AddFlag("threads")
      .AddFlag("queue-batches")
      .AddFlag("max-message-mb")
      .AddFlag("drain-seconds");
  absl::StatusOr<Args> args = parser.Parse(argc, argv);
  if (!args.ok()) return Usage(args.status());
  DataServerOptions options;
  options.listen = args->Get("listen", "127.0.0.1:0");
  options.metrics_listen = args->Get("metrics");
  absl::StatusOr<int64_t> threads = args->GetInt("threads", options.producer_threads);
  absl::StatusOr<int64_t> queue = args->GetInt("queue-batches", options.queue_batches);
  absl::StatusOr<int64_t> max_mb = args->GetInt("max-message-mb", options.max_message_bytes >> 20);
  absl::StatusOr<double> drain =
      args->GetDouble("drain-seconds", absl::ToDoubleSeconds(options.drain_timeout));
  for (const absl::Status& s : {threads.status(), queue.status(), max_mb.status(), drain.status()}) {
    if (!s.ok()) return Usage(s);
  }
  if (*drain < 0) return Usage(absl::InvalidArgumentError("--drain-seconds must be >= 0"));
  if (*max_mb < 1 || *max_mb > 2047) {
    return Usage(absl::InvalidArgumentError("--max-message-mb must be in 1..2047"));
  }
  options.producer_threads = static_cast<int>(*threads);
  options.queue_batches = static_cast<int>(*queue);
  options.max_message_bytes = *max_mb << 20;
  options.drain_timeout = absl::Seconds(*drain);

  std::vector<std::shared_ptr<const Dataset>> datasets;
  for (const std::string& dir : args->GetAll("dataset")) {
    absl::StatusOr<std::unique_ptr<Dataset>> ds = Dataset::Open(dir);
    if (!ds.ok()) {
      std::fprintf(stderr, "serve: %s\n", ds.status().ToString().c_str());
      return 2;
    }
    datasets.push_back(std::move(ds).value());
  }
  absl::StatusOr<std::unique_ptr<DataServer>> server =
      DataServer::Create(options, std::move(datasets));
  if (!server.ok()) {
    std::fprintf(stderr, "serve: %s\n", server.status().ToString().c_str());
    return 2;
  }

  // SIGTERM/SIGINT are blocked in every thread (gRPC's and the producers'
  // inherit the mask) and taken by one waiting thread, which stops the server.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (absl::Status s = (*server)->Start(); !s.ok()) {
    std::fprintf(stderr, "serve: %s\n", s.ToString().c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::printf("listening on %s:%d\n", HostOf(options.listen).c_str(), (*server)->BoundPort());
  if (!options.metrics_listen.empty()) {
    std::printf("metrics on %s:%d\n", HostOf(options.metrics_listen).c_str(),
                (*server)->MetricsPort());
  }
  std::fflush(stdout);

  DataServer* raw = server->get();
  std::thread waiter([raw, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    LogInfo("dataserver", "received ", sig == SIGTERM ? "SIGTERM" : "SIGINT", ", shutting down");
    raw->Stop();
  });
  (*server)->Join();
  waiter.join();
  server->reset();
  return 0;
}

}  // namespace
}  // namespace pianola

PIANOLA_SUBCOMMAND(serve, "serve",
                   "--dataset DIR [--dataset DIR2 ...] --listen HOST:PORT --metrics HOST:PORT: "
                   "serve windows over gRPC",
                   pianola::RunServe);
