// `pianola-dataserver stream`: a command-line DataService client. Streams a
// shard of an epoch from a running server and prints what arrived: a summary
// line per batch (--verbose), a progress line with rate, and totals. For
// demos, smoke tests of a deployment, and measuring a server from outside.

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/args.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "common/subcommand.h"
#include "dataserver/dataset.h"
#include "proto/data_service.grpc.pb.h"

namespace pianola {
namespace {

constexpr char kUsage[] =
    "pianola-dataserver stream --server HOST:PORT [--dataset NAME] [--split train] [--seed 0]\n"
    "    [--epoch 0] [--rank 0 --world-size 1] [--batch-size 16] [--window 16000]\n"
    "    [--context 0] [--reference 16000] [--max-windows N] [--start-cursor K] [--dense]\n"
    "    [--verbose]";

absl::Status Stream(const Args& args) {
  StreamWindowsRequest req;
  req.set_dataset(args.Get("dataset"));
  ASSIGN_OR_RETURN(Split split, ParseSplit(args.Get("split", "train")));
  req.set_split(split);
  ASSIGN_OR_RETURN(int64_t seed, args.GetInt("seed", 0));
  ASSIGN_OR_RETURN(int64_t epoch, args.GetInt("epoch", 0));
  ASSIGN_OR_RETURN(int64_t rank, args.GetInt("rank", 0));
  ASSIGN_OR_RETURN(int64_t world, args.GetInt("world-size", 1));
  ASSIGN_OR_RETURN(int64_t batch, args.GetInt("batch-size", 16));
  ASSIGN_OR_RETURN(int64_t window, args.GetInt("window", 16000));
  ASSIGN_OR_RETURN(int64_t context, args.GetInt("context", 0));
  ASSIGN_OR_RETURN(int64_t reference, args.GetInt("reference", 16000));
  ASSIGN_OR_RETURN(int64_t max_windows, args.GetInt("max-windows", 0));
  ASSIGN_OR_RETURN(int64_t cursor, args.GetInt("start-cursor", 0));
  req.set_seed(seed);
  req.set_epoch(epoch);
  req.set_rank(rank);
  req.set_world_size(world);
  req.set_batch_size(batch);
  req.set_window_samples(window);
  req.set_context_samples(context);
  req.set_reference_samples(reference);
  req.set_max_windows(max_windows);
  req.set_start_cursor(cursor);
  if (args.GetBool("dense")) req.set_encoding(DENSE_UINT8);

  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(args.Get("server"), grpc::InsecureChannelCredentials(),
                                           channel_args);
  auto stub = DataService::NewStub(channel);

  grpc::ClientContext info_ctx;
  GetDatasetInfoRequest info_req;
  info_req.set_dataset(req.dataset());
  info_req.set_window_samples(window);
  DatasetInfo info;
  grpc::Status st = stub->GetDatasetInfo(&info_ctx, info_req, &info);
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                        absl::StrCat("GetDatasetInfo: ", st.error_message()));
  }
  uint64_t epoch_windows = 0;
  for (const SplitInfo& s : info.splits()) {
    if (s.split() == split) epoch_windows = s.windows_per_epoch();
  }
  uint64_t shard = world > 0 && static_cast<uint64_t>(rank) < epoch_windows
                       ? (epoch_windows - rank + world - 1) / world
                       : 0;
  uint64_t expected = shard > static_cast<uint64_t>(cursor) ? shard - cursor : 0;
  if (max_windows > 0 && expected > static_cast<uint64_t>(max_windows)) expected = max_windows;
  std::printf("dataset %s fingerprint %016llx rate %d: %llu %s windows per epoch, shard of rank %lld/%lld: %llu\n",
              info.name().c_str(), static_cast<unsigned long long>(info.fingerprint()),
              info.sample_rate(), static_cast<unsigned long long>(epoch_windows),
              SplitName(split).c_str(), static_cast<long long>(rank), static_cast<long long>(world),
              static_cast<unsigned long long>(shard));
  std::fflush(stdout);
  req.set_dataset(info.name());

  grpc::ClientContext ctx;
  auto reader = stub->StreamWindows(&ctx, req);
  WindowBatch b;
  Progress progress("stream", "windows", static_cast<int64_t>(expected));
  int64_t windows = 0, bytes = 0, onsets = 0;
  const absl::Time start = absl::Now();
  while (reader->Read(&b)) {
    for (const Window& w : b.windows()) {
      bytes += static_cast<int64_t>(w.audio().size() + w.reference().size() +
                                    w.dense_conditioning().size());
      onsets += w.conditioning().onset_sample_size();
      if (args.GetBool("verbose")) {
        std::printf("window %llu recording %u offset %lld timbre %s reference %u@%lld onsets %d\n",
                    static_cast<unsigned long long>(w.index()), w.recording(),
                    static_cast<long long>(w.offset()), w.timbre().c_str(),
                    w.reference_recording(), static_cast<long long>(w.reference_offset()),
                    w.conditioning().onset_sample_size());
      }
    }
    windows += b.windows_size();
    progress.Add(b.windows_size(), absl::StrFormat("cursor %d", b.cursor()));
  }
  st = reader->Finish();
  progress.Finish();
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                        absl::StrCat("StreamWindows: ", st.error_message()));
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("received %lld windows (%lld onsets), %.1f MB in %.2f s: %.0f windows/s, %.1f MB/s\n",
              static_cast<long long>(windows), static_cast<long long>(onsets), bytes / 1e6, secs,
              secs > 0 ? windows / secs : 0.0, secs > 0 ? bytes / 1e6 / secs : 0.0);
  return absl::OkStatus();
}

int RunStream(int argc, char** argv) {
  ArgParser parser(kUsage);
  parser.AddFlag("server", true)
      .AddFlag("dataset")
      .AddFlag("split")
      .AddFlag("seed")
      .AddFlag("epoch")
      .AddFlag("rank")
      .AddFlag("world-size")
      .AddFlag("batch-size")
      .AddFlag("window")
      .AddFlag("context")
      .AddFlag("reference")
      .AddFlag("max-windows")
      .AddFlag("start-cursor")
      .AddBool("dense")
      .AddBool("verbose");
  absl::StatusOr<Args> args = parser.Parse(argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "stream: %s\nusage: %s\n", std::string(args.status().message()).c_str(),
                 kUsage);
    return 2;
  }
  absl::Status s = Stream(*args);
  if (!s.ok()) {
    std::fprintf(stderr, "stream: %s\n", s.ToString().c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ||
                   s.code() == absl::StatusCode::kNotFound
               ? 2
               : 1;
  }
  return 0;
}

}  // namespace
}  // namespace pianola

PIANOLA_SUBCOMMAND(stream, "stream", "--server HOST:PORT: stream windows from a data server and report rates",
                   pianola::RunStream);
