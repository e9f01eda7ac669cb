#include "trainer/model_config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ModelConfigTest, EveryPresetValidatesForBothKinds) {
  for (const std::string& name : ModelPresetNames()) {
    for (DecoderKind kind : {DecoderKind::kAutoregressive, DecoderKind::kParallel}) {
      absl::StatusOr<ModelConfig> c = ModelPreset(name, kind);
      ASSERT_TRUE(c.ok()) << name << ": " << c.status();
      EXPECT_EQ(c->decoder.kind, kind);
      EXPECT_TRUE(Validate(*c).ok());
    }
  }
}

TEST(ModelConfigTest, UnknownPresetIsNotFoundAndListsKnownOnes) {
  absl::StatusOr<ModelConfig> c = ModelPreset("huge");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("tiny, small, base"));
}

TEST(ModelConfigTest, ReceptiveFieldsAndContext) {
  // AR: 1 + (k - 1) * sum of dilations. Parallel (k = 3) with fold F:
  // F * (1 + 2 * sum of folded dilations); context F * sum of dilations.
  const struct {
    const char* name;
    DecoderKind kind;
    int fold;
    int64_t rf, context;
  } cases[] = {
      {"tiny", DecoderKind::kAutoregressive, 1, 1 + 2 * 15, 31},
      {"tiny", DecoderKind::kParallel, 8, 8 * (1 + 2 * 2 * 15), 8 * 2 * 15},
      {"small", DecoderKind::kAutoregressive, 1, 1 + 2 * 1023, 2047},
      {"small", DecoderKind::kParallel, 16, 16 * (1 + 2 * 2 * 63), 16 * 2 * 63},
      {"base", DecoderKind::kAutoregressive, 1, 1 + 3 * 1023, 3070},
      {"base", DecoderKind::kParallel, 16, 16 * (1 + 2 * 3 * 63), 16 * 3 * 63},
  };
  for (const auto& c : cases) {
    ModelConfig config = *ModelPreset(c.name, c.kind);
    EXPECT_EQ(config.decoder.effective_fold(), c.fold) << c.name;
    EXPECT_EQ(DecoderReceptiveField(config.decoder), c.rf) << c.name;
    EXPECT_EQ(ContextSamples(config), c.context) << c.name;
    EXPECT_EQ(DecoderContextSamples(config.decoder), c.context) << c.name;
  }
}

TEST(ModelConfigTest, FoldOneIsTheUnfoldedParallelDecoder) {
  ModelConfig config = *ModelPreset("small", DecoderKind::kParallel);
  config.decoder.fold = 1;
  ASSERT_TRUE(Validate(config).ok());
  EXPECT_EQ(DecoderReceptiveField(config.decoder), 1 + 2 * 2 * 63);
  EXPECT_EQ(ContextSamples(config), 2 * 63);
  // The receptive field scales with the fold; the context stays a whole
  // number of folded blocks.
  for (int fold : {2, 4, 8, 32}) {
    config.decoder.fold = fold;
    ASSERT_TRUE(Validate(config).ok()) << fold;
    EXPECT_EQ(DecoderReceptiveField(config.decoder), fold * (1 + 2 * 2 * 63)) << fold;
    EXPECT_EQ(ContextSamples(config) % fold, 0) << fold;
    EXPECT_EQ(2 * ContextSamples(config) + fold, DecoderReceptiveField(config.decoder)) << fold;
  }
}

TEST(ModelConfigTest, ReceptiveFieldWithWiderKernel) {
  DecoderConfig d;
  d.layers_per_cycle = 3;  // dilations 1, 2, 4
  d.cycles = 2;
  d.kernel_size = 4;
  EXPECT_EQ(DecoderReceptiveField(d), 1 + 3 * 2 * 7);
}

TEST(ModelConfigTest, DescriptionPrintsReceptiveField) {
  const std::string text = DescribeModelConfig(*ModelPreset("small"));
  EXPECT_THAT(text, HasSubstr("receptive field: 2047 samples (127.9 ms at 16000 Hz)"));
  EXPECT_THAT(text, HasSubstr("autoregressive"));
  EXPECT_THAT(text, Not(HasSubstr("fold")));
  const std::string parallel = DescribeModelConfig(*ModelPreset("small", DecoderKind::kParallel));
  EXPECT_THAT(parallel, HasSubstr("fold 16: the stack runs at 1000.0 Hz"));
  EXPECT_THAT(parallel, HasSubstr("receptive field: 4048 samples (253.0 ms at 16000 Hz); "
                                  "context 2016 samples"));
}

