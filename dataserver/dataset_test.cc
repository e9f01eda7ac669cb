#include "dataserver/dataset.h"

#include <filesystem>
#include <fstream>

#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

// Two recordings of 100 and 50 samples with one note and one pedal interval each.
void MakeParts(DatasetManifest* manifest, DatasetIndex* index, std::vector<int16_t>* audio) {
  manifest->set_name("unit");
  manifest->set_sample_rate(16000);
  for (int r = 0; r < 2; ++r) {
    RecordingEntry* e = manifest->add_recordings();
    e->set_id("rec" + std::to_string(r));
    e->set_piece("piece" + std::to_string(r));
    e->set_timbre("grand");
    e->set_split(TRAIN);
    e->set_num_samples(r == 0 ? 100 : 50);
    RecordingIndex* ri = index->add_recordings();
    ri->set_audio_offset(r == 0 ? 0 : 100);
    ri->set_num_samples(e->num_samples());
    ri->add_note_start(10);
    ri->add_note_end(20);
    ri->add_note_key(60);
    ri->add_note_velocity(100);
    ri->add_pedal_start(5);
    ri->add_pedal_end(30);
  }
  audio->resize(150);
  for (int i = 0; i < 150; ++i) (*audio)[i] = static_cast<int16_t>(i * 7 - 300);
}

TEST(DatasetTest, WriteThenOpenRoundTrips) {
  std::string dir = testing::TempDir() + "/dataset_test_rt";
  std::filesystem::remove_all(dir);
  DatasetManifest manifest;
  DatasetIndex index;
  std::vector<int16_t> audio;
  MakeParts(&manifest, &index, &audio);
  auto writer = AudioCacheWriter::Create(dir);
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ(*(*writer)->Append(absl::MakeSpan(audio).subspan(0, 100)), 0);
  EXPECT_EQ(*(*writer)->Append(absl::MakeSpan(audio).subspan(100)), 100);
  ASSERT_TRUE((*writer)->Finish().ok());
  ASSERT_TRUE(WriteDatasetIndex(dir, manifest, index).ok());

  auto ds = Dataset::Open(dir);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ((*ds)->name(), "unit");
  EXPECT_EQ((*ds)->num_recordings(), 2);
  EXPECT_EQ((*ds)->audio(1).size(), 50u);
  EXPECT_EQ((*ds)->audio(1)[0], audio[100]);
  auto mem = Dataset::FromMemory(manifest, index, audio);
  ASSERT_TRUE(mem.ok()) << mem.status();
  EXPECT_EQ((*mem)->fingerprint(), (*ds)->fingerprint());

  // One changed sample changes the fingerprint.
  audio[149] += 1;
  auto changed = Dataset::FromMemory(manifest, index, audio);
  ASSERT_TRUE(changed.ok());
  EXPECT_NE((*changed)->fingerprint(), (*ds)->fingerprint());
}

TEST(DatasetTest, RefusesInconsistentParts) {
  DatasetManifest manifest;
  DatasetIndex index;
  std::vector<int16_t> audio;
  MakeParts(&manifest, &index, &audio);
  DatasetIndex bad = index;
  bad.mutable_recordings(1)->set_audio_offset(120);  // runs past the audio
  auto s = Dataset::FromMemory(manifest, bad, audio).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), testing::HasSubstr("rec1"));
  bad = index;
  bad.mutable_recordings(0)->set_note_key(0, 12);  // below the piano
  EXPECT_EQ(Dataset::FromMemory(manifest, bad, audio).status().code(), absl::StatusCode::kDataLoss);
  bad = index;
  bad.mutable_recordings(0)->add_pedal_start(10);  // overlaps the previous interval
  bad.mutable_recordings(0)->add_pedal_end(40);
  EXPECT_EQ(Dataset::FromMemory(manifest, bad, audio).status().code(), absl::StatusCode::kDataLoss);
}

TEST(DatasetTest, OpenReportsMissingAndCorruptFiles) {
  std::string dir = testing::TempDir() + "/dataset_test_bad";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(MakeDirs(dir).ok());
  EXPECT_EQ(Dataset::Open(dir).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomic(dir + "/" + kManifestFile, "name: \"x\" sample_rate: 16000").ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/" + kIndexFile, "\xff\xff\xff garbage").ok());
  auto s = Dataset::Open(dir).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(s.message(), testing::HasSubstr(kIndexFile));
  ASSERT_TRUE(WriteFileAtomic(dir + "/" + kManifestFile, "name: \"x\" bogus_field: 1").ok());
  EXPECT_THAT(Dataset::Open(dir).status().message(), testing::HasSubstr(kManifestFile));
}

TEST(DatasetTest, SplitNames) {
  EXPECT_EQ(*ParseSplit("validation"), VALIDATION);
  EXPECT_EQ(SplitName(TEST), "test");
  EXPECT_FALSE(ParseSplit("dev").ok());
}

}  // namespace
}  // namespace pianola
