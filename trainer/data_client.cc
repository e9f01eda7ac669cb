#include "trainer/data_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "proto/data_service.grpc.pb.h"

namespace pianola {
namespace {

constexpr char kLog[] = "data_client";
constexpr uint32_t kConditioningChannels = 177;
constexpr uint32_t kLowKey = 21;
constexpr uint32_t kHighKey = 108;
constexpr uint32_t kMaxBatch = 1024;

absl::Status FromGrpc(const grpc::Status& s, absl::string_view context) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(context, ": ", s.error_message()));
}

// Errors worth retrying on another server: the server (or the path to it)
// failed, not the request. A request a server refuses (INVALID_ARGUMENT,
// NOT_FOUND, OUT_OF_RANGE, ...) or a message too large for us
// (RESOURCE_EXHAUSTED) would be refused by every replica.
bool IsTransient(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:  // by the server (shutdown); ours is checked first
    case absl::StatusCode::kInternal:   // e.g. RST_STREAM from a dying server
    case absl::StatusCode::kUnknown:
      return true;
    default:
      return false;
  }
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& server, int64_t max_message_bytes) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<int64_t>(max_message_bytes, INT_MAX)));
  // Reconnect soon after a server restarts on the same address. (The
  // minimum reconnect backoff, which doubles as gRPC's connect timeout, keeps
  // its default: a hung server is the watchdog's business, see rpc_timeout.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args);
}

void CopyInt16(const std::string& bytes, std::vector<int16_t>* out) {
  out->resize(bytes.size() / 2);
  if constexpr (std::endian::native == std::endian::little) {
    if (!out->empty()) std::memcpy(out->data(), bytes.data(), out->size() * 2);
  } else {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    for (size_t i = 0; i < out->size(); ++i) {
      (*out)[i] = static_cast<int16_t>(p[2 * i] | (p[2 * i + 1] << 8));
    }
  }
}

template <typename Field>
std::vector<uint32_t> ToVector(const Field& field) {
  return std::vector<uint32_t>(field.begin(), field.end());
}

// What the next batch of a stream must look like.
struct Expectation {
  const std::string* server;
  uint64_t epoch;
  uint64_t cursor;  // shard position before the batch
  uint32_t rank;
  uint32_t world_size;
  uint32_t span;
  uint32_t reference;
  bool dense;
};

