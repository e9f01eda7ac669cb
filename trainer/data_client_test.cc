#include "trainer/data_client.h"

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/test_data_servers.h"

namespace pianola {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

constexpr uint32_t kWindow = 1600;
constexpr uint32_t kContext = 400;
constexpr uint32_t kReference = 800;

std::unique_ptr<TestDataServers> StartServers(TestDataServersOptions o = {}) {
  absl::StatusOr<std::unique_ptr<TestDataServers>> s = TestDataServers::Start(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

DataClientOptions BaseOptions(const std::vector<std::string>& servers, const std::string& dataset) {
  DataClientOptions o;
  o.servers = servers;
  o.dataset = dataset;
  o.seed = 42;
  o.batch_size = 4;
  o.window_samples = kWindow;
  o.context_samples = kContext;
  o.reference_samples = kReference;
  o.prefetch_batches = 2;
  o.rpc_timeout = absl::Seconds(20);
  o.retry_backoff = absl::Milliseconds(10);
  o.max_retry_backoff = absl::Milliseconds(100);
  return o;
}

std::unique_ptr<DataClient> MakeClient(DataClientOptions o) {
  absl::StatusOr<std::unique_ptr<DataClient>> c = DataClient::Create(std::move(o));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

// Every batch until the end of the epoch, checking the cursor bookkeeping.
absl::StatusOr<std::vector<WindowData>> ReadAll(DataClient& client) {
  std::vector<WindowData> windows;
  while (true) {
    absl::StatusOr<std::optional<BatchData>> b = client.Next();
    if (!b.ok()) return b.status();
    if (!b->has_value()) break;
    EXPECT_EQ(client.cursor(), (*b)->cursor);
    for (WindowData& w : (*b)->windows) windows.push_back(std::move(w));
  }
  return windows;
}

bool SameWindow(const WindowData& a, const WindowData& b) {
  const SparseEvents &x = a.conditioning, &y = b.conditioning;
  return a.index == b.index && a.recording == b.recording && a.offset == b.offset &&
         a.reference_recording == b.reference_recording &&
         a.reference_offset == b.reference_offset && a.timbre == b.timbre && a.audio == b.audio &&
         a.reference == b.reference && x.onset_sample == y.onset_sample &&
         x.onset_key == y.onset_key && x.onset_velocity == y.onset_velocity &&
         x.offset_sample == y.offset_sample && x.offset_key == y.offset_key &&
         x.offset_velocity == y.offset_velocity &&
         x.held_key == y.held_key && x.held_velocity == y.held_velocity &&
         x.pedal_start == y.pedal_start && x.pedal_end == y.pedal_end;
}

void ExpectSameWindows(const std::vector<WindowData>& got, const std::vector<WindowData>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(SameWindow(got[i], want[i]))
        << "position " << i << ": got index " << got[i].index << ", want " << want[i].index;
  }
}

TEST(DataClientTest, TwoRanksReadDisjointCompleteShardsOfRealAudio) {
  auto servers = StartServers();
  ASSERT_NE(servers, nullptr);
  absl::StatusOr<DatasetInfoData> info =
      GetDatasetInfo(servers->addresses(), servers->dataset_name(), kWindow);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->conditioning_channels, 177u);
  EXPECT_EQ(info->sample_rate, 16000);
  const DatasetSplitInfo* train = info->Find(DataSplit::kTrain);
  ASSERT_NE(train, nullptr);
  const uint64_t n = train->windows_per_epoch;
  ASSERT_GT(n, 20u);

  std::vector<int> seen(n, 0);
  for (uint32_t rank = 0; rank < 2; ++rank) {
    DataClientOptions o = BaseOptions(servers->addresses(), servers->dataset_name());
    o.rank = rank;
    o.world_size = 2;
    o.servers = {servers->address(rank)};  // each rank on its own server
    auto client = MakeClient(o);
    ASSERT_NE(client, nullptr);
    absl::StatusOr<std::vector<WindowData>> windows = ReadAll(*client);
    ASSERT_TRUE(windows.ok()) << windows.status();
    EXPECT_EQ(windows->size(), ShardSize(n, rank, 2));
    EXPECT_EQ(client->cursor(), ShardSize(n, rank, 2));
    EXPECT_EQ(client->epoch(), 0u);
    for (const WindowData& w : *windows) {
      ASSERT_LT(w.index, n);
      EXPECT_EQ(w.index % 2, rank);
      ++seen[w.index];
      // The audio is the recording's samples over the span, zeros before 0.
      ASSERT_EQ(w.audio.size(), kContext + kWindow);
      for (uint32_t j = 0; j < w.audio.size(); j += 97) {
        ASSERT_EQ(w.audio[j], servers->Sample(w.recording, w.offset - kContext + j))
            << "window " << w.index << " sample " << j;
      }
      ASSERT_EQ(w.reference.size(), kReference);
      EXPECT_EQ(w.reference[kReference / 2],
                servers->Sample(w.reference_recording, w.reference_offset + kReference / 2));
    }
    // The end stays the end.
    absl::StatusOr<std::optional<BatchData>> again = client->Next();
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again->has_value());
    const DataClientStats stats = client->stats();
    EXPECT_EQ(stats.windows_delivered, ShardSize(n, rank, 2));
    EXPECT_EQ(stats.failovers, 0u);
    EXPECT_EQ(stats.epochs_completed, 1u);
    EXPECT_EQ(stats.server, servers->address(rank));
  }
  for (uint64_t i = 0; i < n; ++i) EXPECT_EQ(seen[i], 1) << "window " << i;
}

TEST(DataClientTest, ResumeFromCursorContinuesExactly) {
  auto servers = StartServers();
  ASSERT_NE(servers, nullptr);
  const DataClientOptions base = BaseOptions(servers->addresses(), servers->dataset_name());
  auto full_client = MakeClient(base);
  ASSERT_NE(full_client, nullptr);
  absl::StatusOr<std::vector<WindowData>> full = ReadAll(*full_client);
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_GT(full->size(), 12u);

  // Take three batches, "checkpoint", and resume in a new client.
  auto first = MakeClient(base);
  ASSERT_NE(first, nullptr);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::optional<BatchData>> b = first->Next();
    ASSERT_TRUE(b.ok() && b->has_value());
  }
  const uint64_t cursor = first->cursor();
  EXPECT_EQ(cursor, 12u);
  // Prefetching runs ahead, but the cursor counts only what was taken.
  for (int i = 0; i < 200 && first->stats().batches_received <= 3; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GT(first->stats().batches_received, 3u);
  EXPECT_EQ(first->cursor(), cursor);
  first.reset();

  for (uint64_t start : {cursor, uint64_t{5}}) {
    DataClientOptions o = base;
    o.start_cursor = start;
    o.servers = {servers->address(1), servers->address(0)};
    auto resumed = MakeClient(o);
    ASSERT_NE(resumed, nullptr);
    absl::StatusOr<std::vector<WindowData>> rest = ReadAll(*resumed);
    ASSERT_TRUE(rest.ok()) << rest.status();
    ExpectSameWindows(*rest, std::vector<WindowData>(full->begin() + start, full->end()));
  }
}

TEST(DataClientTest, FailsOverWhenItsServerStopsMidStream) {
  TestDataServersOptions so;
  so.pieces = 8;
  so.piece_seconds = {20.0};  // ~1,800 windows of ~16 KB: far more than any buffer
  auto servers = StartServers(so);
  ASSERT_NE(servers, nullptr);
  DataClientOptions o = BaseOptions(servers->addresses(), servers->dataset_name());
  o.window_samples = 4000;
  o.context_samples = 0;
  o.reference_samples = 4000;

  DataClientOptions only_second = o;
  only_second.servers = {servers->address(1)};
  auto reference_client = MakeClient(only_second);
  ASSERT_NE(reference_client, nullptr);
  absl::StatusOr<std::vector<WindowData>> want = ReadAll(*reference_client);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_GT(want->size(), 1000u);

  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  std::vector<WindowData> got;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<std::optional<BatchData>> b = client->Next();
    ASSERT_TRUE(b.ok() && b->has_value()) << b.status();
    for (WindowData& w : (*b)->windows) got.push_back(std::move(w));
  }
  EXPECT_EQ(client->stats().server, servers->address(0));
  // Stop the serving server while the client keeps reading (Stop may wait for
  // its streams to end).
  std::thread stopper([&] { servers->Stop(0); });
  absl::StatusOr<std::vector<WindowData>> rest = ReadAll(*client);
  stopper.join();
  ASSERT_TRUE(rest.ok()) << rest.status();
  for (WindowData& w : *rest) got.push_back(std::move(w));
  ExpectSameWindows(got, *want);
  const DataClientStats stats = client->stats();
  EXPECT_GE(stats.failovers, 1u);
  EXPECT_EQ(stats.server, servers->address(1));
  EXPECT_EQ(stats.windows_delivered, want->size());
}

