#include "dataserver/batch_producer.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

// Fills batch k with cursor k after a short, k-dependent pause so that
// several workers finish out of order.
ProducedStream::FillFn CountingFill(std::atomic<int>* fills) {
  return [fills](uint64_t k, WindowBatch* b) {
    fills->fetch_add(1);
    absl::SleepFor(absl::Microseconds((k * 7919) % 300));
    b->set_cursor(k);
    return absl::OkStatus();
  };
}

TEST(BatchProducerTest, DeliversInOrderWithManyWorkers) {
  BatchProducerPool pool(4);
  std::atomic<int> fills{0};
  auto stream = pool.AddStream(200, 8, CountingFill(&fills));
  for (uint64_t k = 0; k < 200; ++k) {
    absl::StatusOr<std::unique_ptr<WindowBatch>> b = stream->Pop();
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_NE(*b, nullptr);
    EXPECT_EQ((*b)->cursor(), k);
    stream->Release(std::move(*b));
  }
  absl::StatusOr<std::unique_ptr<WindowBatch>> end = stream->Pop();
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(*end, nullptr);
  EXPECT_EQ(fills.load(), 200);
}

TEST(BatchProducerTest, BoundedAheadOfTheConsumer) {
  BatchProducerPool pool(2);
  std::atomic<int> fills{0};
  auto stream = pool.AddStream(1000, 3, CountingFill(&fills));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(fills.load(), 3);
  ASSERT_TRUE(stream->Pop().ok());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(fills.load(), 4);
}

TEST(BatchProducerTest, StalledStreamDoesNotBlockOthers) {
  BatchProducerPool pool(1);
  std::atomic<int> stalled_fills{0}, fills{0};
  auto stalled = pool.AddStream(1000000, 2, CountingFill(&stalled_fills));
  auto busy = pool.AddStream(300, 2, CountingFill(&fills));
  for (int k = 0; k < 300; ++k) ASSERT_NE(busy->Pop().value(), nullptr);
  EXPECT_EQ(busy->Pop().value(), nullptr);
  EXPECT_EQ(stalled_fills.load(), 2);
}

TEST(BatchProducerTest, CancelStopsProductionAndFailsPops) {
  BatchProducerPool pool(2);
  std::atomic<int> fills{0};
  auto stream = pool.AddStream(1000, 4, CountingFill(&fills));
  ASSERT_TRUE(stream->Pop().ok());
  stream->Cancel();
  absl::SleepFor(absl::Milliseconds(20));
  const int after_cancel = fills.load();
  absl::StatusOr<std::unique_ptr<WindowBatch>> b = stream->Pop();
  EXPECT_EQ(b.status().code(), absl::StatusCode::kCancelled);
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(fills.load(), after_cancel);
  EXPECT_LE(after_cancel, 6);
}

TEST(BatchProducerTest, ErrorSurfacesInOrderAndStopsProduction) {
  BatchProducerPool pool(3);
  std::atomic<int> fills{0};
  auto stream = pool.AddStream(100, 4, [&](uint64_t k, WindowBatch* b) {
    fills.fetch_add(1);
    b->set_cursor(k);
    return k == 5 ? absl::ResourceExhaustedError("too big") : absl::OkStatus();
  });
  for (uint64_t k = 0; k < 5; ++k) EXPECT_EQ(stream->Pop().value()->cursor(), k);
  EXPECT_EQ(stream->Pop().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(stream->Pop().status().code(), absl::StatusCode::kResourceExhausted);
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_LE(fills.load(), 9);
}

TEST(BatchProducerTest, OnReadyAnnouncesEachNotReady) {
  BatchProducerPool pool(1);
  absl::Notification go;
  std::atomic<int> ready_calls{0};
  absl::Notification ready;
  auto stream = pool.AddStream(
      1, 1,
      [&](uint64_t k, WindowBatch* b) {
        go.WaitForNotification();
        return absl::OkStatus();
      },
      [&] {
        ready_calls.fetch_add(1);
        ready.Notify();
      });
  std::unique_ptr<WindowBatch> b;
  absl::Status s;
  EXPECT_EQ(stream->TryPop(&b, &s), ProducedStream::PopResult::kNotReady);
  go.Notify();
  ready.WaitForNotification();
  EXPECT_EQ(stream->TryPop(&b, &s), ProducedStream::PopResult::kBatch);
  EXPECT_EQ(stream->TryPop(&b, &s), ProducedStream::PopResult::kEnd);
  EXPECT_EQ(ready_calls.load(), 1);
}

TEST(BatchProducerTest, CancelWhileWaitingReportsTheWaiter) {
  BatchProducerPool pool(1);
  absl::Notification go;
  std::atomic<int> ready_calls{0};
  auto stream = pool.AddStream(
      1, 1,
      [&](uint64_t, WindowBatch*) {
        go.WaitForNotification();
        return absl::OkStatus();
      },
      [&] { ready_calls.fetch_add(1); });
  std::unique_ptr<WindowBatch> b;
  absl::Status s;
  EXPECT_EQ(stream->TryPop(&b, &s), ProducedStream::PopResult::kNotReady);
  EXPECT_TRUE(stream->Cancel());   // the consumer was waiting: it finishes itself
  EXPECT_FALSE(stream->Cancel());  // only once
  go.Notify();
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(ready_calls.load(), 0);
  EXPECT_EQ(stream->TryPop(&b, &s), ProducedStream::PopResult::kError);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
}

TEST(BatchProducerTest, ShutdownEndsWaitingConsumers) {
  auto pool = std::make_unique<BatchProducerPool>(1);
  std::atomic<int> fills{0};
  auto stream = pool->AddStream(1000, 1, CountingFill(&fills));
  ASSERT_TRUE(stream->Pop().ok());
  std::thread consumer([&] {
    // Keeps popping until the shutdown error.
    while (true) {
      absl::StatusOr<std::unique_ptr<WindowBatch>> b = stream->Pop();
      if (!b.ok()) {
        EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable);
        return;
      }
      if (*b == nullptr) {
        ADD_FAILURE() << "stream ended before the shutdown";
        return;
      }
    }
  });
  absl::SleepFor(absl::Milliseconds(10));
  pool->Shutdown();
  consumer.join();
  auto late = pool->AddStream(3, 1, CountingFill(&fills));
  EXPECT_EQ(late->Pop().status().code(), absl::StatusCode::kUnavailable);
}

TEST(BatchProducerTest, EmptyStreamEndsAtOnce) {
  BatchProducerPool pool(1);
  std::atomic<int> fills{0};
  auto stream = pool.AddStream(0, 2, CountingFill(&fills));
  EXPECT_EQ(stream->Pop().value(), nullptr);
  EXPECT_EQ(fills.load(), 0);
}

}  // namespace
}  // namespace pianola
