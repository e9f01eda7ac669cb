// Data service end to end: two real data servers on port 0 (one in-process,
// one the `pianola-dataserver serve` binary as a child process) over one
// on-disk dataset, real gRPC clients, one epoch as ranks 0 and 1 of 2.
//
// Checks: shards disjoint and complete; both servers byte-identical; a stream
// resumed at a mid-epoch cursor continues exactly; references share the
// timbre and not the piece; conditioning equals the index notes inside each
// window to the sample (and audio equals the dataset's samples); bad requests
// get the right status codes and are counted in /metrics; a stalled and then
// cancelled client does not block others; SIGTERM drains an open stream and
// the process exits 0.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "dataserver/data_server.h"
#include "dataserver/dataserver_metrics.h"
#include "dataserver/synthetic_dataset.h"
#include "tests/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/data_service.grpc.pb.h"

extern char** environ;

namespace pianola {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kWindow = 4000, kContext = 1000, kReference = 4000;

std::string DataserverBinary() {
#ifdef PIANOLA_DATASERVER_BIN
  return PIANOLA_DATASERVER_BIN;
#else
  const char* dir = std::getenv("PIANOLA_BINARY_DIR");
  return std::string(dir != nullptr ? dir : ".") + "/dataserver/pianola-dataserver";
#endif
}

std::unique_ptr<DataService::Stub> Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  return DataService::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

StreamWindowsRequest Request(uint32_t rank, uint32_t world, uint64_t cursor = 0) {
  StreamWindowsRequest r;
  r.set_dataset("integration");
  r.set_seed(1234);
  r.set_epoch(2);
  r.set_rank(rank);
  r.set_world_size(world);
  r.set_start_cursor(cursor);
  r.set_batch_size(5);
  r.set_window_samples(kWindow);
  r.set_context_samples(kContext);
  r.set_reference_samples(kReference);
  return r;
}

struct StreamResult {
  grpc::Status status;
  std::vector<WindowBatch> batches;
  std::vector<std::string> window_bytes;  // each window serialized
};

StreamResult Stream(DataService::Stub* stub, const StreamWindowsRequest& req) {
  StreamResult result;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub->StreamWindows(&ctx, req);
  WindowBatch b;
  while (reader->Read(&b)) {
    for (const Window& w : b.windows()) result.window_bytes.push_back(w.SerializeAsString());
    result.batches.push_back(b);
  }
  result.status = reader->Finish();
  return result;
}

std::vector<int16_t> Samples(const std::string& bytes) {
  std::vector<int16_t> v(bytes.size() / 2);
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<int16_t>(static_cast<uint8_t>(bytes[2 * i]) |
                                (static_cast<uint8_t>(bytes[2 * i + 1]) << 8));
  }
  return v;
}

class DataServiceIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // ctest runs each test case as its own process, possibly in parallel.
    dir_ = new std::string(absl::StrCat(testing::TempDir(), "/data_service_integration_", getpid()));
    std::filesystem::remove_all(*dir_);
    SyntheticDatasetOptions o;
    o.name = "integration";
    o.pieces = 6;
    o.notes_per_second = 20;
    ASSERT_TRUE(WriteSyntheticDataset(o, *dir_ + "/dataset").ok());
    auto ds = Dataset::Open(*dir_ + "/dataset");
    ASSERT_TRUE(ds.ok()) << ds.status();
    dataset_ = new std::shared_ptr<const Dataset>(std::move(ds).value());
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dataset_;
    delete dir_;
  }

  void SetUp() override {
    DataServerOptions options;
    options.producer_threads = 1;  // a stalled stream must not hog it
    options.queue_batches = 2;
    auto server = DataServer::Create(options, {*dataset_});
    ASSERT_TRUE(server.ok()) << server.status();
    in_process_ = std::move(server).value();
    ASSERT_TRUE(in_process_->Start().ok());
    ASSERT_TRUE(child_.Start({DataserverBinary(), "serve", "--dataset",
                              *dir_ + "/dataset", "--listen", "127.0.0.1:0", "--metrics",
                              "127.0.0.1:0", "--threads", "2"},
                             *dir_ + "/serve.log"));
    const std::string listening = child_.ReadLine();
    ASSERT_TRUE(absl::StartsWith(listening, "listening on 127.0.0.1:")) << "'" << listening << "'";
    child_address_ = listening.substr(strlen("listening on "));
    const std::string metrics = child_.ReadLine();
    ASSERT_TRUE(absl::StartsWith(metrics, "metrics on 127.0.0.1:")) << "'" << metrics << "'";
    child_metrics_ = metrics.substr(strlen("metrics on "));
  }

  void TearDown() override {
    if (child_.running()) {
      child_.Signal(SIGTERM);
      EXPECT_EQ(child_.Wait(absl::Seconds(30)), 0);
    }
    if (HasFailure()) {  // the child's log explains server-side failures
      std::ifstream log(*dir_ + "/serve.log");
      std::cerr << "--- serve.log ---\n" << log.rdbuf() << "--- end serve.log ---\n";
    }
  }

  static std::string* dir_;
  static std::shared_ptr<const Dataset>* dataset_;
  std::unique_ptr<DataServer> in_process_;
  ChildProcess child_;
  std::string child_address_;
  std::string child_metrics_;
};

