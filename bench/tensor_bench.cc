// tensor_bench: building the model's dense conditioning features on the
// trainer from the sparse events on the wire, against decoding the server's
// dense uint8 encoding of the same windows (what a dense wire format would
// cost the trainer), in one run.
//
//   tensor_bench [--seconds S] [--batch B] [--window 16000] [--context 0]
//                [--reference 16000] [--notes-per-second 8]
//
// Batches come from an in-process DataServer over a synthetic dataset,
// fetched once with both encodings and kept in memory; then each conversion
// runs over them repeatedly for S seconds (single intra-op thread, so the
// rates are per core). Printed: windows/s of ToTensors with the features
// from sparse events (direct CPU fill and the scatter + cumsum path used for
// GPUs, run here on the CPU) and from the dense bytes, their ratios, and wire
// bytes of sparse events and of the dense encoding relative to the audio.

#include <ATen/Parallel.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/args.h"
#include "trainer/batch_tensors.h"
#include "trainer/data_client.h"
#include "trainer/test_data_servers.h"

namespace pianola {
namespace {

double Rate(const std::vector<BatchData>& batches, const BatchTensorOptions& o,
            absl::Duration budget) {
  double windows = 0;
  const absl::Time start = absl::Now();
  while (absl::Now() - start < budget) {
    for (const BatchData& b : batches) {
      absl::StatusOr<BatchTensors> t = ToTensors(b, o);
      if (!t.ok()) {
        std::fprintf(stderr, "ToTensors: %s\n", t.status().ToString().c_str());
        return 0;
      }
      windows += static_cast<double>(b.windows.size());
    }
  }
  return windows / absl::ToDoubleSeconds(absl::Now() - start);
}

int Run(int argc, char** argv) {
  ArgParser parser(
      "tensor_bench [--seconds S] [--batch B] [--window 16000] [--context 0] [--reference 16000] "
      "[--notes-per-second 8]");
  parser.AddFlag("seconds").AddFlag("batch").AddFlag("window").AddFlag("context")
      .AddFlag("reference").AddFlag("notes-per-second");
  absl::StatusOr<Args> args = parser.Parse(argc - 1, argv + 1);
  if (!args.ok()) {
    std::fprintf(stderr, "%s\nusage: %s\n", args.status().ToString().c_str(),
                 parser.usage().c_str());
    return 2;
  }
  auto get = [&](const char* name, int64_t fallback) {
    absl::StatusOr<int64_t> v = args->GetInt(name, fallback);
    return v.ok() ? *v : fallback;
  };
  at::set_num_threads(1);
  const absl::Duration budget = absl::Seconds(get("seconds", 3));
  TestDataServersOptions so;
  so.servers = 1;
  so.pieces = 4;
  so.piece_seconds = {30.0};
  so.notes_per_second = static_cast<double>(get("notes-per-second", 8));
  absl::StatusOr<std::unique_ptr<TestDataServers>> servers = TestDataServers::Start(so);
  if (!servers.ok()) {
    std::fprintf(stderr, "%s\n", servers.status().ToString().c_str());
    return 1;
  }
  DataClientOptions o;
  o.servers = (*servers)->addresses();
  o.dataset = (*servers)->dataset_name();
  o.batch_size = static_cast<uint32_t>(get("batch", 8));
  o.window_samples = static_cast<uint32_t>(get("window", 16000));
  o.context_samples = static_cast<uint32_t>(get("context", 0));
  o.reference_samples = static_cast<uint32_t>(get("reference", 16000));
  o.dense_conditioning = true;
  o.max_windows = 8 * o.batch_size;
  absl::StatusOr<std::unique_ptr<DataClient>> client = DataClient::Create(o);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  std::vector<BatchData> batches;
  double audio_bytes = 0, dense_bytes = 0, onsets = 0;
  while (true) {
    absl::StatusOr<std::optional<BatchData>> b = (*client)->Next();
    if (!b.ok()) {
      std::fprintf(stderr, "%s\n", b.status().ToString().c_str());
      return 1;
    }
    if (!b->has_value()) break;
    for (const WindowData& w : (*b)->windows) {
      audio_bytes += 2.0 * w.audio.size();
      dense_bytes += static_cast<double>(w.dense.size());
      onsets += static_cast<double>(w.conditioning.onset_sample.size());
    }
    batches.push_back(std::move(**b));
  }
  const double sparse_bytes = static_cast<double>((*client)->stats().sparse_bytes_received);
  const double windows = static_cast<double>(batches.size()) * o.batch_size;
  std::printf("tensor_bench: %zu batches of %u windows, span %u, %.1f onsets per window, "
              "1 intra-op thread, %.0f s per method\n",
              batches.size(), o.batch_size, o.context_samples + o.window_samples, onsets / windows,
              absl::ToDoubleSeconds(budget));
  std::printf("wire: sparse events %.2f%% of the target audio bytes, dense uint8 %.0f%%\n",
              100 * sparse_bytes / audio_bytes, 100 * dense_bytes / audio_bytes);

  BatchTensorOptions direct, scatter, dense;
  direct.features = FeatureMethod::kDirect;
  scatter.features = FeatureMethod::kScatter;
  dense.from_dense = true;
  const double dense_rate = Rate(batches, dense, budget);
  const double direct_rate = Rate(batches, direct, budget);
  const double scatter_rate = Rate(batches, scatter, budget);
  std::printf("ToTensors, features from dense uint8 (baseline): %.0f windows/s\n", dense_rate);
  std::printf("ToTensors, features from sparse, direct fill:    %.0f windows/s (%.2fx)\n",
              direct_rate, dense_rate > 0 ? direct_rate / dense_rate : 0);
  std::printf("ToTensors, features from sparse, scatter+cumsum: %.0f windows/s (%.2fx)\n",
              scatter_rate, dense_rate > 0 ? scatter_rate / dense_rate : 0);
  return 0;
}

}  // namespace
}  // namespace pianola

int main(int argc, char** argv) { return pianola::Run(argc, argv); }
