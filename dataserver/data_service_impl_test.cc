#include "dataserver/data_service_impl.h"

#include <set>
#include <thread>

#include "dataserver/dataserver_metrics.h"
#include "dataserver/synthetic_dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const Dataset> Synthetic(const std::string& name, int pieces = 4) {
  SyntheticDatasetOptions o;
  o.name = name;
  o.pieces = pieces;
  o.piece_splits = {TRAIN, TRAIN, VALIDATION, TRAIN};
  auto ds = MakeSyntheticDataset(o);
  EXPECT_TRUE(ds.ok()) << ds.status();
  return std::shared_ptr<const Dataset>(std::move(ds).value());
}

StreamWindowsRequest Request() {
  StreamWindowsRequest r;
  r.set_dataset("a");
  r.set_seed(5);
  r.set_epoch(1);
  r.set_batch_size(3);
  r.set_window_samples(4000);
  r.set_context_samples(500);
  r.set_reference_samples(3000);
  return r;
}

class DataServiceImplTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto impl = DataServiceImpl::Create({Synthetic("a"), Synthetic("b", 2)}, {}, &metrics_);
    ASSERT_TRUE(impl.ok()) << impl.status();
    impl_ = std::move(impl).value();
  }

  // Every batch of a stream, serialized.
  std::vector<std::string> Drain(const StreamWindowsRequest& req) {
    auto stream = impl_->StreamWindows(req);
    EXPECT_TRUE(stream.ok()) << stream.status();
    std::vector<std::string> out;
    WindowBatch b;
    while (true) {
      absl::StatusOr<bool> more = (*stream)->Next(&b);
      EXPECT_TRUE(more.ok()) << more.status();
      if (!more.ok() || !*more) break;
      out.push_back(b.SerializeAsString());
    }
    return out;
  }

  absl::Status Validate(const StreamWindowsRequest& req) {
    return impl_->StreamWindows(req).status();
  }

  DataServerMetrics metrics_;
  std::unique_ptr<DataServiceImpl> impl_;
};

TEST_F(DataServiceImplTest, ShardsAreDisjointCompleteAndCursorsAdvance) {
  std::set<uint64_t> indices;
  uint64_t epoch_size = 0;
  for (uint32_t rank = 0; rank < 2; ++rank) {
    StreamWindowsRequest req = Request();
    req.set_rank(rank);
    req.set_world_size(2);
    uint64_t expected_cursor = 0;
    for (const std::string& bytes : Drain(req)) {
      WindowBatch b;
      ASSERT_TRUE(b.ParseFromString(bytes));
      epoch_size = b.epoch_size();
      EXPECT_EQ(b.epoch(), 1u);
      expected_cursor += b.windows_size();
      EXPECT_EQ(b.cursor(), expected_cursor);
      EXPECT_LE(b.windows_size(), 3);
      for (const Window& w : b.windows()) {
        EXPECT_EQ(w.index() % 2, rank);
        EXPECT_TRUE(indices.insert(w.index()).second);
        EXPECT_EQ(w.audio().size(), 2u * 4500);
        EXPECT_EQ(w.reference().size(), 2u * 3000);
      }
    }
    EXPECT_EQ(expected_cursor, ShardSize(epoch_size, rank, 2));
  }
  // Train: pieces 0, 1, 3 (3.0, 2.5, 1.5 s) with two timbres: 2 * (12 + 10 + 6).
  EXPECT_EQ(epoch_size, 56u);
  EXPECT_EQ(indices.size(), 56u);
  EXPECT_EQ(*indices.rbegin(), 55u);
}

TEST_F(DataServiceImplTest, ResumedStreamContinuesExactly) {
  StreamWindowsRequest req = Request();
  req.set_batch_size(1);
  std::vector<std::string> whole = Drain(req);
  ASSERT_EQ(whole.size(), 56u);
  req.set_start_cursor(17);
  std::vector<std::string> rest = Drain(req);
  ASSERT_EQ(rest.size(), 39u);
  for (size_t k = 0; k < rest.size(); ++k) EXPECT_EQ(rest[k], whole[17 + k]) << k;
  // Resuming exactly at the end is an empty stream, past it an error.
  req.set_start_cursor(56);
  EXPECT_TRUE(Drain(req).empty());
  req.set_start_cursor(57);
  absl::Status s = Validate(req);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(s.message(), HasSubstr("start_cursor 57"));
}

