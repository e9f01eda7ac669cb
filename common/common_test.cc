// Tests for the small shared utilities: args, hash, file_util, progress, status macros.

#include <filesystem>

#include <sys/stat.h>
#include <unistd.h>

#include "common/args.h"
#include "common/file_util.h"
#include "common/hash.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "common/subcommand.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pianola {
namespace {

std::vector<char*> Argv(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  return out;
}

TEST(ArgsTest, ParsesFlagsBoolsRepeatsAndPositionals) {
  ArgParser p("usage");
  p.AddFlag("out", true).AddFlag("dataset").AddBool("frames").AddPositional("IN.mid");
  std::vector<std::string> v = {"in.mid", "--out", "x.npy", "--dataset=a", "--dataset", "b,c",
                                "--frames"};
  auto argv = Argv(v);
  auto args = p.Parse(argv.size(), argv.data());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Get("out"), "x.npy");
  EXPECT_THAT(args->GetAll("dataset"), testing::ElementsAre("a", "b", "c"));
  EXPECT_TRUE(args->GetBool("frames"));
  EXPECT_THAT(args->positional(), testing::ElementsAre("in.mid"));
}

TEST(ArgsTest, RejectsUnknownAndMissing) {
  ArgParser p("usage");
  p.AddFlag("out", true).AddFlag("fps");
  std::vector<std::string> unknown = {"--bogus", "1", "--out", "x"};
  auto a1 = Argv(unknown);
  EXPECT_THAT(p.Parse(a1.size(), a1.data()).status().message(), testing::HasSubstr("--bogus"));
  std::vector<std::string> missing = {"--fps", "250"};
  auto a2 = Argv(missing);
  EXPECT_THAT(p.Parse(a2.size(), a2.data()).status().message(), testing::HasSubstr("--out"));
  std::vector<std::string> novalue = {"--out"};
  auto a3 = Argv(novalue);
  EXPECT_FALSE(p.Parse(a3.size(), a3.data()).ok());
  // Positional arguments: only those declared, all of them.
  std::vector<std::string> stray = {"--out", "x", "-fps", "250"};
  auto a5 = Argv(stray);
  EXPECT_THAT(p.Parse(a5.size(), a5.data()).status().message(),
              testing::HasSubstr("unexpected argument '-fps' (flags take two dashes: --fps)"));
  ArgParser with_file("usage");
  with_file.AddPositional("FILE.mid");
  std::vector<std::string> none = {};
  auto a6 = Argv(none);
  EXPECT_THAT(with_file.Parse(a6.size(), a6.data()).status().message(),
              testing::HasSubstr("missing argument FILE.mid"));
  std::vector<std::string> two = {"a.mid", "b.mid"};
  auto a7 = Argv(two);
  EXPECT_THAT(with_file.Parse(a7.size(), a7.data()).status().message(),
              testing::HasSubstr("unexpected argument 'b.mid'"));
  std::vector<std::string> badint = {"--out", "x", "--fps", "fast"};
  auto a4 = Argv(badint);
  auto args = p.Parse(a4.size(), a4.data());
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->GetInt("fps", 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ArgsDeathTest, HelpPrintsUsageAndExitsZeroWhateverElseIsThere) {
  ArgParser p("tool cmd --out X [ARG]");
  p.AddFlag("out", true).AddPositional("ARG");
  std::vector<std::string> v = {"--bogus", "-h"};
  auto argv = Argv(v);
  EXPECT_EXIT(p.Parse(argv.size(), argv.data()), testing::ExitedWithCode(0), "");
  // After "--" it is a positional argument like any other.
  std::vector<std::string> after = {"--out", "x", "--", "--help"};
  auto argv2 = Argv(after);
  auto args = p.Parse(argv2.size(), argv2.data());
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->positional(), testing::ElementsAre("--help"));
}

TEST(HashTest, StableValues) {
  // Pinned: these values are part of the data contract (see hash.h).
  EXPECT_EQ(Mix64(0), 0xe220a8397b1dcdafULL);
  StableHasher a, b;
  a.Update("hello");
  b.Update("hello");
  EXPECT_EQ(a.Finish(), b.Finish());
  StableHasher c;
  c.Update("hellp");
  EXPECT_NE(a.Finish(), c.Finish());
  EXPECT_NE(HashCombine(1, 2), HashCombine(2, 1));
}

TEST(FileUtilTest, AtomicWriteAndRead) {
  std::string dir = testing::TempDir() + "/file_util_test";
  ASSERT_TRUE(MakeDirs(dir).ok());
  std::string path = dir + "/f.bin";
  ASSERT_TRUE(WriteFileAtomic(path, std::string("abc\0def", 7)).ok());
  auto got = ReadFile(path);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, std::string("abc\0def", 7));
  EXPECT_EQ(ReadFile(path, 3).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReadFile(dir + "/missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadFile(dir).status().code(), absl::StatusCode::kInvalidArgument);
  // No temporary files are left behind.
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) n += e.is_regular_file();
  EXPECT_EQ(n, 1);
}