// Checks a received batch against the request and the data contract and
// converts it. DataLoss naming the server, the batch and the field otherwise:
// a server that sends windows out of order or of the wrong shape would
// silently corrupt training, so it is refused, not trusted.
absl::Status ConvertBatch(const WindowBatch& b, const Expectation& x, BatchData* out) {
  auto bad = [&](auto&&... what) {
    return absl::DataLossError(absl::StrCat("server ", *x.server, ": batch of epoch ", x.epoch,
                                            " after cursor ", x.cursor, ": ", what...));
  };
  if (b.epoch() != x.epoch) return bad("field epoch is ", b.epoch());
  if (b.windows_size() == 0) return bad("no windows");
  if (b.cursor() != x.cursor + static_cast<uint64_t>(b.windows_size())) {
    return bad("field cursor is ", b.cursor(), " with ", b.windows_size(), " windows");
  }
  if (b.shard_size() != ShardSize(b.epoch_size(), x.rank, x.world_size)) {
    return bad("field shard_size ", b.shard_size(), " does not match epoch_size ", b.epoch_size(),
               " for rank ", x.rank, " of ", x.world_size);
  }
  if (b.cursor() > b.shard_size()) {
    return bad("field cursor ", b.cursor(), " beyond shard_size ", b.shard_size());
  }
  out->epoch = b.epoch();
  out->cursor = b.cursor();
  out->shard_size = b.shard_size();
  out->epoch_size = b.epoch_size();
  out->windows.resize(b.windows_size());
  for (int k = 0; k < b.windows_size(); ++k) {
    const Window& w = b.windows(k);
    const uint64_t expected_index = x.rank + uint64_t{x.world_size} * (x.cursor + k);
    auto bad_window = [&](auto&&... what) {
      return bad("window ", k, " (index ", w.index(), "): ", what...);
    };
    if (w.index() != expected_index) {
      return bad_window("field index should be ", expected_index);
    }
    if (w.audio().size() != size_t{x.span} * 2) {
      return bad_window("field audio has ", w.audio().size(), " bytes, expected ",
                        size_t{x.span} * 2);
    }
    if (w.reference().size() != size_t{x.reference} * 2) {
      return bad_window("field reference has ", w.reference().size(), " bytes, expected ",
                        size_t{x.reference} * 2);
    }
    if (x.dense && w.dense_conditioning().size() != size_t{kConditioningChannels} * x.span) {
      return bad_window("field dense_conditioning has ", w.dense_conditioning().size(),
                        " bytes, expected ", size_t{kConditioningChannels} * x.span);
    }
    const SparseConditioning& c = w.conditioning();
    if (c.onset_key_size() != c.onset_sample_size() ||
        c.onset_velocity_size() != c.onset_sample_size()) {
      return bad_window("onset_sample/onset_key/onset_velocity lengths differ");
    }
    if (c.offset_key_size() != c.offset_sample_size()) {
      return bad_window("offset_sample/offset_key lengths differ");
    }
    if (c.offset_velocity_size() != 0 && c.offset_velocity_size() != c.offset_sample_size()) {
      return bad_window("offset_velocity/offset_sample lengths differ");
    }
    if (c.held_velocity_size() != c.held_key_size()) {
      return bad_window("held_key/held_velocity lengths differ");
    }
    if (c.pedal_end_size() != c.pedal_start_size()) {
      return bad_window("pedal_start/pedal_end lengths differ");
    }
    for (int i = 0; i < c.onset_sample_size(); ++i) {
      if (c.onset_sample(i) >= x.span) return bad_window("onset_sample ", c.onset_sample(i), " outside the span");
      if (c.onset_key(i) < kLowKey || c.onset_key(i) > kHighKey) return bad_window("onset_key ", c.onset_key(i), " outside 21..108");
      if (c.onset_velocity(i) < 1 || c.onset_velocity(i) > 127) return bad_window("onset_velocity ", c.onset_velocity(i), " outside 1..127");
    }
    for (int i = 0; i < c.offset_sample_size(); ++i) {
      if (c.offset_sample(i) > x.span) return bad_window("offset_sample ", c.offset_sample(i), " outside the span");
      if (c.offset_key(i) < kLowKey || c.offset_key(i) > kHighKey) return bad_window("offset_key ", c.offset_key(i), " outside 21..108");
      if (c.offset_velocity_size() != 0 && (c.offset_velocity(i) < 1 || c.offset_velocity(i) > 127)) {
        return bad_window("offset_velocity ", c.offset_velocity(i), " outside 1..127");
      }
    }
    for (int i = 0; i < c.held_key_size(); ++i) {
      if (c.held_key(i) < kLowKey || c.held_key(i) > kHighKey) return bad_window("held_key ", c.held_key(i), " outside 21..108");
      if (c.held_velocity(i) < 1 || c.held_velocity(i) > 127) return bad_window("held_velocity ", c.held_velocity(i), " outside 1..127");
    }
    for (int i = 0; i < c.pedal_start_size(); ++i) {
      if (c.pedal_start(i) >= c.pedal_end(i) || c.pedal_end(i) > x.span) {
        return bad_window("pedal interval [", c.pedal_start(i), ", ", c.pedal_end(i),
                          ") empty or outside the span");
      }
    }
    WindowData& d = out->windows[k];
    d.index = w.index();
    d.recording = w.recording();
    d.offset = w.offset();
    d.reference_recording = w.reference_recording();
    d.reference_offset = w.reference_offset();
    d.timbre = w.timbre();
    CopyInt16(w.audio(), &d.audio);
    CopyInt16(w.reference(), &d.reference);
    d.conditioning.onset_sample = ToVector(c.onset_sample());
    d.conditioning.onset_key = ToVector(c.onset_key());
    d.conditioning.onset_velocity = ToVector(c.onset_velocity());
    d.conditioning.offset_sample = ToVector(c.offset_sample());
    d.conditioning.offset_key = ToVector(c.offset_key());
    d.conditioning.offset_velocity = ToVector(c.offset_velocity());
    d.conditioning.held_key = ToVector(c.held_key());
    d.conditioning.held_velocity = ToVector(c.held_velocity());
    d.conditioning.pedal_start = ToVector(c.pedal_start());
    d.conditioning.pedal_end = ToVector(c.pedal_end());
    if (x.dense) {
      d.dense.assign(w.dense_conditioning().begin(), w.dense_conditioning().end());
    } else {
      d.dense.clear();
    }
  }
  return absl::OkStatus();
}