TEST_F(DataServiceImplTest, MaxWindowsStopsEarly) {
  StreamWindowsRequest req = Request();
  req.set_max_windows(7);
  req.set_start_cursor(50);  // only 6 left
  auto stream = impl_->StreamWindows(req);
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ((*stream)->windows(), 6u);
  req.set_start_cursor(0);
  stream = impl_->StreamWindows(req);
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ((*stream)->windows(), 7u);
  EXPECT_EQ((*stream)->num_batches(), 3u);
}

TEST_F(DataServiceImplTest, ConcurrentFillBatchEqualsSequential) {
  StreamWindowsRequest req = Request();
  req.set_encoding(DENSE_UINT8);
  req.set_batch_size(4);
  std::vector<std::string> sequential = Drain(req);
  auto stream = impl_->StreamWindows(req);
  ASSERT_TRUE(stream.ok());
  std::vector<std::string> parallel((*stream)->num_batches());
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      WindowBatch b;
      for (uint64_t k = t; k < parallel.size(); k += 3) {
        ASSERT_TRUE((*stream)->FillBatch(k, &b).ok());
        parallel[k] = b.SerializeAsString();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(parallel, sequential);
}

TEST_F(DataServiceImplTest, BadRequestsNameTheField) {
  struct Case {
    std::string name;
    std::function<void(StreamWindowsRequest*)> edit;
    absl::StatusCode code;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"unknown dataset", [](auto* r) { r->set_dataset("nope"); }, absl::StatusCode::kNotFound,
       "'nope'"},
      {"ambiguous dataset", [](auto* r) { r->set_dataset(""); },
       absl::StatusCode::kInvalidArgument, "dataset"},
      {"split", [](auto* r) { r->set_split(static_cast<Split>(9)); },
       absl::StatusCode::kInvalidArgument, "split"},
      {"rank", [](auto* r) { r->set_rank(2), r->set_world_size(2); },
       absl::StatusCode::kInvalidArgument, "rank 2"},
      {"rank, world 0", [](auto* r) { r->set_rank(1); }, absl::StatusCode::kInvalidArgument,
       "world_size 1"},
      {"batch 0", [](auto* r) { r->set_batch_size(0); }, absl::StatusCode::kInvalidArgument,
       "batch_size"},
      {"batch 1025", [](auto* r) { r->set_batch_size(1025); },
       absl::StatusCode::kInvalidArgument, "batch_size"},
      {"window 0", [](auto* r) { r->set_window_samples(0); }, absl::StatusCode::kInvalidArgument,
       "window_samples"},
      {"reference 0", [](auto* r) { r->set_reference_samples(0); },
       absl::StatusCode::kInvalidArgument, "reference_samples"},
      {"span", [](auto* r) { r->set_context_samples(1 << 22); },
       absl::StatusCode::kInvalidArgument, "context_samples"},
      {"reference huge", [](auto* r) { r->set_reference_samples(1 << 23); },
       absl::StatusCode::kInvalidArgument, "reference_samples"},
      {"encoding", [](auto* r) { r->set_encoding(static_cast<ConditioningEncoding>(4)); },
       absl::StatusCode::kInvalidArgument, "encoding"},
      {"message size", [](auto* r) { r->set_batch_size(1024), r->set_window_samples(40000); },
       absl::StatusCode::kInvalidArgument, "max message size"},
      {"dense message size", [](auto* r) { r->set_batch_size(100), r->set_encoding(DENSE_UINT8); },
       absl::StatusCode::kInvalidArgument, "dense conditioning"},
      {"no windows that long", [](auto* r) { r->set_window_samples(1 << 20); },
       absl::StatusCode::kFailedPrecondition, "no window"},
      {"empty split", [](auto* r) { r->set_split(TEST); }, absl::StatusCode::kFailedPrecondition,
       "test"},
      {"cursor", [](auto* r) { r->set_start_cursor(1000); }, absl::StatusCode::kOutOfRange,
       "start_cursor"},
  };
  for (const Case& c : cases) {
    StreamWindowsRequest req = Request();
    c.edit(&req);
    absl::Status s = Validate(req);
    EXPECT_EQ(s.code(), c.code) << c.name << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr(c.field)) << c.name;
  }
  // The same request with defaults filled in is fine.
  EXPECT_TRUE(Validate(Request()).ok());
}

