#include "trainer/checkpoint_file.h"

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string TempDir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) /
                       absl::StrCat("ckptfile_", name, "_", ::getpid());
  (void)RemoveTree(dir);
  fs::create_directories(dir);
  return dir.string();
}

CheckpointContents Sample(int64_t step) {
  CheckpointContents c;
  c.step = step;
  c.data_epoch = 3;
  c.data_cursor = 17 + step;
  c.config_bytes = "config\0bytes";
  c.payload = std::string(1000, 'x') + std::to_string(step);
  return c;
}

TEST(CheckpointFileTest, RoundTrip) {
  const std::string dir = TempDir("roundtrip");
  const std::string path = dir + "/a.pt";
  ASSERT_TRUE(WriteCheckpointFile(path, Sample(42)).ok());
  absl::StatusOr<CheckpointContents> c = ReadCheckpointFile(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->step, 42);
  EXPECT_EQ(c->data_epoch, 3u);
  EXPECT_EQ(c->data_cursor, 59u);
  EXPECT_EQ(c->config_bytes, Sample(42).config_bytes);
  EXPECT_EQ(c->payload, Sample(42).payload);
  // No temporary files are left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(CheckpointFileTest, EveryFlippedByteIsDataLossNamingTheFile) {
  const std::string bytes = EncodeCheckpoint(Sample(5));
  // Every byte of the header and a stride through config and payload.
  for (size_t i = 0; i < bytes.size(); i += (i < 80 ? 1 : 97)) {
    std::string bad = bytes;
    bad[i] ^= 0x20;
    absl::StatusOr<CheckpointContents> c = DecodeCheckpoint(bad, "run/ckpt-5.pt");
    ASSERT_FALSE(c.ok()) << "flipped byte " << i;
    if (i >= 8 && i < 12) {
      EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition) << i;  // version
    } else {
      EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss) << i << ": " << c.status();
    }
    EXPECT_THAT(std::string(c.status().message()), HasSubstr("run/ckpt-5.pt"));
  }
}

TEST(CheckpointFileTest, TruncatedOrExtendedIsDataLoss) {
  const std::string bytes = EncodeCheckpoint(Sample(5));
  for (size_t len : {size_t{0}, size_t{10}, size_t{63}, size_t{64}, size_t{70},
                     bytes.size() - 1}) {
    absl::StatusOr<CheckpointContents> c = DecodeCheckpoint(bytes.substr(0, len), "x.pt");
    EXPECT_EQ(c.status().code(), absl::StatusCode::kDataLoss) << len;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr("x.pt"));
  }
  absl::StatusOr<CheckpointContents> longer = DecodeCheckpoint(bytes + "zz", "x.pt");
  EXPECT_EQ(longer.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(longer.status().message()), HasSubstr("trailing"));
  absl::StatusOr<CheckpointContents> magic = DecodeCheckpoint(std::string(100, 'P'), "x.pt");
  EXPECT_THAT(std::string(magic.status().message()), HasSubstr("magic"));
}

TEST(CheckpointFileTest, CommitWritesLatestAndKeepsTheNewest) {
  const std::string out = TempDir("commit");
  for (int64_t step : {10, 20, 30, 40}) {
    absl::StatusOr<std::string> path = CommitCheckpoint(out, Sample(step), /*keep_last=*/2);
    ASSERT_TRUE(path.ok()) << path.status();
    EXPECT_EQ(*path, CheckpointPath(out, step));
  }
  absl::StatusOr<std::vector<CheckpointEntry>> all = ListCheckpoints(out);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].step, 30);
  EXPECT_EQ((*all)[1].step, 40);
  EXPECT_EQ(*ReadFile(CheckpointDir(out) + "/latest"), "ckpt-40.pt\n");
  // C may be the run directory, its checkpoints/ directory, or a file.
  EXPECT_EQ(*ResolveCheckpoint(out), CheckpointPath(out, 40));
  EXPECT_EQ(*ResolveCheckpoint(CheckpointDir(out)), CheckpointPath(out, 40));
  EXPECT_EQ(*ResolveCheckpoint(CheckpointDir(out) + "/"), CheckpointPath(out, 40));
  EXPECT_EQ(*ResolveCheckpoint(CheckpointPath(out, 30)), CheckpointPath(out, 30));
  EXPECT_TRUE(HasCheckpoints(out));
  // keep_last 0 keeps everything.
  ASSERT_TRUE(CommitCheckpoint(out, Sample(50), 0).ok());
  EXPECT_EQ(ListCheckpoints(out)->size(), 3u);
}

TEST(CheckpointFileTest, ResolveWithoutLatestUsesTheNewestFile) {
  const std::string out = TempDir("nolatest");
  ASSERT_TRUE(CommitCheckpoint(out, Sample(7), 0).ok());
  ASSERT_TRUE(CommitCheckpoint(out, Sample(100), 0).ok());
  ASSERT_TRUE(CommitCheckpoint(out, Sample(9), 0).ok());  // latest names ckpt-9
  EXPECT_EQ(*ResolveCheckpoint(out), CheckpointPath(out, 9));
  fs::remove(CheckpointDir(out) + "/latest");
  EXPECT_EQ(*ResolveCheckpoint(out), CheckpointPath(out, 100));  // numeric, not lexical
  // `latest` naming a missing file falls back to the newest present.
  ASSERT_TRUE(WriteFileAtomic(CheckpointDir(out) + "/latest", "ckpt-555.pt\n").ok());
  EXPECT_EQ(*ResolveCheckpoint(out), CheckpointPath(out, 100));
  // A `latest` with garbage is DataLoss.
  ASSERT_TRUE(WriteFileAtomic(CheckpointDir(out) + "/latest", "../../etc/passwd\n").ok());
  EXPECT_EQ(ResolveCheckpoint(out).status().code(), absl::StatusCode::kDataLoss);
}

TEST(CheckpointFileTest, MissingIsNotFound) {
  const std::string out = TempDir("empty");
  EXPECT_FALSE(HasCheckpoints(out));
  EXPECT_TRUE(ListCheckpoints(out)->empty());
  EXPECT_EQ(ResolveCheckpoint(out).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ResolveCheckpoint(out + "/nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadCheckpointFile(out + "/nope.pt").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pianola