uint64_t PayloadBytes(const WindowBatch& b) {
  uint64_t n = 0;
  for (const Window& w : b.windows()) {
    n += w.audio().size() + w.reference().size() + w.dense_conditioning().size();
  }
  return n;
}

uint64_t SparseBytes(const WindowBatch& b) {
  uint64_t n = 0;
  for (const Window& w : b.windows()) n += w.conditioning().ByteSizeLong();
  return n;
}

}  // namespace

absl::StatusOr<DataSplit> ParseDataSplit(const std::string& name) {
  if (name == "train") return DataSplit::kTrain;
  if (name == "validation") return DataSplit::kValidation;
  if (name == "test") return DataSplit::kTest;
  return absl::InvalidArgumentError(
      absl::StrCat("split \"", name, "\": expected train, validation or test"));
}

std::string DataSplitName(DataSplit split) {
  switch (split) {
    case DataSplit::kTrain:
      return "train";
    case DataSplit::kValidation:
      return "validation";
    case DataSplit::kTest:
      return "test";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// DataClient::Impl: the background stream ("worker") thread, a watchdog thread
// that cancels a stream which stops delivering, and the prefetch queue between
// the worker and the consumer.
class DataClient::Impl {
 public:
  explicit Impl(const DataClientOptions& options);
  ~Impl();

  // Starts the worker at (epoch, cursor). The worker must not be running.
  void Start(uint64_t epoch, uint64_t cursor);
  // Cancels the worker's stream and joins it; drops queued batches.
  void Stop();

  absl::StatusOr<std::optional<BatchData>> Next();
  uint64_t epoch() const;
  uint64_t cursor() const;
  DataClientStats stats() const;

 private:
  struct Item {
    BatchData batch;
    bool last_of_epoch = false;
  };
  enum class Outcome { kEndOfEpoch, kTransient, kPermanent, kCancelled };

  void WorkerLoop(uint64_t epoch, uint64_t cursor);
  // One stream from server_ starting at (epoch, *cursor); advances *cursor
  // and *received over the batches it pushes. On kTransient/kPermanent sets
  // *error.
  Outcome RunStream(uint64_t epoch, uint64_t* cursor, uint64_t* received, bool* progressed,
                    absl::Status* error);
  void WatchdogLoop();
  // Waits for room in the queue; false when cancelled.
  bool Push(Item item);
  void SetTerminal(absl::Status status);
  // Sleeps for `d` unless cancelled first; false when cancelled.
  bool SleepUnlessCancelled(absl::Duration d);

  const DataClientOptions& o_;
  std::vector<std::unique_ptr<DataService::Stub>> stubs_;
  size_t server_ = 0;  // worker thread only (and Start/Stop, which exclude it)
  std::thread worker_;    // owned by the consumer side (Start/Stop/~Impl)
  std::thread watchdog_;

  mutable absl::Mutex mu_;
  bool cancel_ ABSL_GUARDED_BY(mu_) = false;    // stop the worker
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;  // stop the watchdog
  grpc::ClientContext* active_ ABSL_GUARDED_BY(mu_) = nullptr;  // the worker's stream
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;   // worker blocked on the server
  uint64_t wait_seq_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time wait_deadline_ ABSL_GUARDED_BY(mu_);
  bool timed_out_ ABSL_GUARDED_BY(mu_) = false;  // the watchdog cancelled active_
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> terminal_ ABSL_GUARDED_BY(mu_);  // OK: end of epoch
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;   // consumed position
  uint64_t cursor_ ABSL_GUARDED_BY(mu_) = 0;
  DataClientStats stats_ ABSL_GUARDED_BY(mu_);
};

DataClient::Impl::Impl(const DataClientOptions& options) : o_(options) {
  for (const std::string& server : o_.servers) {
    stubs_.push_back(DataService::NewStub(MakeChannel(server, o_.max_message_bytes)));
  }
  watchdog_ = std::thread([this] { WatchdogLoop(); });
}

DataClient::Impl::~Impl() {
  Stop();
  {
    absl::MutexLock l(&mu_);
    shutdown_ = true;
  }
  watchdog_.join();
}

void DataClient::Impl::Start(uint64_t epoch, uint64_t cursor) {
  {
    absl::MutexLock l(&mu_);
    cancel_ = false;
    queue_.clear();
    terminal_.reset();
    epoch_ = epoch;
    cursor_ = cursor;
  }
  worker_ = std::thread([this, epoch, cursor] { WorkerLoop(epoch, cursor); });
}

void DataClient::Impl::Stop() {
  {
    absl::MutexLock l(&mu_);
    cancel_ = true;
    if (active_ != nullptr) active_->TryCancel();
  }
  if (worker_.joinable()) worker_.join();
  absl::MutexLock l(&mu_);
  queue_.clear();
}

void DataClient::Impl::WatchdogLoop() {
  absl::MutexLock l(&mu_);
  while (!shutdown_) {
    if (!waiting_) {
      auto wakeup = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutdown_ || waiting_; };
      mu_.Await(absl::Condition(&wakeup));
      continue;
    }
    const uint64_t seq = wait_seq_;
    auto changed = [this, seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return shutdown_ || !waiting_ || wait_seq_ != seq;
    };
    if (!mu_.AwaitWithDeadline(absl::Condition(&changed), wait_deadline_) &&
        active_ != nullptr) {
      // Nothing arrived in time: cancel, so the worker's Read returns and it
      // fails over. Then wait until the worker has moved on.
      timed_out_ = true;
      active_->TryCancel();
      mu_.Await(absl::Condition(&changed));
    }
  }
}

bool DataClient::Impl::Push(Item item) {
  absl::MutexLock l(&mu_);
  auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return cancel_ || queue_.size() < static_cast<size_t>(o_.prefetch_batches);
  };
  mu_.Await(absl::Condition(&room));
  if (cancel_) return false;
  queue_.push_back(std::move(item));
  stats_.max_queued = std::max(stats_.max_queued, static_cast<int>(queue_.size()));
  return true;
}