// Each invalid field is named in the error.
TEST(ModelConfigTest, ValidateNamesTheBadField) {
  const ModelConfig good = *ModelPreset("tiny");
  const ModelConfig good_parallel = *ModelPreset("tiny", DecoderKind::kParallel);
  struct Case {
    const char* field;
    ModelConfig config;
  };
  std::vector<Case> cases;
  auto add = [&](const char* field, const ModelConfig& base, auto mutate) {
    ModelConfig c = base;
    mutate(c);
    cases.push_back({field, c});
  };
  add("sample_rate", good, [](ModelConfig& c) { c.sample_rate = 0; });
  add("decoder.kernel_size", good_parallel, [](ModelConfig& c) { c.decoder.kernel_size = 4; });
  add("decoder.fold", good, [](ModelConfig& c) { c.decoder.fold = 16; });  // AR
  add("decoder.fold", good_parallel, [](ModelConfig& c) { c.decoder.fold = 0; });
  add("decoder.fold", good_parallel, [](ModelConfig& c) { c.decoder.fold = 1024; });
  add("decoder.cond_fold_filters", good_parallel,
      [](ModelConfig& c) { c.decoder.cond_fold_filters = 0; });
  add("decoder.cond_fold_filters", good_parallel,
      [](ModelConfig& c) { c.decoder.cond_fold_filters = c.decoder.fold + 1; });
  add("decoder.cond_hidden_channels", good_parallel,
      [](ModelConfig& c) { c.decoder.cond_hidden_channels = 0; });
  add("decoder.kernel_size", good, [](ModelConfig& c) { c.decoder.kernel_size = 1; });
  add("decoder.layers_per_cycle", good, [](ModelConfig& c) { c.decoder.layers_per_cycle = 17; });
  add("decoder.cycles", good, [](ModelConfig& c) { c.decoder.cycles = 0; });
  add("decoder.residual_channels", good, [](ModelConfig& c) { c.decoder.residual_channels = -3; });
  add("decoder.quantization_levels", good,
      [](ModelConfig& c) { c.decoder.quantization_levels = 1; });
  add("encoder.n_mels", good, [](ModelConfig& c) { c.encoder.mel.n_mels = 1000; });
  add("encoder.f_max", good, [](ModelConfig& c) { c.encoder.mel.f_max = 9000; });
  add("encoder.hop", good, [](ModelConfig& c) { c.encoder.mel.hop = 0; });
  add("encoder.kernel_size", good, [](ModelConfig& c) { c.encoder.kernel_size = 2; });
  add("encoder.z_dim", good, [](ModelConfig& c) { c.encoder.z_dim = 0; });
  add("loss.cross_entropy_weight", good, [](ModelConfig& c) { c.loss.cross_entropy_weight = 0; });
  add("loss.stft_weight", good, [](ModelConfig& c) { c.loss.stft_weight = -1; });
  add("loss.waveform_l1_weight", good,
      [](ModelConfig& c) { c.loss.waveform_l1_weight = std::nan(""); });
  add("loss.stft_resolutions[1].win_length", good,
      [](ModelConfig& c) { c.loss.stft_resolutions[1].win_length = 100000; });
  add("loss.stft_resolutions", good_parallel, [](ModelConfig& c) { c.loss.stft_resolutions = {}; });
  add("loss", good_parallel, [](ModelConfig& c) {
    c.loss.stft_weight = 0;
    c.loss.waveform_l1_weight = 0;
  });
  for (const Case& c : cases) {
    absl::Status s = Validate(c.config);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(s.message(), HasSubstr(std::string(c.field) + ":")) << s;
  }
}

TEST(ModelConfigTest, ParsesKindNames) {
  EXPECT_EQ(*ParseDecoderKind("parallel"), DecoderKind::kParallel);
  EXPECT_EQ(*ParseDecoderKind(DecoderKindName(DecoderKind::kAutoregressive)),
            DecoderKind::kAutoregressive);
  EXPECT_EQ(ParseDecoderKind("wavernn").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseEncoderKind("raw_dilated"), EncoderKind::kRawDilated);
  EXPECT_EQ(ParseEncoderKind("cqt").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pianola