TEST(DataClientTest, ReconnectsToARestartedServer) {
  // The shard must be far larger than what socket and HTTP/2 buffers hold, or
  // the whole stream can arrive before the server stops and nothing fails over.
  TestDataServersOptions so;
  so.pieces = 8;
  so.piece_seconds = {20.0};
  auto servers = StartServers(so);
  ASSERT_NE(servers, nullptr);
  DataClientOptions o = BaseOptions({servers->address(0)}, servers->dataset_name());
  o.window_samples = 4000;
  o.context_samples = 0;
  o.reference_samples = 4000;
  auto direct = MakeClient(o);
  ASSERT_NE(direct, nullptr);
  absl::StatusOr<std::vector<WindowData>> want = ReadAll(*direct);
  ASSERT_TRUE(want.ok()) << want.status();

  o.max_failovers = 1000;  // keep trying while the only server is down
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  std::vector<WindowData> got;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::optional<BatchData>> b = client->Next();
    ASSERT_TRUE(b.ok() && b->has_value()) << b.status();
    for (WindowData& w : (*b)->windows) got.push_back(std::move(w));
  }
  servers->Stop(0);
  std::thread restarter([&] {
    absl::SleepFor(absl::Milliseconds(300));
    EXPECT_TRUE(servers->Restart(0).ok());
  });
  absl::StatusOr<std::vector<WindowData>> rest = ReadAll(*client);
  restarter.join();
  ASSERT_TRUE(rest.ok()) << rest.status();
  for (WindowData& w : *rest) got.push_back(std::move(w));
  ExpectSameWindows(got, *want);
  EXPECT_GE(client->stats().failovers, 1u);
}

