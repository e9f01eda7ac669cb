#include "dataserver/data_server.h"

#include <algorithm>
#include <cstdint>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "dataserver/batch_producer.h"
#include "dataserver/data_service_impl.h"
#include "dataserver/dataserver_metrics.h"
#include "dataserver/grpc_data_service.h"

namespace pianola {
namespace {

constexpr char kLog[] = "dataserver";
// DataServer::Stop: how often it looks whether the open streams finished, and
// how long it then waits for their clients to read what is still in flight.
constexpr absl::Duration kDrainPoll = absl::Milliseconds(10);
constexpr absl::Duration kFlushGrace = absl::Seconds(1);

// The host part of HOST:PORT ("[::]" stays bracketed).
std::string HostOf(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  return colon == std::string::npos ? host_port : host_port.substr(0, colon);
}

}  // namespace

struct DataServer::State {
  DataServerOptions options;
  std::vector<std::shared_ptr<const Dataset>> datasets;
  DataServerMetrics metrics;
  std::unique_ptr<DataServiceImpl> impl;
  std::unique_ptr<BatchProducerPool> pool;
  std::unique_ptr<GrpcDataService> service;

  absl::Mutex mu;
  std::unique_ptr<grpc::Server> server ABSL_GUARDED_BY(mu);
  bool started ABSL_GUARDED_BY(mu) = false;
  bool stopping ABSL_GUARDED_BY(mu) = false;
  int port = 0;  // written once in Start() before `started`
  absl::Notification stopped;
};

DataServer::DataServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

absl::StatusOr<std::unique_ptr<DataServer>> DataServer::Create(
    DataServerOptions options, std::vector<std::shared_ptr<const Dataset>> datasets) {
  if (options.listen.empty()) return absl::InvalidArgumentError("listen: empty address");
  if (options.producer_threads < 1 || options.producer_threads > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("producer_threads must be in 1..256, got ", options.producer_threads));
  }
  if (options.queue_batches < 1 || options.queue_batches > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue_batches must be in 1..1024, got ", options.queue_batches));
  }
  if (options.max_message_bytes < 1024 || options.max_message_bytes > (int64_t{1} << 31) - 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_message_bytes must be in 1024..2^31-1, got ",
                                                   options.max_message_bytes));
  }
  if (datasets.empty()) return absl::InvalidArgumentError("no dataset to serve");
  auto state = std::make_unique<State>();
  state->options = options;
  state->datasets = datasets;
  DataServiceLimits limits;
  limits.max_message_bytes = options.max_message_bytes;
  ASSIGN_OR_RETURN(state->impl, DataServiceImpl::Create(std::move(datasets), limits,
                                                        &state->metrics));
  return std::unique_ptr<DataServer>(new DataServer(std::move(state)));
}

DataServer::~DataServer() {
  Stop();
  Join();
}

absl::Status DataServer::Start() {
  State& s = *state_;
  absl::MutexLock lock(&s.mu);
  if (s.started || s.stopping) return absl::FailedPreconditionError("DataServer already started");
  if (!s.options.metrics_listen.empty()) {
    RETURN_IF_ERROR(s.metrics.StartExposer(s.options.metrics_listen));
  }
  s.pool = std::make_unique<BatchProducerPool>(s.options.producer_threads);
  s.service = std::make_unique<GrpcDataService>(s.impl.get(), s.pool.get(), &s.metrics,
                                                s.options.queue_batches);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // Without this gRPC binds with SO_REUSEPORT and a second server on a busy
  // port would silently share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(s.options.listen, grpc::InsecureServerCredentials(), &s.port);
  builder.SetMaxSendMessageSize(static_cast<int>(s.options.max_message_bytes));
  builder.SetMaxReceiveMessageSize(1 << 20);  // requests are tiny
  builder.RegisterService(s.service.get());
  s.server = builder.BuildAndStart();
  if (s.server == nullptr || s.port == 0) {
    s.server.reset();
    s.pool->Shutdown();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", s.options.listen));
  }
  if (grpc::HealthCheckServiceInterface* health = s.server->GetHealthCheckService()) {
    health->SetServingStatus(true);
    health->SetServingStatus("pianola.DataService", true);
  }
  s.started = true;
  std::vector<std::string> served;
  for (const auto& ds : s.datasets) {
    served.push_back(absl::StrCat(ds->name(), " (", ds->num_recordings(), " recordings, ",
                                  absl::Hex(ds->fingerprint(), absl::kZeroPad16), ")"));
  }
  LogInfo(kLog, "serving on ", HostOf(s.options.listen), ":", s.port,
          s.metrics.exposer_port() != 0
              ? absl::StrCat(", metrics on ", HostOf(s.options.metrics_listen), ":",
                             s.metrics.exposer_port())
              : std::string(),
          ", ", s.options.producer_threads, " producer threads: ", absl::StrJoin(served, ", "));
  return absl::OkStatus();
}

void DataServer::Stop() {
  State& s = *state_;
  grpc::Server* server = nullptr;
  {
    absl::MutexLock lock(&s.mu);
    if (s.stopping) return;
    s.stopping = true;
    if (!s.started) {
      s.stopped.Notify();
      return;
    }
    server = s.server.get();
  }
  const absl::Time deadline = absl::Now() + s.options.drain_timeout;
  if (grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  // gRPC's Shutdown closes each connection as soon as its calls are done,
  // while a finished stream's last windows can still be in flight: with the
  // client's acknowledgements unread at the server, the close goes out as a
  // reset, and a reset makes the client's kernel drop what it received but
  // had not read yet (the stream fails with "Connection reset by peer"). So
  // refuse new streams and let the open ones finish first, give the clients
  // a moment to read the rest, and only then shut gRPC down.
  s.service->StartDraining();
  const int64_t open = static_cast<int64_t>(s.metrics.active_streams());
  LogInfo(kLog, "stopping: draining ", open, " open streams for up to ",
          absl::FormatDuration(s.options.drain_timeout));
  while (s.metrics.active_streams() > 0 && absl::Now() < deadline) {
    absl::SleepFor(kDrainPoll);
  }
  if (open > 0) {
    absl::SleepFor(std::min(kFlushGrace, std::max(absl::ZeroDuration(), deadline - absl::Now())));
  }
  // Refuses new calls, waits for open ones up to the deadline, then cancels
  // them and waits for every reactor's OnDone.
  server->Shutdown(absl::ToChronoTime(deadline));
  server->Wait();
  s.pool->Shutdown();
  LogInfo(kLog, "stopped after serving ", static_cast<int64_t>(s.metrics.windows_served()),
          " windows, ", static_cast<int64_t>(s.metrics.bytes_served()), " bytes");
  s.stopped.Notify();
}

void DataServer::Join() {
  {
    absl::MutexLock lock(&state_->mu);
    if (!state_->started && !state_->stopping) return;
  }
  state_->stopped.WaitForNotification();
}

int DataServer::BoundPort() const {
  absl::MutexLock lock(&state_->mu);
  return state_->started ? state_->port : 0;
}

int DataServer::MetricsPort() const { return state_->metrics.exposer_port(); }

std::string DataServer::address() const {
  return absl::StrCat(HostOf(state_->options.listen), ":", BoundPort());
}

DataServerMetrics& DataServer::metrics() { return state_->metrics; }

}  // namespace pianola