std::string* DataServiceIntegrationTest::dir_ = nullptr;
std::shared_ptr<const Dataset>* DataServiceIntegrationTest::dataset_ = nullptr;

// Conditioning and audio of one window against the dataset's index and samples.
void ExpectWindowMatchesDataset(const Dataset& ds, const Window& w) {
  const RecordingIndex& ri = ds.recording_index(w.recording());
  const int64_t s0 = w.offset() - kContext, s1 = w.offset() + kWindow;
  std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> onsets;
  std::multiset<std::pair<uint32_t, uint32_t>> held;
  std::vector<std::pair<uint32_t, uint32_t>> offsets;
  for (int i = 0; i < ri.note_start_size(); ++i) {
    const int64_t a = ri.note_start(i), b = ri.note_end(i);
    const bool onset = a >= s0 && a < s1, is_held = a < s0 && b > s0;
    if (onset) onsets.emplace_back(a - s0, ri.note_key(i), ri.note_velocity(i));
    if (is_held) held.emplace(ri.note_key(i), ri.note_velocity(i));
    if ((onset || is_held) && b < s1) offsets.emplace_back(b - s0, ri.note_key(i));
  }
  std::sort(offsets.begin(), offsets.end());
  const SparseConditioning& c = w.conditioning();
  ASSERT_EQ(c.onset_sample_size(), static_cast<int>(onsets.size())) << "window " << w.index();
  for (size_t k = 0; k < onsets.size(); ++k) {
    EXPECT_EQ(std::make_tuple(c.onset_sample(k), c.onset_key(k), c.onset_velocity(k)), onsets[k]);
  }
  std::multiset<std::pair<uint32_t, uint32_t>> got_held;
  for (int k = 0; k < c.held_key_size(); ++k) got_held.emplace(c.held_key(k), c.held_velocity(k));
  EXPECT_EQ(got_held, held);
  ASSERT_EQ(c.offset_sample_size(), static_cast<int>(offsets.size()));
  for (size_t k = 0; k < offsets.size(); ++k) {
    EXPECT_EQ(std::make_pair(c.offset_sample(k), c.offset_key(k)), offsets[k]);
  }
  const std::vector<int16_t> audio = Samples(w.audio());
  ASSERT_EQ(audio.size(), kContext + kWindow);
  const absl::Span<const int16_t> rec = ds.audio(w.recording());
  for (int64_t t = 0; t < kContext + kWindow; ++t) {
    const int64_t pos = s0 + t;
    ASSERT_EQ(audio[t], pos < 0 ? 0 : rec[pos]) << "window " << w.index() << " sample " << t;
  }
  const std::vector<int16_t> ref = Samples(w.reference());
  const absl::Span<const int16_t> ref_rec = ds.audio(w.reference_recording());
  ASSERT_EQ(ref.size(), kReference);
  for (int64_t t = 0; t < kReference; t += 7) {
    const int64_t pos = w.reference_offset() + t;
    EXPECT_EQ(ref[t], pos < static_cast<int64_t>(ref_rec.size()) ? ref_rec[pos] : 0);
  }
}

