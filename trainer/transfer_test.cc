// Style transfer on real checkpoints of a tiny model (freshly initialized and
// saved through the training checkpoint code): output length, PNGs, takes,
// determinism for a fixed seed, chunked parallel rendering, EMA weights, and
// one test per bad-input class.

#include "trainer/transfer.h"

#include <ftw.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "dataserver/audio_io.h"
#include "dataserver/midi.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/autoencoder.h"
#include "trainer/checkpoint.h"
#include "trainer/checkpoint_file.h"
#include "trainer/experiment_config.h"

namespace pianola {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string SourceDir() {
  const char* src = std::getenv("PIANOLA_SOURCE_DIR");
  return src != nullptr ? src : PIANOLA_SOURCE_DIR_DEFAULT;
}
std::string Midi(const std::string& name) { return SourceDir() + "/tests/data/midi/" + name; }

std::string ConfigText(absl::string_view decoder, bool ema) {
  return absl::StrCat(R"(name: "transfer_test"
model { preset: "tiny" decoder_kind: ")", decoder, R"(" }
data { servers: "localhost:1" window_samples: 1024 reference_samples: 4096 batch_size: 2 }
steps: 10
)", ema ? "ema { enabled: true decay: 0.9 }\n" : "");
}

// Writes a checkpoint of a freshly initialized model; with `ema`, the EMA
// weights are the parameters scaled by 0.5, so using them changes the output.
std::string MakeCheckpoint(const std::string& run_dir, absl::string_view decoder, bool ema,
                           uint64_t seed) {
  absl::StatusOr<TrainOptions> o = ParseExperimentConfig(ConfigText(decoder, ema), "test.textproto");
  EXPECT_TRUE(o.ok()) << o.status();
  torch::manual_seed(seed);
  Autoencoder model = *MakeAutoencoder(o->model);
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-3));
  std::vector<torch::Tensor> ema_weights;
  for (const torch::Tensor& p : model->parameters()) ema_weights.push_back(p.detach() * 0.5);
  CheckpointContents meta;
  meta.step = 3;
  meta.config_bytes = o->config_bytes;
  absl::StatusOr<std::string> path = SaveCheckpoint(
      run_dir, 0, meta,
      {.model = model.get(), .optimizer = &adam, .ema = ema ? &ema_weights : nullptr});
  EXPECT_TRUE(path.ok()) << path.status();
  return path.ok() ? *path : "";
}

// A 1.2 s reference at 22.05 kHz (resampled to 16 kHz on reading): decaying
// harmonic tones.
std::string MakeReference(const std::string& dir) {
  const int rate = 22050;
  std::vector<int16_t> pcm(rate * 6 / 5);
  for (size_t i = 0; i < pcm.size(); ++i) {
    const double t = static_cast<double>(i % (rate / 3)) / rate;
    const double f = 220.0 * (1 + (i / (rate / 3)) % 3);
    double x = 0;
    for (int h = 1; h <= 4; ++h) x += std::sin(2 * std::numbers::pi * f * h * t) / h;
    pcm[i] = FloatToInt16(static_cast<float>(0.3 * x * std::exp(-4 * t)));
  }
  const std::string path = dir + "/reference.wav";
  EXPECT_TRUE(WriteWavFile(path, pcm, rate).ok());
  return path;
}

std::vector<int16_t> ReadWav(const std::string& path) {
  AudioDecodeOptions keep;
  keep.target_rate = 0;
  absl::StatusOr<DecodedAudio> a = ReadAudioFile(path, keep);
  EXPECT_TRUE(a.ok()) << a.status();
  if (!a.ok()) return {};
  EXPECT_EQ(a->sample_rate, 16000);
  return a->samples;
}

// Signature and IHDR of a PNG file: {width, height}.
std::pair<uint32_t, uint32_t> PngSize(const std::string& path) {
  absl::StatusOr<std::string> b = ReadFile(path);
  EXPECT_TRUE(b.ok()) << b.status();
  if (!b.ok() || b->size() < 33) return {0, 0};
  EXPECT_EQ(b->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(b->substr(12, 4), "IHDR");
  auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>((*b)[at + i]);
    return v;
  };
  return {be32(16), be32(20)};
}

class TransferTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    torch::set_num_threads(2);
    dir_ = new std::string(
        (fs::path(::testing::TempDir()) / absl::StrCat("transfer_test_", ::getpid())).string());
    (void)RemoveTree(*dir_);
    fs::create_directories(*dir_);
    ar_ = new std::string(MakeCheckpoint(*dir_ + "/ar_run", "autoregressive", true, 1));
    parallel_ = new std::string(MakeCheckpoint(*dir_ + "/par_run", "parallel", false, 2));
    reference_ = new std::string(MakeReference(*dir_));
  }
  static void TearDownTestSuite() {
    (void)RemoveTree(*dir_);
    delete dir_;
    delete ar_;
    delete parallel_;
    delete reference_;
  }

  TransferOptions Options(const std::string& checkpoint, const std::string& out_name) {
    TransferOptions o;
    o.checkpoint = checkpoint;
    o.reference = *reference_;
    o.midi = Midi("noteseq__melody.mid");
    o.out = *dir_ + "/" + out_name;
    o.seconds = 0.25;
    o.device = "cpu";
    o.seed = 7;
    o.progress = false;
    o.spectrogram.n_fft = 256;
    return o;
  }

  static std::string* dir_;
  static std::string* ar_;
  static std::string* parallel_;
  static std::string* reference_;
};
std::string* TransferTest::dir_ = nullptr;
std::string* TransferTest::ar_ = nullptr;
std::string* TransferTest::parallel_ = nullptr;
std::string* TransferTest::reference_ = nullptr;

TEST_F(TransferTest, AutoregressiveWritesRequestedLengthAndSpectrograms) {
  absl::StatusOr<TransferResult> r = RunTransfer(Options(*ar_, "ar.wav"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->decoder, "autoregressive");
  EXPECT_EQ(r->checkpoint_path, *ar_);
  EXPECT_EQ(r->checkpoint_step, 3);
  EXPECT_TRUE(r->used_ema);
  EXPECT_EQ(r->samples, 4000);
  EXPECT_GT(r->real_time_factor, 0);
  EXPECT_GT(r->notes, 0);
  // 1.2 s at 16 kHz holds 4 clips of the trained 4096 samples.
  EXPECT_EQ(r->reference_crops, 4);
  ASSERT_THAT(r->wav_paths, testing::ElementsAre(*dir_ + "/ar.wav"));
  EXPECT_EQ(ReadWav(r->wav_paths[0]).size(), 4000u);
  ASSERT_THAT(r->png_paths, testing::ElementsAre(*dir_ + "/ar.png"));
  EXPECT_EQ(r->reference_png, *dir_ + "/ar.reference.png");
  // n_fft 256: 129 rows; hop n_fft / 16 = 16: 1 + 4000 / 16 columns.
  EXPECT_EQ(PngSize(r->png_paths[0]), std::make_pair(251u, 129u));
  EXPECT_EQ(PngSize(r->reference_png).second, 129u);
}

TEST_F(TransferTest, SameSeedSameAudioOtherSeedOtherAudio) {
  TransferOptions o = Options(*ar_, "seed_a.wav");
  ASSERT_TRUE(RunTransfer(o).ok());
  o.out = *dir_ + "/seed_b.wav";
  ASSERT_TRUE(RunTransfer(o).ok());
  o.out = *dir_ + "/seed_c.wav";
  o.seed = 8;
  ASSERT_TRUE(RunTransfer(o).ok());
  const std::vector<int16_t> a = ReadWav(*dir_ + "/seed_a.wav");
  EXPECT_EQ(a, ReadWav(*dir_ + "/seed_b.wav"));
  EXPECT_NE(a, ReadWav(*dir_ + "/seed_c.wav"));
}

TEST_F(TransferTest, TakesAreBatchedAndDiffer) {
  TransferOptions o = Options(*ar_, "takes.wav");
  o.batch = 2;
  o.seconds = 0.1;
  absl::StatusOr<TransferResult> r = RunTransfer(o);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_THAT(r->wav_paths,
              testing::ElementsAre(*dir_ + "/takes.wav", *dir_ + "/takes.take2.wav"));
  EXPECT_THAT(r->png_paths,
              testing::ElementsAre(*dir_ + "/takes.png", *dir_ + "/takes.take2.png"));
  const std::vector<int16_t> a = ReadWav(r->wav_paths[0]), b = ReadWav(r->wav_paths[1]);
  EXPECT_EQ(a.size(), 1600u);
  EXPECT_EQ(b.size(), 1600u);
  EXPECT_NE(a, b);
}

TEST_F(TransferTest, EmaWeightsAreUsedUnlessAskedNotTo) {
  TransferOptions o = Options(*ar_, "ema.wav");
  o.temperature = 0;  // greedy: the output depends on the weights only
  o.seconds = 0.05;
  absl::StatusOr<TransferResult> with = RunTransfer(o);
  ASSERT_TRUE(with.ok()) << with.status();
  o.out = *dir_ + "/raw.wav";
  o.use_ema = false;
  absl::StatusOr<TransferResult> without = RunTransfer(o);
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_TRUE(with->used_ema);
  EXPECT_FALSE(without->used_ema);
  EXPECT_NE(ReadWav(*dir_ + "/ema.wav"), ReadWav(*dir_ + "/raw.wav"));
}

TEST_F(TransferTest, ParallelChunksMatchOnePass) {
  TransferOptions o = Options(*dir_ + "/par_run", "par_one.wav");  // a run directory
  o.seconds = 0.3;
  o.chunk_seconds = 0;
  absl::StatusOr<TransferResult> one = RunTransfer(o);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->decoder, "parallel");
  EXPECT_EQ(one->checkpoint_path, *parallel_);
  EXPECT_FALSE(one->used_ema);  // the run kept none
  o.out = *dir_ + "/par_chunks.wav";
  o.chunk_seconds = 0.05;  // 6 chunks of 800 samples
  ASSERT_TRUE(RunTransfer(o).ok());
  const std::vector<int16_t> a = ReadWav(*dir_ + "/par_one.wav");
  const std::vector<int16_t> b = ReadWav(*dir_ + "/par_chunks.wav");
  ASSERT_EQ(a.size(), 4800u);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_NEAR(a[i], b[i], 1) << "sample " << i;  // float rounding at most one LSB
  }
}

