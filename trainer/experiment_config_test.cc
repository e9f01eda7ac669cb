#include "trainer/experiment_config.h"

#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

using ::testing::HasSubstr;

// A minimal valid config; tests append or replace fields.
constexpr char kValid[] = R"pb(
  model { preset: "tiny" }
  data { servers: "localhost:5000" }
  steps: 10
)pb";

std::string SourceDir() {
  const char* dir = std::getenv("PIANOLA_SOURCE_DIR");
  return dir ? dir : ".";
}

absl::StatusOr<TrainOptions> Parse(const std::string& text, const ConfigOverrides& o = {}) {
  return ParseExperimentConfig(text, "exp.textproto", o);
}

TEST(ExperimentConfigTest, MinimalConfigGetsDocumentedDefaults) {
  absl::StatusOr<TrainOptions> o = Parse(kValid);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->name, "exp");  // the file's stem
  EXPECT_EQ(o->preset, "tiny");
  EXPECT_EQ(o->model.decoder.kind, DecoderKind::kAutoregressive);
  EXPECT_EQ(o->data.servers, std::vector<std::string>{"localhost:5000"});
  EXPECT_EQ(o->data.train_split, DataSplit::kTrain);
  EXPECT_EQ(o->data.validation_split, DataSplit::kValidation);
  EXPECT_EQ(o->data.window_samples, 8000u);
  EXPECT_EQ(o->data.reference_samples, 16000u);
  EXPECT_EQ(o->data.batch_size, 8u);
  EXPECT_EQ(o->data.context_samples, static_cast<uint32_t>(ContextSamples(o->model)));
  EXPECT_GT(o->data.context_samples, 0u);
  EXPECT_EQ(o->optimizer.kind, OptimizerKind::kAdam);
  EXPECT_DOUBLE_EQ(o->optimizer.lr, 1e-3);
  EXPECT_DOUBLE_EQ(o->optimizer.weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(o->schedule.lr, 1e-3);
  EXPECT_EQ(o->schedule.total_steps, 10);
  EXPECT_EQ(o->schedule.decay, LrDecay::kCosine);
  EXPECT_DOUBLE_EQ(o->grad_clip_norm, 1.0);
  EXPECT_FALSE(o->ema.enabled);
  EXPECT_EQ(o->steps, 10);
  EXPECT_EQ(o->device, TrainDevice::kAuto);
  EXPECT_EQ(o->precision, TrainPrecision::kAuto);
  EXPECT_FALSE(o->cuda_graphs);
  EXPECT_EQ(o->checkpoint.every_steps, 1000);
  EXPECT_EQ(o->checkpoint.keep_last, 3);
  EXPECT_EQ(o->validation.every_steps, 1000);
  EXPECT_EQ(o->validation.batches, 4);
  EXPECT_EQ(o->log_every_steps, 10);
  EXPECT_EQ(o->max_consecutive_nonfinite, 10);
  EXPECT_GE(o->cpu_threads, 1);
  EXPECT_FALSE(o->config_bytes.empty());
}