TEST_F(DataServiceIntegrationTest, OneEpochAsTwoRanksOnTwoServers) {
  const Dataset& ds = **dataset_;
  auto a = Connect(in_process_->address());
  auto b = Connect(child_address_);
  std::set<uint64_t> indices;
  uint64_t epoch_size = 0;
  for (uint32_t rank = 0; rank < 2; ++rank) {
    StreamResult from_a = Stream(a.get(), Request(rank, 2));
    StreamResult from_b = Stream(b.get(), Request(rank, 2));
    ASSERT_TRUE(from_a.status.ok()) << from_a.status.error_message();
    ASSERT_TRUE(from_b.status.ok()) << from_b.status.error_message();
    // Byte-identical streams from the two servers.
    ASSERT_EQ(from_a.batches.size(), from_b.batches.size());
    for (size_t k = 0; k < from_a.batches.size(); ++k) {
      EXPECT_EQ(from_a.batches[k].SerializeAsString(), from_b.batches[k].SerializeAsString());
    }
    for (const WindowBatch& batch : from_a.batches) {
      epoch_size = batch.epoch_size();
      for (const Window& w : batch.windows()) {
        EXPECT_EQ(w.index() % 2, rank);
        EXPECT_TRUE(indices.insert(w.index()).second) << "window " << w.index() << " twice";
        const RecordingEntry& target = ds.entry(w.recording());
        const RecordingEntry& ref = ds.entry(w.reference_recording());
        EXPECT_EQ(w.timbre(), target.timbre());
        EXPECT_EQ(ref.timbre(), target.timbre());
        EXPECT_NE(ref.piece(), target.piece());
        ExpectWindowMatchesDataset(ds, w);
      }
    }
    EXPECT_EQ(from_a.batches.back().cursor(), from_a.batches.back().shard_size());
  }
  // Complete: every index of the epoch, once.
  EXPECT_EQ(epoch_size, WindowSampler::EpochSize(ds, TRAIN, kWindow));
  EXPECT_EQ(indices.size(), epoch_size);
  EXPECT_EQ(*indices.rbegin(), epoch_size - 1);
}

TEST_F(DataServiceIntegrationTest, ResumedStreamContinuesExactlyOnTheOtherServer) {
  auto a = Connect(in_process_->address());
  auto b = Connect(child_address_);
  StreamResult whole = Stream(a.get(), Request(1, 2));
  ASSERT_TRUE(whole.status.ok());
  // Stop after 3 batches (15 windows) on A, resume from the saved cursor on B.
  const uint64_t cursor = whole.batches[2].cursor();
  ASSERT_EQ(cursor, 15u);
  StreamResult rest = Stream(b.get(), Request(1, 2, cursor));
  ASSERT_TRUE(rest.status.ok());
  ASSERT_EQ(rest.window_bytes.size(), whole.window_bytes.size() - cursor);
  for (size_t k = 0; k < rest.window_bytes.size(); ++k) {
    EXPECT_EQ(rest.window_bytes[k], whole.window_bytes[cursor + k]) << k;
  }
  EXPECT_EQ(rest.batches.front().cursor(), cursor + 5);
}

