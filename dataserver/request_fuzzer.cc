// libFuzzer target: DataService request handling on arbitrary bytes.
//
// The input is parsed as a StreamWindowsRequest (and as a
// GetDatasetInfoRequest), validated against an in-memory synthetic dataset,
// and, when valid, the first and last batches of the stream are assembled.
// Limits are small (256 KiB messages, 2^16-sample spans) so each input runs
// in microseconds. Invariants checked beyond "no crash": a valid stream's
// batches hold at most batch_size windows of exactly the requested sizes,
// cursors stay inside the shard, and every refusal has a non-OK code with a
// message.
//
// Seed corpus: dataserver/request_fuzzer_corpus/, written by this target:
//   PIANOLA_WRITE_REQUEST_SEEDS=dataserver/request_fuzzer_corpus build-fuzz/dataserver/request_fuzzer

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "dataserver/data_service_impl.h"
#include "dataserver/synthetic_dataset.h"

namespace pianola {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "request_fuzzer invariant violated: %s\n", what);
    std::abort();
  }
}

const DataServiceImpl& Impl() {
  static const DataServiceImpl* impl = [] {
    SyntheticDatasetOptions o;
    o.name = "fuzz";
    o.pieces = 3;
    o.piece_seconds = {1.0, 0.5, 0.25};
    o.piece_splits = {TRAIN, VALIDATION, TRAIN};
    o.sample_rate = 8000;
    DataServiceLimits limits;
    limits.max_batch_size = 64;
    limits.max_span_samples = 1 << 16;
    limits.max_message_bytes = 256 << 10;
    auto ds = MakeSyntheticDataset(o);
    Check(ds.ok(), "synthetic dataset");
    auto made = DataServiceImpl::Create({std::shared_ptr<const Dataset>(std::move(ds).value())},
                                        limits);
    Check(made.ok(), "impl");
    return made.value().release();
  }();
  return *impl;
}

void WriteSeeds(const char* dir) {
  auto write = [&](const std::string& name, const google::protobuf::Message& m) {
    const std::string path = std::string(dir) + "/" + name;
    FILE* f = std::fopen(path.c_str(), "wb");
    Check(f != nullptr, "open seed file");
    const std::string bytes = m.SerializeAsString();
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  };
  StreamWindowsRequest r;
  r.set_dataset("fuzz");
  r.set_batch_size(4);
  r.set_window_samples(1000);
  r.set_context_samples(200);
  r.set_reference_samples(800);
  write("valid_sparse", r);
  r.set_encoding(DENSE_UINT8);
  r.set_rank(1);
  r.set_world_size(3);
  r.set_start_cursor(2);
  write("valid_dense_rank1", r);
  r.set_split(VALIDATION);
  r.set_max_windows(3);
  write("validation_split", r);
  r.set_batch_size(0);
  write("bad_batch", r);
}

}  // namespace
}  // namespace pianola

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (const char* dir = std::getenv("PIANOLA_WRITE_REQUEST_SEEDS")) {
    pianola::WriteSeeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pianola;
  const DataServiceImpl& impl = Impl();
  GetDatasetInfoRequest info_req;
  if (info_req.ParseFromArray(data, static_cast<int>(size))) {
    DatasetInfo info;
    absl::Status s = impl.GetDatasetInfo(info_req, &info);
    Check(s.ok() || !s.message().empty(), "GetDatasetInfo error without message");
  }
  StreamWindowsRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<std::unique_ptr<WindowStream>> stream = impl.StreamWindows(req);
  if (!stream.ok()) {
    Check(!stream.status().message().empty(), "refusal without message");
    return 0;
  }
  const WindowStream& ws = **stream;
  Check(ws.start_cursor() <= ws.end_cursor() && ws.end_cursor() <= ws.shard_size(), "cursors");
  if (ws.num_batches() == 0) return 0;
  WindowBatch batch;
  for (uint64_t k : {uint64_t{0}, ws.num_batches() - 1}) {
    absl::Status s = ws.FillBatch(k, &batch);
    if (!s.ok()) {
      Check(s.code() == absl::StatusCode::kResourceExhausted, "only oversize may fail");
      continue;
    }
    Check(batch.windows_size() >= 1 &&
              static_cast<uint32_t>(batch.windows_size()) <= req.batch_size(),
          "batch size");
    Check(batch.cursor() <= ws.end_cursor(), "batch cursor");
    for (const Window& w : batch.windows()) {
      Check(w.audio().size() == 2 * (uint64_t{req.window_samples()} + req.context_samples()),
            "audio size");
      Check(w.reference().size() == 2 * uint64_t{req.reference_samples()}, "reference size");
      Check(w.index() < batch.epoch_size(), "index");
    }
  }
  return 0;
}