void DataClient::Impl::SetTerminal(absl::Status status) {
  absl::MutexLock l(&mu_);
  if (!cancel_) terminal_ = std::move(status);
}

bool DataClient::Impl::SleepUnlessCancelled(absl::Duration d) {
  absl::MutexLock l(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&cancel_), d);
  return !cancel_;
}

DataClient::Impl::Outcome DataClient::Impl::RunStream(uint64_t epoch, uint64_t* cursor,
                                                      uint64_t* received, bool* progressed,
                                                      absl::Status* error) {
  const std::string& server = o_.servers[server_];
  StreamWindowsRequest req;
  req.set_dataset(o_.dataset);
  req.set_split(static_cast<Split>(o_.split));
  req.set_seed(o_.seed);
  req.set_epoch(epoch);
  req.set_start_cursor(*cursor);
  req.set_rank(o_.rank);
  req.set_world_size(o_.world_size);
  req.set_batch_size(o_.batch_size);
  req.set_window_samples(o_.window_samples);
  req.set_context_samples(o_.context_samples);
  req.set_reference_samples(o_.reference_samples);
  req.set_encoding(o_.dense_conditioning ? DENSE_UINT8 : SPARSE);
  if (o_.max_windows > 0) req.set_max_windows(o_.max_windows - *received);

  grpc::ClientContext ctx;
  {
    absl::MutexLock l(&mu_);
    if (cancel_) return Outcome::kCancelled;
    active_ = &ctx;
    timed_out_ = false;
    ++stats_.streams_started;
    stats_.server = server;
    // The watchdog covers connecting and the first batch too.
    waiting_ = true;
    ++wait_seq_;
    wait_deadline_ = absl::Now() + o_.rpc_timeout;
  }
  std::unique_ptr<grpc::ClientReader<WindowBatch>> reader = stubs_[server_]->StreamWindows(&ctx, req);
  WindowBatch batch;
  absl::Status bad;
  bool limit_reached = false;
  uint64_t shard_size = 0;
  bool know_shard = false;
  while (true) {
    const bool ok = reader->Read(&batch);
    {
      absl::MutexLock l(&mu_);
      waiting_ = false;
    }
    if (!ok) break;
    Expectation x{&server, epoch, *cursor, o_.rank, o_.world_size,
                  o_.context_samples + o_.window_samples, o_.reference_samples,
                  o_.dense_conditioning};
    Item item;
    bad = ConvertBatch(batch, x, &item.batch);
    if (bad.ok() && o_.max_windows > 0 && *received + item.batch.windows.size() > o_.max_windows) {
      bad = absl::DataLossError(absl::StrCat("server ", server, ": sent more than max_windows ",
                                             o_.max_windows - *received, " windows"));
    }
    if (!bad.ok()) {
      ctx.TryCancel();
      break;
    }
    *cursor = item.batch.cursor;
    *received += item.batch.windows.size();
    *progressed = true;
    shard_size = item.batch.shard_size;
    know_shard = true;
    limit_reached = o_.max_windows > 0 && *received >= o_.max_windows;
    item.last_of_epoch = *cursor >= shard_size || limit_reached;
    {
      absl::MutexLock l(&mu_);
      ++stats_.batches_received;
      stats_.bytes_received += PayloadBytes(batch);
      stats_.sparse_bytes_received += SparseBytes(batch);
    }
    if (!Push(std::move(item))) {
      ctx.TryCancel();
      break;
    }
    absl::MutexLock l(&mu_);
    waiting_ = true;
    ++wait_seq_;
    wait_deadline_ = absl::Now() + o_.rpc_timeout;
  }
  const grpc::Status status = reader->Finish();
  bool timed_out;
  {
    absl::MutexLock l(&mu_);
    active_ = nullptr;
    waiting_ = false;
    timed_out = timed_out_;
    if (cancel_) return Outcome::kCancelled;
    if (timed_out) ++stats_.stream_timeouts;
  }
  if (!bad.ok()) {
    *error = bad;
    return Outcome::kPermanent;
  }
  const std::string where = absl::StrCat("StreamWindows from ", server, " (epoch ", epoch,
                                         ", cursor ", *cursor, ")");
  if (timed_out) {
    *error = absl::DeadlineExceededError(absl::StrCat(
        where, ": no batch for ", absl::FormatDuration(o_.rpc_timeout)));
    return Outcome::kTransient;
  }
  if (!status.ok()) {
    *error = FromGrpc(status, where);
    return IsTransient(error->code()) ? Outcome::kTransient : Outcome::kPermanent;
  }
  // A clean end before the shard is complete (a draining server, a proxy
  // closing streams) is resumed like a failure.
  if (know_shard && *cursor < shard_size && !limit_reached) {
    *error = absl::UnavailableError(
        absl::StrCat(where, ": stream ended before the shard's end ", shard_size));
    return Outcome::kTransient;
  }
  return Outcome::kEndOfEpoch;
}

