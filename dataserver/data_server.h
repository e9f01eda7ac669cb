#ifndef PIANOLA_DATASERVER_DATA_SERVER_H_
#define PIANOLA_DATASERVER_DATA_SERVER_H_

// A data server: the DataService on a gRPC port (callback API, health
// checking on), its producer threads, and optionally a Prometheus /metrics
// endpoint. The lifecycle every Pianola server shares:
//
//   auto server = DataServer::Create(options, {dataset});   // nothing bound yet
//   RETURN_IF_ERROR((*server)->Start());                    // binds; port 0 picks one
//   int port = (*server)->BoundPort();
//   ...
//   (*server)->Stop();   // refuse new streams, drain open ones (up to drain_timeout), stop
//   (*server)->Join();   // returns once Stop() has completed (from any thread)
//
// This header does not include generated gRPC headers. Thread-safe: Stop()
// may be called from any thread (e.g. a signal-waiting thread) while another
// blocks in Join(). The destructor stops and joins.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dataserver/dataset.h"

namespace pianola {

class DataServerMetrics;

struct DataServerOptions {
  // gRPC address, HOST:PORT; port 0 picks a free port (see BoundPort()).
  std::string listen = "127.0.0.1:0";
  // Prometheus /metrics HOST:PORT; empty: no endpoint. Port 0 picks one.
  std::string metrics_listen;
  // Threads assembling batches, shared by all streams.
  int producer_threads = 2;
  // Batches a stream may have assembled ahead of its client.
  int queue_batches = 4;
  // Largest WindowBatch message; requests whose batches cannot fit are refused.
  int64_t max_message_bytes = int64_t{64} << 20;
  // How long Stop() lets open streams finish before cancelling them.
  absl::Duration drain_timeout = absl::Seconds(10);
};

class DataServer {
 public:
  // Validates options (InvalidArgument naming the field) and datasets (null,
  // duplicate names); binds nothing.
  static absl::StatusOr<std::unique_ptr<DataServer>> Create(
      DataServerOptions options, std::vector<std::shared_ptr<const Dataset>> datasets);
  ~DataServer();
  DataServer(const DataServer&) = delete;
  DataServer& operator=(const DataServer&) = delete;

  // Binds and starts serving. Unavailable if an address cannot be bound,
  // FailedPrecondition if called twice or after Stop().
  absl::Status Start();
  // Drains: health NOT_SERVING, new streams refused (UNAVAILABLE), open
  // streams and unary calls served until the streams finish or drain_timeout
  // passes, up to a second more for their clients to read what is in flight;
  // then stops gRPC (cancelling what is left) and the producer threads. The
  // metrics endpoint stays up until destruction, so a final scrape sees the
  // totals. Idempotent.
  void Stop();
  // Blocks until Stop() has completed (immediately if never started).
  void Join();

  // The bound gRPC port (0 before Start()).
  int BoundPort() const;
  // The bound /metrics port (0 if none).
  int MetricsPort() const;
  // "HOST:PORT" with the bound port.
  std::string address() const;

  DataServerMetrics& metrics();

 private:
  struct State;
  explicit DataServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_DATA_SERVER_H_
