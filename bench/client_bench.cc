// client_bench: what the trainer's DataClient (prefetch thread, batch
// validation, conversion to plain C++ windows) costs over reading the same
// stream with a bare gRPC reader, in one run against one in-process
// DataServer over a synthetic dataset.
//
//   client_bench [--seconds S] [--batch B] [--window 16000] [--context 0]
//                [--reference 16000] [--prefetch 4] [--threads 2]
//
// Both sides stream epoch after epoch of the same request for S seconds each
// (baseline first, then the client, then the baseline again; the baseline
// rate is the mean of its two runs, so drift on a shared machine shows). The
// bare reader parses each WindowBatch and touches nothing else; the client
// additionally checks every window (indices, sizes, event ranges) and copies
// it into BatchData. Printed: windows/s and MB/s of each and client/bare.

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "common/args.h"
#include "proto/data_service.grpc.pb.h"
#include "trainer/data_client.h"
#include "trainer/test_data_servers.h"

namespace pianola {
namespace {

struct Rate {
  double windows = 0;
  double bytes = 0;
  double seconds = 0;
  double WindowsPerSecond() const { return seconds > 0 ? windows / seconds : 0; }
  double MBPerSecond() const { return seconds > 0 ? bytes / 1e6 / seconds : 0; }
};

Rate Bare(const DataClientOptions& o, absl::Duration budget) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  auto stub = DataService::NewStub(
      grpc::CreateCustomChannel(o.servers[0], grpc::InsecureChannelCredentials(), args));
  Rate r;
  const absl::Time start = absl::Now();
  for (uint64_t epoch = 0; absl::Now() - start < budget; ++epoch) {
    StreamWindowsRequest req;
    req.set_dataset(o.dataset);
    req.set_split(TRAIN);
    req.set_seed(o.seed);
    req.set_epoch(epoch);
    req.set_batch_size(o.batch_size);
    req.set_window_samples(o.window_samples);
    req.set_context_samples(o.context_samples);
    req.set_reference_samples(o.reference_samples);
    grpc::ClientContext ctx;
    auto reader = stub->StreamWindows(&ctx, req);
    WindowBatch b;
    while (reader->Read(&b)) {
      r.windows += b.windows_size();
      for (const Window& w : b.windows()) r.bytes += w.audio().size() + w.reference().size();
      if (absl::Now() - start >= budget) {
        ctx.TryCancel();
        break;
      }
    }
    grpc::Status st = reader->Finish();
    if (!st.ok() && st.error_code() != grpc::StatusCode::CANCELLED) {
      std::fprintf(stderr, "bare stream: %s\n", st.error_message().c_str());
      break;
    }
  }
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return r;
}

Rate Client(DataClientOptions o, absl::Duration budget, DataClientStats* stats) {
  o.continuous = true;
  absl::StatusOr<std::unique_ptr<DataClient>> client = DataClient::Create(o);
  Rate r;
  if (!client.ok()) {
    std::fprintf(stderr, "client: %s\n", client.status().ToString().c_str());
    return r;
  }
  const absl::Time start = absl::Now();
  while (absl::Now() - start < budget) {
    absl::StatusOr<std::optional<BatchData>> b = (*client)->Next();
    if (!b.ok() || !b->has_value()) {
      std::fprintf(stderr, "client: %s\n", b.status().ToString().c_str());
      break;
    }
    r.windows += (*b)->windows.size();
    for (const WindowData& w : (*b)->windows) r.bytes += 2.0 * (w.audio.size() + w.reference.size());
  }
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  *stats = (*client)->stats();
  return r;
}

int Run(int argc, char** argv) {
  ArgParser parser(
      "client_bench [--seconds S] [--batch B] [--window 16000] [--context 0] [--reference 16000] "
      "[--prefetch 4] [--threads 2]");
  parser.AddFlag("seconds").AddFlag("batch").AddFlag("window").AddFlag("context")
      .AddFlag("reference").AddFlag("prefetch").AddFlag("threads");
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
  const absl::Duration budget = absl::Seconds(get("seconds", 3));
  TestDataServersOptions so;
  so.servers = 1;
  so.pieces = 8;
  so.piece_seconds = {30.0};
  so.producer_threads = static_cast<int>(get("threads", 2));
  so.queue_batches = 4;
  absl::StatusOr<std::unique_ptr<TestDataServers>> servers = TestDataServers::Start(so);
  if (!servers.ok()) {
    std::fprintf(stderr, "%s\n", servers.status().ToString().c_str());
    return 1;
  }
  DataClientOptions o;
  o.servers = (*servers)->addresses();
  o.dataset = (*servers)->dataset_name();
  o.batch_size = static_cast<uint32_t>(get("batch", 16));
  o.window_samples = static_cast<uint32_t>(get("window", 16000));
  o.context_samples = static_cast<uint32_t>(get("context", 0));
  o.reference_samples = static_cast<uint32_t>(get("reference", 16000));
  o.prefetch_batches = static_cast<int>(get("prefetch", 4));

  std::printf("client_bench: 1 in-process server (%d producer threads), batch %u, L %u, R %u, Lr %u, "
              "%.0f s per run\n",
              so.producer_threads, o.batch_size, o.window_samples, o.context_samples,
              o.reference_samples, absl::ToDoubleSeconds(budget));
  const Rate bare1 = Bare(o, budget);
  DataClientStats stats;
  const Rate client = Client(o, budget, &stats);
  const Rate bare2 = Bare(o, budget);
  const double bare_wps = (bare1.WindowsPerSecond() + bare2.WindowsPerSecond()) / 2;
  const double bare_mbps = (bare1.MBPerSecond() + bare2.MBPerSecond()) / 2;
  std::printf("bare gRPC reader: %.0f windows/s, %.1f MB/s (runs: %.0f, %.0f windows/s)\n",
              bare_wps, bare_mbps, bare1.WindowsPerSecond(), bare2.WindowsPerSecond());
  std::printf("DataClient:       %.0f windows/s, %.1f MB/s; Next() waited %.0f%% of the time, "
              "max queued %d\n",
              client.WindowsPerSecond(), client.MBPerSecond(),
              100 * absl::ToDoubleSeconds(stats.wait_time) / client.seconds, stats.max_queued);
  std::printf("ratio DataClient/bare: %.2f\n", bare_wps > 0 ? client.WindowsPerSecond() / bare_wps : 0);
  return 0;
}

}  // namespace
}  // namespace pianola

int main(int argc, char** argv) { return pianola::Run(argc, argv); }
