#include "dataserver/dataserver_metrics.h"

#include <exception>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pianola {
namespace {

prometheus::Histogram::BucketBoundaries AssemblyBuckets() {
  // 1 us .. ~0.5 s, doubling: one window of 1 s audio takes tens of us.
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 1e-6; v < 0.6; v *= 2) b.push_back(v);
  return b;
}

}  // namespace

DataServerMetrics::DataServerMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      windows_served_(prometheus::BuildCounter()
                          .Name("pianola_windows_served_total")
                          .Help("Windows written to DataService clients")
                          .Register(*registry_)
                          .Add({})),
      bytes_served_(prometheus::BuildCounter()
                        .Name("pianola_bytes_served_total")
                        .Help("Serialized WindowBatch bytes written to clients")
                        .Register(*registry_)
                        .Add({})),
      assembly_seconds_(prometheus::BuildHistogram()
                            .Name("pianola_window_assembly_seconds")
                            .Help("Time to assemble one window (audio, reference, conditioning)")
                            .Register(*registry_)
                            .Add({}, AssemblyBuckets())),
      active_streams_(prometheus::BuildGauge()
                          .Name("pianola_active_streams")
                          .Help("StreamWindows calls in progress")
                          .Register(*registry_)
                          .Add({})),
      errors_(prometheus::BuildCounter()
                  .Name("pianola_errors_total")
                  .Help("DataService calls that ended with an error, by status code")
                  .Register(*registry_)),
      fallback_(prometheus::BuildCounter()
                    .Name("pianola_reference_fallback_total")
                    .Help("Windows whose reference comes from the target's own recording "
                          "(no other piece of the timbre in the split), by kind")
                    .Register(*registry_)),
      fallback_same_recording_(fallback_.Add({{"kind", "same_recording"}})),
      fallback_overlapping_(fallback_.Add({{"kind", "overlapping"}})) {
  // Pre-create the common error kinds so dashboards see zeros.
  for (absl::StatusCode code :
       {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
        absl::StatusCode::kOutOfRange, absl::StatusCode::kFailedPrecondition,
        absl::StatusCode::kResourceExhausted, absl::StatusCode::kCancelled,
        absl::StatusCode::kInternal, absl::StatusCode::kUnavailable}) {
    errors_.Add({{"kind", ErrorKind(code)}});
  }
}

DataServerMetrics::~DataServerMetrics() = default;

std::string DataServerMetrics::ErrorKind(absl::StatusCode code) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

void DataServerMetrics::WindowsServed(int64_t windows, int64_t bytes) {
  windows_served_.Increment(static_cast<double>(windows));
  bytes_served_.Increment(static_cast<double>(bytes));
}

void DataServerMetrics::Error(absl::StatusCode code) {
  if (code == absl::StatusCode::kOk) return;
  errors_.Add({{"kind", ErrorKind(code)}}).Increment();
}

double DataServerMetrics::errors(absl::StatusCode code) const {
  return errors_.Add({{"kind", ErrorKind(code)}}).Value();
}

void DataServerMetrics::ReferenceFallback(ReferenceKind kind) {
  if (kind == ReferenceKind::kSameRecording) fallback_same_recording_.Increment();
  if (kind == ReferenceKind::kSameRecordingOverlapping) fallback_overlapping_.Increment();
}

double DataServerMetrics::reference_fallbacks(ReferenceKind kind) const {
  if (kind == ReferenceKind::kSameRecording) return fallback_same_recording_.Value();
  if (kind == ReferenceKind::kSameRecordingOverlapping) return fallback_overlapping_.Value();
  return 0;
}

absl::Status DataServerMetrics::StartExposer(const std::string& host_port) {
  if (exposer_ != nullptr) return absl::FailedPreconditionError("metrics exposer already started");
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon + 1 == host_port.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics '", host_port, "': want HOST:PORT (port 0 picks a free port)"));
  }
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(host_port, /*num_threads=*/1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", host_port, ": ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  std::vector<int> ports = exposer_->GetListeningPorts();
  exposer_port_ = ports.empty() ? 0 : ports.front();
  return absl::OkStatus();
}

}  // namespace pianola
