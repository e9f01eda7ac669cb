#ifndef PIANOLA_DATASERVER_DATASERVER_METRICS_H_
#define PIANOLA_DATASERVER_DATASERVER_METRICS_H_

// Prometheus metrics of a data server (prometheus-cpp), and the optional
// /metrics HTTP endpoint that exposes them.
//
//   pianola_windows_served_total            windows written to clients
//   pianola_bytes_served_total              serialized WindowBatch bytes written
//   pianola_window_assembly_seconds         histogram, one observation per window
//   pianola_active_streams                  StreamWindows calls in progress
//   pianola_errors_total{kind}              RPCs that ended with an error, by status
//                                           code (invalid_argument, not_found,
//                                           out_of_range, cancelled, internal, ...)
//   pianola_reference_fallback_total{kind}  references taken from the target's own
//                                           recording: same_recording (far part),
//                                           overlapping (too short to avoid the target)
//
// Thread-safe (prometheus-cpp metrics are atomic; label lookups are locked by
// the library). Owns its registry and, after StartExposer(), the HTTP server.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "dataserver/window_sampler.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace pianola {

class DataServerMetrics {
 public:
  DataServerMetrics();
  ~DataServerMetrics();
  DataServerMetrics(const DataServerMetrics&) = delete;
  DataServerMetrics& operator=(const DataServerMetrics&) = delete;

  void WindowsServed(int64_t windows, int64_t bytes);
  void ObserveAssembly(double seconds) { assembly_seconds_.Observe(seconds); }
  void StreamStarted() { active_streams_.Increment(); }
  void StreamEnded() { active_streams_.Decrement(); }
  // Counts an RPC that ended with `code` (not OK).
  void Error(absl::StatusCode code);
  void ReferenceFallback(ReferenceKind kind);

  // Serves /metrics on HOST:PORT (port 0: a free port). InvalidArgument for a
  // malformed address, Unavailable when it cannot bind. At most once.
  absl::Status StartExposer(const std::string& host_port);
  // The bound port of the exposer, 0 if none.
  int exposer_port() const { return exposer_port_; }

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Current values, for tests and logs.
  double windows_served() const { return windows_served_.Value(); }
  double bytes_served() const { return bytes_served_.Value(); }
  double active_streams() const { return active_streams_.Value(); }
  double errors(absl::StatusCode code) const;
  double reference_fallbacks(ReferenceKind kind) const;

  // "invalid_argument" for kInvalidArgument, etc.
  static std::string ErrorKind(absl::StatusCode code);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter& windows_served_;
  prometheus::Counter& bytes_served_;
  prometheus::Histogram& assembly_seconds_;
  prometheus::Gauge& active_streams_;
  prometheus::Family<prometheus::Counter>& errors_;
  prometheus::Family<prometheus::Counter>& fallback_;
  prometheus::Counter& fallback_same_recording_;
  prometheus::Counter& fallback_overlapping_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int exposer_port_ = 0;
};

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_DATASERVER_METRICS_H_