TEST(DataClientTest, FailsOverFromRefusingAndHangingServers) {
  auto servers = StartServers();
  ASSERT_NE(servers, nullptr);
  absl::StatusOr<std::unique_ptr<BlackHole>> hole = BlackHole::Start();
  ASSERT_TRUE(hole.ok()) << hole.status();
  const std::vector<std::string> list = {UnusedAddress(), (*hole)->address(), servers->address(0)};

  absl::StatusOr<DatasetInfoData> info =
      GetDatasetInfo(list, servers->dataset_name(), kWindow, absl::Milliseconds(300));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->server, servers->address(0));

  DataClientOptions base = BaseOptions({servers->address(0)}, servers->dataset_name());
  auto direct = MakeClient(base);
  ASSERT_NE(direct, nullptr);
  absl::StatusOr<std::vector<WindowData>> want = ReadAll(*direct);
  ASSERT_TRUE(want.ok()) << want.status();

  DataClientOptions o = base;
  o.servers = list;
  o.rpc_timeout = absl::Milliseconds(300);
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::vector<WindowData>> got = ReadAll(*client);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameWindows(*got, *want);
  const DataClientStats stats = client->stats();
  EXPECT_GE(stats.failovers, 2u);
  EXPECT_GE(stats.stream_timeouts, 1u);
  EXPECT_EQ(stats.server, servers->address(0));
}

TEST(DataClientTest, AllServersDownIsUnavailableAfterMaxFailovers) {
  DataClientOptions o = BaseOptions({UnusedAddress(), UnusedAddress()}, "any");
  o.max_failovers = 3;
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::optional<BatchData>> b = client->Next();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr(o.servers[1]));
  EXPECT_EQ(client->stats().failovers, 4u);
  // Sticky.
  EXPECT_EQ(client->Next().status().code(), absl::StatusCode::kUnavailable);

  absl::StatusOr<DatasetInfoData> info = GetDatasetInfo(o.servers, "any", kWindow);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
}