TEST(ExperimentConfigTest, EveryFieldIsRead) {
  absl::StatusOr<TrainOptions> o = Parse(R"pb(
    name: "full"
    model {
      preset: "tiny"
      decoder_kind: "parallel"
      decoder {
        cycles: 3 layers_per_cycle: 3 residual_channels: 8 gate_channels: 12
        skip_channels: 10 cond_hidden_channels: 6 quantization_levels: 128 ar_input: "scalar"
      }
      encoder {
        kind: "raw_dilated" channels: 8 z_dim: 4 layers: 3 kernel_size: 5 raw_cycles: 2
        raw_pool: 32 n_mels: 40 n_fft: 512 hop: 128 f_min: 30 f_max: 7000
      }
      loss {
        waveform_l1_weight: 0.5 stft_weight: 0.25
        spectral_convergence_weight: 0.75 log_magnitude_weight: 1.5
        stft_resolutions { fft_size: 128 hop: 32 win_length: 64 }
        stft_resolutions { fft_size: 64 hop: 16 win_length: 48 }
      }
    }
    data {
      servers: "a:1" servers: "b:2" dataset: "pianos" train_split: "validation"
      validation_split: "test" window_samples: 100 reference_samples: 200 batch_size: 3
      context_samples: 500 prefetch_batches: 2
    }
    optimizer { kind: "adamw" lr: 0.01 beta1: 0.8 beta2: 0.99 eps: 1e-6 weight_decay: 0.1 }
    schedule { warmup_steps: 5 decay: "exponential" min_lr: 0.001 decay_rate: 0.9 decay_steps: 7 }
    grad_clip_norm: 0
    ema { enabled: true decay: 0.99 }
    seed: 42
    steps: 50
    device: "cuda:1"
    precision: "bf16"
    cuda_graphs: true
    checkpoint { every_steps: 0 keep_last: 0 }
    validation { every_steps: 0 batches: 9 }
    log_every_steps: 1
    max_consecutive_nonfinite: 0
    cpu_threads: 3
  )pb");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->name, "full");
  EXPECT_EQ(o->model.decoder.kind, DecoderKind::kParallel);
  EXPECT_EQ(o->model.decoder.cycles, 3);
  EXPECT_EQ(o->model.decoder.residual_channels, 8);
  EXPECT_EQ(o->model.decoder.gate_channels, 12);
  EXPECT_EQ(o->model.decoder.skip_channels, 10);
  EXPECT_EQ(o->model.decoder.layers_per_cycle, 3);
  EXPECT_EQ(o->model.decoder.cond_hidden_channels, 6);
  EXPECT_EQ(o->model.decoder.quantization_levels, 128);
  EXPECT_EQ(o->model.decoder.ar_input, ArInput::kScalar);
  EXPECT_EQ(o->model.encoder.kind, EncoderKind::kRawDilated);
  EXPECT_EQ(o->model.encoder.channels, 8);
  EXPECT_EQ(o->model.encoder.z_dim, 4);
  EXPECT_EQ(o->model.encoder.layers, 3);
  EXPECT_EQ(o->model.encoder.kernel_size, 5);
  EXPECT_EQ(o->model.encoder.raw_cycles, 2);
  EXPECT_EQ(o->model.encoder.raw_pool, 32);
  EXPECT_EQ(o->model.encoder.mel.n_mels, 40);
  EXPECT_EQ(o->model.encoder.mel.n_fft, 512);
  EXPECT_EQ(o->model.encoder.mel.hop, 128);
  EXPECT_DOUBLE_EQ(o->model.encoder.mel.f_min, 30);
  EXPECT_DOUBLE_EQ(o->model.encoder.mel.f_max, 7000);
  EXPECT_DOUBLE_EQ(o->model.loss.waveform_l1_weight, 0.5);
  EXPECT_DOUBLE_EQ(o->model.loss.stft_weight, 0.25);
  EXPECT_DOUBLE_EQ(o->model.loss.spectral_convergence_weight, 0.75);
  EXPECT_DOUBLE_EQ(o->model.loss.log_magnitude_weight, 1.5);
  ASSERT_EQ(o->model.loss.stft_resolutions.size(), 2u);
  EXPECT_EQ(o->model.loss.stft_resolutions[0].fft_size, 128);
  EXPECT_EQ(o->model.loss.stft_resolutions[0].hop, 32);
  EXPECT_EQ(o->model.loss.stft_resolutions[0].win_length, 64);
  EXPECT_EQ(o->model.loss.stft_resolutions[1].fft_size, 64);
  EXPECT_EQ(o->model.loss.stft_resolutions[1].hop, 16);
  EXPECT_EQ(o->model.loss.stft_resolutions[1].win_length, 48);
  EXPECT_EQ(o->data.servers, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ(o->data.dataset, "pianos");
  EXPECT_EQ(o->data.train_split, DataSplit::kValidation);
  EXPECT_EQ(o->data.validation_split, DataSplit::kTest);
  EXPECT_EQ(o->data.window_samples, 100u);
  EXPECT_EQ(o->data.reference_samples, 200u);
  EXPECT_EQ(o->data.batch_size, 3u);
  EXPECT_EQ(o->data.context_samples, 500u);
  EXPECT_EQ(o->data.prefetch_batches, 2);
  EXPECT_EQ(o->optimizer.kind, OptimizerKind::kAdamW);
  EXPECT_DOUBLE_EQ(o->optimizer.lr, 0.01);
  EXPECT_DOUBLE_EQ(o->optimizer.beta1, 0.8);
  EXPECT_DOUBLE_EQ(o->optimizer.beta2, 0.99);
  EXPECT_DOUBLE_EQ(o->optimizer.eps, 1e-6);
  EXPECT_DOUBLE_EQ(o->optimizer.weight_decay, 0.1);
  EXPECT_EQ(o->schedule.warmup_steps, 5);
  EXPECT_EQ(o->schedule.decay, LrDecay::kExponential);
  EXPECT_DOUBLE_EQ(o->schedule.min_lr, 0.001);
  EXPECT_DOUBLE_EQ(o->schedule.decay_rate, 0.9);
  EXPECT_EQ(o->schedule.decay_steps, 7);
  EXPECT_DOUBLE_EQ(o->grad_clip_norm, 0.0);
  EXPECT_TRUE(o->ema.enabled);
  EXPECT_DOUBLE_EQ(o->ema.decay, 0.99);
  EXPECT_EQ(o->seed, 42u);
  EXPECT_EQ(o->steps, 50);
  EXPECT_EQ(o->device, TrainDevice::kCuda);
  EXPECT_EQ(o->device_index, 1);
  EXPECT_EQ(o->precision, TrainPrecision::kBf16);
  EXPECT_TRUE(o->cuda_graphs);
  EXPECT_EQ(o->checkpoint.every_steps, 0);
  EXPECT_EQ(o->checkpoint.keep_last, 0);
  EXPECT_EQ(o->validation.every_steps, 0);
  EXPECT_EQ(o->validation.batches, 9);
  EXPECT_EQ(o->log_every_steps, 1);
  EXPECT_EQ(o->max_consecutive_nonfinite, 0);
  EXPECT_EQ(o->cpu_threads, 3);

  // The autoregressive decoder's loss weight.
  o = Parse(R"pb(model { preset: "tiny" loss { cross_entropy_weight: 2 } }
                  data { servers: "a:1" } steps: 5)pb");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_DOUBLE_EQ(o->model.loss.cross_entropy_weight, 2);
}

TEST(ExperimentConfigTest, JsonAndTextGiveTheSameOptions) {
  absl::StatusOr<TrainOptions> text = ParseExperimentConfig(
      R"pb(model { preset: "tiny" } data { servers: "h:1" batch_size: 2 } steps: 7
           optimizer { lr: 0.5 })pb",
      "exp.textproto");
  absl::StatusOr<TrainOptions> json = ParseExperimentConfig(
      R"({"model": {"preset": "tiny"}, "data": {"servers": ["h:1"], "batchSize": 2},
          "steps": "7", "optimizer": {"lr": 0.5}})",
      "exp.json");
  ASSERT_TRUE(text.ok()) << text.status();
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(text->config_bytes, json->config_bytes);
  // JSON is recognized by content too.
  EXPECT_TRUE(ParseExperimentConfig(R"(  {"model": {"preset": "tiny"}, "data": {"servers": ["h:1"]},
          "steps": 1})", "exp.conf").ok());
}

