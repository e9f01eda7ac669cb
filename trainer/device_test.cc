#include "trainer/device.h"

#include <gtest/gtest.h>

namespace pianola {
namespace {

TEST(DeviceNameTest, NamesCpuAndIndexedCuda) {
  // Constructing a CUDA device needs no GPU.
  EXPECT_EQ(DeviceName(c10::Device(c10::kCPU)), "cpu");
  EXPECT_EQ(DeviceName(c10::Device(c10::kCUDA, 1)), "cuda:1");
  EXPECT_EQ(DeviceName(c10::Device(c10::kCUDA)), "cuda:0");  // the current device
}

}  // namespace
}  // namespace pianola