TEST(DataClientTest, PermanentErrorsSurfaceWithoutRetrying) {
  auto servers = StartServers();
  ASSERT_NE(servers, nullptr);
  {
    auto client = MakeClient(BaseOptions(servers->addresses(), "no-such-dataset"));
    ASSERT_NE(client, nullptr);
    absl::StatusOr<std::optional<BatchData>> b = client->Next();
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), absl::StatusCode::kNotFound) << b.status();
    EXPECT_THAT(std::string(b.status().message()), HasSubstr(servers->address(0)));
    EXPECT_EQ(client->stats().failovers, 0u);
    EXPECT_EQ(client->stats().streams_started, 1u);
    EXPECT_EQ(client->Next().status().code(), absl::StatusCode::kNotFound);
  }
  {
    DataClientOptions o = BaseOptions(servers->addresses(), servers->dataset_name());
    o.start_cursor = 1000000;  // beyond the shard
    auto client = MakeClient(o);
    ASSERT_NE(client, nullptr);
    absl::StatusOr<std::optional<BatchData>> b = client->Next();
    ASSERT_FALSE(b.ok());
    EXPECT_THAT(b.status().code(), AnyOf(absl::StatusCode::kOutOfRange,
                                         absl::StatusCode::kInvalidArgument))
        << b.status();
    EXPECT_EQ(client->stats().failovers, 0u);
  }
  {
    DataClientOptions o = BaseOptions(servers->addresses(), servers->dataset_name());
    o.window_samples = 1000000000;  // longer than any recording and any message
    auto client = MakeClient(o);
    ASSERT_NE(client, nullptr);
    absl::StatusOr<std::optional<BatchData>> b = client->Next();
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << b.status();
    EXPECT_EQ(client->stats().failovers, 0u);
  }
  absl::StatusOr<DatasetInfoData> info =
      GetDatasetInfo(servers->addresses(), "no-such-dataset", kWindow);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound) << info.status();
}

TEST(DataClientTest, CreateRefusesBadOptionsNamingTheField) {
  struct Case {
    std::function<void(DataClientOptions&)> spoil;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](DataClientOptions& o) { o.servers.clear(); }, "servers"},
      {[](DataClientOptions& o) { o.batch_size = 0; }, "batch_size"},
      {[](DataClientOptions& o) { o.batch_size = 5000; }, "batch_size"},
      {[](DataClientOptions& o) { o.rank = 2; o.world_size = 2; }, "rank"},
      {[](DataClientOptions& o) { o.world_size = 0; }, "world_size"},
      {[](DataClientOptions& o) { o.window_samples = 0; }, "window_samples"},
      {[](DataClientOptions& o) { o.reference_samples = 0; }, "reference_samples"},
      {[](DataClientOptions& o) { o.prefetch_batches = 0; }, "prefetch_batches"},
      {[](DataClientOptions& o) { o.rpc_timeout = absl::ZeroDuration(); }, "rpc_timeout"},
      {[](DataClientOptions& o) { o.max_failovers = -1; }, "max_failovers"},
  };
  for (const Case& c : cases) {
    DataClientOptions o = BaseOptions({"127.0.0.1:1"}, "d");
    c.spoil(o);
    absl::StatusOr<std::unique_ptr<DataClient>> client = DataClient::Create(o);
    ASSERT_FALSE(client.ok()) << c.field;
    EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(client.status().message()), HasSubstr(c.field));
  }
  EXPECT_EQ(ParseDataSplit("dev").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseDataSplit("validation"), DataSplit::kValidation);
}

TEST(DataClientTest, PrefetchIsBounded) {
  auto servers = StartServers();
  ASSERT_NE(servers, nullptr);
  DataClientOptions o = BaseOptions(servers->addresses(), servers->dataset_name());
  o.batch_size = 2;
  o.prefetch_batches = 2;
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Next().ok());
  absl::SleepFor(absl::Milliseconds(300));  // a slow consumer
  DataClientStats stats = client->stats();
  // Queue full, plus at most the one batch the worker holds while waiting.
  EXPECT_EQ(stats.max_queued, 2);
  EXPECT_GE(stats.batches_received, 3u);
  EXPECT_LE(stats.batches_received, stats.batches_delivered + 3);
  EXPECT_EQ(stats.batches_delivered, 1u);
}

