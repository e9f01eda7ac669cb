#include "dataserver/grpc_data_service.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace pianola {
namespace {

constexpr char kLog[] = "dataserver";

// Streams one WindowStream. Invariant that makes it safe without a lock
// around StartWrite: exactly one party may start the next write or finish
// the call at any time: the constructor, OnWriteDone, a producer's on_ready
// (only after a TryPop returned kNotReady, and at most once per such
// kNotReady), or OnCancel (only when Cancel() reports that the consumer was
// waiting, which also revokes that on_ready). finished_ guards Finish against
// the remaining races (a cancel arriving during a write).
class WindowWriter final : public grpc::ServerWriteReactor<WindowBatch> {
 public:
  WindowWriter(grpc::CallbackServerContext* context, std::unique_ptr<WindowStream> stream,
               BatchProducerPool* pool, DataServerMetrics* metrics, int queue_batches)
      : stream_(std::move(stream)), metrics_(metrics), peer_(context->peer()) {
    const StreamWindowsRequest& r = stream_->request();
    description_ = absl::StrCat("peer=", peer_, " dataset=", stream_->dataset_name(),
                                " split=", SplitName(r.split()), " rank=", r.rank(), "/",
                                r.world_size(), " seed=", r.seed(), " epoch=", r.epoch(),
                                " cursor=", r.start_cursor());
    if (metrics_ != nullptr) metrics_->StreamStarted();
    LogInfo(kLog, "stream opened ", description_, " windows=", stream_->windows(),
            " of shard=", stream_->shard_size(), " batch=", r.batch_size(),
            " L=", r.window_samples(), " R=", r.context_samples(), " Lr=", r.reference_samples(),
            r.encoding() == DENSE_UINT8 ? " dense" : "");
    std::shared_ptr<const WindowStream> shared = stream_;
    produced_ = pool->AddStream(
        stream_->num_batches(), queue_batches,
        [shared](uint64_t k, WindowBatch* out) { return shared->FillBatch(k, out); },
        [this] { WriteNext(); });
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      FinishOnce(absl::CancelledError("write failed: the client went away"));
      return;
    }
    windows_ += current_->windows_size();
    bytes_ += current_->GetCachedSize();
    if (metrics_ != nullptr) {
      metrics_->WindowsServed(current_->windows_size(), current_->GetCachedSize());
    }
    produced_->Release(std::move(current_));
    WriteNext();
  }

  void OnCancel() override {
    if (produced_->Cancel()) FinishOnce(absl::CancelledError("cancelled by the client"));
  }

  void OnDone() override {
    produced_->Cancel();
    if (metrics_ != nullptr) metrics_->StreamEnded();
    delete this;
  }

 private:
  void WriteNext() {
    std::unique_ptr<WindowBatch> batch;
    absl::Status status;
    switch (produced_->TryPop(&batch, &status)) {
      case ProducedStream::PopResult::kBatch:
        current_ = std::move(batch);
        StartWrite(current_.get());
        return;
      case ProducedStream::PopResult::kNotReady:
        return;  // on_ready calls back
      case ProducedStream::PopResult::kEnd:
        FinishOnce(absl::OkStatus());
        return;
      case ProducedStream::PopResult::kError:
        FinishOnce(status);
        return;
    }
  }

  // Logs, counts and finishes; nothing may touch `this` after Finish().
  void FinishOnce(const absl::Status& status) {
    if (finished_.exchange(true)) return;
    const std::string counts = absl::StrCat(" sent=", windows_, " windows ", bytes_, " bytes");
    if (status.ok()) {
      LogInfo(kLog, "stream finished ", description_, counts);
    } else if (status.code() == absl::StatusCode::kCancelled) {
      LogInfo(kLog, "stream cancelled ", description_, counts, ": ", status.message());
    } else {
      LogError(kLog, "stream failed ", description_, counts, ": ", status.ToString());
    }
    if (metrics_ != nullptr && !status.ok()) metrics_->Error(status.code());
    Finish(ToGrpcStatus(status));
  }

  const std::shared_ptr<WindowStream> stream_;
  DataServerMetrics* const metrics_;
  const std::string peer_;
  std::string description_;
  std::shared_ptr<ProducedStream> produced_;
  std::unique_ptr<WindowBatch> current_;  // the batch being written
  int64_t windows_ = 0;
  int64_t bytes_ = 0;
  std::atomic<bool> finished_{false};
};

// A StreamWindows call refused at validation or while draining.
class RefusedWriter final : public grpc::ServerWriteReactor<WindowBatch> {
 public:
  explicit RefusedWriter(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

grpc::ServerWriteReactor<WindowBatch>* GrpcDataService::StreamWindows(
    grpc::CallbackServerContext* context, const StreamWindowsRequest* request) {
  absl::StatusOr<std::unique_ptr<WindowStream>> stream =
      draining_.load() ? absl::UnavailableError("the server is shutting down: ask another replica")
                       : impl_->StreamWindows(*request);
  if (!stream.ok()) {
    LogWarning(kLog, "stream refused peer=", context->peer(), " dataset=", request->dataset(),
               ": ", stream.status().ToString());
    if (metrics_ != nullptr) metrics_->Error(stream.status().code());
    return new RefusedWriter(ToGrpcStatus(stream.status()));
  }
  return new WindowWriter(context, std::move(stream).value(), pool_, metrics_, queue_batches_);
}

grpc::ServerUnaryReactor* GrpcDataService::GetDatasetInfo(grpc::CallbackServerContext* context,
                                                          const GetDatasetInfoRequest* request,
                                                          DatasetInfo* response) {
  return Finish(context, impl_->GetDatasetInfo(*request, response));
}

grpc::ServerUnaryReactor* GrpcDataService::ListDatasets(grpc::CallbackServerContext* context,
                                                        const ListDatasetsRequest* request,
                                                        ListDatasetsResponse* response) {
  return Finish(context, impl_->ListDatasets(*request, response));
}

grpc::ServerUnaryReactor* GrpcDataService::Finish(grpc::CallbackServerContext* context,
                                                  absl::Status status) {
  if (metrics_ != nullptr && !status.ok()) metrics_->Error(status.code());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace pianola
