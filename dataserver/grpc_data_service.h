#ifndef PIANOLA_DATASERVER_GRPC_DATA_SERVICE_H_
#define PIANOLA_DATASERVER_GRPC_DATA_SERVICE_H_

// The gRPC transport of the DataService (callback API). Each RPC is one call
// into DataServiceImpl plus a status conversion; StreamWindows drives a
// WindowStream through the shared BatchProducerPool with a per-stream bounded
// queue of `queue_batches`, writing one batch at a time (the stream's flow
// control is the backpressure: a batch is popped only after the previous one
// was written). A cancelled client's stream stops producing at once; a slow
// one holds only its queue. Errors are counted in the metrics by kind and
// every stream logs one line when it opens and one when it ends.
//
// Thread-safe. Borrows the impl, pool and metrics, which must outlive the
// grpc::Server this service is registered with (its Shutdown waits for every
// stream's OnDone).

#include <atomic>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "dataserver/batch_producer.h"
#include "dataserver/data_service_impl.h"
#include "dataserver/dataserver_metrics.h"
#include "proto/data_service.grpc.pb.h"

namespace pianola {

grpc::Status ToGrpcStatus(const absl::Status& status);

class GrpcDataService final : public DataService::CallbackService {
 public:
  GrpcDataService(const DataServiceImpl* impl, BatchProducerPool* pool, DataServerMetrics* metrics,
                  int queue_batches)
      : impl_(impl), pool_(pool), metrics_(metrics), queue_batches_(queue_batches) {}

  // From now on StreamWindows refuses new streams with UNAVAILABLE (the
  // server is shutting down: a client fails over to another replica); open
  // streams and the unary calls go on. For DataServer::Stop.
  void StartDraining() { draining_.store(true); }

  grpc::ServerWriteReactor<WindowBatch>* StreamWindows(grpc::CallbackServerContext* context,
                                                       const StreamWindowsRequest* request) override;
  grpc::ServerUnaryReactor* GetDatasetInfo(grpc::CallbackServerContext* context,
                                           const GetDatasetInfoRequest* request,
                                           DatasetInfo* response) override;
  grpc::ServerUnaryReactor* ListDatasets(grpc::CallbackServerContext* context,
                                         const ListDatasetsRequest* request,
                                         ListDatasetsResponse* response) override;

 private:
  // Finishes a unary call, counting errors.
  grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, absl::Status status);

  const DataServiceImpl* const impl_;
  BatchProducerPool* const pool_;
  DataServerMetrics* const metrics_;
  const int queue_batches_;
  std::atomic<bool> draining_{false};
};

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_GRPC_DATA_SERVICE_H_