TEST(DataClientTest, ContinuousModeMovesThroughEpochs) {
  auto servers = StartServers();
  ASSERT_NE(servers, nullptr);
  DataClientOptions o = BaseOptions(servers->addresses(), servers->dataset_name());
  o.continuous = true;
  o.max_windows = 6;  // per epoch: batches of 4 and 2
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  std::vector<std::vector<WindowData>> epochs(3);
  for (uint64_t e = 0; e < 3; ++e) {
    for (size_t expected : {4u, 2u}) {
      absl::StatusOr<std::optional<BatchData>> b = client->Next();
      ASSERT_TRUE(b.ok() && b->has_value()) << b.status();
      EXPECT_EQ((*b)->epoch, e);
      ASSERT_EQ((*b)->windows.size(), expected);
      for (WindowData& w : (*b)->windows) epochs[e].push_back(std::move(w));
    }
    // A finished epoch reads as the start of the next one.
    EXPECT_EQ(client->epoch(), e + 1);
    EXPECT_EQ(client->cursor(), 0u);
  }
  // Same indices, different windows: each epoch is a new permutation.
  for (uint64_t e = 1; e < 3; ++e) {
    bool differs = false;
    for (size_t i = 0; i < 6; ++i) {
      EXPECT_EQ(epochs[e][i].index, i);
      differs |= epochs[e][i].recording != epochs[0][i].recording ||
                 epochs[e][i].offset != epochs[0][i].offset;
    }
    EXPECT_TRUE(differs) << "epoch " << e;
  }
  // The third stream may still be finishing after its last batch arrived.
  EXPECT_GE(client->stats().epochs_completed, 2u);
}

TEST(DataClientTest, ContinuousResumeAtTheEndOfAnEpochGoesOn) {
  auto servers = StartServers();
  ASSERT_NE(servers, nullptr);
  absl::StatusOr<DatasetInfoData> info =
      GetDatasetInfo(servers->addresses(), servers->dataset_name(), kWindow);
  ASSERT_TRUE(info.ok()) << info.status();
  DataClientOptions o = BaseOptions(servers->addresses(), servers->dataset_name());
  o.continuous = true;
  o.epoch = 3;
  o.start_cursor = info->Find(DataSplit::kTrain)->windows_per_epoch;  // a whole epoch taken
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::optional<BatchData>> b = client->Next();
  ASSERT_TRUE(b.ok() && b->has_value()) << b.status();
  EXPECT_EQ((*b)->epoch, 4u);
  EXPECT_EQ((*b)->windows.front().index, 0u);
}

TEST(DataClientTest, ContinuousWithAnEmptyShardFails) {
  auto servers = StartServers();
  ASSERT_NE(servers, nullptr);
  DataClientOptions o = BaseOptions(servers->addresses(), servers->dataset_name());
  o.continuous = true;
  o.world_size = 1000;  // more ranks than windows: the last rank's shard is empty
  o.rank = 999;
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::optional<BatchData>> b = client->Next();
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().code(), AnyOf(absl::StatusCode::kFailedPrecondition,
                                       absl::StatusCode::kInvalidArgument))
      << b.status();
  EXPECT_EQ(client->stats().failovers, 0u);
}

TEST(DataClientTest, StartEpochAfterTheEnd) {
  auto servers = StartServers();
  ASSERT_NE(servers, nullptr);
  DataClientOptions o = BaseOptions(servers->addresses(), servers->dataset_name());
  o.max_windows = 4;
  auto client = MakeClient(o);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::optional<BatchData>> b = client->Next();
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->epoch, 0u);
  b = client->Next();
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->has_value());
  EXPECT_EQ(client->epoch(), 0u);
  EXPECT_EQ(client->cursor(), 4u);

  client->StartEpoch(1, 2);
  b = client->Next();
  ASSERT_TRUE(b.ok() && b->has_value()) << b.status();
  EXPECT_EQ((*b)->epoch, 1u);
  EXPECT_EQ((*b)->windows.front().index, 2u);
  EXPECT_EQ(client->epoch(), 1u);
  EXPECT_EQ(client->cursor(), 6u);
}

TEST(DataClientTest, DestructorCancelsABlockedStream) {
  auto servers = StartServers();
  ASSERT_NE(servers, nullptr);
  absl::StatusOr<std::unique_ptr<BlackHole>> hole = BlackHole::Start();
  ASSERT_TRUE(hole.ok());
  // One client stuck on a hanging server, one mid-stream with a full queue.
  DataClientOptions hung = BaseOptions({(*hole)->address()}, "d");
  DataClientOptions busy = BaseOptions(servers->addresses(), servers->dataset_name());
  const absl::Time start = absl::Now();
  {
    auto a = MakeClient(hung);
    auto b = MakeClient(busy);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(b->Next().ok());
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));  // rpc_timeout is 20 s
}

}  // namespace
}  // namespace pianola