// Where a GPU exists (scripts/device_check.sh): both decoders render on it;
// the parallel decoder's noise comes from the same seeded CPU generator, so
// its output is the CPU's up to float rounding (TF32 may be on: a few LSB).
TEST_F(TransferTest, RendersOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no GPU";
  TransferOptions o = Options(*ar_, "cuda_ar.wav");
  o.device = "cuda";
  absl::StatusOr<TransferResult> ar = RunTransfer(o);
  ASSERT_TRUE(ar.ok()) << ar.status();
  EXPECT_EQ(ar->device, "cuda:0");
  EXPECT_EQ(ReadWav(ar->wav_paths[0]).size(), 4000u);
  o = Options(*parallel_, "cuda_par.wav");
  o.seconds = 0.3;
  o.device = "cuda";
  ASSERT_TRUE(RunTransfer(o).ok());
  o.out = *dir_ + "/cpu_par.wav";
  o.device = "cpu";
  ASSERT_TRUE(RunTransfer(o).ok());
  const std::vector<int16_t> gpu = ReadWav(*dir_ + "/cuda_par.wav");
  const std::vector<int16_t> cpu = ReadWav(*dir_ + "/cpu_par.wav");
  ASSERT_EQ(gpu.size(), 4800u);
  ASSERT_EQ(cpu.size(), gpu.size());
  for (size_t i = 0; i < gpu.size(); ++i) ASSERT_NEAR(gpu[i], cpu[i], 8) << "sample " << i;
}

TEST_F(TransferTest, DefaultLengthIsThePieceAndATail) {
  TransferOptions o = Options(*parallel_, "default_len.wav");
  o.seconds = 0;
  o.tail_seconds = 0.5;
  absl::StatusOr<TransferResult> r = RunTransfer(o);
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<midi::Performance> perf = midi::ReadMidiFile(o.midi);
  ASSERT_TRUE(perf.ok());
  const int64_t expected = std::llround((midi::PianoEndSeconds(*perf) + 0.5) * 16000);
  EXPECT_EQ(r->samples, expected);
  EXPECT_EQ(static_cast<int64_t>(ReadWav(r->wav_paths[0]).size()), expected);
}

