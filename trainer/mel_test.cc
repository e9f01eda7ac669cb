#include "trainer/mel.h"

#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace pianola {
namespace {

// Direct log-mel: reflect-padded centred frames, periodic Hann, a plain DFT
// in double, HTK triangles computed here from the formula.
std::vector<std::vector<double>> DirectLogMel(const std::vector<double>& x, int sr, int n_fft,
                                              int hop, int n_mels, double floor) {
  const int pad = n_fft / 2;
  const int n = static_cast<int>(x.size());
  auto at = [&](int i) {  // reflect padding
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
    return x[i];
  };
  const int frames = 1 + n / hop;
  const int bins = n_fft / 2 + 1;
  auto mel = [](double f) { return 2595.0 * std::log10(1.0 + f / 700.0); };
  auto hz = [](double m) { return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0); };
  std::vector<double> pts(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i) pts[i] = hz(mel(sr / 2.0) * i / (n_mels + 1));
  std::vector<std::vector<double>> out(n_mels, std::vector<double>(frames));
  for (int f = 0; f < frames; ++f) {
    std::vector<double> power(bins);
    for (int k = 0; k < bins; ++k) {
      double re = 0, im = 0;
      for (int i = 0; i < n_fft; ++i) {
        const double w = 0.5 - 0.5 * std::cos(2 * M_PI * i / n_fft);
        const double v = w * at(f * hop - pad + i);
        re += v * std::cos(2 * M_PI * k * i / n_fft);
        im -= v * std::sin(2 * M_PI * k * i / n_fft);
      }
      power[k] = re * re + im * im;
    }
    for (int m = 0; m < n_mels; ++m) {
      double sum = 0;
      for (int k = 0; k < bins; ++k) {
        const double freq = static_cast<double>(k) * sr / n_fft;
        double w = 0;
        if (freq > pts[m] && freq <= pts[m + 1]) w = (freq - pts[m]) / (pts[m + 1] - pts[m]);
        if (freq > pts[m + 1] && freq < pts[m + 2]) {
          w = (pts[m + 2] - freq) / (pts[m + 2] - pts[m + 1]);
        }
        sum += w * power[k];
      }
      out[m][f] = std::log(sum + floor);
    }
  }
  return out;
}

TEST(MelTest, MatchesDirectComputation) {
  torch::manual_seed(3);
  MelConfig config{.n_fft = 128, .hop = 48, .n_mels = 12};
  const int sr = 16000;
  const int n = 700;
  torch::Tensor audio = 0.3 * torch::randn({1, n}) +
                        0.5 * torch::sin(torch::arange(n, torch::kFloat) * (2 * M_PI * 440 / sr))
                                  .unsqueeze(0);
  LogMelSpectrogram mel(config, sr);
  torch::Tensor got = mel->forward(audio).to(torch::kDouble);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, 12, 1 + n / 48}));
  EXPECT_EQ(mel->NumFrames(n), 1 + n / 48);
  std::vector<double> x(n);
  for (int i = 0; i < n; ++i) x[i] = audio[0][i].item<double>();
  auto want = DirectLogMel(x, sr, 128, 48, 12, config.log_floor);
  double worst = 0;
  for (int m = 0; m < 12; ++m) {
    for (int f = 0; f < got.size(2); ++f) {
      worst = std::max(worst, std::abs(got[0][m][f].item<double>() - want[m][f]));
    }
  }
  EXPECT_LT(worst, 1e-3);
}

TEST(MelTest, FilterbankTrianglesPeakAtTheirCentres) {
  // With a fine FFT grid every triangle nearly reaches 1 and adjacent
  // triangles sum to ~1 between the first and last centres (HTK, no norm).
  torch::Tensor fb = MelFilterbank(4096, 10, 16000, 0, 0);
  ASSERT_EQ(fb.sizes(), (std::vector<int64_t>{10, 2049}));
  EXPECT_GT(fb.amax(1).min().item<float>(), 0.95f);
  EXPECT_LE(fb.max().item<float>(), 1.0f);
  EXPECT_GE(fb.min().item<float>(), 0.0f);
  torch::Tensor sums = fb.sum(0);
  const int lo = static_cast<int>(MelToHz(HzToMel(8000) * 1 / 11) / 8000 * 2048) + 2;
  const int hi = static_cast<int>(MelToHz(HzToMel(8000) * 10 / 11) / 8000 * 2048) - 2;
  EXPECT_NEAR(sums.slice(0, lo, hi).min().item<float>(), 1.0f, 1e-3);
  EXPECT_NEAR(sums.slice(0, lo, hi).max().item<float>(), 1.0f, 1e-3);
  EXPECT_NEAR(MelToHz(HzToMel(1234.5)), 1234.5, 1e-9);
}

TEST(MelTest, BuffersFollowTheModuleAndAreNotParameters) {
  LogMelSpectrogram mel(MelConfig{}, 16000);
  EXPECT_TRUE(mel->parameters().empty());
  EXPECT_EQ(mel->buffers().size(), 2u);
}

}  // namespace
}  // namespace pianola