void DataClient::Impl::WorkerLoop(uint64_t epoch, uint64_t cursor) {
  int failures = 0;
  absl::Duration backoff = o_.retry_backoff;
  uint64_t received = 0;  // windows of this epoch received (for max_windows)
  uint64_t epoch_start = cursor;
  while (true) {
    bool progressed = false;
    absl::Status error;
    const Outcome outcome = RunStream(epoch, &cursor, &received, &progressed, &error);
    if (progressed) {
      failures = 0;
      backoff = o_.retry_backoff;
    }
    switch (outcome) {
      case Outcome::kCancelled:
        return;
      case Outcome::kPermanent:
        LogError(kLog, error.ToString());
        SetTerminal(error);
        return;
      case Outcome::kEndOfEpoch: {
        {
          absl::MutexLock l(&mu_);
          ++stats_.epochs_completed;
        }
        if (!o_.continuous) {
          SetTerminal(absl::OkStatus());
          return;
        }
        if (received == 0 && epoch_start == 0) {
          SetTerminal(absl::FailedPreconditionError(absl::StrCat(
              "rank ", o_.rank, " of ", o_.world_size, ": epoch ", epoch,
              " has no windows (dataset too small for this window length?)")));
          return;
        }
        ++epoch;
        cursor = 0;
        epoch_start = 0;
        received = 0;
        break;
      }
      case Outcome::kTransient: {
        ++failures;
        {
          absl::MutexLock l(&mu_);
          ++stats_.failovers;
        }
        if (failures > o_.max_failovers) {
          const absl::Status s = absl::UnavailableError(absl::StrCat(
              "data servers [", absl::StrJoin(o_.servers, ", "), "] failed ", failures,
              " times in a row; last: ", error.ToString()));
          LogError(kLog, s.ToString());
          SetTerminal(s);
          return;
        }
        const size_t next = (server_ + 1) % o_.servers.size();
        LogWarning(kLog, error.ToString(), "; resuming at epoch ", epoch, " cursor ", cursor,
                   " on ", o_.servers[next]);
        server_ = next;
        if (failures % static_cast<int>(o_.servers.size()) == 0) {
          if (!SleepUnlessCancelled(backoff)) return;
          backoff = std::min(backoff * 2, o_.max_retry_backoff);
        }
        break;
      }
    }
  }
}