// A format-0 MIDI file at 96 ticks per quarter, 120 bpm (a tick is 1/192 s):
// one middle C held for `ticks`, or no note at all.
std::string OneNoteMidi(uint32_t ticks, bool note = true) {
  std::string track;
  auto vlq = [&](uint32_t v) {
    std::string out(1, static_cast<char>(v & 0x7f));
    while ((v >>= 7) != 0) out.insert(out.begin(), static_cast<char>(0x80 | (v & 0x7f)));
    track += out;
  };
  if (note) {
    vlq(0);
    track += "\x90\x3c\x40";
    vlq(ticks);
    track += "\x80\x3c\x40";
  }
  vlq(0);
  track += std::string("\xff\x2f\x00", 3);
  auto be32 = [](size_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  return "MThd" + be32(6) + std::string("\0\0\0\x01\0\x60", 6) + "MTrk" + be32(track.size()) +
         track;
}

// The length is checked before any work: a MIDI file whose piano part runs
// past the hour a transfer may render (without --seconds), and takes that
// together exceed it, are refused with what to do instead.
TEST_F(TransferTest, LengthsPastTheLimitAreRefusedBeforeWork) {
  const std::string long_midi = *dir_ + "/two_hours.mid";
  ASSERT_TRUE(WriteFileAtomic(long_midi, OneNoteMidi(192 * 7200)).ok());
  TransferOptions o = Options(*parallel_, "long.wav");
  o.midi = long_midi;
  o.seconds = 0;
  absl::Status s = RunTransfer(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("two_hours.mid: the piano part lasts 7201 s"));
  EXPECT_THAT(s.message(), HasSubstr("--seconds N"));
  // Its first second renders.
  o.seconds = 1;
  absl::StatusOr<TransferResult> r = RunTransfer(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->samples, 16000);
  o.seconds = 1000;
  o.batch = 4;
  s = RunTransfer(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--batch 4 takes of 1000 s make 4000 s"));
}

TEST_F(TransferTest, MidiWithoutNotesSaysSo) {
  const std::string empty = *dir_ + "/no_notes.mid";
  ASSERT_TRUE(WriteFileAtomic(empty, OneNoteMidi(0, /*note=*/false)).ok());
  TransferOptions o = Options(*ar_, "x.wav");
  o.midi = empty;
  absl::Status s = RunTransfer(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("no_notes.mid: no notes"));
  EXPECT_THAT(s.message(), Not(HasSubstr("drum")));
}

TEST_F(TransferTest, OutputPathsForTakes) {
  EXPECT_EQ(TakePath("a/b/song.wav", 1), "a/b/song.wav");
  EXPECT_EQ(TakePath("a/b/song.wav", 3), "a/b/song.take3.wav");
  EXPECT_EQ(TakePath("song.wav", 1, ".png"), "song.png");
  EXPECT_EQ(TakePath("song.wav", 2, ".png"), "song.take2.png");
  EXPECT_EQ(ReferencePngPath("x/song.wav"), "x/song.reference.png");
}

// --- bad input: each class names the file at fault ---------------------------

TEST_F(TransferTest, MissingCheckpoint) {
  absl::StatusOr<TransferResult> r = RunTransfer(Options(*dir_ + "/no_such_run", "x.wav"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("no_such_run"));
  fs::create_directories(*dir_ + "/empty_run");
  r = RunTransfer(Options(*dir_ + "/empty_run", "x.wav"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("empty_run"));
}

TEST_F(TransferTest, CorruptCheckpoint) {
  absl::StatusOr<std::string> bytes = ReadFile(*ar_);
  ASSERT_TRUE(bytes.ok());
  std::string flipped = *bytes;
  flipped[flipped.size() / 2] ^= 0x5a;
  const std::string path = *dir_ + "/corrupt.pt";
  ASSERT_TRUE(WriteFileAtomic(path, flipped).ok());
  absl::StatusOr<TransferResult> r = RunTransfer(Options(path, "x.wav"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr("corrupt.pt"));
  const std::string truncated = *dir_ + "/truncated.pt";
  ASSERT_TRUE(WriteFileAtomic(truncated, bytes->substr(0, bytes->size() - 100)).ok());
  r = RunTransfer(Options(truncated, "x.wav"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(r.status().message(), HasSubstr("truncated.pt"));
}

TEST_F(TransferTest, UnreadableOrShortReference) {
  TransferOptions o = Options(*ar_, "x.wav");
  o.reference = *dir_ + "/not_audio.wav";
  { std::ofstream(o.reference) << "this is not audio at all, just text pretending to be a wav"; }
  absl::StatusOr<TransferResult> r = RunTransfer(o);
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.status().code() == absl::StatusCode::kInvalidArgument ||
              r.status().code() == absl::StatusCode::kDataLoss)
      << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("not_audio.wav"));

  o.reference = *dir_ + "/missing_reference.wav";
  r = RunTransfer(o);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("missing_reference.wav"));

  // 300 frames at 44.1 kHz stereo: 109 samples at 16 kHz, under the mel
  // encoder's n_fft / 2 + 1 = 129.
  o.reference = SourceDir() + "/tests/data/audio/stereo44k_pcm16.wav";
  r = RunTransfer(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("stereo44k_pcm16.wav"));
  EXPECT_THAT(r.status().message(), HasSubstr("timbre encoder needs"));
}

// Input the transfer can use but that is likely a mistake renders with a
// warning: a silent reference (its timbre vector says nothing) and a
// temperature given to the parallel decoder, which does not sample.
TEST_F(TransferTest, SilentReferenceAndUnusedTemperatureWarn) {
  TransferOptions o = Options(*parallel_, "warned.wav");
  o.reference = *dir_ + "/silence.wav";
  ASSERT_TRUE(WriteWavFile(o.reference, std::vector<int16_t>(16000, 0), 16000).ok());
  o.temperature = 0.5;
  ::testing::internal::CaptureStderr();
  absl::StatusOr<TransferResult> r = RunTransfer(o);
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(log, HasSubstr("silence.wav: the reference is silent"));
  EXPECT_THAT(log, HasSubstr("--temperature 0.5 is ignored"));

  o = Options(*parallel_, "quiet.wav");  // an audible reference, the default temperature
  ::testing::internal::CaptureStderr();
  r = RunTransfer(o);
  const std::string quiet = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(quiet, Not(HasSubstr("silent")));
  EXPECT_THAT(quiet, Not(HasSubstr("ignored")));
}

TEST_F(TransferTest, BadMidi) {
  TransferOptions o = Options(*ar_, "x.wav");
  for (const char* bad : {"bad/midiasm__reference_truncated.mid",
                          "bad/jazzsoft__test-not-a-midi-file.mid",
                          "bad/jazzsoft__test-empty-file.mid"}) {
    o.midi = Midi(bad);
    absl::StatusOr<TransferResult> r = RunTransfer(o);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_TRUE(r.status().code() == absl::StatusCode::kInvalidArgument ||
                r.status().code() == absl::StatusCode::kDataLoss)
        << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(fs::path(bad).filename().string()));
  }
  o.midi = *dir_ + "/missing.mid";
  absl::StatusOr<TransferResult> r = RunTransfer(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("missing.mid"));
}

TEST_F(TransferTest, BadOptions) {
  TransferOptions o = Options(*ar_, "x.wav");
  o.batch = 0;
  EXPECT_THAT(RunTransfer(o).status().message(), HasSubstr("--batch"));
  o = Options(*ar_, "no_such_dir/x.wav");
  EXPECT_EQ(RunTransfer(o).status().code(), absl::StatusCode::kNotFound);
  o = Options(*ar_, "x.wav");
  o.device = "tpu";
  EXPECT_THAT(RunTransfer(o).status().message(), HasSubstr("--device"));
  o = Options(*ar_, "x.wav");
  o.seconds = 1e-6;
  EXPECT_THAT(RunTransfer(o).status().message(), HasSubstr("--seconds"));
  if (!torch::cuda::is_available()) {
    o = Options(*ar_, "x.wav");
    o.device = "cuda";
    EXPECT_EQ(RunTransfer(o).status().code(), absl::StatusCode::kFailedPrecondition);
  }
}

// Outputs are checked before any work: none may replace an input, another
// output, or something that is not a file.
TEST_F(TransferTest, OutputsThatWouldReplaceInputsOrEachOtherAreRefusedUpFront) {
  const std::string ref_copy = *dir_ + "/ref_copy.wav";
  std::filesystem::copy_file(*reference_, ref_copy,
                             std::filesystem::copy_options::overwrite_existing);
  const std::string ref_bytes = ReadFile(ref_copy).value_or("");
  TransferOptions o = Options(*ar_, "ref_copy.wav");
  o.reference = ref_copy;
  absl::Status s = RunTransfer(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("would overwrite the input --reference"));
  EXPECT_EQ(ReadFile(ref_copy).value_or(""), ref_bytes);
  // Through another spelling of the same path.
  o.out = *dir_ + "/./ref_copy.wav";
  EXPECT_THAT(RunTransfer(o).status().message(), HasSubstr("--reference"));
  o = Options(*ar_, "song.png");  // the spectrogram would replace the audio
  s = RunTransfer(o).status();
  EXPECT_THAT(s.message(), HasSubstr("the spectrogram " + *dir_ + "/song.png would overwrite "
                                     "the audio"));
  o.spectrograms = false;  // then it is just an odd name for a WAV file
  EXPECT_TRUE(RunTransfer(o).ok());
  const std::string sub = *dir_ + "/a_directory";
  std::filesystem::create_directories(sub);
  o = Options(*ar_, "a_directory");
  s = RunTransfer(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("a directory"));
  o = Options(*ar_, "a_directory/");
  EXPECT_EQ(RunTransfer(o).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(std::filesystem::is_directory(sub));
}

}  // namespace
}  // namespace pianola