TEST(ExperimentConfigTest, OverridesWinAndAreStored) {
  ConfigOverrides o;
  o.data_servers = std::vector<std::string>{"x:7", "y:8"};
  o.dataset = "other";
  o.steps = 99;
  o.device = "cpu";
  o.seed = 1234;
  absl::StatusOr<TrainOptions> opts = Parse(kValid, o);
  ASSERT_TRUE(opts.ok()) << opts.status();
  EXPECT_EQ(opts->data.servers, (std::vector<std::string>{"x:7", "y:8"}));
  EXPECT_EQ(opts->data.dataset, "other");
  EXPECT_EQ(opts->steps, 99);
  EXPECT_EQ(opts->schedule.total_steps, 99);
  EXPECT_EQ(opts->device, TrainDevice::kCpu);
  EXPECT_EQ(opts->seed, 1234u);
  // The stored bytes carry the overrides.
  absl::StatusOr<TrainOptions> back = TrainOptionsFromConfigBytes(opts->config_bytes, "ckpt");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->steps, 99);
  EXPECT_EQ(back->seed, 1234u);
  EXPECT_EQ(back->data.servers, opts->data.servers);
  EXPECT_EQ(back->name, "exp");
  EXPECT_EQ(back->config_bytes, opts->config_bytes);
  // Flags can supply fields the file lacks.
  ConfigOverrides steps_only;
  steps_only.steps = 3;
  steps_only.data_servers = std::vector<std::string>{"z:1"};
  EXPECT_TRUE(Parse(R"pb(model { preset: "tiny" })pb", steps_only).ok());
  // A --steps below the config's warmup says where the step count comes from.
  absl::StatusOr<TrainOptions> short_run =
      Parse(absl::StrCat(kValid, "schedule { warmup_steps: 5 }"), steps_only);
  ASSERT_FALSE(short_run.ok());
  EXPECT_THAT(short_run.status().message(),
              HasSubstr("5 warmup steps do not fit in a run of 3 steps (`steps` in the config, "
                        "or --steps)"));
}

