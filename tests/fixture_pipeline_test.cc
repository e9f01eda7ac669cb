// The data plane end to end on real MIDI: `pianola-dataserver build` renders
// public MIDI test files with two pianos, two `pianola-dataserver serve`
// processes serve the dataset on port 0, and one epoch is streamed as ranks 0
// and 1 of 2 through real gRPC clients.
//
// Checks: the shards are disjoint and complete; both servers agree byte for
// byte; a stream resumed mid-epoch on the other server continues exactly;
// references share the timbre and not the piece; every window's conditioning
// equals the notes of its MIDI file (parsed here, independently of the index)
// inside the window's span, to the sample; the audio equals the rendered WAV.

#include <signal.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <tuple>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dataserver/audio_io.h"
#include "dataserver/dataset.h"
#include "dataserver/midi.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/data_service.grpc.pb.h"
#include "tests/test_util.h"

namespace pianola {
namespace {

constexpr uint32_t kWindow = 8000, kContext = 2000, kReference = 8000;
constexpr char kFixtures[][48] = {"jazzsoft__test-c-major-scale", "pythonmidi__mary",
                                  "noteseq__melody", "jazzsoft__test-control-40-damper",
                                  "partitura__test_anacrusis", "noteseq__example"};

std::string SourceDir() {
  const char* src = std::getenv("PIANOLA_SOURCE_DIR");
  return src != nullptr ? src : PIANOLA_SOURCE_DIR_DEFAULT;
}

struct Server {
  ChildProcess process;
  std::string address;
};

class FixturePipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(absl::StrCat(testing::TempDir(), "/fixture_pipeline_", getpid()));
    std::filesystem::remove_all(*dir_);
    std::filesystem::create_directories(*dir_ + "/midi");
    for (const char* f : kFixtures) {
      std::filesystem::copy_file(SourceDir() + "/tests/data/midi/" + f + ".mid",
                                 *dir_ + "/midi/" + f + ".mid");
    }
    const int rc = RunProgram({PIANOLA_DATASERVER_BIN, "build", "--midi", *dir_ + "/midi", "--out",
                               *dir_ + "/dataset", "--timbres",
                               SourceDir() + "/configs/two_pianos.textproto", "--threads", "2"},
                              *dir_ + "/build.log");
    if (rc != 0) {
      std::ifstream log(*dir_ + "/build.log");
      std::cerr << log.rdbuf();
    }
    ASSERT_EQ(rc, 0);
    auto ds = Dataset::Open(*dir_ + "/dataset");
    ASSERT_TRUE(ds.ok()) << ds.status();
    dataset_ = ds->release();
  }
  static void TearDownTestSuite() {
    delete dataset_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  void SetUp() override {
    ASSERT_NE(dataset_, nullptr);
    for (int i = 0; i < 2; ++i) {
      Server& s = servers_[i];
      ASSERT_TRUE(s.process.Start({PIANOLA_DATASERVER_BIN, "serve", "--dataset", *dir_ + "/dataset",
                                   "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"},
                                  absl::StrCat(*dir_, "/serve", i, ".log")));
      const std::string line = s.process.ReadLine();
      ASSERT_TRUE(absl::StartsWith(line, "listening on 127.0.0.1:")) << line;
      s.address = line.substr(strlen("listening on "));
    }
  }
  void TearDown() override {
    for (Server& s : servers_) {
      s.process.Signal(SIGTERM);
      EXPECT_EQ(s.process.Wait(absl::Seconds(30)), 0);
    }
  }

  // Streams `rank`'s shard from server `server` starting at `cursor`;
  // returns the windows, serialized, in order.
  std::vector<std::string> StreamShard(int server, uint32_t rank, uint64_t cursor) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    auto stub = DataService::NewStub(grpc::CreateCustomChannel(
        servers_[server].address, grpc::InsecureChannelCredentials(), args));
    StreamWindowsRequest req;
    req.set_dataset(dataset_->name());
    req.set_split(TRAIN);
    req.set_seed(7);
    req.set_epoch(1);
    req.set_rank(rank);
    req.set_world_size(2);
    req.set_start_cursor(cursor);
    req.set_batch_size(4);
    req.set_window_samples(kWindow);
    req.set_context_samples(kContext);
    req.set_reference_samples(kReference);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub->StreamWindows(&ctx, req);
    std::vector<std::string> out;
    WindowBatch b;
    while (reader->Read(&b)) {
      for (const Window& w : b.windows()) out.push_back(w.SerializeAsString());
    }
    grpc::Status st = reader->Finish();
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  }

  static std::string* dir_;
  static Dataset* dataset_;
  Server servers_[2];
};

std::string* FixturePipelineTest::dir_ = nullptr;
Dataset* FixturePipelineTest::dataset_ = nullptr;

Window Parse(const std::string& bytes) {
  Window w;
  EXPECT_TRUE(w.ParseFromString(bytes));
  return w;
}