TEST_F(DataServiceIntegrationTest, BadRequestsGetStatusCodesAndAreCounted) {
  auto b = Connect(child_address_);
  struct Case {
    std::function<void(StreamWindowsRequest*)> edit;
    grpc::StatusCode code;
    std::string text;
  };
  const std::vector<Case> cases = {
      {[](auto* r) { r->set_dataset("missing"); }, grpc::StatusCode::NOT_FOUND, "missing"},
      {[](auto* r) { r->set_rank(2); }, grpc::StatusCode::INVALID_ARGUMENT, "rank"},
      {[](auto* r) { r->set_batch_size(0); }, grpc::StatusCode::INVALID_ARGUMENT, "batch_size"},
      {[](auto* r) { r->set_batch_size(1024), r->set_window_samples(40000); },
       grpc::StatusCode::INVALID_ARGUMENT, "max message size"},
      {[](auto* r) { r->set_start_cursor(100000); }, grpc::StatusCode::OUT_OF_RANGE,
       "start_cursor"},
  };
  for (const Case& c : cases) {
    StreamWindowsRequest req = Request(0, 2);
    c.edit(&req);
    StreamResult r = Stream(b.get(), req);
    EXPECT_EQ(r.status.error_code(), c.code) << r.status.error_message();
    EXPECT_THAT(r.status.error_message(), HasSubstr(c.text));
    EXPECT_TRUE(r.batches.empty());
  }
  grpc::ClientContext ctx;
  GetDatasetInfoRequest info_req;
  info_req.set_dataset("missing");
  DatasetInfo info;
  EXPECT_EQ(b->GetDatasetInfo(&ctx, info_req, &info).error_code(), grpc::StatusCode::NOT_FOUND);

  const std::string scrape = ScrapeMetrics(child_metrics_);
  ASSERT_FALSE(scrape.empty());
  EXPECT_EQ(MetricValue(scrape, "pianola_errors_total{kind=\"not_found\"}"), 2);
  EXPECT_EQ(MetricValue(scrape, "pianola_errors_total{kind=\"invalid_argument\"}"), 3);
  EXPECT_EQ(MetricValue(scrape, "pianola_errors_total{kind=\"out_of_range\"}"), 1);
  EXPECT_EQ(MetricValue(scrape, "pianola_active_streams"), 0);
}

TEST_F(DataServiceIntegrationTest, StalledThenCancelledClientDoesNotBlockOthers) {
  auto a = Connect(in_process_->address());
  // A client that reads one batch and then stops reading: the server's
  // single producer thread must keep serving others.
  grpc::ClientContext stalled_ctx;
  StreamWindowsRequest stalled_req = Request(0, 1);
  stalled_req.set_batch_size(1);
  // 400 KB windows, 53 MB in all: more than HTTP/2 flow control and socket
  // buffers absorb, so the server really waits on this client.
  stalled_req.set_reference_samples(200000);
  auto stalled = a->StreamWindows(&stalled_ctx, stalled_req);
  WindowBatch first;
  ASSERT_TRUE(stalled->Read(&first));

  for (int round = 0; round < 2; ++round) {
    StreamResult other = Stream(a.get(), Request(round, 2));
    ASSERT_TRUE(other.status.ok()) << other.status.error_message();
    EXPECT_FALSE(other.window_bytes.empty());
  }
  for (int i = 0; i < 200 && in_process_->metrics().active_streams() != 1; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(in_process_->metrics().active_streams(), 1);

  stalled_ctx.TryCancel();
  EXPECT_EQ(stalled->Finish().error_code(), grpc::StatusCode::CANCELLED);
  for (int i = 0; i < 200 && in_process_->metrics().active_streams() != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(in_process_->metrics().active_streams(), 0);
  EXPECT_GE(in_process_->metrics().errors(absl::StatusCode::kCancelled), 1);
  StreamResult after = Stream(a.get(), Request(0, 1));
  EXPECT_TRUE(after.status.ok());
}

TEST_F(DataServiceIntegrationTest, SigtermDrainsAnOpenStreamAndExitsZero) {
  auto b = Connect(child_address_);
  grpc::ClientContext ctx;
  StreamWindowsRequest req = Request(0, 1);
  req.set_batch_size(1);
  auto reader = b->StreamWindows(&ctx, req);
  WindowBatch batch;
  ASSERT_TRUE(reader->Read(&batch));
  uint64_t windows = batch.windows_size();
  const uint64_t shard = batch.shard_size();
  child_.Signal(SIGTERM);
  while (reader->Read(&batch)) windows += batch.windows_size();
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  EXPECT_EQ(windows, shard);
  EXPECT_EQ(child_.Wait(absl::Seconds(30)), 0);
}

}  // namespace
}  // namespace pianola