TEST(FileUtilTest, WritesThroughSymlinksAndRefusesToReplaceWhatIsNotAFile) {
  const std::string dir = testing::TempDir() + "/file_util_targets_" + std::to_string(::getpid());
  ASSERT_TRUE(RemoveTree(dir).ok());
  ASSERT_TRUE(MakeDirs(dir + "/sub").ok());
  // A link is written through: the file it points to changes, the link stays.
  ASSERT_TRUE(WriteFileAtomic(dir + "/target.txt", "old").ok());
  std::filesystem::create_symlink("target.txt", dir + "/link.txt");
  ASSERT_TRUE(WriteFileAtomic(dir + "/link.txt", "new").ok());
  EXPECT_TRUE(std::filesystem::is_symlink(dir + "/link.txt"));
  EXPECT_EQ(ReadFile(dir + "/target.txt").value_or(""), "new");
  EXPECT_EQ(WritableFileTarget(dir + "/link.txt").value_or(""),
            std::filesystem::canonical(dir + "/target.txt").string());
  // A dangling link, a directory, a FIFO, a trailing slash: refused, named,
  // and left as they were.
  std::filesystem::create_symlink("missing.txt", dir + "/dangling.txt");
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0644), 0);
  for (const std::string& bad :
       {dir + "/dangling.txt", dir + "/sub", dir + "/fifo", dir + "/sub/"}) {
    SCOPED_TRACE(bad);
    absl::Status s = WriteFileAtomic(bad, "x");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), testing::HasSubstr(bad));
    EXPECT_EQ(WritableFileTarget(bad).status(), s);
  }
  EXPECT_THAT(WriteFileAtomic(dir + "/fifo", "x").message(), testing::HasSubstr("a FIFO"));
  EXPECT_THAT(WriteFileAtomic(dir + "/sub", "x").message(), testing::HasSubstr("a directory"));
  EXPECT_TRUE(std::filesystem::is_fifo(dir + "/fifo"));
  EXPECT_TRUE(std::filesystem::is_directory(dir + "/sub"));
  EXPECT_EQ(WriteFileAtomic(dir + "/nodir/f", "x").code(), absl::StatusCode::kNotFound);
  // Reading a FIFO is refused at once rather than waiting for a writer.
  EXPECT_THAT(ReadFile(dir + "/fifo").status().message(), testing::HasSubstr("a FIFO"));
  EXPECT_THAT(RequireRegularFile(dir + "/fifo").message(), testing::HasSubstr("a FIFO"));
  EXPECT_TRUE(RequireRegularFile(dir + "/link.txt").ok());
  EXPECT_EQ(RequireRegularFile(dir + "/missing").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(RemoveTree(dir).ok());
}

TEST(FileUtilTest, RemoveTreeRemovesNestedDirectoriesAndToleratesMissing) {
  std::string dir = testing::TempDir() + "/remove_tree_test";
  ASSERT_TRUE(MakeDirs(dir + "/a/b").ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/a/b/f", "x").ok());
  ASSERT_TRUE(WriteFileAtomic(dir + "/g", "y").ok());
  EXPECT_TRUE(RemoveTree(dir).ok());
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_TRUE(RemoveTree(dir).ok());
}

absl::StatusOr<int> Half(int x) {
  if (x % 2) return absl::InvalidArgumentError("odd");
  return x / 2;
}
absl::Status UseMacros(int x, int* out) {
  ASSIGN_OR_RETURN(int h, Half(x));
  RETURN_IF_ERROR(h > 100 ? absl::OutOfRangeError("big") : absl::OkStatus());
  *out = h;
  return absl::OkStatus();
}

TEST(StatusMacrosTest, PropagatesErrors) {
  int out = 0;
  EXPECT_TRUE(UseMacros(4, &out).ok());
  EXPECT_EQ(out, 2);
  EXPECT_EQ(UseMacros(3, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(UseMacros(400, &out).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(Annotate(absl::NotFoundError("x"), "ctx").message(), "ctx: x");
}

TEST(SubcommandTest, ExitStatusFollowsTheToolsContract) {
  EXPECT_EQ(ExitStatusFor(absl::OkStatus()), 0);
  for (const absl::Status& bad :
       {absl::InvalidArgumentError("x"), absl::NotFoundError("x"), absl::DataLossError("x"),
        absl::OutOfRangeError("x"), absl::ResourceExhaustedError("x")}) {
    EXPECT_EQ(ExitStatusFor(bad), 2) << bad;
  }
  for (const absl::Status& failed :
       {absl::UnavailableError("x"), absl::DeadlineExceededError("x"), absl::InternalError("x"),
        absl::FailedPreconditionError("x"), absl::CancelledError("x"), absl::UnknownError("x")}) {
    EXPECT_EQ(ExitStatusFor(failed), 1) << failed;
  }
}

TEST(ProgressTest, FormatsEta) {
  EXPECT_EQ(Progress::FormatEta(62), "1:02");
  EXPECT_EQ(Progress::FormatEta(3723), "1:02:03");
  EXPECT_EQ(Progress::FormatEta(-1), "?");
  std::FILE* f = std::tmpfile();
  Progress p("build", "files", 2, absl::ZeroDuration(), f);
  p.Add(1);
  p.Add(1, "done");
  p.Finish();
  std::rewind(f);
  char buf[512] = {};
  size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  std::string text(buf, n);
  EXPECT_THAT(text, testing::HasSubstr("build: 1/2 files (50.0%)"));
  EXPECT_THAT(text, testing::HasSubstr("build: 2/2 files (100.0%)"));
  EXPECT_THAT(text, testing::HasSubstr("ETA 0:00 done"));
}

}  // namespace
}  // namespace pianola