struct BadCase {
  std::string config;
  std::string message;  // expected substring
};

class BadConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, IsInvalidArgumentNamingFileAndField) {
  absl::StatusOr<TrainOptions> o = Parse(GetParam().config);
  ASSERT_FALSE(o.ok()) << GetParam().config;
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << o.status();
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("exp.textproto"));
  EXPECT_THAT(std::string(o.status().message()), HasSubstr(GetParam().message));
}

// The valid config with extra fields inside model {}, data {} or at the top
// (which may set `steps` itself).
std::string Config(const std::string& top, const std::string& model = "",
                   const std::string& data = "") {
  return absl::StrCat("model { preset: \"tiny\" ", model, " }\n",
                      "data { servers: \"localhost:5000\" ", data, " }\n", top,
                      absl::StartsWith(top, "steps:") ? "" : "\nsteps: 10");
}
std::string With(const std::string& top) { return Config(top); }
std::string M(const std::string& model) { return Config("", model); }
std::string D(const std::string& data) { return Config("", "", data); }

INSTANTIATE_TEST_SUITE_P(
    EveryClass, BadConfigTest,
    ::testing::Values(
        // Syntax and schema.
        BadCase{"model { preset: \"tiny\" ", "exp.textproto:1:"},
        BadCase{With("learning_rate: 3"), "learning_rate"},
        BadCase{D("window: 3"), "window"},
        BadCase{With("steps: \"ten\""), "steps"},
        BadCase{With("seed: -1"), "seed"},
        // Required fields.
        BadCase{R"pb(data { servers: "h:1" } steps: 1)pb", "model.preset: required"},
        BadCase{R"pb(model { preset: "tiny" } steps: 1)pb", "data.servers"},
        BadCase{R"pb(model { preset: "tiny" } data { servers: "h:1" })pb", "steps: required"},
        // Model choices and values.
        BadCase{R"pb(model { preset: "huge" } data { servers: "h:1" } steps: 1)pb",
                "model.preset"},
        BadCase{M("decoder_kind: \"diffusion\""), "model.decoder_kind"},
        BadCase{M("decoder { kernel_size: 1 }"), "model.decoder.kernel_size"},
        BadCase{M("decoder_kind: \"parallel\" decoder { kernel_size: 4 }"),
                "model.decoder.kernel_size"},
        BadCase{M("decoder { cycles: 0 }"), "model.decoder.cycles"},
        BadCase{M("decoder { fold: 4 }"), "model.decoder.fold"},  // autoregressive
        BadCase{M("decoder_kind: \"parallel\" decoder { fold: 0 }"), "model.decoder.fold"},
        BadCase{M("decoder_kind: \"parallel\" decoder { fold: 4 cond_fold_filters: 5 }"),
                "model.decoder.cond_fold_filters"},
        BadCase{M("decoder { ar_input: \"onehot\" }"), "model.decoder.ar_input"},
        BadCase{M("encoder { kind: \"cqt\" }"), "model.encoder.kind"},
        BadCase{M("encoder { z_dim: 0 }"), "model.encoder.z_dim"},
        BadCase{M("sample_rate: 10"), "model.sample_rate"},
        BadCase{M("loss { cross_entropy_weight: -1 }"),
                "model.loss.cross_entropy_weight"},
        BadCase{M("loss { waveform_l1_weight: 1 }"), "model.loss.waveform_l1_weight: the "
                                                      "autoregressive decoder's only loss"},
        BadCase{M("loss { stft_resolutions { fft_size: 64 hop: 16 win_length: 48 } }"),
                "model.loss.stft_resolutions"},
        BadCase{M("decoder_kind: \"parallel\" loss { cross_entropy_weight: 1 }"),
                "model.loss.cross_entropy_weight"},
        BadCase{M("encoder { n_fft: 8 }"), "model.encoder.n_fft"},
        BadCase{M("encoder { f_max: 9000 }"), "model.encoder.f_max"},
        BadCase{M("encoder { f_min: -1 }"), "model.encoder.f_min"},
        BadCase{M("encoder { kind: \"raw_dilated\" raw_pool: 0 }"), "model.encoder.raw_pool"},
        BadCase{M("encoder { kind: \"raw_dilated\" raw_cycles: 17 }"),
                "model.encoder.raw_cycles"},
        BadCase{M("decoder_kind: \"parallel\" loss { stft_resolutions { fft_size: 0 } }"),
                "model.loss.stft_resolutions[0].fft_size"},
        BadCase{M("decoder_kind: \"parallel\" loss { stft_resolutions { fft_size: 64 "
                  "hop: 16 win_length: 48 } stft_resolutions { fft_size: 64 hop: 0 "
                  "win_length: 48 } }"),
                "model.loss.stft_resolutions[1].hop"},
        BadCase{M("decoder_kind: \"parallel\" loss { stft_resolutions { fft_size: 64 hop: 16 "
                  "win_length: 65 } }"),
                "model.loss.stft_resolutions[0].win_length"},
        // Data.
        BadCase{D("servers: \"nohost\""), "data.servers[1]"},
        BadCase{D("servers: \"h:0\""), "data.servers[1]"},
        BadCase{D("servers: \"h:70000\""), "data.servers[1]"},
        BadCase{D("window_samples: 0"), "data.window_samples"},
        BadCase{D("reference_samples: 2000000"), "data.reference_samples"},
        BadCase{D("batch_size: 0"), "data.batch_size"},
        BadCase{D("batch_size: 2000"), "data.batch_size"},
        BadCase{D("context_samples: 1"), "data.context_samples"},
        // Windows that the model cannot use (its checks at the first step).
        BadCase{M("decoder { cycles: 32 layers_per_cycle: 16 kernel_size: 2 }"),
                "model.decoder"},
        BadCase{D("window_samples: 1048576"), "data.window_samples"},
        BadCase{D("context_samples: 1000000 window_samples: 48577"),
                "data.context_samples + data.window_samples"},
        BadCase{D("window_samples: 1"), "data.window_samples"},
        BadCase{D("reference_samples: 100"), "data.reference_samples"},
        BadCase{Config("", "decoder_kind: \"parallel\"", "window_samples: 100"),
                "model.loss.stft_resolutions[1]"},
        BadCase{D("prefetch_batches: 0"), "data.prefetch_batches"},
        BadCase{D("train_split: \"dev\""), "data.train_split"},
        BadCase{D("validation_split: \"\""), "data.validation_split"},
        BadCase{D("train_split: \"test\" validation_split: \"test\""),
                "data.validation_split: the held-out split must differ from data.train_split"},
        BadCase{D("validation_split: \"train\""), "data.validation_split"},
        // Optimizer and schedule.
        BadCase{With("optimizer { kind: \"sgd\" }"), "optimizer.kind"},
        BadCase{With("optimizer { lr: 0 }"), "optimizer.lr"},
        BadCase{With("optimizer { lr: nan }"), "optimizer.lr"},
        BadCase{With("optimizer { beta1: 1 }"), "optimizer.beta1"},
        BadCase{With("optimizer { beta2: -0.1 }"), "optimizer.beta2"},
        BadCase{With("optimizer { eps: 0 }"), "optimizer.eps"},
        BadCase{With("optimizer { weight_decay: 2 }"), "optimizer.weight_decay"},
        BadCase{With("schedule { warmup_steps: 11 }"), "schedule.warmup_steps"},
        BadCase{With("schedule { decay: \"linear\" }"), "schedule.decay"},
        BadCase{With("schedule { min_lr: 1 }"), "schedule.min_lr"},
        BadCase{With("schedule { decay_rate: 0 }"), "schedule.decay_rate"},
        BadCase{With("schedule { decay_steps: 0 }"), "schedule.decay_steps"},
        // Run policy.
        BadCase{With("grad_clip_norm: -1"), "grad_clip_norm"},
        BadCase{With("grad_clip_norm: inf"), "grad_clip_norm"},
        BadCase{With("ema { decay: 1 }"), "ema.decay"},
        BadCase{With("steps: 0"), "steps"},
        BadCase{With("device: \"tpu\""), "device"},
        BadCase{With("device: \"cuda:x\""), "device"},
        BadCase{With("precision: \"fp16\""), "precision"},
        BadCase{With("device: \"cpu\" precision: \"bf16\""), "precision"},
        BadCase{With("device: \"cpu\" cuda_graphs: true"), "cuda_graphs"},
        BadCase{With("checkpoint { every_steps: -1 }"), "checkpoint.every_steps"},
        BadCase{With("checkpoint { keep_last: -2 }"), "checkpoint.keep_last"},
        BadCase{With("validation { every_steps: -5 }"), "validation.every_steps"},
        BadCase{With("validation { batches: 0 }"), "validation.batches"},
        BadCase{With("log_every_steps: 0"), "log_every_steps"},
        BadCase{With("max_consecutive_nonfinite: -1"), "max_consecutive_nonfinite"},
        BadCase{With("cpu_threads: 0"), "cpu_threads"},
        BadCase{With("name: \"a/b\""), "name"}));

