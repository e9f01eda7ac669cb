#ifndef PIANOLA_DATASERVER_BATCH_PRODUCER_H_
#define PIANOLA_DATASERVER_BATCH_PRODUCER_H_

// Producer threads between window assembly and the network.
//
// A BatchProducerPool owns a fixed set of threads shared by every stream of a
// server. Each ProducedStream is a bounded, ordered, cancellable queue of one
// stream's batches: workers claim batch numbers 0, 1, 2, ... (several
// workers may fill batches of one stream at once, so a single stream can use
// every producer thread), and the consumer pops them strictly in order. At
// most `capacity` batches of a stream are claimed but not yet popped, so a
// slow client holds at most that many batches and no producer thread: its
// stream is simply not scheduled until the consumer makes room
// (backpressure). Streams with room are served round-robin, so one greedy or
// stalled stream never starves others. Cancel() stops production; batches in
// flight are dropped.
//
// Consumers either block in Pop() or, for asynchronous transports, call
// TryPop() and get `on_ready` when a batch (or the end, or an error) becomes
// available after a TryPop() that returned kNotReady. `on_ready` runs on a
// producer thread without locks held, at most once per kNotReady.
//
// WindowBatch objects are recycled: Release() returns a sent batch so the next
// fill reuses its windows' buffers.
//
// Thread-safe. The pool must outlive its streams' production; destroying the
// pool (or Shutdown()) ends every unfinished stream with Unavailable.

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/data_service.pb.h"

namespace pianola {

class BatchProducerPool;

class ProducedStream : public std::enable_shared_from_this<ProducedStream> {
 public:
  // Fills batch k into the given (recycled) message.
  using FillFn = std::function<absl::Status(uint64_t k, WindowBatch* out)>;

  enum class PopResult { kBatch, kNotReady, kEnd, kError };

  ~ProducedStream();

  // Non-blocking pop of the next batch in order. kBatch: *batch holds it.
  // kError: *status holds the failure (the stream is over). kNotReady: a
  // later on_ready call announces progress.
  PopResult TryPop(std::unique_ptr<WindowBatch>* batch, absl::Status* status);

  // Blocking pop: the next batch, nullptr at the end, or the error.
  absl::StatusOr<std::unique_ptr<WindowBatch>> Pop();

  // Returns a consumed batch for reuse.
  void Release(std::unique_ptr<WindowBatch> batch);

  // Stops production; later pops return Cancelled. Returns true when a
  // consumer was waiting for on_ready (which will then not be called).
  bool Cancel();

  uint64_t num_batches() const { return num_batches_; }

 private:
  friend class BatchProducerPool;
  struct Slot {
    bool filled = false;
    absl::Status status;
    std::unique_ptr<WindowBatch> batch;
  };

  ProducedStream(BatchProducerPool* pool, uint64_t num_batches, int capacity, FillFn fill,
                 std::function<void()> on_ready);
  // Worker side: claims the next batch if there is room (returns false if
  // none) and reports whether the stream should stay scheduled.
  bool Claim(uint64_t* k, std::unique_ptr<WindowBatch>* batch, bool* reschedule);
  // Worker side: stores a filled batch; returns true if on_ready must be called.
  bool Deliver(uint64_t k, absl::Status status, std::unique_ptr<WindowBatch> batch);
  // The pool is shutting down: end the stream.
  bool Abort(absl::Status status);
  bool HasRoomLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Schedules with the pool if it has room and is not scheduled; call unlocked.
  void MaybeSchedule();

  BatchProducerPool* const pool_;
  const uint64_t num_batches_;
  const int capacity_;
  const FillFn fill_;
  const std::function<void()> on_ready_;

  mutable absl::Mutex mu_;
  uint64_t next_claim_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_pop_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);  // ring of capacity_, by k % capacity_
  std::vector<std::unique_ptr<WindowBatch>> free_ ABSL_GUARDED_BY(mu_);
  absl::Status terminal_ ABSL_GUARDED_BY(mu_);    // cancelled / aborted / failed
  bool scheduled_ ABSL_GUARDED_BY(mu_) = false;   // in the pool's run queue
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;     // consumer awaits on_ready
};

class BatchProducerPool {
 public:
  explicit BatchProducerPool(int threads);
  ~BatchProducerPool();  // Shutdown()
  BatchProducerPool(const BatchProducerPool&) = delete;
  BatchProducerPool& operator=(const BatchProducerPool&) = delete;

  // A stream of `num_batches` batches, at most `capacity` (>= 1) ahead of the
  // consumer. `on_ready` may be empty (blocking Pop() consumers).
  std::shared_ptr<ProducedStream> AddStream(uint64_t num_batches, int capacity,
                                            ProducedStream::FillFn fill,
                                            std::function<void()> on_ready = nullptr);

  // Stops the threads after their current batch and ends unfinished streams
  // with Unavailable. Idempotent.
  void Shutdown();

 private:
  friend class ProducedStream;
  void Schedule(std::shared_ptr<ProducedStream> stream);
  void WorkerLoop();

  absl::Mutex mu_;
  std::deque<std::weak_ptr<ProducedStream>> run_queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::weak_ptr<ProducedStream>> all_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace pianola

#endif  // PIANOLA_DATASERVER_BATCH_PRODUCER_H_