absl::StatusOr<std::optional<BatchData>> DataClient::Impl::Next() {
  absl::MutexLock l(&mu_);
  const absl::Time start = absl::Now();
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || terminal_.has_value();
  };
  mu_.Await(absl::Condition(&ready));
  stats_.wait_time += absl::Now() - start;
  if (!queue_.empty()) {
    Item item = std::move(queue_.front());
    queue_.pop_front();
    ++stats_.batches_delivered;
    stats_.windows_delivered += item.batch.windows.size();
    epoch_ = item.batch.epoch;
    cursor_ = item.batch.cursor;
    if (o_.continuous && item.last_of_epoch) {
      ++epoch_;
      cursor_ = 0;
    }
    return std::optional<BatchData>(std::move(item.batch));
  }
  if (!terminal_->ok()) return *terminal_;
  return std::optional<BatchData>();
}

uint64_t DataClient::Impl::epoch() const {
  absl::MutexLock l(&mu_);
  return epoch_;
}

uint64_t DataClient::Impl::cursor() const {
  absl::MutexLock l(&mu_);
  return cursor_;
}

DataClientStats DataClient::Impl::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

// ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<DataClient>> DataClient::Create(DataClientOptions options) {
  auto invalid = [](auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat("DataClientOptions.", what...));
  };
  if (options.servers.empty()) return invalid("servers: no data server given");
  for (const std::string& s : options.servers) {
    if (s.empty()) return invalid("servers: empty address");
  }
  if (options.world_size == 0) return invalid("world_size must be >= 1");
  if (options.rank >= options.world_size) {
    return invalid("rank ", options.rank, " must be < world_size ", options.world_size);
  }
  if (options.batch_size == 0 || options.batch_size > kMaxBatch) {
    return invalid("batch_size ", options.batch_size, " outside 1..", kMaxBatch);
  }
  if (options.window_samples == 0) return invalid("window_samples must be > 0");
  if (options.reference_samples == 0) return invalid("reference_samples must be > 0");
  if (uint64_t{options.window_samples} + options.context_samples > UINT32_MAX) {
    return invalid("context_samples + window_samples too large");
  }
  if (options.prefetch_batches < 1) {
    return invalid("prefetch_batches ", options.prefetch_batches, " must be >= 1");
  }
  if (options.rpc_timeout <= absl::ZeroDuration()) return invalid("rpc_timeout must be > 0");
  if (options.max_failovers < 0) return invalid("max_failovers must be >= 0");
  if (options.retry_backoff < absl::ZeroDuration() ||
      options.max_retry_backoff < options.retry_backoff) {
    return invalid("retry_backoff must be in [0, max_retry_backoff]");
  }
  if (options.max_message_bytes <= 0) return invalid("max_message_bytes must be > 0");
  if (options.split != DataSplit::kTrain && options.split != DataSplit::kValidation &&
      options.split != DataSplit::kTest) {
    return invalid("split ", static_cast<int>(options.split), " unknown");
  }
  std::unique_ptr<DataClient> client(new DataClient(std::move(options)));
  client->impl_->Start(client->options_.epoch, client->options_.start_cursor);
  return client;
}