// A decoder whose context alone is over the per-window limit is named with
// its receptive field (2,097,121 samples: 32 cycles of dilations 1..2^15).
TEST(ExperimentConfigTest, ContextOverTheWindowLimitNamesTheDecoder) {
  absl::StatusOr<TrainOptions> o =
      Parse(M("decoder { cycles: 32 layers_per_cycle: 16 kernel_size: 2 }"));
  ASSERT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << o.status();
  const std::string message(o.status().message());
  EXPECT_THAT(message, HasSubstr("model.decoder"));
  EXPECT_THAT(message, HasSubstr("cycles 32"));
  EXPECT_THAT(message, HasSubstr("layers_per_cycle 16"));
  EXPECT_THAT(message, HasSubstr("receptive field of 2097121 samples"));
  EXPECT_THAT(message, HasSubstr("1048576"));
  // Context + window at the limit is accepted, one sample more is not.
  o = Parse(kValid);
  ASSERT_TRUE(o.ok()) << o.status();
  const uint32_t largest = (1u << 20) - o->data.context_samples;
  EXPECT_TRUE(Parse(D(absl::StrCat("window_samples: ", largest))).ok());
  o = Parse(D(absl::StrCat("window_samples: ", largest + 1)));
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << o.status();
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("1048577"));
}