TEST_F(DataServiceImplTest, OversizedSerializedBatchIsResourceExhausted) {
  DataServiceLimits limits;
  // Exactly the audio bytes of one window: any conditioning pushes it over.
  limits.max_message_bytes = 2 * (4500 + 3000);
  auto impl = DataServiceImpl::Create({Synthetic("a")}, limits);
  ASSERT_TRUE(impl.ok());
  StreamWindowsRequest req = Request();
  req.set_batch_size(1);
  auto stream = (*impl)->StreamWindows(req);
  ASSERT_TRUE(stream.ok()) << stream.status();
  WindowBatch b;
  absl::StatusOr<bool> more = (*stream)->Next(&b);
  EXPECT_EQ(more.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(more.status().message(), HasSubstr("max message size"));
}

TEST_F(DataServiceImplTest, CreateRefusesDuplicateNamesAndNull) {
  EXPECT_EQ(DataServiceImpl::Create({Synthetic("a"), Synthetic("a")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DataServiceImpl::Create({nullptr}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DataServiceImplTest, DatasetInfoAndList) {
  GetDatasetInfoRequest req;
  req.set_dataset("a");
  req.set_window_samples(4000);
  DatasetInfo info;
  ASSERT_TRUE(impl_->GetDatasetInfo(req, &info).ok());
  EXPECT_EQ(info.name(), "a");
  EXPECT_EQ(info.sample_rate(), 16000);
  EXPECT_EQ(info.conditioning_channels(), 177u);
  EXPECT_THAT(info.timbres(), testing::ElementsAre("bright", "grand"));
  ASSERT_EQ(info.splits_size(), 2);
  EXPECT_EQ(info.splits(0).split(), TRAIN);
  EXPECT_EQ(info.splits(0).recordings(), 6u);
  EXPECT_EQ(info.splits(0).pieces(), 3u);
  EXPECT_EQ(info.splits(0).windows_per_epoch(), 56u);
  EXPECT_EQ(info.splits(1).split(), VALIDATION);
  EXPECT_EQ(info.splits(1).windows_per_epoch(), 32u);
  EXPECT_EQ(info.fingerprint(), Synthetic("a")->fingerprint());
  req.set_dataset("zzz");
  EXPECT_EQ(impl_->GetDatasetInfo(req, &info).code(), absl::StatusCode::kNotFound);
  req.set_dataset("");
  EXPECT_EQ(impl_->GetDatasetInfo(req, &info).code(), absl::StatusCode::kInvalidArgument);

  ListDatasetsResponse list;
  ASSERT_TRUE(impl_->ListDatasets({}, &list).ok());
  ASSERT_EQ(list.datasets_size(), 2);
  EXPECT_EQ(list.datasets(0).name(), "a");
  EXPECT_EQ(list.datasets(1).name(), "b");
  // Default window: one second.
  EXPECT_EQ(list.datasets(0).splits(0).windows_per_epoch(), 2u * (3 + 2 + 1));

  // With a single dataset, the empty name means it.
  auto single = DataServiceImpl::Create({Synthetic("only")});
  ASSERT_TRUE(single.ok());
  ASSERT_TRUE((*single)->GetDatasetInfo(req, &info).ok());
  EXPECT_EQ(info.name(), "only");
  StreamWindowsRequest sreq = Request();
  sreq.set_dataset("");
  auto stream = (*single)->StreamWindows(sreq);
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ((*stream)->dataset_name(), "only");
}

TEST_F(DataServiceImplTest, MetricsCountAssemblyAndReferenceFallbacks) {
  // Dataset "b" has pieces 0 and 1, both TRAIN, two timbres: normal
  // references. A one-piece dataset has only fallbacks.
  SyntheticDatasetOptions o;
  o.name = "solo";
  o.pieces = 1;
  o.piece_seconds = {2.0};
  DataServerMetrics metrics;
  auto impl = DataServiceImpl::Create({std::shared_ptr<const Dataset>(*MakeSyntheticDataset(o))},
                                      {}, &metrics);
  ASSERT_TRUE(impl.ok());
  StreamWindowsRequest req = Request();
  req.set_dataset("solo");
  req.set_window_samples(8000);
  req.set_context_samples(0);
  req.set_reference_samples(4000);  // 32000 samples: always room away from the target
  auto stream = (*impl)->StreamWindows(req);
  ASSERT_TRUE(stream.ok());
  WindowBatch b;
  int windows = 0;
  while ((*stream)->Next(&b).value()) windows += b.windows_size();
  EXPECT_EQ(windows, 8);
  EXPECT_EQ(metrics.reference_fallbacks(ReferenceKind::kSameRecording), 8);
  EXPECT_EQ(metrics.reference_fallbacks(ReferenceKind::kSameRecordingOverlapping), 0);
}

}  // namespace
}  // namespace pianola
