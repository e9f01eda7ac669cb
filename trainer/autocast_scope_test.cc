#include "trainer/autocast_scope.h"

#include "gtest/gtest.h"

namespace pianola {
namespace {

// The scope only sets ATen's thread-local autocast state, so this runs
// without a GPU.
TEST(AutocastScopeTest, SetsBf16CudaAutocastAndRestoresTheOuterState) {
  ASSERT_FALSE(at::autocast::is_autocast_enabled(at::kCUDA));
  const at::ScalarType outer_dtype = at::autocast::get_autocast_dtype(at::kCUDA);
  ASSERT_TRUE(at::autocast::is_autocast_cache_enabled());
  {
    AutocastScope scope(true);
    EXPECT_TRUE(at::autocast::is_autocast_enabled(at::kCUDA));
    EXPECT_EQ(at::autocast::get_autocast_dtype(at::kCUDA), at::kBFloat16);
    EXPECT_TRUE(at::autocast::is_autocast_cache_enabled());
    {
      AutocastScope capture(true, /*cache_enabled=*/false);  // as inside a CUDA graph capture
      EXPECT_TRUE(at::autocast::is_autocast_enabled(at::kCUDA));
      EXPECT_FALSE(at::autocast::is_autocast_cache_enabled());
    }
    EXPECT_TRUE(at::autocast::is_autocast_enabled(at::kCUDA));
    EXPECT_TRUE(at::autocast::is_autocast_cache_enabled());
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCUDA));
  EXPECT_EQ(at::autocast::get_autocast_dtype(at::kCUDA), outer_dtype);
  EXPECT_TRUE(at::autocast::is_autocast_cache_enabled());
}

TEST(AutocastScopeTest, CpuScopeSetsCpuAutocastAlone) {
  ASSERT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
  {
    AutocastScope scope(true, /*cache_enabled=*/true, at::kCPU);
    EXPECT_TRUE(at::autocast::is_autocast_enabled(at::kCPU));
    EXPECT_EQ(at::autocast::get_autocast_dtype(at::kCPU), at::kBFloat16);
    EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCUDA));
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));
}

TEST(AutocastScopeTest, DisabledScopeChangesNothing) {
  {
    AutocastScope scope(false, /*cache_enabled=*/false);
    EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCUDA));
    EXPECT_TRUE(at::autocast::is_autocast_cache_enabled());
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCUDA));
}

}  // namespace
}  // namespace pianola