// The model's batch checks, made at load with the same rules: the mel
// encoder needs more than n_fft / 2 reference samples (tiny: 256 / 2 = 128),
// the raw encoder any; the parallel decoder's STFT loss more than
// fft_size / 2 loss samples (tiny: 256 / 2 = 128 after its context of 240).
TEST(ExperimentConfigTest, WindowsMeetTheModelsBatchChecksAtTheBoundary) {
  absl::StatusOr<TrainOptions> o = Parse(D("reference_samples: 128"));
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << o.status();
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("needs at least 129 samples"));
  EXPECT_TRUE(Parse(D("reference_samples: 129")).ok());
  EXPECT_TRUE(Parse(Config("", "encoder { kind: \"raw_dilated\" }", "reference_samples: 1")).ok());
  EXPECT_TRUE(Parse(D("window_samples: 2")).ok());  // autoregressive: context + 1 is too few

  const std::string parallel = "decoder_kind: \"parallel\"";
  o = Parse(Config("", parallel, "window_samples: 128"));
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument) << o.status();
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("fft_size / 2 = 128"));
  EXPECT_TRUE(Parse(Config("", parallel, "window_samples: 129")).ok());
  // Context beyond the model's adds loss samples.
  o = Parse(Config("", parallel, "window_samples: 100 context_samples: 269"));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(ContextSamples(o->model), 240);
  // Without the STFT loss the window may be short.
  EXPECT_TRUE(Parse(Config("", parallel + " loss { stft_weight: 0 waveform_l1_weight: 1 }",
                           "window_samples: 100"))
                  .ok());
}

