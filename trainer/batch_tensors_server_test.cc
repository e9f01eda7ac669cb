// Batches from a real DataServer turned into tensors: the features built from
// the sparse events equal the server's own dense uint8 encoding of the same
// windows, and the audio tensors hold the dataset's samples.

#include <memory>
#include <optional>

#include "gtest/gtest.h"
#include "trainer/batch_tensors.h"
#include "trainer/data_client.h"
#include "trainer/test_data_servers.h"

namespace pianola {
namespace {

TEST(BatchTensorsServerTest, SparseFeaturesEqualTheServersDenseEncoding) {
  TestDataServersOptions so;
  so.servers = 1;
  so.notes_per_second = 20;  // dense enough for overlapping notes of one key
  absl::StatusOr<std::unique_ptr<TestDataServers>> servers = TestDataServers::Start(so);
  ASSERT_TRUE(servers.ok()) << servers.status();

  DataClientOptions o;
  o.servers = (*servers)->addresses();
  o.dataset = (*servers)->dataset_name();
  o.batch_size = 8;
  o.window_samples = 1600;
  o.context_samples = 400;
  o.reference_samples = 1000;
  o.dense_conditioning = true;
  o.max_windows = 64;
  absl::StatusOr<std::unique_ptr<DataClient>> client = DataClient::Create(o);
  ASSERT_TRUE(client.ok()) << client.status();

  int batches = 0;
  double onsets = 0, frames = 0, pedal = 0;
  while (true) {
    absl::StatusOr<std::optional<BatchData>> b = (*client)->Next();
    ASSERT_TRUE(b.ok()) << b.status();
    if (!b->has_value()) break;
    const BatchData& batch = **b;
    ++batches;
    for (const WindowData& w : batch.windows) {
      // The server says which note each offset ends.
      ASSERT_EQ(w.conditioning.offset_velocity.size(), w.conditioning.offset_sample.size());
    }
    BatchTensorOptions direct, scatter, dense;
    direct.features = FeatureMethod::kDirect;
    scatter.features = FeatureMethod::kScatter;
    dense.from_dense = true;
    absl::StatusOr<BatchTensors> a = ToTensors(batch, direct);
    absl::StatusOr<BatchTensors> s = ToTensors(batch, scatter);
    absl::StatusOr<BatchTensors> d = ToTensors(batch, dense);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE(d.ok()) << d.status();
    const int64_t n = static_cast<int64_t>(batch.windows.size());
    ASSERT_EQ(a->features.sizes(), (std::vector<int64_t>{n, 177, 2000}));
    for (int64_t w = 0; w < n; ++w) {
      ASSERT_TRUE(torch::equal(a->features[w], d->features[w]))
          << "window " << batch.windows[w].index << ": "
          << (a->features[w] - d->features[w]).abs().sum(1).nonzero();
    }
    ASSERT_TRUE(torch::equal(s->features, d->features));
    onsets += a->features.slice(1, 0, 88).gt(0).sum().item<double>();
    frames += a->features.slice(1, 88, 176).gt(0).sum().item<double>();
    pedal += a->features.select(1, 176).gt(0).sum().item<double>();

    for (int64_t w = 0; w < n; ++w) {
      const WindowData& wd = batch.windows[w];
      for (int64_t j = 0; j < 2000; j += 101) {
        ASSERT_EQ(a->audio[w][j].item<float>() * 32768.0f,
                  static_cast<float>((*servers)->Sample(wd.recording, wd.offset - 400 + j)));
      }
      ASSERT_EQ(a->reference[w][500].item<float>() * 32768.0f,
                static_cast<float>(
                    (*servers)->Sample(wd.reference_recording, wd.reference_offset + 500)));
      ASSERT_EQ(a->index[w].item<int64_t>(), static_cast<int64_t>(wd.index));
    }
  }
  EXPECT_EQ(batches, 8);
  // The comparison covered real content.
  EXPECT_GT(onsets, 100);
  EXPECT_GT(frames, 10000);
  EXPECT_GT(pedal, 1000);
}

}  // namespace
}  // namespace pianola