// Onsets (span sample, key, velocity) of the recording's MIDI file inside
// [s0, s1), computed from the MIDI file itself rather than the index.
std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> MidiOnsets(const Dataset& ds, int r,
                                                                 int64_t s0, int64_t s1) {
  static std::map<int, std::vector<midi::Note>>* cache = new std::map<int, std::vector<midi::Note>>();
  auto it = cache->find(r);
  if (it == cache->end()) {
    auto perf = midi::ReadMidiFile(ds.directory() + "/" + ds.entry(r).midi());
    EXPECT_TRUE(perf.ok()) << perf.status();
    it = cache->emplace(r, perf.ok() ? midi::PianoNotes(*perf) : std::vector<midi::Note>()).first;
  }
  std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> out;
  for (const midi::Note& n : it->second) {
    if (n.pitch < 21 || n.pitch > 108) continue;
    const int64_t a = SecondsToSample(n.start, ds.sample_rate());
    if (a >= ds.entry(r).num_samples()) continue;
    if (a >= s0 && a < s1) out.emplace_back(a - s0, n.pitch, n.velocity);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(FixturePipelineTest, OneEpochAcrossTwoRanksAndTwoServers) {
  const Dataset& ds = *dataset_;
  // The build rendered every fixture with both pianos.
  std::set<std::string> timbres;
  for (int r = 0; r < ds.num_recordings(); ++r) timbres.insert(ds.entry(r).timbre());
  EXPECT_THAT(timbres, testing::ElementsAre("fluidr3-grand", "timgm-epiano"));

  std::vector<std::string> shard[2];
  for (uint32_t rank = 0; rank < 2; ++rank) {
    shard[rank] = StreamShard(0, rank, 0);
    // Both servers agree byte for byte.
    EXPECT_EQ(StreamShard(1, rank, 0), shard[rank]) << "rank " << rank;
  }
  // Disjoint and complete: indices i = rank (mod 2), 0..N-1 exactly once.
  std::set<uint64_t> seen;
  int64_t n = 0;
  for (uint32_t rank = 0; rank < 2; ++rank) {
    for (const std::string& bytes : shard[rank]) {
      Window w = Parse(bytes);
      EXPECT_EQ(w.index() % 2, rank);
      EXPECT_TRUE(seen.insert(w.index()).second) << "window " << w.index() << " twice";
      ++n;
    }
  }
  ASSERT_GT(n, 10);
  EXPECT_EQ(*seen.rbegin(), static_cast<uint64_t>(n - 1));

  // Resumed mid-epoch on the other server: continues exactly.
  const uint64_t cursor = shard[1].size() / 2;
  std::vector<std::string> tail(shard[1].begin() + cursor, shard[1].end());
  EXPECT_EQ(StreamShard(1, 1, cursor), tail);

  int other_piece = 0;
  for (uint32_t rank = 0; rank < 2; ++rank) {
    for (const std::string& bytes : shard[rank]) {
      Window w = Parse(bytes);
      const RecordingEntry& target = ds.entry(w.recording());
      const RecordingEntry& ref = ds.entry(w.reference_recording());
      EXPECT_EQ(target.split(), TRAIN);
      // Same timbre, and a different piece (every train piece has a partner
      // piece with the same timbre here, since all pieces have both timbres
      // and the train split has several pieces).
      EXPECT_EQ(ref.timbre(), target.timbre());
      EXPECT_EQ(w.timbre(), target.timbre());
      EXPECT_NE(ref.piece(), target.piece()) << "window " << w.index();
      other_piece += ref.piece() != target.piece();

      // Conditioning equals the MIDI file's notes inside the span, to the sample.
      const int64_t s0 = w.offset() - kContext, s1 = w.offset() + kWindow;
      const SparseConditioning& c = w.conditioning();
      std::vector<std::tuple<uint32_t, uint32_t, uint32_t>> got;
      for (int k = 0; k < c.onset_sample_size(); ++k) {
        got.emplace_back(c.onset_sample(k), c.onset_key(k), c.onset_velocity(k));
      }
      std::sort(got.begin(), got.end());
      EXPECT_EQ(got, MidiOnsets(ds, w.recording(), s0, s1)) << "window " << w.index();

      // Audio equals the rendered WAV (zeros before the recording's start).
      AudioDecodeOptions decode;
      decode.target_rate = ds.sample_rate();
      auto wav = ReadAudioFile(ds.directory() + "/" + target.audio(), decode);
      ASSERT_TRUE(wav.ok()) << wav.status();
      ASSERT_EQ(w.audio().size(), 2u * (kContext + kWindow));
      for (int64_t s = s0; s < s1; s += 997) {
        int16_t got_sample;
        std::memcpy(&got_sample, w.audio().data() + 2 * (s - s0), 2);
        EXPECT_EQ(got_sample, s < 0 ? 0 : wav->samples[s]) << "window " << w.index() << " sample " << s;
      }
    }
  }
  EXPECT_GT(other_piece, 0);
}

}  // namespace
}  // namespace pianola