// Checkpoints store their config and it is checked again on load (transfer,
// resume): a stored config that breaks the rules above is InvalidArgument.
TEST(ExperimentConfigTest, StoredConfigIsCheckedOnLoad) {
  absl::StatusOr<TrainOptions> o = Parse(kValid);
  ASSERT_TRUE(o.ok());
  ASSERT_TRUE(TrainOptionsFromConfigBytes(o->config_bytes, "ckpt-5.pt").ok());
  // Appended to the serialized config: data (field 3) { reference_samples
  // (field 6): 100 }; a later field wins when the bytes are parsed.
  const std::string bytes = o->config_bytes + std::string("\x1a\x02\x30\x64", 4);
  absl::StatusOr<TrainOptions> loaded = TrainOptionsFromConfigBytes(bytes, "ckpt-5.pt");
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument) << loaded.status();
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("ckpt-5.pt"));
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("data.reference_samples"));
}

TEST(ExperimentConfigTest, JsonUnknownFieldIsAnError) {
  absl::StatusOr<TrainOptions> o = ParseExperimentConfig(
      R"({"model": {"preset": "tiny"}, "data": {"servers": ["h:1"]}, "steps": 1, "bogus": 1})",
      "exp.json");
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("exp.json"));
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("bogus"));
}

TEST(ExperimentConfigTest, MissingFileIsNotFound) {
  absl::StatusOr<TrainOptions> o = LoadExperimentConfig("/nonexistent/exp.textproto");
  EXPECT_EQ(o.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("/nonexistent/exp.textproto"));
}

TEST(ExperimentConfigTest, ShippedConfigsLoad) {
  for (const char* name : {"tiny", "small", "base"}) {
    const std::string path = absl::StrCat(SourceDir(), "/configs/", name, ".textproto");
    absl::StatusOr<TrainOptions> o = LoadExperimentConfig(path);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->name, name);
    EXPECT_EQ(o->preset, name);
    EXPECT_FALSE(DescribeTrainOptions(*o).empty());
  }
}

TEST(ExperimentConfigTest, CorruptStoredConfigIsDataLoss) {
  EXPECT_EQ(TrainOptionsFromConfigBytes("\xff\xff\xff", "ckpt-5.pt").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(ExperimentConfigTest, ResumeNeedsTheSameModel) {
  absl::StatusOr<TrainOptions> a = Parse(kValid);
  ASSERT_TRUE(a.ok());
  absl::StatusOr<TrainOptions> bigger = Parse(M("decoder { cycles: 3 }"));
  ASSERT_TRUE(bigger.ok());
  absl::StatusOr<std::vector<std::string>> r = CheckResumeCompatible(a->config_bytes, *bigger);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("cycles"));

  ConfigOverrides longer;
  longer.steps = 20;
  longer.seed = 5;
  absl::StatusOr<TrainOptions> b = Parse(kValid, longer);
  ASSERT_TRUE(b.ok());
  r = CheckResumeCompatible(a->config_bytes, *b);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ::testing::ElementsAre("seed", "steps"));
  r = CheckResumeCompatible(a->config_bytes, *a);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());

  // The same model written differently: defaults spelled out, the "ar" alias.
  absl::StatusOr<TrainOptions> spelled_out =
      Parse(M("decoder_kind: \"ar\" sample_rate: 16000 decoder { cycles: 2 }"));
  ASSERT_TRUE(spelled_out.ok()) << spelled_out.status();
  r = CheckResumeCompatible(a->config_bytes, *spelled_out);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->empty());
}

TEST(ExperimentConfigTest, ParallelFoldOverridesAreRead) {
  absl::StatusOr<TrainOptions> o =
      Parse(M("decoder_kind: \"parallel\" decoder { fold: 4 cond_fold_filters: 3 }"));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->model.decoder.fold, 4);
  EXPECT_EQ(o->model.decoder.cond_fold_filters, 3);
}

TEST(ExperimentConfigTest, ParsesServerLists) {
  absl::StatusOr<std::vector<std::string>> s = ParseServerList("a:1, b:2,[::1]:3");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(*s, ::testing::ElementsAre("a:1", "b:2", "[::1]:3"));
  EXPECT_EQ(ParseServerList("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseServerList("a:1,b").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pianola