DataClient::DataClient(DataClientOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(options_)) {}

DataClient::~DataClient() = default;

absl::StatusOr<std::optional<BatchData>> DataClient::Next() { return impl_->Next(); }

void DataClient::StartEpoch(uint64_t epoch, uint64_t start_cursor) {
  impl_->Stop();
  impl_->Start(epoch, start_cursor);
}

uint64_t DataClient::epoch() const { return impl_->epoch(); }
uint64_t DataClient::cursor() const { return impl_->cursor(); }
DataClientStats DataClient::stats() const { return impl_->stats(); }

// ---------------------------------------------------------------------------

const DatasetSplitInfo* DatasetInfoData::Find(DataSplit split) const {
  for (const DatasetSplitInfo& s : splits) {
    if (s.split == split) return &s;
  }
  return nullptr;
}

absl::StatusOr<DatasetInfoData> GetDatasetInfo(const std::vector<std::string>& servers,
                                               const std::string& dataset,
                                               uint32_t window_samples,
                                               absl::Duration timeout) {
  if (servers.empty()) return absl::InvalidArgumentError("GetDatasetInfo: no data server given");
  GetDatasetInfoRequest req;
  req.set_dataset(dataset);
  req.set_window_samples(window_samples);
  std::vector<std::string> failures;
  for (const std::string& server : servers) {
    auto stub = DataService::NewStub(MakeChannel(server, int64_t{64} << 20));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    DatasetInfo info;
    absl::Status s = FromGrpc(stub->GetDatasetInfo(&ctx, req, &info),
                              absl::StrCat("GetDatasetInfo from ", server));
    if (!s.ok()) {
      if (!IsTransient(s.code())) return s;
      LogWarning(kLog, s.ToString());
      failures.push_back(s.ToString());
      continue;
    }
    DatasetInfoData out;
    out.name = info.name();
    out.fingerprint = info.fingerprint();
    out.sample_rate = info.sample_rate();
    out.timbres.assign(info.timbres().begin(), info.timbres().end());
    for (const SplitInfo& si : info.splits()) {
      if (si.split() < TRAIN || si.split() > TEST) continue;  // a split this client predates
      DatasetSplitInfo d;
      d.split = static_cast<DataSplit>(si.split());
      d.recordings = si.recordings();
      d.pieces = si.pieces();
      d.samples = si.samples();
      d.windows_per_epoch = si.windows_per_epoch();
      out.splits.push_back(d);
    }
    out.conditioning_channels = info.conditioning_channels();
    out.server = server;
    return out;
  }
  return absl::UnavailableError(
      absl::StrCat("GetDatasetInfo: no data server answered: ", absl::StrJoin(failures, "; ")));
}

}  // namespace pianola
