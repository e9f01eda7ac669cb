#include "dataserver/data_server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "dataserver/dataserver_metrics.h"
#include "dataserver/synthetic_dataset.h"
#include "gmock/gmock.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"
#include "proto/data_service.grpc.pb.h"

namespace pianola {
namespace {

std::shared_ptr<const Dataset> Synthetic(const std::string& name) {
  SyntheticDatasetOptions o;
  o.name = name;
  return std::shared_ptr<const Dataset>(MakeSyntheticDataset(o).value());
}

TEST(DataServerTest, CreateValidatesOptions) {
  DataServerOptions o;
  o.producer_threads = 0;
  auto s = DataServer::Create(o, {Synthetic("a")}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), testing::HasSubstr("producer_threads"));
  o = {};
  o.queue_batches = 0;
  EXPECT_THAT(DataServer::Create(o, {Synthetic("a")}).status().message(),
              testing::HasSubstr("queue_batches"));
  o = {};
  o.max_message_bytes = 10;
  EXPECT_THAT(DataServer::Create(o, {Synthetic("a")}).status().message(),
              testing::HasSubstr("max_message_bytes"));
  EXPECT_EQ(DataServer::Create({}, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DataServer::Create({}, {Synthetic("a"), Synthetic("a")}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DataServerTest, LifecycleHealthAndInfo) {
  DataServerOptions o;
  o.metrics_listen = "127.0.0.1:0";
  auto server = DataServer::Create(o, {Synthetic("a")});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->BoundPort(), 0);
  ASSERT_TRUE((*server)->Start().ok());
  EXPECT_EQ((*server)->Start().code(), absl::StatusCode::kFailedPrecondition);
  const int port = (*server)->BoundPort();
  ASSERT_GT(port, 0);
  EXPECT_GT((*server)->MetricsPort(), 0);
  EXPECT_EQ((*server)->address(), "127.0.0.1:" + std::to_string(port));

  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  // Health checking (grpc.health.v1) answers through the generic stub.
  {
    grpc::GenericStub generic(channel);
    grpc::ClientContext ctx;
    // HealthCheckRequest{service: ""} is an empty message.
    grpc::ByteBuffer request, response;
    grpc::Slice empty;
    request = grpc::ByteBuffer(&empty, 1);
    grpc::Status status;
    absl::Notification done;
    generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                      &response, [&](grpc::Status s) {
                        status = s;
                        done.Notify();
                      });
    done.WaitForNotification();
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(response.Dump(&slices).ok());
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    EXPECT_EQ(bytes, std::string("\x08\x01", 2));  // status: SERVING
  }
  auto stub = DataService::NewStub(channel);
  grpc::ClientContext ctx;
  DatasetInfo info;
  ASSERT_TRUE(stub->GetDatasetInfo(&ctx, GetDatasetInfoRequest(), &info).ok());
  EXPECT_EQ(info.name(), "a");
  grpc::ClientContext ctx2;
  GetDatasetInfoRequest bad;
  bad.set_dataset("nope");
  EXPECT_EQ(stub->GetDatasetInfo(&ctx2, bad, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ((*server)->metrics().errors(absl::StatusCode::kNotFound), 1);

  (*server)->Stop();
  (*server)->Join();
  (*server)->Stop();  // idempotent
  EXPECT_EQ((*server)->Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(DataServerTest, BusyPortIsUnavailable) {
  auto first = DataServer::Create({}, {Synthetic("a")});
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE((*first)->Start().ok());
  DataServerOptions o;
  o.listen = (*first)->address();
  auto second = DataServer::Create(o, {Synthetic("a")});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->Start().code(), absl::StatusCode::kUnavailable);
  DataServerOptions m;
  m.metrics_listen = "not-an-address";
  auto third = DataServer::Create(m, {Synthetic("a")});
  ASSERT_TRUE(third.ok());
  EXPECT_EQ((*third)->Start().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DataServerTest, StopBeforeStartAndJoinReturn) {
  auto server = DataServer::Create({}, {Synthetic("a")});
  ASSERT_TRUE(server.ok());
  (*server)->Join();  // never started: returns at once
  (*server)->Stop();
  (*server)->Join();
}

// Stop() first lets the open streams finish (their last windows reach the
// client before gRPC closes the connection) and refuses new ones meanwhile.
TEST(DataServerTest, DrainingRefusesNewStreamsWhileOpenOnesGoOn) {
  SyntheticDatasetOptions big;
  big.name = "big";
  big.pieces = 8;
  big.piece_seconds = {60.0};  // ~150 MB of windows: the open stream cannot finish on its own
  auto dataset = MakeSyntheticDataset(big);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  DataServerOptions o;
  o.drain_timeout = absl::Seconds(60);
  auto server = DataServer::Create(o, {std::shared_ptr<const Dataset>(*std::move(dataset))});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Start().ok());
  auto stub = DataService::NewStub(
      grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials()));
  StreamWindowsRequest request;
  request.set_seed(1);
  request.set_world_size(1);
  request.set_batch_size(1);
  request.set_window_samples(4000);
  request.set_context_samples(1000);
  request.set_reference_samples(16000);

  grpc::ClientContext open_ctx;
  auto open = stub->StreamWindows(&open_ctx, request);
  WindowBatch batch;
  ASSERT_TRUE(open->Read(&batch));
  std::thread stop([&] { (*server)->Stop(); });

  // Streams opened before Stop() got to draining are served: cancel them.
  grpc::Status refused;
  for (int i = 0; i < 500; ++i) {
    grpc::ClientContext ctx;
    auto late = stub->StreamWindows(&ctx, request);
    WindowBatch b;
    if (!late->Read(&b)) {
      refused = late->Finish();
      break;
    }
    ctx.TryCancel();
    (void)late->Finish();
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_THAT(refused.error_message(), testing::HasSubstr("shutting down"));
  EXPECT_GE((*server)->metrics().errors(absl::StatusCode::kUnavailable), 1);

  // The open stream goes on, and so do the unary calls.
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(open->Read(&batch)) << i;
  {
    grpc::ClientContext ctx;
    DatasetInfo info;
    EXPECT_TRUE(stub->GetDatasetInfo(&ctx, GetDatasetInfoRequest(), &info).ok());
  }
  open_ctx.TryCancel();
  EXPECT_EQ(open->Finish().error_code(), grpc::StatusCode::CANCELLED);
  stop.join();
  (*server)->Join();
}

}  // namespace
}  // namespace pianola
