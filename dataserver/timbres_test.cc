#include "dataserver/timbres.h"

#include <set>

#include "dataserver/renderer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

using ::testing::HasSubstr;

TEST(TimbresTest, DefaultSetIsValidAndEveryPresetExists) {
  TimbreSet set = DefaultTimbres();
  ASSERT_TRUE(ValidateTimbreSet(set, "default").ok()) << ValidateTimbreSet(set, "default");
  std::set<std::string> names, soundfonts;
  for (const Timbre& t : set.timbre()) {
    names.insert(t.name());
    soundfonts.insert(t.soundfont());
  }
  EXPECT_TRUE(names.count("fluidr3-grand"));
  EXPECT_TRUE(names.count("musescore-epiano"));
  EXPECT_TRUE(names.count("timgm-grand"));
  EXPECT_EQ(soundfonts.size(), 3u);
  auto renderer = Renderer::Create(RenderOptions());
  ASSERT_TRUE(renderer.ok());
  for (const Timbre& t : set.timbre()) {
    EXPECT_TRUE((*renderer)->CheckTimbre(t).ok()) << (*renderer)->CheckTimbre(t);
  }
}

TEST(TimbresTest, ParsesTextFormat) {
  auto set = ParseTimbreSet(R"(
    timbre { name: "a" soundfont: "/usr/share/sounds/sf2/TimGM6mb.sf2" preset: 4 gain: 0.7 }
    timbre { name: "b.2" soundfont: "/usr/share/sounds/sf2/TimGM6mb.sf2"
             reverb { enabled: true room_size: 0.5 damping: 0.1 width: 10 level: 0.5 } }
  )", "t.textproto");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->timbre_size(), 2);
  EXPECT_EQ(set->timbre(0).preset(), 4);
}

TEST(TimbresTest, TheShippedTwoPianoConfigLoads) {
  const char* root = std::getenv("PIANOLA_SOURCE_DIR");
  ASSERT_NE(root, nullptr);
  auto set = LoadTimbreSet(std::string(root) + "/configs/two_pianos.textproto");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->timbre_size(), 2);
}

struct BadCase {
  const char* text;
  absl::StatusCode code;
  const char* mentions;
};

TEST(TimbresTest, BadFilesGiveClearErrors) {
  const std::string sf = "soundfont: \"/usr/share/sounds/sf2/TimGM6mb.sf2\"";
  const std::vector<BadCase> cases = {
      {"timbre { name: \"a\" colour: 3 }", absl::StatusCode::kInvalidArgument, "colour"},
      {"timbre { name: \"a\" soundfont: \"/nope.sf2\" }", absl::StatusCode::kNotFound, "/nope.sf2"},
      {"", absl::StatusCode::kInvalidArgument, "no timbre"},
      {"timbre { name: \"a\" }", absl::StatusCode::kInvalidArgument, "soundfont"},
      {"timbre { name: \"\" soundfont: \"x\" }", absl::StatusCode::kInvalidArgument, "name"},
      {"timbre { name: \"a b\" soundfont: \"x\" }", absl::StatusCode::kInvalidArgument, "name"},
      {"timbre { name: \"a__b\" soundfont: \"x\" }", absl::StatusCode::kInvalidArgument, "'__'"},
      {nullptr, absl::StatusCode::kInvalidArgument, "preset"},
      {nullptr, absl::StatusCode::kInvalidArgument, "bank"},
      {nullptr, absl::StatusCode::kInvalidArgument, "gain"},
      {nullptr, absl::StatusCode::kInvalidArgument, "reverb.room_size"},
      {nullptr, absl::StatusCode::kInvalidArgument, "chorus.speed"},
      {nullptr, absl::StatusCode::kInvalidArgument, "used twice"},
  };
  const std::vector<std::string> generated = {
      "timbre { name: \"a\" " + sf + " preset: 128 }",
      "timbre { name: \"a\" " + sf + " bank: -1 }",
      "timbre { name: \"a\" " + sf + " gain: 11 }",
      "timbre { name: \"a\" " + sf + " reverb { enabled: true room_size: 2 } }",
      "timbre { name: \"a\" " + sf + " chorus { enabled: true voices: 3 level: 1 depth: 8 } }",
      "timbre { name: \"a\" " + sf + " } timbre { name: \"a\" " + sf + " }",
  };
  size_t g = 0;
  for (const BadCase& c : cases) {
    std::string text = c.text ? c.text : generated[g++];
    SCOPED_TRACE(text);
    auto set = ParseTimbreSet(text, "bad.textproto");
    ASSERT_FALSE(set.ok());
    EXPECT_EQ(set.status().code(), c.code) << set.status();
    EXPECT_THAT(std::string(set.status().message()), HasSubstr("bad.textproto"));
    EXPECT_THAT(std::string(set.status().message()), HasSubstr(c.mentions));
  }
  EXPECT_EQ(LoadTimbreSet("/no/such/timbres.textproto").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pianola
