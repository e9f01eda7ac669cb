#include "dataserver/batch_producer.h"

#include <utility>

namespace pianola {

ProducedStream::ProducedStream(BatchProducerPool* pool, uint64_t num_batches, int capacity,
                               FillFn fill, std::function<void()> on_ready)
    : pool_(pool),
      num_batches_(num_batches),
      capacity_(capacity < 1 ? 1 : capacity),
      fill_(std::move(fill)),
      on_ready_(std::move(on_ready)) {
  absl::MutexLock lock(&mu_);
  slots_.resize(capacity_);
}

ProducedStream::~ProducedStream() = default;

bool ProducedStream::HasRoomLocked() const {
  return terminal_.ok() && next_claim_ < num_batches_ &&
         next_claim_ - next_pop_ < static_cast<uint64_t>(capacity_);
}

bool ProducedStream::ReadyLocked() const {
  return !terminal_.ok() || next_pop_ >= num_batches_ || slots_[next_pop_ % capacity_].filled;
}

void ProducedStream::MaybeSchedule() {
  {
    absl::MutexLock lock(&mu_);
    if (scheduled_ || !HasRoomLocked()) return;
    scheduled_ = true;
  }
  pool_->Schedule(shared_from_this());
}

bool ProducedStream::Claim(uint64_t* k, std::unique_ptr<WindowBatch>* batch, bool* reschedule) {
  absl::MutexLock lock(&mu_);
  scheduled_ = false;
  if (!HasRoomLocked()) return false;
  *k = next_claim_++;
  if (!free_.empty()) {
    *batch = std::move(free_.back());
    free_.pop_back();
  } else {
    *batch = std::make_unique<WindowBatch>();
  }
  *reschedule = HasRoomLocked();
  if (*reschedule) scheduled_ = true;
  return true;
}

bool ProducedStream::Deliver(uint64_t k, absl::Status status, std::unique_ptr<WindowBatch> batch) {
  absl::MutexLock lock(&mu_);
  if (!terminal_.ok()) {
    if (free_.size() <= static_cast<size_t>(capacity_)) free_.push_back(std::move(batch));
    return false;
  }
  if (!status.ok()) {
    // Claim no further batches; the error surfaces when the consumer reaches k.
    next_claim_ = num_batches_;
  }
  Slot& slot = slots_[k % capacity_];
  slot.filled = true;
  slot.status = std::move(status);
  slot.batch = std::move(batch);
  if (waiting_ && ReadyLocked()) {
    waiting_ = false;
    return true;
  }
  return false;
}

bool ProducedStream::Abort(absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (terminal_.ok()) terminal_ = std::move(status);
  const bool was_waiting = waiting_;
  waiting_ = false;
  return was_waiting;
}

bool ProducedStream::Cancel() { return Abort(absl::CancelledError("stream cancelled")); }

ProducedStream::PopResult ProducedStream::TryPop(std::unique_ptr<WindowBatch>* batch,
                                                 absl::Status* status) {
  {
    absl::MutexLock lock(&mu_);
    if (!terminal_.ok()) {
      *status = terminal_;
      return PopResult::kError;
    }
    if (next_pop_ >= num_batches_) return PopResult::kEnd;
    Slot& slot = slots_[next_pop_ % capacity_];
    if (!slot.filled) {
      waiting_ = true;
      return PopResult::kNotReady;
    }
    if (!slot.status.ok()) {
      terminal_ = slot.status;
      *status = slot.status;
      return PopResult::kError;
    }
    *batch = std::move(slot.batch);
    slot.filled = false;
    ++next_pop_;
  }
  MaybeSchedule();
  return PopResult::kBatch;
}

absl::StatusOr<std::unique_ptr<WindowBatch>> ProducedStream::Pop() {
  {
    auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return ReadyLocked(); };
    absl::MutexLock lock(&mu_, absl::Condition(&ready));
  }
  std::unique_ptr<WindowBatch> batch;
  absl::Status status;
  switch (TryPop(&batch, &status)) {
    case PopResult::kBatch:
      return batch;
    case PopResult::kEnd:
      return nullptr;
    case PopResult::kError:
      return status;
    case PopResult::kNotReady:
      break;
  }
  return absl::InternalError("ProducedStream::Pop: not ready after wait (two consumers?)");
}

void ProducedStream::Release(std::unique_ptr<WindowBatch> batch) {
  if (batch == nullptr) return;
  absl::MutexLock lock(&mu_);
  if (free_.size() <= static_cast<size_t>(capacity_)) free_.push_back(std::move(batch));
}

BatchProducerPool::BatchProducerPool(int threads) {
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { WorkerLoop(); });
}

BatchProducerPool::~BatchProducerPool() { Shutdown(); }

std::shared_ptr<ProducedStream> BatchProducerPool::AddStream(uint64_t num_batches, int capacity,
                                                             ProducedStream::FillFn fill,
                                                             std::function<void()> on_ready) {
  std::shared_ptr<ProducedStream> stream(
      new ProducedStream(this, num_batches, capacity, std::move(fill), std::move(on_ready)));
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    if (!stopping) {
      // Forget streams that are gone, so the list stays as long as the live ones.
      std::erase_if(all_, [](const std::weak_ptr<ProducedStream>& w) { return w.expired(); });
      all_.push_back(stream);
    }
  }
  if (stopping) {
    stream->Abort(absl::UnavailableError("server shutting down"));
  } else {
    stream->MaybeSchedule();
  }
  return stream;
}

void BatchProducerPool::Schedule(std::shared_ptr<ProducedStream> stream) {
  absl::MutexLock lock(&mu_);
  run_queue_.push_back(std::move(stream));
}

void BatchProducerPool::WorkerLoop() {
  while (true) {
    std::shared_ptr<ProducedStream> stream;
    {
      auto has_work = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || !run_queue_.empty();
      };
      absl::MutexLock lock(&mu_, absl::Condition(&has_work));
      if (stopping_) return;
      stream = run_queue_.front().lock();
      run_queue_.pop_front();
    }
    if (stream == nullptr) continue;
    uint64_t k = 0;
    std::unique_ptr<WindowBatch> batch;
    bool reschedule = false;
    if (!stream->Claim(&k, &batch, &reschedule)) continue;
    // Other workers may fill this stream's next batches meanwhile.
    if (reschedule) Schedule(stream);
    absl::Status status = stream->fill_(k, batch.get());
    if (stream->Deliver(k, std::move(status), std::move(batch)) && stream->on_ready_) {
      stream->on_ready_();
    }
  }
}

void BatchProducerPool::Shutdown() {
  std::vector<std::weak_ptr<ProducedStream>> streams;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    streams = all_;
    run_queue_.clear();
  }
  for (std::thread& t : threads_) t.join();
  for (const std::weak_ptr<ProducedStream>& w : streams) {
    std::shared_ptr<ProducedStream> s = w.lock();
    if (s != nullptr && s->Abort(absl::UnavailableError("server shutting down")) && s->on_ready_) {
      s->on_ready_();
    }
  }
}

}  // namespace pianola
