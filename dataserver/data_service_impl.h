#ifndef PIANOLA_DATASERVER_DATA_SERVICE_IMPL_H_
#define PIANOLA_DATASERVER_DATA_SERVICE_IMPL_H_

// The DataService's logic, free of gRPC (the transport is grpc_data_service):
// owns the served datasets by name, validates requests, answers
// GetDatasetInfo / ListDatasets, and turns a StreamWindowsRequest into a
// WindowStream that produces the stream's batches.
//
// Glossary:
//   epoch size N   windows in an epoch of a split for a window length
//   shard          rank r of W is served window indices r, r+W, r+2W, ... < N
//   cursor         a position in the shard; WindowBatch.cursor is the position
//                  after the batch, so a stream restarted there continues exactly
//   batch k        shard positions [start + k*B, min(start + (k+1)*B, end))
//
// Thread-safe: immutable after Create(). A WindowStream is immutable except
// for its sequential Next() cursor; FillBatch() may run concurrently for
// different batches (the producer pool does).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataserver/dataset.h"
#include "dataserver/window_assembler.h"
#include "dataserver/window_sampler.h"
#include "proto/data_service.pb.h"

namespace pianola {

class DataServerMetrics;

// Limits on requests. Defaults fit 64 MiB messages.
struct DataServiceLimits {
  // Windows per batch: 1..max_batch_size.
  int max_batch_size = 1024;
  // window_samples + context_samples, and reference_samples, at most this
  // (2^22 samples: 4.4 minutes at 16 kHz).
  int64_t max_span_samples = int64_t{1} << 22;
  // A batch's audio (and dense conditioning) bytes must fit; batches whose
  // serialized size exceeds it anyway (extreme note density) fail with
  // ResourceExhausted.
  int64_t max_message_bytes = int64_t{64} << 20;
};

// A dataset as served: the dataset and its assembler (built once).
struct ServedDataset {
  explicit ServedDataset(std::shared_ptr<const Dataset> ds)
      : dataset(std::move(ds)), assembler(*dataset) {}
  std::shared_ptr<const Dataset> dataset;
  WindowAssembler assembler;
};

// The batches of one StreamWindows call.
class WindowStream {
 public:
  uint64_t epoch_size() const { return epoch_size_; }
  uint64_t shard_size() const { return shard_size_; }
  uint64_t start_cursor() const { return start_; }
  uint64_t end_cursor() const { return end_; }  // exclusive
  uint64_t windows() const { return end_ - start_; }
  uint64_t num_batches() const { return (windows() + batch_size_ - 1) / batch_size_; }
  const StreamWindowsRequest& request() const { return request_; }
  const std::string& dataset_name() const { return served_->dataset->name(); }

  // Fills batch `k` (< num_batches()) into `out`, cleared first (its Window
  // objects and buffers are reused). ResourceExhausted if it serializes
  // larger than the message limit; Internal on an assembly bug.
  absl::Status FillBatch(uint64_t k, WindowBatch* out) const;

  // Sequential use: fills the next batch and returns true, or returns false
  // at the end of the stream.
  absl::StatusOr<bool> Next(WindowBatch* out);

 private:
  friend class DataServiceImpl;
  WindowStream() = default;

  std::shared_ptr<const ServedDataset> served_;
  std::unique_ptr<WindowSampler> sampler_;
  StreamWindowsRequest request_;
  WindowGeometry geometry_;
  uint64_t world_ = 1;
  uint64_t batch_size_ = 1;
  uint64_t epoch_size_ = 0;
  uint64_t shard_size_ = 0;
  uint64_t start_ = 0;
  uint64_t end_ = 0;
  int64_t max_message_bytes_ = 0;
  DataServerMetrics* metrics_ = nullptr;
  uint64_t next_batch_ = 0;
};

class DataServiceImpl {
 public:
  // InvalidArgument for a null dataset or two datasets with one name.
  // `metrics` may be null; otherwise it must outlive the impl and its streams.
  static absl::StatusOr<std::unique_ptr<DataServiceImpl>> Create(
      std::vector<std::shared_ptr<const Dataset>> datasets, DataServiceLimits limits = {},
      DataServerMetrics* metrics = nullptr);

  absl::Status GetDatasetInfo(const GetDatasetInfoRequest& request, DatasetInfo* response) const;
  absl::Status ListDatasets(const ListDatasetsRequest& request,
                            ListDatasetsResponse* response) const;

  // Validates the request and returns its stream. Errors name the field:
  // NotFound (unknown dataset), InvalidArgument (split, rank/world_size,
  // batch_size, lengths, encoding, message size), FailedPrecondition (the
  // split has no window of that length), OutOfRange (start_cursor past the
  // shard's end).
  absl::StatusOr<std::unique_ptr<WindowStream>> StreamWindows(
      const StreamWindowsRequest& request) const;

  const DataServiceLimits& limits() const { return limits_; }
  std::vector<std::string> dataset_names() const;

 private:
  DataServiceImpl(DataServiceLimits limits, DataServerMetrics* metrics)
      : limits_(limits), metrics_(metrics) {}
  absl::StatusOr<std::shared_ptr<const ServedDataset>> Find(const std::string& name) const;
  void FillInfo(const ServedDataset& served, int64_t window_samples, DatasetInfo* info) const;

  const DataServiceLimits limits_;
  DataServerMetrics* const metrics_;
  std::map<std::string, std::shared_ptr<const ServedDataset>> datasets_;
};

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_DATA_SERVICE_IMPL_H_
